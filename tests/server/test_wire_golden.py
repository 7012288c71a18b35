"""Golden JSON of our custom wire messages, in-process (no model, no subprocess).

Each file in ``tests/server/golden/`` holds what a client sends (``client``) and everything the
server writes back (``server``), message by message. The Neovim plugin, the VS Code extension
and the Emacs package parse exactly these shapes, so a change here is a change for them.

The model is replaced by fixed answers (``assist.explain`` / ``assist.docstring``): what is
pinned is the translation between the wire and the domain, not what a model writes. To
rewrite the files after a deliberate wire change: ``LSP_LLM_UPDATE_GOLDEN=1 pytest <this file>``
(then read the diff).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from lsp_llm.config import Settings
from lsp_llm.docstrings import DocTarget, TextEdit
from lsp_llm.engine.worker import Engine
from lsp_llm.features import assist
from lsp_llm.server.routes import create_server
from lsp_llm.server.session import LlmServer, Shared

GOLDEN = Path(__file__).parent / "golden"
UPDATE = os.environ.get("LSP_LLM_UPDATE_GOLDEN") == "1"
URI = "file:///w/calc.py"
TEXT = "def add(a, b):\n    return a + b\n\n\ndef sub(a, b):\n    return a - b\n"
_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")

CAPABILITIES: dict[str, Any] = {
    "window": {"workDoneProgress": False},
    "workspace": {"workspaceEdit": {"documentChanges": True}},
    "textDocument": {"codeAction": {"resolveSupport": {"properties": ["edit"]}}},
}


class _Stats:
    """Acceptance statistics with a fixed summary."""

    def __init__(self) -> None:
        self.accepted_ids: list[tuple[str, bool]] = []

    def summary(self) -> dict[str, Any]:
        return {"shown": 3, "accepted": 1, "rate": 0.333}

    def shown(self, *args: Any) -> None:
        pass

    def accepted(self, suggestion_id: str, *, partial: bool = False) -> bool:
        self.accepted_ids.append((suggestion_id, partial))
        return suggestion_id == "s-1"

    def accept(self, suggestion_id: str, **kwargs: Any) -> Any:
        """Known: ``s-1``; its text was already taken (no retention check to schedule)."""
        self.accepted_ids.append((suggestion_id, kwargs.get("kind") == "partial"))
        return SimpleNamespace(text="") if suggestion_id == "s-1" else None

    def did_show(self, suggestion_id: str) -> bool:
        return suggestion_id == "s-1"

    def save(self, force: bool = False) -> None:
        pass


async def _fake_explain(
    engine: Any, snap: Any, start: int, end: int, *, on_chunk: Any = None, **_: Any
) -> assist.ExplainResult:
    code, first, last = assist.explain_region(snap, start, end)
    for chunk in ("Adds ", "two numbers."):
        if on_chunk is not None:
            on_chunk(chunk)
    return assist.ExplainResult(
        text="Adds two numbers.", finish_reason="stop", code=code, start_line=first, end_line=last
    )


async def _fake_docstring(
    engine: Any, snap: Any, line: int, *, on_chunk: Any = None, **_: Any
) -> assist.DocstringResult:
    if on_chunk is not None:
        on_chunk("Add a and b.")
    target = DocTarget(
        language="python",
        kind="function",
        name="add",
        params=(),
        returns=None,
        code="def add(a, b):\n    return a + b\n",
        body_indent="    ",
        insert_line=1,
        existing=None,
    )
    edit = TextEdit(start_line=1, start_col=0, end_line=1, end_col=0, new_text='    """Add."""\n')
    return assist.DocstringResult(text='"""Add."""', edit=edit, target=target, raw="Add.")


class _Wire:
    """The server's writer: every body it writes, parsed."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []

    def write(self, data: bytes) -> None:
        self.messages.append(json.loads(data))

    def close(self) -> None:
        pass


