"""A raw JSON-RPC client over a subprocess pipe: we write the bytes and parse the answers.

No client library on purpose: the point is to send what a library never would.
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

Message = dict[str, Any]


def frame(
    body: bytes | str | Any, *, length: int | None = None, header: bytes | None = None
) -> bytes:
    """One LSP frame. ``body`` may be bytes, text, or a JSON-able object."""
    if isinstance(body, str):
        data = body.encode("utf-8")
    elif isinstance(body, (bytes, bytearray)):
        data = bytes(body)
    else:
        data = json.dumps(body).encode("utf-8")
    if header is None:
        header = b"Content-Length: %d\r\n\r\n" % (len(data) if length is None else length)
    return header + data


def parse_frames(buf: bytearray) -> list[Message]:
    """Pop complete frames off ``buf`` (the server's output is always well formed)."""
    out: list[Message] = []
    while True:
        end = buf.find(b"\r\n\r\n")
        if end == -1:
            return out
        length = None
        for line in bytes(buf[:end]).split(b"\r\n"):
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value.strip())
        assert length is not None, (
            f"server sent a frame without Content-Length: {bytes(buf[:end])!r}"
        )
        if len(buf) < end + 4 + length:
            return out
        body = bytes(buf[end + 4 : end + 4 + length])
        del buf[: end + 4 + length]
        out.append(json.loads(body))


