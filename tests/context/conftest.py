"""Fixtures for the workspace index tests: small real repositories in ``tmp_path``."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from lsp_llm.config import Settings

SECRET_VALUE = "sk-live-TOPSECRET-0123456789"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "watch: uses a real file watcher (timing-tolerant; deselect with -m 'not watch')",
    )


def write(root: Path, rel: str, text: str) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


GEOMETRY = '''
    """Shapes and their measures."""

    import math


    def compute_area(width: float, height: float) -> float:
        """Area of a width x height rectangle."""
        return width * height


    class Circle:
        """A circle around the origin."""

        def __init__(self, radius: float) -> None:
            self.radius = radius

        def circumference(self) -> float:
            return 2 * math.pi * self.radius
'''

MAIN = """
    from pkg.geometry import compute_area


    def report(width, height):
        total = compute_area(
"""


@pytest.fixture
def settings() -> Settings:
    return Settings()


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    path = tmp_path / "cache"
    path.mkdir()
    return path


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A small Python project with a cross-file import and some secrets."""
    root = tmp_path / "repo"
    (root / ".git").mkdir(parents=True)
    write(root, "pkg/__init__.py", "")
    write(root, "pkg/geometry.py", GEOMETRY)
    write(root, "app/main.py", MAIN)
    write(root, "README.md", "# Demo\n\nCompute areas of shapes.\n")
    # Secrets that would match the query if they were ever indexed.
    write(root, ".env", f"API_KEY={SECRET_VALUE}\ncompute_area width height total\n")
    write(root, "keys/id_rsa", f"-----BEGIN KEY-----\n{SECRET_VALUE} compute_area width\n")
    write(root, "conf/credentials.json", f'{{"token": "{SECRET_VALUE}", "compute_area": 1}}\n')
    write(root, "tls/server.pem", f"{SECRET_VALUE} compute_area width height\n")
    return root