@pytest.fixture
def session(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[tuple[LlmServer, _Wire]]:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(assist, "explain", _fake_explain)
    monkeypatch.setattr(assist, "docstring", _fake_docstring)
    engine = Engine(Settings())
    monkeypatch.setattr(engine, "start", lambda: None)  # no model: answers are fixed
    shared = Shared(engine=engine, base_settings=Settings())
    shared.stats = _Stats()
    server = create_server(shared)
    server.session_id = 1
    wire = _Wire()
    server.protocol.set_writer(wire, include_headers=False)
    yield server, wire


def _normalize(obj: Any) -> Any:
    """Server-generated request ids are random."""
    if isinstance(obj, dict):
        return {
            k: "<uuid>" if k == "id" and isinstance(v, str) and _UUID.match(v) else _normalize(v)
            for k, v in obj.items()
        }
    if isinstance(obj, list):
        return [_normalize(v) for v in obj]
    return obj


def _keep(name: str, message: dict[str, Any]) -> bool:
    """The initialize answer and the status notification (capabilities and every setting)
    are pinned once, in the status scenarios; the others pin only their own messages."""
    if name.startswith("status"):
        return True
    return message.get("id") != 0 and message.get("method") != "lspLlm/statusChanged"


async def _drive(
    server: LlmServer, wire: _Wire, client: list[dict[str, Any]], name: str
) -> list[Any]:
    server.loop = asyncio.get_running_loop()
    for message in client:
        server.protocol.handle_body(json.dumps(message).encode("utf-8"))
        for _ in range(20):  # let async handlers answer
            await asyncio.sleep(0)
    await asyncio.sleep(0.01)
    return [_normalize(m) for m in wire.messages if _keep(name, m)]


class _Workspaces:
    """An index registry with a fixed status (the real one needs files and threads)."""

    def status_for(self, roots: Any) -> dict[str, Any]:
        return {"state": "ready", "files": 2, "chunks": 7}

    def __getattr__(self, name: str) -> Any:
        return lambda *args, **kwargs: None  # document_changed, observe_open, ...


def _with_last_completion(server: LlmServer) -> None:
    """A status with every optional part: the last completion and the index."""
    server.shared.workspaces = _Workspaces()
    snippet = SimpleNamespace(path="util.py", source="definition", score=0.81234)
    server.last_completion = SimpleNamespace(  # type: ignore[assignment]
        source="model",
        reason="stop",
        suggestions=[object(), object()],
        spans={"prompt": 1.23456, "model": 10.0},
        snippets=[snippet],
    )


SETUP = {"status_full": _with_last_completion}


def _initialize(capabilities: dict[str, Any] = CAPABILITIES) -> list[dict[str, Any]]:
    return [
        {
            "jsonrpc": "2.0",
            "id": 0,
            "method": "initialize",
            "params": {
                "processId": None,
                "rootUri": None,
                "capabilities": capabilities,
                "initializationOptions": {"maxNewTokens": 8},
            },
        },
        {"jsonrpc": "2.0", "method": "initialized", "params": {}},
        {
            "jsonrpc": "2.0",
            "method": "textDocument/didOpen",
            "params": {
                "textDocument": {"uri": URI, "languageId": "python", "version": 1, "text": TEXT}
            },
        },
    ]


def _request(msg_id: int, method: str, params: Any) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": msg_id, "method": method, "params": params}


_RANGE = {"start": {"line": 1, "character": 4}, "end": {"line": 1, "character": 16}}

SCENARIOS: dict[str, list[dict[str, Any]]] = {
    # The initialize answer, the first statusChanged, and a status request.
    "status": [
        *_initialize(),
        _request(1, "lspLlm/status", {}),
        _request(2, "lspLlm/status", None),
        _request(3, "workspace/executeCommand", {"command": "lspLlm.status", "arguments": []}),
    ],
    "status_full": [
        *_initialize(),
        _request(1, "lspLlm/status", {}),
    ],
    "explain_partial": [
        *_initialize(),
        _request(
            1,
            "lspLlm/explain",
            {"textDocument": {"uri": URI}, "range": _RANGE, "partialResultToken": "p-1"},
        ),
    ],
    "explain_work_done": [
        *_initialize(),
        _request(
            1,
            "lspLlm/explain",
            {"textDocument": {"uri": URI}, "range": _RANGE, "workDoneToken": "w-1"},
        ),
        # Lenient positions: strings of digits and negative numbers are accepted (clamped).
        _request(
            2,
            "lspLlm/explain",
            {
                "textDocument": {"uri": URI},
                "range": {
                    "start": {"line": "0", "character": -3},
                    "end": {"line": 1, "character": 2},
                },
            },
        ),
    ],
    "explain_errors": [
        *_initialize(),
        _request(
            1, "lspLlm/explain", {"textDocument": {"uri": "file:///w/nope.py"}, "range": _RANGE}
        ),
        _request(2, "lspLlm/explain", {"textDocument": {"uri": URI}, "range": "nope"}),
        _request(
            3, "lspLlm/explain", {"textDocument": {"uri": URI}, "range": {"start": {"line": 1}}}
        ),
        _request(4, "lspLlm/explain", {"textDocument": {"uri": URI}}),
        _request(5, "lspLlm/docstring", {"textDocument": {"uri": URI}, "position": "x"}),
        _request(6, "lspLlm/docstring", {"position": {"line": 0, "character": 0}}),
    ],
    "docstring": [
        *_initialize(),
        _request(
            1,
            "lspLlm/docstring",
            {
                "textDocument": {"uri": URI},
                "position": {"line": 0, "character": 5},
                "partialResultToken": "p-2",
            },
        ),
    ],
    "docstring_changes": [
        *_initialize({}),
        _request(
            1,
            "lspLlm/docstring",
            {"textDocument": {"uri": URI}, "position": {"line": 0, "character": 5}},
        ),
    ],
    "code_actions": [
        *_initialize(),
        _request(
            1,
            "textDocument/codeAction",
            {
                "textDocument": {"uri": URI},
                "range": {"start": {"line": 0, "character": 5}, "end": {"line": 0, "character": 5}},
                "context": {"diagnostics": []},
            },
        ),
        _request(
            2,
            "codeAction/resolve",
            {
                "title": "Generate docstring",
                "kind": "refactor.rewrite.lspLlm.docstring",
                "data": {"uri": URI, "position": {"line": 0, "character": 5}},
            },
        ),
    ],
    "code_actions_commands": [
        *_initialize({}),
        _request(
            1,
            "textDocument/codeAction",
            {
                "textDocument": {"uri": URI},
                "range": {"start": {"line": 4, "character": 0}, "end": {"line": 5, "character": 3}},
                "context": {"diagnostics": [], "only": ["source"]},
            },
        ),
    ],
    "accept": [
        *_initialize(),
        _request(
            1,
            "workspace/executeCommand",
            {"command": "lspLlm.didAccept", "arguments": [{"id": "s-1", "partial": True}]},
        ),
        _request(
            2, "workspace/executeCommand", {"command": "lspLlm.didAccept", "arguments": ["s-2"]}
        ),
    ],
}


@pytest.mark.parametrize("name", sorted(SCENARIOS))
async def test_wire_matches_golden(session: tuple[LlmServer, _Wire], name: str) -> None:
    server, wire = session
    path = GOLDEN / f"{name}.json"
    client = (
        json.loads(path.read_text())["client"] if path.exists() and not UPDATE else SCENARIOS[name]
    )
    if name in SETUP:
        SETUP[name](server)
    got = await _drive(server, wire, client, name)
    if UPDATE or not path.exists():
        GOLDEN.mkdir(exist_ok=True)
        path.write_text(json.dumps({"client": client, "server": got}, indent=2) + "\n")
        if not UPDATE:
            pytest.fail(f"{path.name} did not exist; written, check it and run again")
    expected = json.loads(path.read_text())["server"]
    assert got == expected


def test_every_golden_file_has_a_scenario() -> None:
    """A golden file without a scenario would never be checked."""
    assert {p.stem for p in GOLDEN.glob("*.json")} == set(SCENARIOS)
