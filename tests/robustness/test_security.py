"""Security: loopback by default, a shared secret for TCP sessions, secrets never in prompts
or the index, and no workspace text in logs at info level."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from lsp_llm.context.store import IndexStore
from tests.robustness.conftest import SECRET_MARKER
from tests.robustness.raw import RawServer, frame, parse_frames

INLINE = "textDocument/inlineCompletion"


class Daemon:
    def __init__(
        self,
        tmp: Path,
        env: dict[str, str],
        *extra: str,
        preexec_fn: Callable[[], None] | None = None,
    ) -> None:
        self.log = tmp / "daemon.log"
        self._log_file = self.log.open("wb")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "lsp_llm",
                "serve",
                "--tcp",
                "--port",
                "0",
                "--model",
                str(tmp / "missing"),
                "--no-index",
                *extra,
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=self._log_file,
            env=env,
            cwd=str(tmp),
            preexec_fn=preexec_fn,
        )
        deadline = time.monotonic() + 120
        while True:
            # Only a complete line: a read racing the write could see half of the port.
            found = re.search(r"listening on (\S+):(\d+)\r?\n", self.log.read_text())
            if found:
                self.host, self.port = found.group(1), int(found.group(2))
                return
            assert self.proc.poll() is None, self.log.read_text()
            assert time.monotonic() < deadline, f"daemon did not start: {self.log.read_text()}"
            time.sleep(0.1)

    def stderr(self) -> str:
        return self.log.read_text()

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        self._log_file.close()


@pytest.fixture
def daemon(tmp_path: Path, server_env: dict[str, str]) -> Iterator[Daemon]:
    d = Daemon(tmp_path, server_env, "--set", "tcpToken=s3cret-token")
    yield d
    d.close()


def _initialize_over_tcp(port: int, options: dict) -> tuple[list[dict], bool]:
    """Send initialize; return the messages read and whether the server closed the socket."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(
            frame(
                {
                    "jsonrpc": "2.0",
                    "id": 1,
                    "method": "initialize",
                    "params": {
                        "processId": None,
                        "rootUri": None,
                        "capabilities": {},
                        "initializationOptions": options,
                    },
                }
            )
        )
        buf = bytearray()
        msgs: list[dict] = []
        closed = False
        sock.settimeout(5)
        while not any(m.get("id") == 1 for m in msgs):
            chunk = sock.recv(65536)
            if not chunk:
                closed = True
                break
            buf += chunk
            msgs += parse_frames(buf)
        if not closed:
            try:
                sock.settimeout(2)
                closed = sock.recv(65536) == b""
            except TimeoutError:
                closed = False
        return msgs, closed


def test_tcp_binds_loopback_by_default(tmp_path: Path, server_env: dict[str, str]) -> None:
    d = Daemon(tmp_path, server_env)
    try:
        assert d.host == "127.0.0.1"
        assert "WARNING" not in d.stderr()
    finally:
        d.close()


def test_tcp_warns_when_binding_elsewhere(tmp_path: Path, server_env: dict[str, str]) -> None:
    d = Daemon(tmp_path, server_env, "--host", "0.0.0.0")
    try:
        assert d.host == "0.0.0.0"
        assert "WARNING" in d.stderr() and "reachable from other machines" in d.stderr()
    finally:
        d.close()


@pytest.mark.parametrize("options", [{}, {"tcpToken": "wrong"}, {"tcpToken": 12345}])
def test_tcp_token_mismatch_refuses_the_session(daemon: Daemon, options: dict) -> None:
    msgs, closed = _initialize_over_tcp(daemon.port, options)
    reply = next(m for m in msgs if m.get("id") == 1)
    assert reply["error"]["code"] == -32001, reply
    assert closed, "the connection should be closed after a refused initialize"
    assert "s3cret-token" not in daemon.stderr()


def test_tcp_token_match_opens_the_session(daemon: Daemon) -> None:
    msgs, closed = _initialize_over_tcp(daemon.port, {"tcpToken": "s3cret-token"})
    reply = next(m for m in msgs if m.get("id") == 1)
    assert "result" in reply, reply
    assert not closed
    # The daemon keeps serving other sessions after refusing one.
    msgs, _ = _initialize_over_tcp(daemon.port, {"tcpToken": "nope"})
    assert next(m for m in msgs if m.get("id") == 1)["error"]["code"] == -32001
    msgs, _ = _initialize_over_tcp(daemon.port, {"tcpToken": "s3cret-token"})
    assert "result" in next(m for m in msgs if m.get("id") == 1)


