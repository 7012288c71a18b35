"""JSON-RPC framing and dispatch hardened beyond plain pygls.

* :class:`FrameParser` (pure) splits a byte stream into message bodies and resynchronises on
  the next ``Content-Length:`` header after a bad frame, so at most one message is lost.
* :class:`LlmProtocol` answers what the spec asks for and pygls leaves out: -32700 for bodies
  that are not JSON, -32600 for non-objects (and ids that are neither strings nor integers),
  -32602 for params that fail to deserialize, and exit code 1 for ``exit`` without
  ``shutdown``. Until an ``initialize`` is accepted, nothing but ``initialize`` and ``exit``
  is handled: other requests get -32002, notifications are dropped. On a daemon with a
  ``tcpToken``, an ``initialize`` without the same token is answered -32001 and the
  connection is closed.
* :func:`run_session` drives one connection (stdio or a TCP socket) with both; before the
  session is accepted it buffers at most ``pre_auth_max_bytes``.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import os
import re
import stat
import sys
import threading
from collections.abc import Awaitable, Callable
from typing import Any

import cattrs
from lsprotocol import types
from pygls.exceptions import JsonRpcInternalError, JsonRpcInvalidParams
from pygls.protocol import LanguageServerProtocol, lsp_method

from lsp_llm.engine.requests import CancelToken
from lsp_llm.errors import LlmError, invalid_params_in, to_response_error
from lsp_llm.server import wire
from lsp_llm.server.documents import apply_did_change

log = logging.getLogger(__name__)

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
INVALID_PARAMS = -32602
SERVER_NOT_INITIALIZED = -32002
UNAUTHORIZED = -32001
"""A TCP session whose ``initialize`` lacks the daemon's ``tcpToken``."""

_HEADER_END = b"\r\n\r\n"
_HEADER_START = re.compile(rb"content-(?:length|type)[ \t]*:", re.IGNORECASE)
_NEXT_FRAME = re.compile(
    rb"content-length:[ \t]*\d+[ \t]*\r\n(?:[^\r\n]*\r\n)*?\r\n", re.IGNORECASE
)
_HEADER_TOKENS = (b"content-length:", b"content-type:")
DROP_LOG_LIMIT = 3
"""Messages before ``initialize`` logged per connection (a flood logs no more)."""
MAX_HEADER = 8192
MAX_BODY = 512 * 1024 * 1024


class FrameError(ValueError):
    """A frame that could not be read; the parser has already skipped past it."""


def _parse_header(header: bytes) -> int | None:
    """The Content-Length of a header block, or None when the block has no valid one."""
    length = None
    for line in header.split(b"\n"):
        name, sep, value = line.partition(b":")
        if sep and name.strip().lower() == b"content-length":
            value = value.strip()
            if not value.isdigit():
                return None
            length = int(value)
    return length


def _partial_token_tail(buf: bytes | bytearray) -> int:
    """Length of the longest suffix of ``buf`` that could start a header (split across reads)."""
    longest = max(len(t) for t in _HEADER_TOKENS) - 1
    for size in range(min(longest, len(buf)), 0, -1):
        tail = bytes(buf[-size:]).lower()
        if any(t.startswith(tail) for t in _HEADER_TOKENS):
            return size
    return 0


