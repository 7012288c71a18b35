"""The latency-critical plumbing around a completion, in-process (no model, no subprocess):
message structuring, the stdin reader, status notifications after answers. (The engine round
trip is tested with a real model in tests/engine/test_worker.py.)"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lsp_llm.config import Settings
from lsp_llm.engine.requests import (
    Timings,
)
from lsp_llm.engine.worker import Engine, EngineStatus
from lsp_llm.server import session as app_module
from lsp_llm.server.protocol import stdin_reader
from lsp_llm.server.routes import create_server
from lsp_llm.server.session import LlmServer, Shared

# -- fixtures --------------------------------------------------------------------------------


@pytest.fixture
def server() -> Iterator[LlmServer]:
    shared = Shared(engine=Engine(Settings()), base_settings=Settings())
    yield create_server(shared)


# -- structuring ---------------------------------------------------------------------------------


def _messages() -> list[dict[str, Any]]:
    text = 'x = "jsonrpc"\nmethod = {"jsonrpc": "2.0"}\n' * 50
    return [
        {
            "jsonrpc": "2.0",
            "method": "textDocument/didOpen",
            "params": {
                "textDocument": {
                    "uri": "file:///w/a.py",
                    "languageId": "python",
                    "version": 1,
                    "text": text,
                }
            },
        },
        {
            "jsonrpc": "2.0",
            "id": 7,
            "method": "textDocument/inlineCompletion",
            "params": {
                "textDocument": {"uri": "file:///w/a.py"},
                "position": {"line": 3, "character": 4},
                "context": {"triggerKind": 2},
            },
        },
        {"jsonrpc": "2.0", "id": "s1", "method": "lspLlm/status", "params": {"a": {"b": [1]}}},
        # A nested object with its own "jsonrpc" key: pygls structures it too (slow path).
        {"jsonrpc": "2.0", "id": 8, "method": "lspLlm/x", "params": {"jsonrpc": "2.0", "id": 1}},
        # Escapes could spell a key; these take the slow path as well.
        {"jsonrpc": "2.0", "method": "lspLlm/y", "params": {"k": "caf\u00e9 \U0001f600"}},
    ]


@pytest.mark.parametrize("index", range(len(_messages())))
def test_structuring_is_the_same_with_and_without_the_round_trip(
    server: LlmServer, index: int
) -> None:
    body = json.dumps(_messages()[index]).encode("utf-8")
    protocol = server.protocol

    def structure(*args: Any) -> Any:
        try:
            return protocol._converter_structure(*args)
        except Exception as exc:  # pygls refuses some of them: the same way both times
            return exc.__class__

    fast = structure(json.loads(body), body)
    slow = structure(json.loads(body))
    assert fast == slow
    assert type(fast) is type(slow)


def test_structuring_a_document_does_not_serialize_it_again(
    server: LlmServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    body = json.dumps(_messages()[0]).encode("utf-8")
    raw = json.loads(body)

    def no_dumps(*args: Any, **kwargs: Any) -> str:
        raise AssertionError("re-serialized")

    monkeypatch.setattr(json, "dumps", no_dumps)
    message = server.protocol._converter_structure(raw, body)
    assert message.params.text_document.text == raw["params"]["textDocument"]["text"]


# -- stdin ---------------------------------------------------------------------------------------


def _stdin_threads() -> int:
    return sum(1 for t in threading.enumerate() if t.name == "lsp-llm-stdin")


async def test_stdin_pipe_is_read_by_the_loop_itself() -> None:
    r, w = os.pipe()
    try:
        before = _stdin_threads()
        read = stdin_reader(asyncio.get_running_loop(), r)
        assert _stdin_threads() == before  # no thread hop for pipes and sockets
        os.write(w, b"Content-Length: 2\r\n\r\n{}")
        assert await asyncio.wait_for(read(), 5) == b"Content-Length: 2\r\n\r\n{}"
        os.close(w)
        w = -1
        assert await asyncio.wait_for(read(), 5) == b""
    finally:
        asyncio.get_running_loop().remove_reader(r)
        os.close(r)
        if w != -1:
            os.close(w)


async def test_stdin_file_falls_back_to_a_thread(tmp_path: Path) -> None:
    path = tmp_path / "input"
    path.write_bytes(b"abc")
    fd = os.open(path, os.O_RDONLY)
    try:
        read = stdin_reader(asyncio.get_running_loop(), fd)
        chunks = []
        while chunk := await asyncio.wait_for(read(), 5):
            chunks.append(chunk)
        assert b"".join(chunks) == b"abc"
    finally:
        os.close(fd)


# -- status notifications ----------------------------------------------------------------------


async def test_timing_only_status_waits_for_the_pending_answer(
    server: LlmServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    loop = asyncio.get_running_loop()
    server.loop = loop
    published: list[EngineStatus] = []
    monkeypatch.setattr(server, "_publish_status", published.append)
    monkeypatch.setattr(app_module, "STATUS_AFTER_RESPONSE_S", 0.01)

    ready = EngineStatus(state="ready", generation=1)
    server._engine_status_changed(ready)
    assert published == [ready]  # a real change goes out at once

    pending: asyncio.Future[Any] = loop.create_future()
    server.protocol._request_futures["req-1"] = pending  # a completion being answered
    timed = dataclasses.replace(ready, last=Timings(total_s=0.3, new_tokens=5))
    server._engine_status_changed(timed)
    await asyncio.sleep(0.05)
    assert published == [ready]  # not in front of the answer

    del server.protocol._request_futures["req-1"]
    server._after_response()  # the answer was written
    assert published == [ready]  # ...and the client gets a moment to read it
    await asyncio.sleep(0.1)
    assert published == [ready, timed]

    # A state change is never held back, and replaces a deferred one.
    server.protocol._request_futures["req-2"] = loop.create_future()
    server._engine_status_changed(dataclasses.replace(timed, last=Timings(total_s=0.1)))
    loading = EngineStatus(state="loading", generation=2)
    server._engine_status_changed(loading)
    assert published == [ready, timed, loading]
    await asyncio.sleep(0.05)
    assert published == [ready, timed, loading]
    server.protocol._request_futures.clear()


async def test_deferred_status_goes_out_even_while_a_long_request_runs(
    server: LlmServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    loop = asyncio.get_running_loop()
    server.loop = loop
    published: list[EngineStatus] = []
    monkeypatch.setattr(server, "_publish_status", published.append)
    monkeypatch.setattr(app_module, "STATUS_MAX_DEFER_S", 0.05)
    ready = EngineStatus(state="ready", generation=1)
    server._engine_status_changed(ready)
    server.protocol._request_futures["long"] = loop.create_future()
    timed = dataclasses.replace(ready, last=Timings(total_s=0.3))
    server._engine_status_changed(timed)
    await asyncio.sleep(0.2)
    assert published == [ready, timed]
    server.protocol._request_futures.clear()