@pytest.mark.parametrize(("token", "ok"), [("s3cret-token", True), ("", False)])
def test_connect_injects_the_token_from_the_environment(
    daemon: Daemon, tmp_path: Path, server_env: dict[str, str], token: str, ok: bool
) -> None:
    env = {**server_env, "LSP_LLM_TCP_TOKEN": token} if token else server_env
    bridge = RawServer([f"127.0.0.1:{daemon.port}"], env, tmp_path, command="connect")
    try:
        reply = bridge.initialize(tmp_path, {"maxNewTokens": 8})
        if ok:
            assert "result" in reply, reply
            st = bridge.status()
            assert "tcpToken" not in st["settings"]
            assert "s3cret-token" not in json.dumps(st)
            bridge.request("shutdown")
            bridge.notify("exit")
        else:
            assert reply["error"]["code"] == -32001, reply
        assert bridge.wait(20) == 0
    finally:
        bridge.close()


def test_secret_files_never_reach_a_prompt_or_the_index(srv: RawServer) -> None:
    root: Path = srv.root
    uri = (root / "main.py").as_uri()
    text = (root / "main.py").read_text() + "\nkey = API_KEY\n"
    srv.did_open(uri, text)
    reply = srv.request(INLINE, srv.inline_params(uri, text.count("\n"), 0), timeout=60)
    assert "result" in reply, reply
    prompt = srv.request("lspLlm/debugLastPrompt", {})["result"]["prompt"]
    assert prompt and SECRET_MARKER not in prompt
    srv.did_close(uri)
    # Completing inside a secret file itself sends nothing to the model.
    for name in (".env", "secrets.json", "id_rsa"):
        secret_uri = (root / name).as_uri()
        srv.did_open(secret_uri, (root / name).read_text(), language="plaintext")
        reply = srv.request(INLINE, srv.inline_params(secret_uri, 0, 3), timeout=60)
        assert reply.get("result", {}).get("items") == [], (name, reply)
        after = srv.request("lspLlm/debugLastPrompt", {})["result"]["prompt"]
        assert after is None or SECRET_MARKER not in after, name
        srv.did_close(secret_uri)
    index = srv.status().get("index", {})
    for entry in index.get("roots", []):
        if entry.get("indexPath"):
            store = IndexStore(root, Path(entry["indexPath"]).parent.parent)
            entries = store.load()
            assert entries, "expected a persisted index"
            assert not {".env", "secrets.json", "id_rsa"} & set(entries)
            assert all(SECRET_MARKER not in e.text for e in entries.values())


def test_workspace_text_is_not_logged_at_info_level(srv: RawServer) -> None:
    marker = "WORKSPACE_TEXT_MARKER_52c1e0"
    uri = (srv.root / "logged.py").as_uri()
    srv.did_open(uri, f"# {marker}\ndef f():\n    ")
    srv.did_change(uri, 2, (0, 0), (0, 0), f"{marker}_changed\n")
    srv.request(INLINE, srv.inline_params(uri, 3, 4), timeout=60)
    srv.request(INLINE, {**srv.inline_params(uri, 3, 4), "position": "bad"}, timeout=60)
    srv.did_close(uri)
    srv.request("lspLlm/status", {})
    time.sleep(0.5)
    log = srv.stderr_text()
    assert " INFO " in log, "the shared server runs with -v (info level)"
    assert marker not in log


def test_env_var_names_the_secret_for_the_daemon(
    tmp_path: Path, server_env: dict[str, str]
) -> None:
    d = Daemon(tmp_path, {**server_env, "LSP_LLM_TCP_TOKEN": "from-env"})
    try:
        msgs, _ = _initialize_over_tcp(d.port, {})
        assert next(m for m in msgs if m.get("id") == 1)["error"]["code"] == -32001
        msgs, _ = _initialize_over_tcp(d.port, {"tcpToken": "from-env"})
        assert "result" in next(m for m in msgs if m.get("id") == 1)
    finally:
        d.close()
    assert os.environ.get("LSP_LLM_TCP_TOKEN") != "from-env"
