"""The JSON-RPC edges over a raw pipe: bytes written by hand, answers parsed by hand.

The server here has a model that cannot load (it starts in ~2 s); none of this needs one.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.robustness.conftest import broken_model_args
from tests.robustness.raw import RawServer, frame

STATUS = {"jsonrpc": "2.0", "method": "lspLlm/status", "params": {}}


@pytest.fixture(scope="module")
def raw(
    server_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RawServer]:
    tmp = tmp_path_factory.mktemp("raw")
    server = RawServer(broken_model_args(tmp), server_env, tmp, stderr_path=tmp / "stderr.log")
    try:
        reply = server.initialize(tmp)
        assert "result" in reply, reply
        yield server
    finally:
        server.close()


BAD_FRAMES = {
    "missing Content-Length": b"Content-Type: application/json\r\n\r\n{}",
    "non-numeric Content-Length": b"Content-Length: abc\r\n\r\n{}",
    "negative Content-Length": b"Content-Length: -3\r\n\r\n{}",
    "Content-Length too long": frame({"jsonrpc": "2.0", "method": "x"}, length=500),
    "Content-Length too short": frame(
        {"jsonrpc": "2.0", "id": 77, "method": "lspLlm/status"}, length=10
    ),
    "Content-Length too short into the next header": b"Content-Length: 1\r\n\r\n",
    "truncated JSON": frame(b'{"jsonrpc": "2.0", "id": '),
    "invalid JSON": frame(b"{nope}"),
    "non-UTF-8 bytes": frame(b"\xff\xfe\x00\xc3("),
    "non-UTF-8 inside a string": frame(b'{"jsonrpc": "2.0", "method": "x", "params": "\xff"}'),
    "JSON array": frame(b"[1, 2, 3]"),
    "JSON number": frame(b"42"),
    "JSON null": frame(b"null"),
    "deeply nested JSON": frame(b"[" * 100_000 + b"]" * 100_000),
    "no jsonrpc member": frame({"id": 5, "method": "lspLlm/status"}),
    "method not a string": frame({"jsonrpc": "2.0", "id": 6, "method": 12}),
    "id an object": frame({"jsonrpc": "2.0", "id": {"a": 1}, "method": "lspLlm/status"}),
    "bare garbage": b"hello world\r\n\r\n\x00\x01\x02",
    "empty header": b"\r\n\r\n",
    "huge declared length": b"Content-Length: 99999999999\r\n\r\n",
}


@pytest.mark.parametrize("name", list(BAD_FRAMES))
def test_bad_frame_then_valid_request_is_answered(raw: RawServer, name: str) -> None:
    before = len(raw.received)
    raw.write(BAD_FRAMES[name])
    msg_id = raw.new_id()
    raw.send({**STATUS, "id": msg_id})
    reply = raw.response(msg_id, timeout=15)
    assert "result" in reply, reply
    assert raw.proc.poll() is None
    # Whatever the bad frame got back is an error (never a result), with a code from the spec.
    extra = [m for m in raw.received[before:] if m is not reply and "method" not in m]
    for m in extra:
        assert m["error"]["code"] in (-32700, -32600, -32602), m


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"{nope}", -32700),
        (b"[1]", -32600),
        (b'"text"', -32600),
        (json.dumps({"jsonrpc": "1.0", "id": 3, "method": "x"}).encode(), -32600),
    ],
)
def test_error_codes_for_bad_bodies(raw: RawServer, body: bytes, code: int) -> None:
    before = len(raw.received)
    raw.write(frame(body))
    raw.wait_for(lambda m: "error" in m and m["error"]["code"] == code, timeout=10, start=before)


def test_unknown_method_is_32601(raw: RawServer) -> None:
    reply = raw.request("no/suchMethod", {})
    assert reply["error"]["code"] == -32601


def test_unknown_notification_is_ignored(raw: RawServer) -> None:
    raw.notify("no/suchNotification", {"x": 1})
    raw.notify("$/someExtension", {})
    assert "result" in raw.request("lspLlm/status", {})


@pytest.mark.parametrize(
    "position",
    ["nope", {"line": "a", "character": 0}, {"line": -1, "character": 0}, {"line": 2**40}, None],
)
def test_bad_params_are_32602_with_the_right_id(raw: RawServer, position: object) -> None:
    uri = "file:///tmp/bad-params.py"
    raw.did_open(uri, "x = 1\n")
    msg_id = raw.new_id()
    raw.send(
        {
            "jsonrpc": "2.0",
            "id": msg_id,
            "method": "textDocument/inlineCompletion",
            "params": {
                "textDocument": {"uri": uri},
                "position": position,
                "context": {"triggerKind": 1},
            },
        }
    )
    reply = raw.response(msg_id)
    assert reply["error"]["code"] == -32602
    assert reply["id"] == msg_id


def test_string_ids_are_answered_with_the_same_id(raw: RawServer) -> None:
    reply = raw.response(raw.request_nowait("lspLlm/status", {}, msg_id="abc-1"))
    assert reply["id"] == "abc-1" and "result" in reply


def test_notification_with_bad_params_is_dropped_quietly(raw: RawServer) -> None:
    before = len(raw.received)
    raw.notify("textDocument/didOpen", {"textDocument": "nope"})
    raw.notify("textDocument/didChange", {"textDocument": {"uri": 1}, "contentChanges": 5})
    assert "result" in raw.request("lspLlm/status", {})
    assert not [m for m in raw.received[before:] if "error" in m]


def test_pipelined_requests_each_get_one_answer(raw: RawServer) -> None:
    ids = [raw.new_id() for _ in range(50)]
    raw.write(b"".join(frame({**STATUS, "id": i}) for i in ids))
    for i in ids:
        raw.response(i)
    counts = raw.responses_per_id()
    assert all(counts[i] == 1 for i in ids)


def test_every_request_so_far_got_exactly_one_answer(raw: RawServer) -> None:
    counts = raw.responses_per_id()
    duplicated = {k: v for k, v in counts.items() if k is not None and v != 1}
    assert not duplicated


# -- lifecycle: separate processes --------------------------------------------------------------


def _start(tmp_path: Path, env: dict[str, str]) -> RawServer:
    return RawServer(broken_model_args(tmp_path), env, tmp_path, stderr_path=tmp_path / "e.log")


def test_requests_before_initialize_are_32002(tmp_path: Path, server_env: dict[str, str]) -> None:
    s = _start(tmp_path, server_env)
    try:
        for method in ("lspLlm/status", "textDocument/inlineCompletion", "shutdown", "no/such"):
            reply = s.request(method, {})
            assert reply["error"]["code"] == -32002, (method, reply)
        # Notifications before initialize are dropped without an answer; then it initializes.
        s.notify("textDocument/didOpen", {"textDocument": {"uri": "file:///x", "text": ""}})
        assert "result" in s.initialize(tmp_path)
        assert "result" in s.request("lspLlm/status", {})
    finally:
        s.close()


def test_exit_without_shutdown_is_exit_code_1(tmp_path: Path, server_env: dict[str, str]) -> None:
    s = _start(tmp_path, server_env)
    try:
        s.initialize(tmp_path)
        s.notify("exit")
        assert s.wait(20) == 1
    finally:
        s.close()


def test_shutdown_then_exit_is_exit_code_0(tmp_path: Path, server_env: dict[str, str]) -> None:
    s = _start(tmp_path, server_env)
    try:
        s.initialize(tmp_path)
        assert s.request("shutdown")["result"] is None
        # After shutdown, requests are refused (-32600) but still answered.
        assert s.request("lspLlm/status", {})["error"]["code"] == -32600
        s.notify("exit")
        assert s.wait(20) == 0
    finally:
        s.close()


def test_stdin_closed_without_exit_ends_the_process(
    tmp_path: Path, server_env: dict[str, str]
) -> None:
    s = _start(tmp_path, server_env)
    try:
        s.initialize(tmp_path)
        assert s.proc.stdin is not None
        s.proc.stdin.close()
        assert s.wait(20) == 1
    finally:
        s.close()
