"""The daemon's trust model under attack (docs/deploy.md): a TCP client without the token can
change nothing and hold nothing, and one editor cannot re-point the model others share.

Every test drives a real ``lsp-llm serve --tcp`` process over real sockets; editors connect
through the real ``lsp-llm connect`` bridge, as an editor configured for the daemon does.
"""

from __future__ import annotations

import http.server
import json
import resource
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.robustness.raw import RawServer, frame, parse_frames
from tests.robustness.test_security import Daemon

TOKEN = "s3cret-token"
VICTIM_CODE = "def victim_7d1e_private_algorithm(x):\n    return x * 41\n"
INLINE = "textDocument/inlineCompletion"


class Recorder(http.server.ThreadingHTTPServer):
    """An attacker's "OpenAI-compatible endpoint": records every request it gets."""

    def __init__(self) -> None:
        self.requests: list[str] = []
        recorder = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def _record(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length).decode("utf-8", "replace") if length else ""
                recorder.requests.append(f"{self.command} {self.path} {body}")
                self.send_response(404)
                self.end_headers()

            do_GET = do_POST = _record

            def log_message(self, *args: Any) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    rec = Recorder()
    yield rec
    rec.shutdown()
    rec.server_close()


@pytest.fixture
def model_daemon(
    tmp_path: Path, server_env: dict[str, str], tiny_model_dir: Path
) -> Iterator[Daemon]:
    d = Daemon(
        tmp_path,
        server_env,
        "--model",
        str(tiny_model_dir),
        "--backend",
        "transformers",
        "--device",
        "cpu",
        "--set",
        f"tcpToken={TOKEN}",
        "--set",
        "maxNewTokens=4",
    )
    yield d
    d.close()


def _send_unauthenticated(port: int, *messages: dict[str, Any]) -> None:
    """Connect, send ``messages`` without ever initializing, and disconnect."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        for message in messages:
            sock.sendall(frame(message))
        time.sleep(0.5)  # give the daemon time to act on them, as an attacker would


def _editor(daemon: Daemon, root: Path, env: dict[str, str], **options: Any) -> RawServer:
    """An authenticated editor on the daemon, through ``lsp-llm connect``."""
    root.mkdir(parents=True, exist_ok=True)
    bridge = RawServer(
        [f"127.0.0.1:{daemon.port}"],
        {**env, "LSP_LLM_TCP_TOKEN": TOKEN},
        root,
        command="connect",
    )
    reply = bridge.initialize(root, options)
    assert "result" in reply, reply
    return bridge


def _notification(method: str, params: dict[str, Any]) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "method": method, "params": params}


def test_settings_sent_before_initialize_change_nothing(
    model_daemon: Daemon, recorder: Recorder, tmp_path: Path, server_env: dict[str, str]
) -> None:
    """The attack that leaked code: one ``didChangeConfiguration`` from a client that never
    initializes re-pointed the shared engine at the attacker's endpoint."""
    attack_uri = (tmp_path / "attack.py").as_uri()
    _send_unauthenticated(
        model_daemon.port,
        _notification(
            "workspace/didChangeConfiguration",
            {"settings": {"backend": "openai", "endpoint": recorder.url}},
        ),
        _notification(
            "textDocument/didOpen",
            {
                "textDocument": {
                    "uri": attack_uri,
                    "languageId": "python",
                    "version": 1,
                    "text": "ATTACKER_PAYLOAD_3b9c = 1\n",
                }
            },
        ),
    )
    _send_unauthenticated(
        model_daemon.port,
        _notification(
            "workspace/didChangeConfiguration", {"settings": {"model": str(tmp_path / "nope")}}
        ),
    )
    victim = _editor(model_daemon, tmp_path / "victim", server_env)
    try:
        st = victim.wait_state()
        assert st["state"] == "ready", st
        assert st["backend"] == "transformers", st
        assert st["sessions"] == 1, "connections that never initialized count as sessions"
        uri = (tmp_path / "victim" / "secret_algo.py").as_uri()
        text = VICTIM_CODE + "\n\ndef main():\n    "
        victim.did_open(uri, text)
        for _ in range(3):
            reply = victim.request(INLINE, victim.inline_params(uri, 4, 4), timeout=120)
            assert "result" in reply, reply
        assert recorder.requests == [], "the victim's prompt reached the attacker's endpoint"
        victim.shutdown_and_exit()
    finally:
        victim.close()
    log = model_daemon.stderr()
    assert "dropped 'workspace/didChangeConfiguration'" in log
    assert "dropped 'textDocument/didOpen'" in log
    assert "ATTACKER_PAYLOAD_3b9c" not in log and recorder.url not in log


