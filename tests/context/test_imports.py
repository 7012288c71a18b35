"""Import-aware context: imports resolve to workspace files, and the definition of an imported
name the user is about to type reaches the prompt (the same path the server takes)."""

from __future__ import annotations

from pathlib import Path

import pytest

from lsp_llm.config import Settings
from lsp_llm.context.imports import ModuleMap, parse_imports, resolve
from lsp_llm.context.index import WorkspaceIndex
from lsp_llm.context.retrieve import default_token_count, retrieval_budget
from lsp_llm.context.types import ContextSnippet
from lsp_llm.engine.backends.approx_tokenizer import ApproxTokenizer
from lsp_llm.features.completion import DocumentSnapshot, completion_prompt

from .conftest import write

FILES = [
    "pkg/__init__.py",
    "pkg/models.py",
    "pkg/util/helpers.py",
    "web/src/client.ts",
    "web/src/types/index.ts",
    "go/internal/store/store.go",
    "rs/src/net/conn.rs",
    "java/com/acme/Widget.java",
    "c/src/util.h",
]


@pytest.mark.parametrize(
    ("rel", "statement", "name", "target"),
    [
        ("pkg/api.py", "from .models import Response", "Response", "pkg/models.py"),
        ("pkg/api.py", "from pkg.util.helpers import clean as c", "c", "pkg/util/helpers.py"),
        ("pkg/util/x.py", "from ..models import (Response,\n Request)", "Request", "pkg/models.py"),
        (
            "web/src/app.ts",
            'import { Client, type Opts } from "./client.js";',
            "Opts",
            "web/src/client.ts",
        ),
        ("web/src/app.ts", 'import { Token as T } from "./types";', "T", "web/src/types/index.ts"),
        ("rs/src/main.rs", "use crate::net::conn::{Conn, Pool as P};", "P", "rs/src/net/conn.rs"),
        (
            "java/com/acme/App.java",
            "import com.acme.Widget;",
            "Widget",
            "java/com/acme/Widget.java",
        ),
    ],
)
def test_named_imports_resolve(rel: str, statement: str, name: str, target: str) -> None:
    refs = parse_imports(rel, [statement])
    modules = ModuleMap(FILES)
    found = {
        local: resolve(ref, FILES.__contains__, modules, rel)
        for ref in refs
        for _, local in ref.names
    }
    assert found[name] == [target]


def test_module_imports_resolve() -> None:
    modules = ModuleMap(FILES)
    go = parse_imports("go/cmd/main.go", ['"example.com/app/internal/store"'])
    assert go[0].module_alias == "store"
    assert resolve(go[0], FILES.__contains__, modules) == ["go/internal/store/store.go"]
    c = parse_imports("c/src/main.c", ['#include "util.h"'])
    assert c[0].all_names
    assert resolve(c[0], FILES.__contains__, modules) == ["c/src/util.h"]
    py = parse_imports("pkg/api.py", ["import pkg.models as m"])
    assert py[0].module_alias == "m"
    assert resolve(py[0], FILES.__contains__, modules) == ["pkg/models.py"]
    # Third-party packages and half-typed statements resolve to nothing, and never raise.
    for statement in ("import numpy as np", "from . import", 'import { X } from "react";'):
        for ref in parse_imports("pkg/api.ts" if "{" in statement else "pkg/api.py", [statement]):
            assert resolve(ref, FILES.__contains__, modules) == []


MODELS = '''
    """Models."""


    class Response:
        """An HTTP response."""

        def __init__(self, status_code: int, content: bytes = b"") -> None:
            self.status_code = status_code
            self.content = content


    class Request:
        """An HTTP request."""

        def __init__(self, method: str, url: str) -> None:
            self.method = method
            self.url = url


    def build_timeout(seconds: float) -> float:
        """A timeout in seconds."""
        return seconds
'''

CLIENT = """
    from .models import Request, Response, build_timeout


    def send(method, url):
        request = Request(method, url)
        return request


    def get(url):
        return send("GET", url)


    def post(url):
        return send("POST", url)


    def delete(url):
        return send("DELETE", url)


    def head(url):
        return send("HEAD", url)


    def fake(status):
        content = b""
        return
"""


def test_imported_name_about_to_be_typed_reaches_the_prompt(
    tmp_path: Path, settings: Settings, cache: Path
) -> None:
    """The cursor is at ``return |`` before ``Response(...)`` is typed: nothing near the cursor
    names it, but the file imports it, so its signature must reach the prompt."""
    root = tmp_path / "ws"
    write(root, "pkg/__init__.py", "")
    write(root, "pkg/models.py", MODELS)
    client = write(root, "pkg/client.py", CLIENT)
    index = WorkspaceIndex(root, settings, cache)
    index.build()
    text = client.read_text()
    offset = text.rindex("return") + len("return ")
    snap = DocumentSnapshot(
        uri=client.as_uri(), path="pkg/client.py", language="python", version=1, text=text
    )
    retrieved: list[ContextSnippet] = []

    def retriever(snap: DocumentSnapshot, offset: int, budget: int) -> list[ContextSnippet]:
        retrieved[:] = index.retrieve(client, snap.text, offset, budget=budget)
        return retrieved

    prompt = completion_prompt(
        snap,
        offset,
        settings=settings,
        tokenizer=ApproxTokenizer(),
        template=None,
        retriever=retriever,
    )
    shown = {s.symbol: s for s in prompt.snippets if s.path == "pkg/models.py"}
    assert "Response" in shown, [s.symbol for s in prompt.snippets]
    assert "class Response:" in shown["Response"].text
    assert "class Response:" in prompt.text
    # What retrieval returned (what ``lsp-llm context`` shows) is exactly what the prompt holds.
    assert {(s.path, s.start_line, s.text) for s in prompt.snippets} == {
        (s.path, s.start_line, s.text) for s in retrieved
    }


def test_retrieval_budget_fits_the_prompt(settings: Settings) -> None:
    """Snippets packed into the retrieval budget with its counter fit the prompt's room."""
    total = settings.context_window - settings.max_new_tokens
    assert 0 < retrieval_budget(settings) <= int((total - 40) * settings.retrieval_share)
    tok = ApproxTokenizer()
    text = "def f(x):\n    return x  # 12345\n"
    rendered = "# Path: a.py\n" + "".join(f"# {line}\n" for line in text.splitlines())
    assert default_token_count(f"a.py\n{text}\n") >= len(tok.encode(rendered))