class FrameParser:
    """Incremental LSP base-protocol parser: ``feed`` bytes, get bodies (or FrameErrors).

    Every call to the internal step either consumes at least one byte or waits for more data,
    so no input can make it loop. A frame with a wrong length costs at most that one message:
    too short leaves garbage that is skipped up to the next header; too long is noticed when
    a complete header follows inside the supposed body.
    """

    def __init__(self) -> None:
        self._buf = bytearray()
        self._scanned = 0
        """How far the pending body has been searched for a following header (stays linear)."""

    @property
    def pending(self) -> int:
        """Bytes buffered but not yet returned."""
        return len(self._buf)

    def feed(self, data: bytes) -> list[bytes | FrameError]:
        self._buf += data
        out: list[bytes | FrameError] = []
        while True:
            item = self._next()
            if item is None:
                return out
            out.append(item)

    def take_pending(self) -> bytes:
        """Hand over (and forget) the bytes not yet parsed, e.g. to switch to passthrough."""
        data = bytes(self._buf)
        self._buf.clear()
        self._scanned = 0
        return data

    def _skip(self, count: int, reason: str) -> FrameError:
        del self._buf[:count]
        self._scanned = 0
        return FrameError(reason)

    def _resync(self, reason: str) -> FrameError | None:
        """Drop bytes up to the next header start after position 0."""
        buf = self._buf
        match = _HEADER_START.search(buf, 1)
        if match is not None:
            return self._skip(match.start(), f"{reason}; skipped {match.start()} bytes")
        drop = len(buf) - _partial_token_tail(buf)
        if drop <= 0:
            return None
        return self._skip(drop, f"{reason}; skipped {drop} bytes")

    def _next(self) -> bytes | FrameError | None:
        buf = self._buf
        if not buf:
            return None
        start = _HEADER_START.search(buf, 0, MAX_HEADER)
        if start is None:
            if len(buf) >= MAX_HEADER or _HEADER_END in buf:
                return self._resync("bytes without a Content-Length header")
            return None
        if start.start() > 0:
            # Garbage (or a header we do not know, e.g. a stray line) before the header.
            header_end = buf.find(_HEADER_END, 0, MAX_HEADER)
            if header_end == -1 or header_end < start.start():
                return self._skip(start.start(), f"skipped {start.start()} bytes of garbage")
            if _parse_header(bytes(buf[:header_end])) is None or b":" not in buf[: start.start()]:
                return self._skip(start.start(), f"skipped {start.start()} bytes of garbage")
        end = buf.find(_HEADER_END, 0, MAX_HEADER + 4)
        if end == -1:
            if len(buf) >= MAX_HEADER:
                return self._resync("header too long")
            return None
        length = _parse_header(bytes(buf[:end]))
        if length is None:
            return self._resync("frame without a valid Content-Length")
        if length > MAX_BODY:
            return self._skip(end + 4, f"frame of {length} bytes is too large")
        body_start = end + 4
        if len(buf) < body_start + length:
            # A complete header inside the "body" means the length was too long: resync there.
            scan_from = max(body_start, self._scanned - 256)
            nxt = _NEXT_FRAME.search(buf, scan_from)
            if nxt is not None:
                return self._skip(
                    nxt.start(), "Content-Length longer than the frame; resynchronised"
                )
            self._scanned = len(buf)
            return None
        body_end = body_start + length
        body = bytes(buf[body_start:body_end])
        # A complete header that starts inside the body, in a body that is not JSON: the
        # length was wrong (too long, or so short that it cut into the next header).
        scan_from = max(body_start, self._scanned - 256)
        nxt = _NEXT_FRAME.search(buf, scan_from, body_end + MAX_HEADER)
        if nxt is not None and nxt.start() < body_end and not _looks_like_json(body):
            return self._skip(
                nxt.start(), "Content-Length does not match the frame; resynchronised"
            )
        if (
            nxt is None
            and (_HEADER_START.search(body) is not None or _partial_token_tail(body) > 0)
            and buf.find(_HEADER_END, body_end) == -1
            and len(buf) - body_end < MAX_HEADER
            and not _looks_like_json(body)
        ):
            # The next header may be forming inside this body: decide when it is complete.
            return None
        del buf[:body_end]
        self._scanned = 0
        return body


_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")


def _scrub_surrogates(obj: Any) -> Any:
    """Replace lone surrogates (valid JSON escapes, invalid text) by U+FFFD: one UTF-16 unit
    for one, so client positions still line up, and tokenizers and encoders never choke."""
    if isinstance(obj, str):
        return obj.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    if isinstance(obj, list):
        return [_scrub_surrogates(v) for v in obj]
    if isinstance(obj, dict):
        return {_scrub_surrogates(k): _scrub_surrogates(v) for k, v in obj.items()}
    return obj


def _valid_id(msg_id: Any) -> int | str | None:
    """``msg_id`` when it is a JSON-RPC id we can answer to, else None."""
    if isinstance(msg_id, str) or (isinstance(msg_id, int) and not isinstance(msg_id, bool)):
        return msg_id
    return None


