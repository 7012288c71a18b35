"""JSON-RPC framing and dispatch hardened beyond plain pygls.

* :class:`FrameParser` (pure) splits a byte stream into message bodies and resynchronises on
  the next ``Content-Length:`` header after a bad frame, so at most one message is lost.
* :class:`LlmProtocol` answers what the spec asks for and pygls leaves out: -32700 for bodies
  that are not JSON, -32600 for non-objects, -32602 for params that fail to deserialize, -32002
  for requests before ``initialize``, and exit code 1 for ``exit`` without ``shutdown``.
* :func:`run_session` drives one connection (stdio or a TCP socket) with both.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import threading
from collections.abc import Awaitable, Callable
from typing import Any

from lsprotocol import types
from pygls.exceptions import JsonRpcInvalidParams
from pygls.protocol import LanguageServerProtocol, lsp_method

log = logging.getLogger(__name__)

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
INVALID_PARAMS = -32602
SERVER_NOT_INITIALIZED = -32002
REQUEST_FAILED = -32803

_HEADER_END = b"\r\n\r\n"
_CONTENT_LENGTH = re.compile(rb"(?im)^content-length:[ \t]*(\d+)[ \t]*\r?$")
_CL_TOKEN = b"content-length:"
MAX_BODY = 512 * 1024 * 1024


class FrameError(ValueError):
    """A frame that could not be read; the parser has already skipped past it."""


class FrameParser:
    """Incremental LSP base-protocol parser: ``feed`` bytes, get bodies (or FrameErrors)."""

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[bytes | FrameError]:
        self._buf += data
        out: list[bytes | FrameError] = []
        while True:
            item = self._next()
            if item is None:
                return out
            out.append(item)

    def _next(self) -> bytes | FrameError | None:
        buf = self._buf
        if not buf:
            return None
        # Drop garbage before the next header (left over from a frame whose length was wrong).
        start = bytes(buf[:4096]).lower().find(_CL_TOKEN)
        if start == -1:
            # Keep a tail that could be the start of a header split across reads.
            if len(buf) > 4096 or _HEADER_END in buf:
                keep = len(_CL_TOKEN)
                dropped = len(buf) - keep
                del buf[:dropped]
                return FrameError(f"skipped {dropped} bytes without a Content-Length header")
            return None
        if start > 0:
            del buf[:start]
            return FrameError(f"skipped {start} bytes of garbage before a header")
        end = buf.find(_HEADER_END)
        if end == -1:
            if len(buf) > 8192:
                del buf[: len(_CL_TOKEN)]
                return FrameError("header too long")
            return None
        header = bytes(buf[:end])
        match = _CONTENT_LENGTH.search(header)
        if match is None:
            del buf[: end + 4]
            return FrameError("frame without a valid Content-Length")
        length = int(match.group(1))
        if length > MAX_BODY:
            del buf[: end + 4]
            return FrameError(f"frame of {length} bytes is too large")
        if len(buf) < end + 4 + length:
            # A following header inside the "body" means the length was too long: resync there.
            nxt = bytes(buf[end + 4 :]).lower().find(_CL_TOKEN)
            if nxt != -1 and _HEADER_END in buf[end + 4 + nxt :]:
                del buf[: end + 4 + nxt]
                return FrameError("Content-Length longer than the frame; resynchronised")
            return None
        body = bytes(buf[end + 4 : end + 4 + length])
        nxt = body.lower().find(_CL_TOKEN)
        if nxt != -1 and not _looks_like_json(body):
            del buf[: end + 4 + nxt]
            return FrameError("Content-Length longer than the frame; resynchronised")
        del buf[: end + 4 + length]
        return body


def _looks_like_json(body: bytes) -> bool:
    try:
        json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return False
    return True


class LlmProtocol(LanguageServerProtocol):
    """pygls' LSP protocol plus the spec's error answers (see the module docstring)."""

    exit_code: int | None = None
    on_exit: Callable[[int], None] | None = None

    def _send_error(self, msg_id: Any, code: int, message: str) -> None:
        self._send_data(
            {"jsonrpc": "2.0", "id": msg_id, "error": {"code": code, "message": message}}
        )

    def handle_body(self, body: bytes) -> None:
        """Parse and dispatch one frame body. Never raises."""
        try:
            raw = json.loads(body)
        except (ValueError, UnicodeDecodeError) as exc:
            log.warning("dropping a frame that is not JSON: %s", exc)
            self._send_error(None, PARSE_ERROR, f"Parse error: {exc}")
            return
        if not isinstance(raw, dict) or raw.get("jsonrpc") != "2.0":
            msg_id = raw.get("id") if isinstance(raw, dict) else None
            self._send_error(
                msg_id, INVALID_REQUEST, "Invalid Request: expected a JSON-RPC 2.0 object"
            )
            return
        method = raw.get("method")
        is_request = "id" in raw and isinstance(method, str)
        if method is not None and not isinstance(method, str):
            self._send_error(
                raw.get("id"), INVALID_REQUEST, "Invalid Request: method must be a string"
            )
            return
        server = self._server
        initialized = getattr(server, "initialized", True)
        if is_request and not initialized and method != types.INITIALIZE:
            self._send_error(raw["id"], SERVER_NOT_INITIALIZED, "Server not initialized")
            return
        if is_request and self._shutdown and method != types.EXIT:
            self._send_error(raw["id"], INVALID_REQUEST, "Server is shutting down")
            return
        try:
            message = self._converter_structure(raw)
        except JsonRpcInvalidParams as exc:
            if is_request:
                self._send_error(raw["id"], INVALID_PARAMS, f"Invalid params for {method}")
            else:
                log.warning("dropping notification %s with invalid params: %s", method, exc)
            return
        except Exception as exc:
            log.exception("cannot read message %s", method)
            if is_request:
                self._send_error(raw["id"], INVALID_PARAMS, f"Invalid params for {method}: {exc}")
            return
        try:
            self.handle_message(message)
        except SystemExit:
            raise
        except Exception:
            log.exception("handler for %s failed", method)

    def _converter_structure(self, raw: dict[str, Any]) -> Any:
        # Re-run pygls' structuring on a fresh copy (object_hook order: innermost first).
        return json.loads(json.dumps(raw), object_hook=self.structure_message)

    @lsp_method(types.INITIALIZED)
    def lsp_initialized(self, *args: Any) -> Any:
        if (user_handler := self.fm.features.get(types.INITIALIZED)) is not None:
            yield user_handler, args, None

    @lsp_method(types.EXIT)
    def lsp_exit(self, *args: Any) -> Any:
        """Record the exit code (0 after shutdown, else 1) and end the session."""
        if (user_handler := self.fm.features.get(types.EXIT)) is not None:
            yield user_handler, args, None
        self.exit_code = 0 if self._shutdown else 1
        if self.on_exit is not None:
            self.on_exit(self.exit_code)


Reader = Callable[[], Awaitable[bytes]]


async def run_session(read: Reader, protocol: LlmProtocol, stop: asyncio.Event) -> None:
    """Feed bytes from ``read`` (b"" at EOF) through the parser into ``protocol``."""
    parser = FrameParser()
    while not stop.is_set():
        read_task = asyncio.ensure_future(read())
        stop_task = asyncio.ensure_future(stop.wait())
        done, _ = await asyncio.wait({read_task, stop_task}, return_when=asyncio.FIRST_COMPLETED)
        if stop_task not in done:
            stop_task.cancel()
        if read_task not in done:
            read_task.cancel()
            break
        data = read_task.result()
        if not data:
            break
        for item in parser.feed(data):
            if isinstance(item, FrameError):
                log.warning("bad frame: %s", item)
                continue
            protocol.handle_body(item)
            if stop.is_set():
                break


def stdin_reader(loop: asyncio.AbstractEventLoop, fd: int) -> Reader:
    """Read stdin on a daemon thread so the event loop never blocks on it."""
    import os

    queue: asyncio.Queue[bytes] = asyncio.Queue()

    def pump() -> None:
        while True:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                chunk = b""
            loop.call_soon_threadsafe(queue.put_nowait, chunk)
            if not chunk:
                return

    threading.Thread(target=pump, name="lsp-llm-stdin", daemon=True).start()
    return queue.get
