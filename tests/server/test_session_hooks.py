"""In-process checks of the session's hooks and the one error mapping (no model)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from cattrs.errors import ClassValidationError
from pygls.exceptions import JsonRpcMethodNotFound

from lsp_llm.errors import (
    DocumentNotOpen,
    InvalidParams,
    RequestFailed,
    invalid_params_in,
    to_response_error,
)
from lsp_llm.server.session import LlmServer
from tests.server.test_wire_golden import URI, _initialize, _Wire, session  # noqa: F401


class _Recorder:
    """Workspaces that records the observe_* calls."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    def observe_open(self, uri: str, text: str, language_id: str) -> None:
        self.calls.append(("open", uri, text, language_id))

    def observe_change(self, uri: str, before: str, after: str) -> None:
        self.calls.append(("change", uri, before, after))

    def observe_close(self, uri: str) -> None:
        self.calls.append(("close", uri))

    def status_for(self, roots: Any) -> dict[str, Any]:
        return {}

    def __getattr__(self, name: str) -> Any:
        return lambda *args, **kwargs: None


def _change(version: int, start: tuple[int, int], end: tuple[int, int], text: str) -> Any:
    return {
        "jsonrpc": "2.0",
        "method": "textDocument/didChange",
        "params": {
            "textDocument": {"uri": URI, "version": version},
            "contentChanges": [
                {
                    "range": {
                        "start": {"line": start[0], "character": start[1]},
                        "end": {"line": end[0], "character": end[1]},
                    },
                    "text": text,
                }
            ],
        },
    }


def test_document_hooks_see_open_every_applied_change_and_close(
    session: tuple[LlmServer, _Wire],  # noqa: F811
) -> None:
    server, _ = session
    recorder = _Recorder()
    server.shared.workspaces = recorder  # type: ignore[assignment]
    messages = [
        *_initialize(),
        _change(2, (0, 4), (0, 7), "plus"),
        _change(2, (0, 0), (0, 1), "x"),  # a repeated version: rejected, no hook
        _change(3, (9, 0), (0, 0), "y"),  # a reversed range: rejected
        {
            "jsonrpc": "2.0",
            "method": "textDocument/didClose",
            "params": {"textDocument": {"uri": URI}},
        },
    ]
    for message in messages:
        server.protocol.handle_body(json.dumps(message).encode("utf-8"))
    text = _initialize()[2]["params"]["textDocument"]["text"]
    assert recorder.calls == [
        ("open", URI, text, "python"),
        ("change", URI, text, text.replace("def add", "def plus", 1)),
        ("close", URI),
    ]


def test_one_mapping_for_every_error() -> None:
    assert to_response_error(RequestFailed("out of memory")).code == -32803
    assert to_response_error(DocumentNotOpen("document 'x' is not open")).code == -32602
    method_missing = to_response_error(JsonRpcMethodNotFound.of("x"))
    assert method_missing.code == -32601
    other = to_response_error(KeyError("k"))
    assert (other.code, other.message) == (-32603, "KeyError: 'k'")


def test_invalid_params_is_found_inside_a_structuring_failure() -> None:
    ours = InvalidParams("invalid range None")
    group = ClassValidationError("x", [ValueError("a"), ours], object)
    wrapped = RuntimeError("outer")
    wrapped.__cause__ = group
    assert invalid_params_in(wrapped) is ours
    assert invalid_params_in(RuntimeError("plain")) is None
    assert invalid_params_in(None) is None


@pytest.mark.parametrize("bad", ["nope", {"start": {"line": 1}}, None])
def test_bad_ranges_name_the_value(bad: Any) -> None:
    from lsp_llm.server.wire import range_from_wire

    with pytest.raises(InvalidParams, match="invalid"):
        range_from_wire(bad)


async def test_a_domain_error_is_answered_with_its_code(
    session: tuple[LlmServer, _Wire],  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """RequestFailed raised under a handler reaches the client as -32803 with its message."""
    import asyncio

    from lsp_llm.features import assist

    async def failing(*args: Any, **kwargs: Any) -> Any:
        raise RequestFailed("the model ran out of memory")

    monkeypatch.setattr(assist, "explain", failing)
    server, wire = session
    server.loop = asyncio.get_running_loop()
    request = {
        "jsonrpc": "2.0",
        "id": 9,
        "method": "lspLlm/explain",
        "params": {
            "textDocument": {"uri": URI},
            "range": {"start": {"line": 0, "character": 0}, "end": {"line": 0, "character": 1}},
        },
    }
    for message in [*_initialize(), request]:
        server.protocol.handle_body(json.dumps(message).encode("utf-8"))
    for _ in range(50):
        await asyncio.sleep(0)
    answer = next(m for m in wire.messages if m.get("id") == 9)
    assert answer["error"] == {"code": -32803, "message": "the model ran out of memory"}