class _QuietDeserializeErrors(logging.Filter):
    """pygls logs a full traceback for every message it cannot deserialize; we log one line."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Unable to deserialize message")


logging.getLogger("pygls.protocol.json_rpc").addFilter(_QuietDeserializeErrors())


def _looks_like_json(body: bytes) -> bool:
    try:
        json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return False
    return True


class LlmProtocol(LanguageServerProtocol):
    """pygls' LSP protocol plus the spec's error answers (see the module docstring)."""

    exit_code: int | None = None
    on_exit: Callable[[int], None] | None = None
    after_response: Callable[[], None] | None = None
    """Called on the loop after each handler's response is written."""

    def __init__(self, server: Any, converter: cattrs.Converter) -> None:
        super().__init__(server, converter)
        self.converter = converter
        """The converter pygls structures and unstructures with (lsprotocol's hooks plus ours,
        :func:`lsp_llm.server.wire.make_converter`); public so handlers need not reach for
        pygls' private ``_converter``."""
        self.cancel_tokens: dict[Any, CancelToken] = {}

    # pygls wraps its own in functools.lru_cache (hence the override note); ours is a dict hit.
    def get_message_type(self, method: str) -> type[Any] | None:  # type: ignore[override]
        """Our custom methods' attrs message types (:mod:`lsp_llm.server.wire`), then LSP's."""
        return wire.MESSAGE_TYPES.get(method) or super().get_message_type(method)

    def cancel_token(self) -> CancelToken:
        """A token for the request being handled, set the moment its ``$/cancelRequest``
        arrives: the model thread sees it at its next decode step, without waiting for the
        handler's task to be woken up."""
        token = CancelToken()
        msg_id = self.msg_id
        if msg_id is not None:
            self.cancel_tokens[msg_id] = token
        return token

    def _handle_cancel_notification(self, msg_id: Any) -> None:
        token = self.cancel_tokens.pop(msg_id, None)
        if token is not None:
            token.cancel("cancelled by the client")
        super()._handle_cancel_notification(msg_id)

    def _send_handler_result(self, future: Any, *, msg_id: Any) -> None:
        """pygls' answer, except that our domain errors (:class:`~lsp_llm.errors.LlmError`)
        are mapped by :func:`~lsp_llm.errors.to_response_error` and logged in one line: they
        are answers (a closed document, a model that is not loaded), not server faults."""
        self.cancel_tokens.pop(msg_id, None)
        exc = None if future.cancelled() else future.exception()
        if isinstance(exc, LlmError):
            self._request_futures.pop(msg_id, None)
            log.info("request %s failed: %s", msg_id, exc.message)
            self._send_response(msg_id, error=to_response_error(exc))
        else:
            super()._send_handler_result(future, msg_id=msg_id)
        if self.after_response is not None:
            try:
                self.after_response()
            except Exception:  # a status hook must not stop the answers that follow
                log.exception("after-response hook failed")

    def has_pending_requests(self) -> bool:
        """Whether an async request handler of this session has not answered yet (requests
        this server sent to the client wait on plain futures and do not count).
        pygls keeps in-flight requests only in the private ``_request_futures``; there is no
        public view of it."""
        return any(isinstance(f, asyncio.Future) for f in self._request_futures.values())

    @property
    def shutdown_received(self) -> bool:
        """Whether ``shutdown`` was answered (pygls keeps it only as the private ``_shutdown``)."""
        return self._shutdown

    def cancel_pending(self) -> None:
        """Cancel every request of this session that has not answered yet (its connection is
        gone). pygls keeps them only in the private ``_request_futures``."""
        for future in list(self._request_futures.values()):
            future.cancel()

    authenticated: bool = False
    """Set once an ``initialize`` (with the daemon's token, where one is set) is accepted."""
    on_authenticated: Callable[[], None] | None = None
    """Called on the loop when the session is accepted, before its ``initialize`` runs."""
    dropped_before_auth: int = 0
    """Messages dropped because they came before ``initialize``."""

    tcp_token: str = ""
    """When set (TCP sessions of a daemon started with ``tcpToken``), ``initialize`` must carry
    the same ``initializationOptions.tcpToken`` or the connection is answered and closed."""

    def _token_ok(self, raw: dict[str, Any]) -> bool:
        if not self.tcp_token:
            return True
        params = raw.get("params")
        options = params.get("initializationOptions") if isinstance(params, dict) else None
        given = options.get("tcpToken") if isinstance(options, dict) else None
        if not isinstance(given, str):
            return False
        return hmac.compare_digest(given.encode("utf-8"), self.tcp_token.encode("utf-8"))

    def _admit_before_auth(self, raw: dict[str, Any], method: Any, is_request: bool) -> bool:
        """Until a token-checked ``initialize`` is answered, only ``initialize`` and ``exit``
        get through: other requests are answered -32002, notifications (and responses) are
        dropped and logged by method name only, never with their content."""
        if method == types.EXIT and not is_request:
            return True
        if is_request and method == types.INITIALIZE:
            if self._token_ok(raw):
                return True
            log.warning("session refused: initializationOptions.tcpToken does not match")
            self._send_error(raw["id"], UNAUTHORIZED, "Unauthorized: tcpToken does not match")
            self.exit_code = 1
            if self.on_exit is not None:
                self.on_exit(1)  # close the connection
            return False
        if is_request:
            self._send_error(raw["id"], SERVER_NOT_INITIALIZED, "Server not initialized")
            return False
        self.dropped_before_auth += 1
        if self.dropped_before_auth <= DROP_LOG_LIMIT:
            name = method[:80] if isinstance(method, str) else "a response"
            log.warning("dropped %r: it came before a successful initialize", name)
        return False

    def _send_error(self, msg_id: Any, code: int, message: str) -> None:
        # _send_data is pygls' one writer (framing, logging); errors for messages that never
        # reached a handler have no future for _send_response to settle.
        self._send_data(
            {"jsonrpc": "2.0", "id": msg_id, "error": {"code": code, "message": message}}
        )

    def handle_body(self, body: bytes) -> None:
        """Parse and dispatch one frame body. Never raises (except SystemExit)."""
        try:
            raw = json.loads(body)
            if _SURROGATE_ESCAPE.search(body):
                raw = _scrub_surrogates(raw)
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:
            reason = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)
            log.warning("dropping a frame that is not JSON: %s", reason)
            self._send_error(None, PARSE_ERROR, f"Parse error: {reason}")
            return
        if not isinstance(raw, dict) or raw.get("jsonrpc") != "2.0":
            msg_id = raw.get("id") if isinstance(raw, dict) else None
            self._send_error(
                _valid_id(msg_id),
                INVALID_REQUEST,
                "Invalid Request: expected a JSON-RPC 2.0 object",
            )
            return
        method = raw.get("method")
        if "id" in raw and (raw["id"] is None or _valid_id(raw["id"]) is None) and method:
            # Ids are strings or integers; an answer to anything else could not be matched.
            self._send_error(
                None, INVALID_REQUEST, "Invalid Request: id must be a string or an integer"
            )
            return
        is_request = "id" in raw and isinstance(method, str)
        if method is not None and not isinstance(method, str):
            self._send_error(
                _valid_id(raw.get("id")),
                INVALID_REQUEST,
                "Invalid Request: method must be a string",
            )
            return
        admitting = False
        if not self.authenticated:
            if not self._admit_before_auth(raw, method, is_request):
                return
            admitting = method == types.INITIALIZE
        elif is_request and method == types.INITIALIZE:
            self._send_error(raw["id"], INVALID_REQUEST, "initialize was already received")
            return
        if is_request and self._shutdown and method != types.EXIT:
            self._send_error(raw["id"], INVALID_REQUEST, "Server is shutting down")
            return
        try:
            message = self._converter_structure(raw, body)
        except (JsonRpcInvalidParams, JsonRpcInternalError, RecursionError) as exc:
            cause = exc.__cause__ or exc
            log.warning(
                "invalid params for %s: %s",
                method,
                str(cause).splitlines()[0] if str(cause) else cause.__class__.__name__,
            )
            if is_request:
                ours = invalid_params_in(exc)
                reason = ours.message if ours is not None else f"Invalid params for {method}"
                self._send_error(raw["id"], INVALID_PARAMS, reason)
            return
        except Exception as exc:  # any structuring failure is the client's, answered -32602
            log.warning("cannot read message %s: %s", method, exc.__class__.__name__)
            if is_request:
                self._send_error(raw["id"], INVALID_PARAMS, f"Invalid params for {method}")
            return
        if admitting:
            self.authenticated = True
            if self.on_authenticated is not None:
                self.on_authenticated()
        try:
            self.handle_message(message)
        except SystemExit:
            raise
        except Exception:
            # pygls answers every request inside handle_message; what escapes is a transport
            # failure, and a second answer could duplicate one: log it and keep reading.
            log.exception("handler for %s failed", method)

    def _converter_structure(self, raw: dict[str, Any], body: bytes = b"") -> Any:
        """pygls' structuring, as its reader does it: ``structure_message`` as the object hook
        of ``json.loads`` (innermost first; it structures every object with a ``jsonrpc``).

        When the body has one ``"jsonrpc"`` key (ours) and no ``\\u`` escapes that could spell
        another, no nested object is structured, and one call on the parsed message is the
        same, without serializing and parsing it again (a whole document in ``didOpen``).
        """
        if body and body.count(b'"jsonrpc"') == 1 and b"\\u" not in body:
            return self.structure_message(raw)
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

    # -- didChange validation: the checks live in lsp_llm.server.documents ------------------

    @lsp_method(types.TEXT_DOCUMENT_DID_CHANGE)
    def lsp_text_document__did_change(self, params: types.DidChangeTextDocumentParams) -> Any:
        """pygls applies every edit it is sent; this applies only valid ones (see
        :func:`~lsp_llm.server.documents.apply_did_change`) and calls our handler only then,
        with the :class:`~lsp_llm.server.documents.AppliedChange` (text before and after)."""
        change = apply_did_change(self.workspace, params)
        if change is None:
            return
        if (user_handler := self.fm.features.get(types.TEXT_DOCUMENT_DID_CHANGE)) is not None:
            yield user_handler, (change,), None