def test_requests_before_initialize_are_refused_and_nothing_is_held(
    model_daemon: Daemon, tmp_path: Path, server_env: dict[str, str]
) -> None:
    with socket.create_connection(("127.0.0.1", model_daemon.port), timeout=10) as sock:
        sock.sendall(frame({"jsonrpc": "2.0", "id": 7, "method": "lspLlm/status"}))
        buf = bytearray()
        msgs: list[dict[str, Any]] = []
        while not msgs:
            chunk = sock.recv(65536)
            assert chunk, "the daemon closed the connection instead of answering"
            buf += chunk
            msgs += parse_frames(buf)
        assert msgs[0]["id"] == 7 and msgs[0]["error"]["code"] == -32002, msgs
        # A client without the token cannot make the daemon buffer megabytes for it.
        sock.settimeout(30)
        closed = False
        try:
            for _ in range(80):  # 80 x 64 KiB = 5 MiB, more than the pre-auth allowance
                sock.sendall(b"x" * 65536)
        except (BrokenPipeError, ConnectionResetError):
            closed = True
        if not closed:
            try:
                closed = sock.recv(65536) == b""
            except ConnectionResetError:
                closed = True
        assert closed, "a client that never initializes kept sending without being closed"
    assert "without initializing" in model_daemon.stderr()
    # The daemon still serves editors.
    editor = _editor(model_daemon, tmp_path / "e", server_env)
    try:
        assert editor.wait_state()["state"] == "ready"
        editor.shutdown_and_exit()
    finally:
        editor.close()


def test_one_of_two_editors_cannot_repoint_the_shared_model(
    model_daemon: Daemon, tmp_path: Path, server_env: dict[str, str]
) -> None:
    a = _editor(model_daemon, tmp_path / "a", server_env)
    b = _editor(model_daemon, tmp_path / "b", server_env)
    try:
        before = a.wait_state()
        assert before["state"] == "ready" and before["sessions"] == 2
        start = len(b.received)
        b.configure(model=str(tmp_path / "missing-model"), backend="openai", maxNewTokens=5)
        warning = b.wait_for(
            lambda m: (
                m.get("method") == "window/showMessage"
                and "engine settings from one of them are ignored" in m["params"]["message"]
            ),
            start=start,
        )
        assert "model" in warning["params"]["message"]
        st_b = b.status()
        # b's status tells the truth about the engine it is served by...
        assert st_b["settings"]["model"] == before["settings"]["model"]
        assert st_b["settings"]["backend"] == st_b["backend"] == "transformers"
        # ...and per-session settings stay b's own.
        assert st_b["settings"]["maxNewTokens"] == 5
        st_a = a.status()
        assert st_a["state"] == "ready", st_a
        assert (st_a["model"], st_a["backend"]) == (before["model"], before["backend"])
        assert st_a["settings"]["maxNewTokens"] == 4
        # Once b has left, the one editor left may change the engine it alone uses.
        b.shutdown_and_exit()
        deadline = time.monotonic() + 20
        while a.status()["sessions"] != 1:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        a.configure(model=str(tmp_path / "missing-model"))
        deadline = time.monotonic() + 60
        while (st := a.status())["state"] != "error":
            assert time.monotonic() < deadline, st
            time.sleep(0.1)
        assert "missing-model" in st["message"]
        a.shutdown_and_exit()
    finally:
        a.close()
        b.close()


def _low_fd_limit() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))


def test_idle_unauthenticated_sockets_do_not_lock_editors_out(
    tmp_path: Path, server_env: dict[str, str]
) -> None:
    """1,082 idle sockets took the daemon to its fd limit; here the limit is 256 fds and the
    attacker holds 400 sockets, then a real editor connects."""
    d = Daemon(
        tmp_path,
        server_env,
        "--set",
        f"tcpToken={TOKEN}",
        "--set",
        "tcpMaxConnections=32",
        "--set",
        "tcpAuthTimeoutS=3",
        preexec_fn=_low_fd_limit,
    )
    idle: list[socket.socket] = []
    try:
        for _ in range(400):
            try:
                idle.append(socket.create_connection(("127.0.0.1", d.port), timeout=5))
            except OSError:
                break
        editor = _editor(d, tmp_path / "e", server_env)
        try:
            assert editor.status()["sessions"] == 1
            # Idle sockets are closed once the pre-auth time is up; the editor stays.
            time.sleep(4)
            assert editor.status()["sessions"] == 1
            editor.shutdown_and_exit()
        finally:
            editor.close()
        late = socket.create_connection(("127.0.0.1", d.port), timeout=10)
        idle.append(late)
        late.settimeout(10)
        assert late.recv(1024) == b"", "an idle unauthenticated socket was kept open"
        log = d.stderr()
        assert "connection limit reached (tcpMaxConnections=32)" in log
        assert "(tcpAuthTimeoutS)" in log
        assert "Errno 24" not in log and "Too many open files" not in log
    finally:
        for sock in idle:
            sock.close()
        d.close()


def test_stdio_ignores_notifications_before_initialize(
    tmp_path: Path, server_env: dict[str, str], tiny_args: list[str]
) -> None:
    """The LSP rule holds on stdio too: before ``initialize`` notifications are dropped (a
    document opened then is not open), and a second ``initialize`` is refused."""
    srv = RawServer([*tiny_args, "--no-index"], {**server_env, "LSP_LLM_DEBUG": "1"}, tmp_path)
    try:
        uri = (tmp_path / "early.py").as_uri()
        srv.did_open(uri, "EARLY = 1\n")
        assert "result" in srv.initialize(tmp_path)
        assert srv.debug_document(uri) is None
        again = srv.request("initialize", {"processId": None, "rootUri": None, "capabilities": {}})
        assert again["error"]["code"] == -32600, again
        assert json.dumps(srv.status())  # still serving
        assert srv.shutdown_and_exit() == 0
    finally:
        srv.close()
