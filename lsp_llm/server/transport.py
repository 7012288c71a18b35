"""Transports: stdio (one session) and TCP (a daemon, one session per connection)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import sys
from typing import BinaryIO

from lsp_llm import heap
from lsp_llm.engine.worker import EngineStatus
from lsp_llm.server.protocol import (
    PRE_AUTH_MAX_BYTES,
    FrameError,
    FrameParser,
    run_session,
    stdin_reader,
)
from lsp_llm.server.routes import create_server
from lsp_llm.server.session import Shared

log = logging.getLogger(__name__)

TOKEN_ENV = "LSP_LLM_TCP_TOKEN"
"""The shared secret for TCP sessions: read by the daemon (when ``tcpToken`` is not set) and
by ``lsp-llm connect``, which adds it to the ``initialize`` it forwards."""


class _SyncWriter:
    """pygls writer over a binary file (stdout)."""

    def __init__(self, out: BinaryIO) -> None:
        self._out = out
        self.closed = False

    def write(self, data: bytes) -> None:
        if self.closed:
            return
        try:
            self._out.write(data)
            self._out.flush()
        except (BrokenPipeError, ValueError, OSError):
            # The client went away (an editor quitting); the reader sees EOF next.
            self.closed = True
            log.info("client closed the output pipe")

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._out.flush()


class _StreamWriter:
    """pygls writer over an asyncio StreamWriter (TCP)."""

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self._writer = writer

    def write(self, data: bytes) -> None:
        if not self._writer.is_closing():
            self._writer.write(data)

    def close(self) -> None:
        if not self._writer.is_closing():
            self._writer.close()


async def _serve_stdio(shared: Shared, stdin_fd: int, stdout: BinaryIO) -> int:
    loop = asyncio.get_running_loop()
    server = create_server(shared)
    server.loop = loop
    server.protocol.on_authenticated = server.attach
    stop = asyncio.Event()
    server.protocol.set_writer(_SyncWriter(stdout))
    server.protocol.on_exit = lambda code: stop.set()
    # The engine starts at `initialize`, once the client's settings are known: a model named
    # in initializationOptions is the first and only one loaded.
    if shared.workspaces is not None:
        shared.workspaces.start(loop)
    try:
        await run_session(stdin_reader(loop, stdin_fd), server.protocol, stop)
    finally:
        server.detach()
        if shared.workspaces is not None:
            await shared.workspaces.stop()
    code = server.protocol.exit_code
    if code is None:
        log.info("client closed the connection")
        return 0 if server.protocol.shutdown_received else 1
    return code


class _HeapSettler:
    """Engine listener: :func:`lsp_llm.heap.settle` once each model load is done. Only the
    ``serve`` entry points install it: it acts on the whole process."""

    def __init__(self) -> None:
        self.generation = 0

    def __call__(self, status: EngineStatus) -> None:
        if status.state != "ready" or status.generation == self.generation:
            return
        self.generation = status.generation
        heap.settle("loading the model")


def serve_stdio(shared: Shared) -> int:
    """Serve one client over stdin/stdout. Nothing else may write to stdout."""
    shared.engine.add_listener(_HeapSettler())  # before the session's: first after a load
    stdout = sys.stdout.buffer
    sys.stdout = sys.stderr  # a stray print() must never corrupt the transport
    try:
        return asyncio.run(_serve_stdio(shared, sys.stdin.fileno(), stdout))
    except KeyboardInterrupt:
        return 130
    finally:
        shared.engine.shutdown(timeout=2.0)


class _Throttled:
    """A warning logged at most once per ``every_s``, with the count of those held back."""

    def __init__(self, every_s: float = 10.0) -> None:
        self.every_s = every_s
        self._last = -float("inf")
        self._held = 0

    def warning(self, now: float, message: str, *args: object) -> None:
        if now - self._last < self.every_s:
            self._held += 1
            return
        held, self._held, self._last = self._held, 0, now
        suffix = f" ({held} more like this in the last {self.every_s:g}s)" if held else ""
        log.warning(message + suffix, *args)


class _Connections:
    """The daemon's connection policy: at most ``limit`` sockets; one that has not been
    accepted (token-checked ``initialize``) within ``auth_timeout_s`` is closed; when full,
    a newcomer takes the place of the oldest connection not yet accepted, so idle sockets
    held by someone without the token never lock a real editor out."""

    def __init__(self, limit: int, auth_timeout_s: float) -> None:
        self.limit = max(1, limit)
        self.auth_timeout_s = auth_timeout_s
        self.open = 0
        self.pending: dict[int, asyncio.Event] = {}
        """Connections not accepted yet, oldest first: session id -> its stop event."""
        self.full_log = _Throttled()
        self.timeout_log = _Throttled()

    def admit(self, now: float, peer: object) -> bool:
        """Whether a new connection from ``peer`` may be served (making room if needed)."""
        if self.open < self.limit:
            return True
        if self.pending:
            oldest = next(iter(self.pending))
            self.pending.pop(oldest).set()
            self.full_log.warning(
                now,
                "connection limit reached (tcpMaxConnections=%d): closed session %d, which "
                "had not initialized, to admit %s",
                self.limit,
                oldest,
                peer,
            )
            return True
        self.full_log.warning(
            now,
            "connection limit reached (tcpMaxConnections=%d): refused %s",
            self.limit,
            peer,
        )
        return False


async def run_tcp(
    shared: Shared, host: str, port: int, ready: asyncio.Future[int] | None = None
) -> None:
    """Accept connections until cancelled; each is its own LSP session on the shared model."""
    loop = asyncio.get_running_loop()
    shared.daemon = True
    settings = shared.base_settings
    token = settings.tcp_token or os.environ.get(TOKEN_ENV, "")
    conns = _Connections(settings.tcp_max_connections, settings.tcp_auth_timeout_s)
    shared.engine.start()
    if shared.workspaces is not None:
        shared.workspaces.start(loop)

    async def on_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        if not conns.admit(loop.time(), peer):
            writer.close()
            with contextlib.suppress(Exception):  # a refused peer: how its socket ends is moot
                await writer.wait_closed()
            return
        conns.open += 1
        server = create_server(shared)
        server.loop = loop
        sid = server.session_id
        log.info("session %d: connection from %s", sid, peer)
        stop = asyncio.Event()
        conns.pending[sid] = stop

        def auth_timeout() -> None:
            if conns.pending.pop(sid, None) is not None:
                conns.timeout_log.warning(
                    loop.time(),
                    "session %d: closed: no accepted initialize within %gs of connecting "
                    "(tcpAuthTimeoutS)",
                    sid,
                    conns.auth_timeout_s,
                )
                stop.set()

        timer = loop.call_later(conns.auth_timeout_s, auth_timeout)

        def accepted() -> None:
            timer.cancel()
            conns.pending.pop(sid, None)
            server.attach()

        server.protocol.on_authenticated = accepted
        server.protocol.set_writer(_StreamWriter(writer))
        server.protocol.on_exit = lambda code: stop.set()
        server.protocol.tcp_token = token

        async def read() -> bytes:
            try:
                return await reader.read(65536)
            except (ConnectionError, OSError):
                return b""

        try:
            await run_session(read, server.protocol, stop, pre_auth_max_bytes=PRE_AUTH_MAX_BYTES)
        finally:
            conns.open -= 1
            conns.pending.pop(sid, None)
            timer.cancel()
            server.detach()
            # Cancel whatever this session still has running; other sessions are untouched.
            server.protocol.cancel_pending()
            with contextlib.suppress(Exception):  # the socket may be gone already; closing is all
                writer.close()
            if server.protocol.dropped_before_auth:
                log.info(
                    "session %d: %d messages before initialize were dropped",
                    sid,
                    server.protocol.dropped_before_auth,
                )
            log.info("session %d: closed", sid)

    # The loop accepts up to ``backlog`` sockets per wake-up before any is looked at: keep
    # that burst within the connection limit, so a flood cannot run the process out of fds.
    tcp = await asyncio.start_server(on_connection, host, port, backlog=min(100, conns.limit))
    bound = tcp.sockets[0].getsockname()[1]
    log.info(
        "lsp-llm daemon listening on %s:%s (at most %d connections, %gs to initialize)",
        host,
        bound,
        conns.limit,
        conns.auth_timeout_s,
    )
    # One write: print() writes the newline separately, and a log line from the model thread
    # could land in between and glue itself to the port that scripts read from this line.
    sys.stderr.write(f"lsp-llm: listening on {host}:{bound}\n")
    sys.stderr.flush()
    if ready is not None and not ready.done():
        ready.set_result(bound)
    try:
        async with tcp:
            await tcp.serve_forever()
    finally:
        if shared.workspaces is not None:
            await shared.workspaces.stop()


def serve_tcp(shared: Shared, host: str, port: int) -> int:
    if host not in ("127.0.0.1", "localhost", "::1"):
        log.warning(
            "binding to %s exposes your code and the model to the network; "
            "set tcpToken (LSP_LLM_TCP_TOKEN) to require a shared secret",
            host,
        )
        print(
            f"lsp-llm: WARNING: listening on {host}, reachable from other machines",
            file=sys.stderr,
        )
    shared.engine.add_listener(_HeapSettler())
    try:
        asyncio.run(run_tcp(shared, host, port))
    except KeyboardInterrupt:
        return 130
    finally:
        shared.engine.shutdown(timeout=2.0)
    return 0


class _TokenInjector:
    """Re-frame client messages until the first ``initialize``, adding the TCP token to its
    ``initializationOptions``; after that, bytes pass through untouched."""

    def __init__(self, token: str) -> None:
        self.token = token
        self.done = False
        self._parser = FrameParser()

    def feed(self, data: bytes) -> bytes:
        out = bytearray()
        for item in self._parser.feed(data):
            if isinstance(item, FrameError):
                continue  # the server would drop it too
            body = item
            if not self.done:
                body = self._inject(item)
            out += b"Content-Length: %d\r\n\r\n" % len(body) + body
            if self.done:
                out += self._parser.take_pending()
                break
        return bytes(out)

    def _inject(self, body: bytes) -> bytes:
        try:
            message = json.loads(body)
        except (ValueError, RecursionError):
            return body
        if not isinstance(message, dict) or message.get("method") != "initialize":
            return body
        self.done = True
        params = message.get("params")
        if not isinstance(params, dict):
            return body
        options = params.get("initializationOptions")
        if not isinstance(options, dict):
            options = {}
        params["initializationOptions"] = {**options, "tcpToken": self.token}
        return json.dumps(message).encode("utf-8")


async def _bridge(host: str, port: int) -> int:
    """Copy stdin to a daemon's socket and its answers to stdout."""
    loop = asyncio.get_running_loop()
    try:
        reader, writer = await asyncio.open_connection(host, port)
    except OSError as exc:
        print(
            f"lsp-llm connect: cannot reach {host}:{port} ({exc}); start it with "
            f"`lsp-llm serve --tcp --port {port}`",
            file=sys.stderr,
        )
        return 1
    read_stdin = stdin_reader(loop, sys.stdin.fileno())
    out_fd = sys.stdout.fileno()
    token = os.environ.get(TOKEN_ENV, "")

    async def upstream() -> None:
        injector = _TokenInjector(token) if token else None
        while data := await read_stdin():
            if injector is not None:
                data = injector.feed(data)
                if injector.done:
                    injector = None
            writer.write(data)
            await writer.drain()
        writer.close()

    async def downstream() -> None:
        while data := await reader.read(65536):
            os.write(out_fd, data)

    up = asyncio.ensure_future(upstream())
    down = asyncio.ensure_future(downstream())
    await asyncio.wait({up, down}, return_when=asyncio.FIRST_COMPLETED)
    for task in (up, down):
        task.cancel()
    return 0


def connect(address: str) -> int:
    host, _, port = address.rpartition(":")
    if not port.isdigit():
        print(f"lsp-llm connect: expected HOST:PORT, got {address!r}", file=sys.stderr)
        return 2
    return asyncio.run(_bridge(host or "127.0.0.1", int(port)))