Reader = Callable[[], Awaitable[bytes]]


PRE_AUTH_MAX_BYTES = 4 * 1024 * 1024
"""What a TCP connection may send before its ``initialize`` is accepted (an ``initialize`` is
a few kB): a client without the token cannot make the daemon hold more."""


async def run_session(
    read: Reader, protocol: LlmProtocol, stop: asyncio.Event, *, pre_auth_max_bytes: int = 0
) -> None:
    """Feed bytes from ``read`` (b"" at EOF) through the parser into ``protocol``. With
    ``pre_auth_max_bytes``, a connection that sends more than that before it is accepted is
    closed."""
    parser = FrameParser()
    received = 0
    stop_task = asyncio.ensure_future(stop.wait())
    try:
        while not stop.is_set():
            read_task = asyncio.ensure_future(read())
            done, _ = await asyncio.wait(
                {read_task, stop_task}, return_when=asyncio.FIRST_COMPLETED
            )
            if read_task not in done:
                read_task.cancel()
                break
            data = read_task.result()
            if not data:
                break
            if pre_auth_max_bytes and not protocol.authenticated:
                received += len(data)
                if received > pre_auth_max_bytes:
                    log.warning(
                        "closing a connection that sent %d bytes without initializing", received
                    )
                    break
            for item in parser.feed(data):
                if isinstance(item, FrameError):
                    log.warning("bad frame: %s", item)
                    continue
                protocol.handle_body(item)
                if stop.is_set():
                    break
    finally:
        stop_task.cancel()


