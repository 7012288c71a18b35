"""Any OpenAI-compatible server (vLLM, TGI, llama.cpp's llama-server, Ollama, LM Studio).

* ``/completions`` with the raw prompt (our FIM template is already applied by the caller);
  ``/chat/completions`` when the request carries chat messages (the server applies the
  model's chat template, so :meth:`OpenAIBackend.render_chat` returns None).
* Always streamed (SSE). Cancellation is checked between events, and a watcher thread shuts the
  socket down the moment ``request.cancel`` is set, so a server stuck in prefill is also left at
  once; the server sees the disconnect and frees its slot.
* Retries with exponential backoff on connection errors only (refused, connect timeout, a stale
  keep-alive connection that dies before any response): never after a status code arrived and
  never once streaming started.
* The API key comes from the environment variable named by ``apiKeyEnv``. It is only ever put in
  the ``Authorization`` header; it is not stored on the backend, not in any repr and not logged.
* Token budgets use the model's own tokenizer when one is available locally (``tokenizer``
  argument, ``model_path``, or ``model`` found in the local Hugging Face cache), else
  :class:`ApproxTokenizer`, which over-counts on purpose.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from lsp_llm.config import Settings
from lsp_llm.engine.backends.approx_tokenizer import ApproxTokenizer
from lsp_llm.engine.backends.base import BackendError, EmitFn, ProgressFn, TokenizerLike
from lsp_llm.engine.backends.hf_tokenizer import HFTokenizer
from lsp_llm.engine.requests import (
    ChatMessage,
    GenerationRequest,
    GenerationResult,
    Timings,
    TokenEvent,
    cut_at_stop,
)

log = logging.getLogger(__name__)

CONNECT_RETRIES = 3
"""Extra attempts after a connection error (backoff 0.25 s, 0.5 s, 1 s)."""
BACKOFF_S = 0.25
CANCEL_POLL_S = 0.02
MAX_STOP_SEQUENCES = 4
"""The OpenAI API accepts at most 4; any further stop sequence is applied on our side only."""


def load_local_tokenizer(source: str, *, allow_gguf: bool = False) -> TokenizerLike | None:
    """The tokenizer of ``source`` (a directory, a ``.gguf`` file or a hub id already in the
    local cache) without touching the network; None when there is none."""
    if not source:
        return None
    path = Path(source).expanduser()
    looks_local = path.exists()
    looks_hub = not looks_local and source.count("/") == 1 and " " not in source
    if not (looks_local or looks_hub):
        return None
    if path.suffix == ".gguf" and not allow_gguf:
        return None  # converting a GGUF vocabulary takes ~15 s; only when asked for
    try:
        from transformers import AutoTokenizer

        if looks_local and path.is_file() and path.suffix == ".gguf":
            tok = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
        elif looks_local:
            tok = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
        else:
            tok = AutoTokenizer.from_pretrained(source, local_files_only=True)
    except Exception as exc:  # not cached, not a tokenizer, transformers missing...
        log.debug("no local tokenizer for %s: %s", source, exc)
        return None
    return HFTokenizer(tok)


def _server_message(response: httpx.Response) -> str:
    """The error text a server put in its body (OpenAI, vLLM, llama.cpp, TGI, Ollama styles)."""
    try:
        response.read()
        text = response.text
    except (httpx.HTTPError, httpx.StreamError):  # silent: the status alone makes the error
        return ""
    try:
        data = json.loads(text)
    except ValueError:
        return " ".join(text.split())[:200]
    if isinstance(data, dict):
        err = data.get("error", data)
        if isinstance(err, dict):
            msg = err.get("message") or err.get("detail") or err.get("error")
            if msg:
                return str(msg)[:300]
        elif isinstance(err, str):
            return err[:300]
        if "detail" in data:
            return str(data["detail"])[:300]
        if "message" in data:
            return str(data["message"])[:300]
    return " ".join(text.split())[:200]


class _StreamClosed(Exception):
    """The stream was shut down on purpose (cancelled, early stop)."""


@dataclass
class _Stream:
    """One streamed sequence."""

    raw: str = ""
    shown: str = ""
    finish: str = ""
    events: int = 0
    first_at: float = 0.0
    last_at: float = 0.0
    usage: dict[str, Any] = field(default_factory=dict)


class OpenAIBackend:
    """An OpenAI-compatible HTTP server. Used from the engine's worker thread."""

    name = "openai"

    def __init__(
        self,
        settings: Settings,
        model_path: str | None = None,
        tokenizer: TokenizerLike | None = None,
    ) -> None:
        self.settings = settings
        self.endpoint = settings.endpoint.strip().rstrip("/")
        self.model_path = model_path
        self.served_model = settings.model
        self.model_name = settings.model or "(server default)"
        self.device = "remote"
        self.dtype = "remote"
        self.served_models: list[str] = []
        self._tokenizer: TokenizerLike | None = tokenizer
        self._client: httpx.Client | None = None

    def __repr__(self) -> str:
        return f"OpenAIBackend(endpoint={self.endpoint!r}, model={self.served_model!r})"

    # -- plumbing --------------------------------------------------------------------------
    def _headers(self) -> dict[str, str]:
        headers = {"Accept": "application/json"}
        env = self.settings.api_key_env
        if env:
            key = os.environ.get(env, "")
            if key:
                headers["Authorization"] = f"Bearer {key}"
        return headers

    def _timeout(self) -> httpx.Timeout:
        total = max(0.1, float(self.settings.request_timeout_s or 30.0))
        return httpx.Timeout(total, connect=min(total, 10.0))

    def _get_client(self) -> httpx.Client:
        if self._client is None:
            # The key is read per request (the user may export it later) and passed per request.
            self._client = httpx.Client(timeout=self._timeout(), follow_redirects=True)
        return self._client

    def _url(self, path: str) -> str:
        return f"{self.endpoint}/{path.lstrip('/')}"

    def _auth_hint(self) -> str:
        env = self.settings.api_key_env
        if not env:
            return "set apiKeyEnv to the name of an environment variable holding the API key"
        if not os.environ.get(env):
            return f"the environment variable ${env} (apiKeyEnv) is not set"
        return f"check the API key in ${env}"

    def _status_error(self, response: httpx.Response, what: str) -> BackendError:
        status = response.status_code
        detail = _server_message(response)
        suffix = f" (server says: {detail})" if detail else ""
        if status in (401, 403):
            return BackendError(
                f"{self.endpoint} refused {what} ({status}): {self._auth_hint()}{suffix}"
            )
        if status == 404:
            model = self.served_model or "(none set)"
            return BackendError(
                f"{self.endpoint} answered 404 for {what}: check the model name ({model}) and "
                f"the endpoint (the base URL usually ends in /v1){suffix}"
            )
        if status == 429:
            return BackendError(f"{self.endpoint} is rate limiting (429){suffix}")
        if status == 503:
            return BackendError(f"{self.endpoint} is unavailable (503, still loading?){suffix}")
        return BackendError(f"{self.endpoint} failed {what} with HTTP {status}{suffix}")

    def _warn_cleartext_key(self) -> None:
        host = (urlsplit(self.endpoint).hostname or "").lower()
        loopback = host in ("localhost", "::1") or host.startswith("127.")
        if (
            self.endpoint.startswith("http://")
            and not loopback
            and "Authorization" in self._headers()
        ):
            log.warning(
                "the API key from $%s is sent to %s without TLS (http://)",
                self.settings.api_key_env,
                self.endpoint,
            )

    def _unreachable(self, exc: Exception) -> BackendError:
        reason = str(exc) or exc.__class__.__name__
        return BackendError(f"cannot reach {self.endpoint}: is the server running? ({reason})")

    def _wait(self, seconds: float, request: GenerationRequest | None) -> bool:
        """Sleep for a backoff; False when the request was cancelled meanwhile."""
        deadline = time.monotonic() + seconds
        while True:
            if request is not None and request.cancel.cancelled:
                return False
            left = deadline - time.monotonic()
            if left <= 0:
                return True
            time.sleep(min(left, CANCEL_POLL_S * 5))

    def _send(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None,
        request: GenerationRequest | None,
    ) -> httpx.Response | None:
        """Open a streamed response, retrying connection errors. None if cancelled meanwhile."""
        if not self.endpoint:
            raise BackendError(
                "the openai backend needs an endpoint (e.g. http://127.0.0.1:8000/v1)"
            )
        client = self._get_client()
        delay = BACKOFF_S
        for attempt in range(CONNECT_RETRIES + 1):
            if request is not None and request.cancel.cancelled:
                return None
            req = client.build_request(
                method, self._url(path), json=body, headers=self._headers(), timeout=self._timeout()
            )
            try:
                return client.send(req, stream=True)
            except (httpx.ConnectError, httpx.ConnectTimeout, httpx.RemoteProtocolError) as exc:
                # RemoteProtocolError here: the connection died before any response (a stale
                # keep-alive connection); nothing was processed, so a retry is safe.
                if attempt == CONNECT_RETRIES:
                    if isinstance(exc, httpx.RemoteProtocolError):
                        raise BackendError(
                            f"{self.endpoint} closed the connection without an HTTP answer "
                            f"({exc}); is this an HTTP endpoint?"
                        ) from exc
                    raise self._unreachable(exc) from exc
                log.debug(
                    "connection to %s failed (%s); retrying in %.2fs", self.endpoint, exc, delay
                )
                if not self._wait(delay, request):
                    return None
                delay *= 2
            except httpx.TimeoutException as exc:
                raise BackendError(
                    f"{self.endpoint} did not answer within {self.settings.request_timeout_s:g}s "
                    "(requestTimeoutS)"
                ) from exc
            except httpx.UnsupportedProtocol as exc:
                raise BackendError(f"invalid endpoint {self.endpoint!r}: {exc}") from exc
            except httpx.HTTPError as exc:
                raise BackendError(f"request to {self.endpoint} failed: {exc}") from exc
        raise AssertionError("unreachable")  # pragma: no cover

    # -- Backend protocol ------------------------------------------------------------------
    def load(self, progress: ProgressFn) -> None:
        """Check that the server answers and learn the served model. Cheap to call again."""
        progress(f"connecting to {self.endpoint or '(no endpoint)'}", 0.1)
        response = self._send("GET", "models", None, None)
        assert response is not None
        try:
            if response.status_code != 200:
                raise self._status_error(response, "the model list (GET /models)")
            try:
                response.read()
                data = response.json()
            except (ValueError, httpx.HTTPError) as exc:
                raise BackendError(
                    f"{self.endpoint}/models did not return OpenAI-compatible JSON "
                    f"({exc.__class__.__name__}); is this the right endpoint?"
                ) from exc
        finally:
            response.close()
        models = data.get("data") if isinstance(data, dict) else None
        if not isinstance(models, list):
            raise BackendError(
                f"{self.endpoint}/models did not return an OpenAI model list; "
                "is this the right endpoint?"
            )
        self.served_models = [
            str(m.get("id")) for m in models if isinstance(m, dict) and m.get("id")
        ]
        if not self.settings.model:
            if not self.served_models:
                raise BackendError(f"{self.endpoint} serves no model")
            self.served_model = self.served_models[0]
        elif self.served_models and self.settings.model not in self.served_models:
            log.warning(
                "model %r is not in the list served by %s (%s); requests may fail",
                self.settings.model,
                self.endpoint,
                ", ".join(self.served_models[:5]),
            )
        self.model_name = self.served_model
        self._warn_cleartext_key()
        if self._tokenizer is None:
            progress("looking for a local tokenizer", 0.6)
            self._tokenizer = load_local_tokenizer(
                self.model_path or "", allow_gguf=True
            ) or load_local_tokenizer(self.served_model)
            if self._tokenizer is None:
                log.info(
                    "no local tokenizer for %s: prompt budgets use an approximation",
                    self.served_model,
                )
                self._tokenizer = ApproxTokenizer()
        progress(f"connected to {self.endpoint} ({self.served_model})", 1.0)

    @property
    def tokenizer(self) -> TokenizerLike:
        if self._tokenizer is None:
            self._tokenizer = ApproxTokenizer()
        return self._tokenizer

    def render_chat(self, messages: Sequence[ChatMessage]) -> str | None:
        return None  # the server applies the model's chat template (/chat/completions)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    # -- generation ------------------------------------------------------------------------
    def _body(self, request: GenerationRequest) -> tuple[str, dict[str, Any]]:
        body: dict[str, Any] = {
            "max_tokens": max(1, request.max_new_tokens),
            "temperature": max(0.0, request.temperature),
            "top_p": request.top_p,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if self.served_model:
            body["model"] = self.served_model
        stops = [s for s in request.stop if s][:MAX_STOP_SEQUENCES]
        if stops:
            body["stop"] = stops
        if request.messages:
            body["messages"] = [{"role": m.role, "content": m.content} for m in request.messages]
            return "chat/completions", body
        body["prompt"] = request.prompt
        return "completions", body

    def generate(self, request: GenerationRequest, emit: EmitFn) -> GenerationResult:
        t0 = time.perf_counter()
        n = max(1, request.num_return_sequences)
        path, body = self._body(request)
        streams: list[_Stream] = []
        cancelled = False
        finish = "length"
        for index in range(n):
            stream = _Stream()
            streams.append(stream)
            if not self._stream_one(path, body, request, index, stream, emit):
                cancelled = True
                break
            if stream.finish == "stop":
                finish = "stop"
        now = time.perf_counter()
        texts = [s.shown for s in streams] + [""] * (n - len(streams))
        first = next((s for s in streams if s.first_at), None)
        prompt_tokens = next(
            (int(s.usage["prompt_tokens"]) for s in streams if s.usage.get("prompt_tokens")), 0
        )
        if not prompt_tokens:
            try:
                text = request.prompt or "\n".join(m.content for m in request.messages)
                prompt_tokens = len(self.tokenizer.encode(text))
            except Exception:  # an estimate only
                prompt_tokens = 0
        new_tokens = sum(int(s.usage.get("completion_tokens") or 0) or s.events for s in streams)
        first_token_s = (first.first_at - t0) if first is not None else 0.0
        timings = Timings(
            queued_s=max(0.0, t0 - request.created_at),
            prefill_s=first_token_s,
            first_token_s=first_token_s,
            decode_s=sum(s.last_at - s.first_at for s in streams if s.first_at),
            total_s=now - t0,
            prompt_tokens=prompt_tokens,
            prefill_tokens=prompt_tokens,
            new_tokens=new_tokens,
        )
        reason = "cancelled" if cancelled else finish
        return GenerationResult(texts=tuple(texts), finish_reason=reason, timings=timings)  # type: ignore[arg-type]

    def _stream_one(
        self,
        path: str,
        body: dict[str, Any],
        request: GenerationRequest,
        index: int,
        stream: _Stream,
        emit: EmitFn,
    ) -> bool:
        """Stream one sequence into ``stream``. False when cancelled."""
        response = self._send("POST", path, body, request)
        if response is None:
            return False
        done = threading.Event()
        watcher = threading.Thread(
            target=self._watch_cancel,
            args=(request, response, done),
            name=f"lsp-llm-openai-cancel-{request.id}",
            daemon=True,
        )
        watcher.start()
        try:
            if response.status_code != 200:
                raise self._status_error(response, f"POST /{path}")
            stops = tuple(s for s in request.stop if s)
            for event in self._events(response, request):
                if request.cancel.cancelled:
                    return False
                if self._apply(event, stream, stops, index, emit, request):
                    break  # stop sequence / should_stop: closing the response ends the stream
            return not request.cancel.cancelled or stream.finish in ("stop", "length")
        except _StreamClosed:
            return False
        finally:
            done.set()
            response.close()
            watcher.join(timeout=1.0)

    @staticmethod
    def _watch_cancel(
        request: GenerationRequest, response: httpx.Response, done: threading.Event
    ) -> None:
        """Shut the socket down as soon as the request is cancelled (unblocks a pending read)."""
        while not done.wait(CANCEL_POLL_S):
            if request.cancel.cancelled:
                stream = response.extensions.get("network_stream")
                sock = stream.get_extra_info("socket") if stream is not None else None
                if isinstance(sock, socket.socket):
                    with contextlib.suppress(OSError):
                        sock.shutdown(socket.SHUT_RDWR)
                return

    def _events(self, response: httpx.Response, request: GenerationRequest) -> Iterator[Any]:
        """Parsed SSE ``data:`` payloads until ``[DONE]`` or the end of the stream."""
        data_lines: list[str] = []
        try:
            for line in response.iter_lines():
                if request.cancel.cancelled:
                    raise _StreamClosed
                if line.startswith(":"):
                    continue  # comment / keep-alive ping
                if line.startswith("data:"):
                    data_lines.append(line[5:].removeprefix(" "))
                    continue
                if line.startswith("error:"):  # a few servers use an error field
                    data_lines.append(line[6:].strip())
                    continue
                if line.strip() or not data_lines:
                    continue  # event:, id:, retry: fields, or a stray blank line
                payload = "\n".join(data_lines)
                data_lines = []
                if payload.strip() == "[DONE]":
                    return
                yield self._parse(payload)
            if data_lines:
                payload = "\n".join(data_lines)
                if payload.strip() != "[DONE]":
                    yield self._parse(payload)
        except httpx.TimeoutException as exc:
            if request.cancel.cancelled:
                raise _StreamClosed from exc
            raise BackendError(
                f"{self.endpoint} stopped sending for {self.settings.request_timeout_s:g}s "
                "(requestTimeoutS)"
            ) from exc
        except httpx.HTTPError as exc:
            if request.cancel.cancelled:
                raise _StreamClosed from exc
            raise BackendError(f"the stream from {self.endpoint} broke off: {exc}") from exc

    def _parse(self, payload: str) -> Any:
        try:
            data = json.loads(payload)
        except ValueError as exc:
            raise BackendError(
                f"{self.endpoint} sent something that is not JSON in its event stream: "
                f"{payload[:120]!r}; is this an OpenAI-compatible endpoint?"
            ) from exc
        if isinstance(data, dict) and data.get("error"):
            err = data["error"]
            msg = err.get("message", err) if isinstance(err, dict) else err
            raise BackendError(f"{self.endpoint} reported an error: {msg}")
        return data

    def _apply(
        self,
        event: Any,
        stream: _Stream,
        stops: tuple[str, ...],
        index: int,
        emit: EmitFn,
        request: GenerationRequest,
    ) -> bool:
        """Fold one event into ``stream``; True when we stop reading (stop / should_stop)."""
        if not isinstance(event, dict):
            raise BackendError(f"{self.endpoint} sent an unexpected event: {str(event)[:120]}")
        usage = event.get("usage")
        if isinstance(usage, dict):
            stream.usage = usage
        choices = event.get("choices")
        if choices is None and usage is None:
            raise BackendError(
                f"{self.endpoint} sent an event without choices: {json.dumps(event)[:120]}; "
                "is this an OpenAI-compatible endpoint?"
            )
        if not choices:
            return False
        choice = choices[0]
        if not isinstance(choice, dict):
            raise BackendError(f"{self.endpoint} sent a malformed choice: {str(choice)[:120]}")
        delta = choice.get("text")
        if delta is None and isinstance(choice.get("delta"), dict):
            delta = choice["delta"].get("content")
        if delta:
            now = time.perf_counter()
            stream.first_at = stream.first_at or now
            stream.last_at = now
            stream.events += 1
            stream.raw += str(delta)
            visible, hit = cut_at_stop(stream.raw, stops)
            if len(visible) > len(stream.shown) and visible.startswith(stream.shown):
                emit(TokenEvent(visible[len(stream.shown) :], index))
            stream.shown = visible
            if hit or (request.should_stop is not None and request.should_stop(visible)):
                stream.finish = "stop"
                return True
        reason = choice.get("finish_reason")
        if reason:
            stream.finish = "length" if reason == "length" else "stop"
        return False