class RawServer:
    """``lsp-llm serve`` on a pipe. Every message the server sends is kept in ``received``."""

    def __init__(
        self,
        args: list[str],
        env: dict[str, str],
        cwd: Path,
        *,
        stderr_path: Path | None = None,
        command: str = "serve",
    ) -> None:
        self._stderr_file = open(stderr_path, "wb") if stderr_path else subprocess.DEVNULL  # noqa: SIM115
        self.stderr_path = stderr_path
        self.root = cwd
        """The workspace root (the process's working directory)."""
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "lsp_llm", command, *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr_file,
            env=env,
            cwd=str(cwd),
        )
        self.received: list[Message] = []
        self._cond = threading.Condition()
        self._next_id = 1000
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    # -- I/O -------------------------------------------------------------------------------
    def _read(self) -> None:
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        buf = bytearray()
        while True:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                chunk = b""
            if not chunk:
                with self._cond:
                    self._cond.notify_all()
                return
            buf += chunk
            msgs = parse_frames(buf)
            if msgs:
                with self._cond:
                    self.received.extend(msgs)
                    self._cond.notify_all()

    def write(self, data: bytes) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(data)
        self.proc.stdin.flush()

    def send(self, message: Message) -> None:
        self.write(frame(message))

    def new_id(self) -> int:
        self._next_id += 1
        return self._next_id

    def request_nowait(self, method: str, params: Any = None, msg_id: Any = None) -> Any:
        if msg_id is None:
            msg_id = self.new_id()
        msg: Message = {"jsonrpc": "2.0", "id": msg_id, "method": method}
        if params is not None:
            msg["params"] = params
        self.send(msg)
        return msg_id

    def notify(self, method: str, params: Any = None) -> None:
        msg: Message = {"jsonrpc": "2.0", "method": method}
        if params is not None:
            msg["params"] = params
        self.send(msg)

    def wait_for(
        self, predicate: Callable[[Message], bool], timeout: float = 30.0, start: int = 0
    ) -> Message:
        """The first message from index ``start`` on that matches."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for msg in self.received[start:]:
                    if predicate(msg):
                        return msg
                left = deadline - time.monotonic()
                if left <= 0 or (self.proc.poll() is not None and not self._reader.is_alive()):
                    raise TimeoutError(
                        f"no matching message; got {self.received[-5:]!r}; "
                        f"server exit code {self.proc.poll()}"
                    )
                self._cond.wait(min(left, 0.2))

    def response(self, msg_id: Any, timeout: float = 30.0) -> Message:
        return self.wait_for(lambda m: m.get("id") == msg_id and "method" not in m, timeout)

    def request(self, method: str, params: Any = None, timeout: float = 30.0) -> Message:
        return self.response(self.request_nowait(method, params), timeout)

    def responses_per_id(self) -> collections.Counter[Any]:
        with self._cond:
            return collections.Counter(
                m.get("id") for m in self.received if "method" not in m and "id" in m
            )

    def errors_with_null_id(self) -> list[Message]:
        with self._cond:
            return [m for m in self.received if "error" in m and m.get("id") is None]

    # -- LSP helpers -------------------------------------------------------------------------
    def initialize(self, root: Path, init_options: dict[str, Any] | None = None) -> Message:
        reply = self.request(
            "initialize",
            {
                "processId": os.getpid(),
                "rootUri": root.as_uri(),
                "workspaceFolders": [{"uri": root.as_uri(), "name": root.name}],
                "capabilities": {
                    "textDocument": {"inlineCompletion": {"dynamicRegistration": False}}
                },
                "initializationOptions": init_options or {},
                "clientInfo": {"name": "raw", "version": "1"},
            },
        )
        self.notify("initialized", {})
        return reply

    def status(self, timeout: float = 30.0) -> dict[str, Any]:
        reply = self.request("lspLlm/status", {}, timeout)
        assert "result" in reply, reply
        result: dict[str, Any] = reply["result"]
        return result

    def wait_state(
        self, states: tuple[str, ...] = ("ready", "error"), timeout: float = 300.0
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            st = self.status()
            if st["state"] in states:
                return st
            if time.monotonic() > deadline:
                raise TimeoutError(f"model state {st['state']}: {st['message']}")
            time.sleep(0.1)

    def wait_idle(self, timeout: float = 10.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            st = self.status()
            if st["worker"] == "idle" and st["queueDepth"] == 0:
                return st
            if time.monotonic() > deadline:
                raise AssertionError(f"worker still busy: {st}")
            time.sleep(0.02)

    def did_open(self, uri: str, text: str, language: str = "python", version: int = 1) -> None:
        self.notify(
            "textDocument/didOpen",
            {
                "textDocument": {
                    "uri": uri,
                    "languageId": language,
                    "version": version,
                    "text": text,
                }
            },
        )

    def inline_params(self, uri: str, line: int, character: int, invoked: bool = True) -> Message:
        return {
            "textDocument": {"uri": uri},
            "position": {"line": line, "character": character},
            "context": {"triggerKind": 1 if invoked else 2},
        }

    def debug_document(self, uri: str) -> dict[str, Any]:
        reply = self.request("lspLlm/debugDocument", {"uri": uri})
        assert "result" in reply, reply
        result: dict[str, Any] = reply["result"]
        return result

    def shutdown_and_exit(self, timeout: float = 20.0) -> int:
        if self.proc.poll() is None:
            try:
                self.request("shutdown", None, timeout)
                self.notify("exit")
            except (OSError, TimeoutError):
                pass
        return self.wait(timeout)

    def wait(self, timeout: float = 20.0) -> int:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
            raise
        finally:
            if self.proc.stdin is not None:
                with contextlib.suppress(OSError):
                    self.proc.stdin.close()

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.shutdown_and_exit(10)
            except Exception:
                self.proc.kill()
                self.proc.wait(5)
        if hasattr(self._stderr_file, "close"):
            self._stderr_file.close()

    def stderr_text(self) -> str:
        if self.stderr_path is None:
            return ""
        return self.stderr_path.read_text("utf-8", errors="replace")

    # -- more helpers --------------------------------------------------------------------------
    def configure(self, **settings: Any) -> None:
        """Settings through workspace/didChangeConfiguration (applied in order with requests)."""
        self.notify("workspace/didChangeConfiguration", {"settings": {"lspLlm": settings}})

    def cancel(self, msg_id: Any) -> None:
        self.notify("$/cancelRequest", {"id": msg_id})

    def did_change(
        self, uri: str, version: int, start: tuple[int, int], end: tuple[int, int], text: str
    ) -> None:
        self.notify(
            "textDocument/didChange",
            {
                "textDocument": {"uri": uri, "version": version},
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
        )

    def did_close(self, uri: str) -> None:
        self.notify("textDocument/didClose", {"textDocument": {"uri": uri}})

    def rss_bytes(self) -> int:
        """Resident memory of the server process (Linux)."""
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        return 0