def stdin_reader(loop: asyncio.AbstractEventLoop, fd: int) -> Reader:
    """Read stdin without ever blocking the event loop.

    A pipe or socket (what editors and ``lsp-llm connect`` give us on POSIX) is watched by
    the loop itself, so a message is read on the thread that handles it: no thread wakes
    up just to hand the bytes over. Anything else (a file, a terminal, Windows pipes) is
    read by a daemon thread.
    """
    reader = _loop_reader(loop, fd)
    if reader is not None:
        return reader
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


def _loop_reader(loop: asyncio.AbstractEventLoop, fd: int) -> Reader | None:
    """A reader driven by ``loop.add_reader``, or None where the loop cannot watch ``fd``."""
    if sys.platform == "win32":
        return None  # Windows loops watch sockets only (the proactor not even those)
    try:
        mode = os.fstat(fd).st_mode
    except OSError:
        return None
    if not (stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)):
        return None  # epoll refuses regular files; terminals stay on the thread
    queue: asyncio.Queue[bytes] = asyncio.Queue()

    def on_readable() -> None:
        try:
            chunk = os.read(fd, 65536)
        except (BlockingIOError, InterruptedError):
            return  # not readable after all; the loop asks again
        except OSError:
            chunk = b""
        queue.put_nowait(chunk)
        if not chunk:
            loop.remove_reader(fd)

    try:
        loop.add_reader(fd, on_readable)
    except (NotImplementedError, OSError, ValueError, RuntimeError):
        return None  # e.g. the Windows proactor loop
    return queue.get
