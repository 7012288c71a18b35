"""Cancellation races on the raw pipe: exactly one answer per id, and no work left running."""

from __future__ import annotations

import time

import pytest

from tests.robustness.raw import RawServer

CANCELLED = -32800


def _open_long(srv: RawServer, name: str) -> str:
    uri = (srv.root / name).as_uri()
    srv.did_open(uri, "def f():\n    ")
    return uri


@pytest.mark.parametrize("delay_ms", [0, 5, 50, 500])
def test_cancel_at(srv: RawServer, delay_ms: int) -> None:
    srv.configure(maxNewTokens=4000)
    uri = _open_long(srv, f"cancel_{delay_ms}.py")
    msg_id = srv.request_nowait("textDocument/inlineCompletion", srv.inline_params(uri, 1, 4))
    time.sleep(delay_ms / 1000)
    t0 = time.monotonic()
    srv.cancel(msg_id)
    reply = srv.response(msg_id, timeout=20)
    # A cancel that wins answers -32800; one that loses the race leaves the result. Never both.
    assert "error" in reply or "result" in reply
    if "error" in reply:
        assert reply["error"]["code"] == CANCELLED, reply
    assert time.monotonic() - t0 < 5, "the cancel should stop a 4000-token generation at once"
    srv.wait_idle(5)
    srv.request("lspLlm/status", {})  # flush: anything late would have arrived by now
    assert srv.responses_per_id()[msg_id] == 1


def test_cancel_unknown_ids(srv: RawServer) -> None:
    before = len(srv.received)
    for unknown in (987654321, "no-such-id", -1):
        srv.cancel(unknown)
    srv.notify("$/cancelRequest", {"id": None})
    srv.notify("$/cancelRequest", {})
    assert "result" in srv.request("lspLlm/status", {})
    new = srv.received[before:]
    assert all(m.get("id") not in (987654321, "no-such-id", -1) for m in new)


def test_cancel_twice(srv: RawServer) -> None:
    srv.configure(maxNewTokens=4000)
    uri = _open_long(srv, "cancel_twice.py")
    msg_id = srv.request_nowait("textDocument/inlineCompletion", srv.inline_params(uri, 1, 4))
    time.sleep(0.05)
    srv.cancel(msg_id)
    srv.cancel(msg_id)
    reply = srv.response(msg_id, timeout=20)
    srv.cancel(msg_id)
    srv.wait_idle(5)
    srv.request("lspLlm/status", {})
    assert srv.responses_per_id()[msg_id] == 1
    assert reply.get("error", {}).get("code", CANCELLED) == CANCELLED


def test_cancel_after_the_result_was_sent(srv: RawServer) -> None:
    uri = _open_long(srv, "cancel_late.py")
    msg_id = srv.request_nowait("textDocument/inlineCompletion", srv.inline_params(uri, 1, 4))
    reply = srv.response(msg_id, timeout=60)
    assert "result" in reply, reply
    srv.cancel(msg_id)
    srv.cancel(msg_id)
    srv.request("lspLlm/status", {})
    assert srv.responses_per_id()[msg_id] == 1
    srv.wait_idle(5)


def test_cancel_status_request_and_burst(srv: RawServer) -> None:
    """Requests that are answered synchronously, and a burst of cancelled completions."""
    srv.configure(maxNewTokens=200)
    uri = _open_long(srv, "cancel_burst.py")
    ids = []
    for i in range(20):
        ids.append(
            srv.request_nowait("textDocument/inlineCompletion", srv.inline_params(uri, 1, 4))
        )
        if i % 2 == 0:
            srv.cancel(ids[-1])
    status_id = srv.request_nowait("lspLlm/status", {})
    srv.cancel(status_id)
    for msg_id in [*ids, status_id]:
        srv.response(msg_id, timeout=60)
    srv.wait_idle(10)
    srv.request("lspLlm/status", {})
    counts = srv.responses_per_id()
    assert all(counts[i] == 1 for i in [*ids, status_id]), counts
