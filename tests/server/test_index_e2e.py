"""The workspace index inside the server: cross-file context in prompts, secrets kept out."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.lsp_helpers import plain, start_session

HELPERS = '''"""Geometry helpers."""


def polygon_perimeter(points: list[tuple[float, float]]) -> float:
    """Sum of the edge lengths of a closed polygon."""
    total = 0.0
    for (x1, y1), (x2, y2) in zip(points, points[1:] + points[:1]):
        total += ((x2 - x1) ** 2 + (y2 - y1) ** 2) ** 0.5
    return total
'''

MAIN = "from helpers import polygon_perimeter\n\n\ndef report(shape):\n    return "

SECRET = "API_TOKEN=sk-live-very-secret-value-123\n"


def _workspace(root: Path) -> None:
    (root / "helpers.py").write_text(HELPERS)
    (root / ".env").write_text(SECRET)
    (root / "node_modules").mkdir()
    (root / "node_modules" / "junk.js").write_text("function polygon_perimeter() {}\n")


async def _index_ready(s) -> dict:  # type: ignore[no-untyped-def]
    async def ready() -> dict | None:
        st = plain(await s.status())
        return st if st.get("index", {}).get("state") == "ready" else None

    deadline = 60
    import asyncio

    loop = asyncio.get_running_loop()
    end = loop.time() + deadline
    while loop.time() < end:
        st = await ready()
        if st:
            return st
        await asyncio.sleep(0.1)
    raise TimeoutError("index not ready")


async def test_cross_file_definition_reaches_the_prompt(
    tmp_path: Path, tiny_args: list[str], server_env: dict[str, str]
) -> None:
    _workspace(tmp_path)
    async with start_session(tmp_path, tiny_args, server_env) as s:
        st = await _index_ready(s)
        assert st["index"]["files"] == 1, st["index"]  # helpers.py only: no .env, no vendored
        uri = s.open("main.py", MAIN)
        await s.inline(uri, 4, 11)
        last = plain(await s.status())["lastCompletion"]
        paths = {c["path"] for c in last["context"]}
        assert "helpers.py" in paths, last
        assert not any(p.endswith(".env") for p in paths)

        # A new file written while the server runs is seen through the watcher.
        (tmp_path / "shapes.py").write_text("def hexagon_area(side):\n    return side * side\n")

        async def indexed() -> bool:
            # helpers.py, main.py (written after the first build) and shapes.py
            return plain(await s.status())["index"]["files"] == 3

        import asyncio

        for _ in range(300):
            if await indexed():
                break
            await asyncio.sleep(0.1)
        assert await indexed()


async def test_secret_file_is_never_completed_or_explained(
    tmp_path: Path, tiny_args: list[str], server_env: dict[str, str]
) -> None:
    _workspace(tmp_path)
    async with start_session(tmp_path, tiny_args, server_env) as s:
        uri = s.open(".env", SECRET, language="dotenv")
        assert await s.inline(uri, 1, 0) is not None
        last = plain(await s.status())["lastCompletion"]
        assert last["reason"] == "secret file"
        with pytest.raises(Exception, match="secretPatterns"):
            await s.client.protocol.send_request_async(
                "lspLlm/explain",
                {
                    "textDocument": {"uri": uri},
                    "range": {
                        "start": {"line": 0, "character": 0},
                        "end": {"line": 1, "character": 0},
                    },
                },
            )
        assert plain(await s.status())["lastRequest"] is None, "the model must not have run"


def test_headless_index_and_context_commands(tmp_path: Path, server_env: dict[str, str]) -> None:
    _workspace(tmp_path)
    (tmp_path / "main.py").write_text(MAIN)
    run = subprocess.run(
        [sys.executable, "-m", "lsp_llm", "index", str(tmp_path), "--json"],
        capture_output=True,
        text=True,
        env=server_env,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    stats = json.loads(run.stdout)
    assert stats["files"] == 2 and stats["symbols"] >= 2
    ctx = subprocess.run(
        [sys.executable, "-m", "lsp_llm", "context", f"{tmp_path / 'main.py'}:5:12", "--json"],
        capture_output=True,
        text=True,
        env=server_env,
        cwd=tmp_path,
        timeout=120,
    )
    assert ctx.returncode == 0, ctx.stderr
    assert "polygon_perimeter" in ctx.stdout
    assert "sk-live" not in ctx.stdout
