"""The engine: one thread owns the model; the asyncio loop owns everything else.

Concurrency story (the only one in the code base):

* The event loop calls :meth:`Engine.submit` / :meth:`Engine.stream`. Those put an immutable
  :class:`GenerationRequest` on a priority queue guarded by one condition variable.
* Exactly one worker thread pops requests, loads models and runs ``backend.generate``. Nothing
  else touches the backend, its tokenizer included: a request's ``prepare`` (prompt building
  with exact token counts, template detection, the stop predicate) runs on this thread right
  before the generation, and whether the model has a chat template is probed here at load
  (:attr:`Engine.has_chat_template`).
* Results travel back as immutable events through ``loop.call_soon_threadsafe``.
* Cancellation is a :class:`CancelToken` set from the loop and polled by the backend between
  decode steps; requests cancelled while queued are dropped when they reach the front.
* Priorities: completions (0) go ahead of docstrings (1) and explanations (2); FIFO within one.
  A new request with the same ``supersede_key`` cancels the older ones, queued or running.
"""

from __future__ import annotations

import asyncio
import dataclasses
import heapq
import itertools
import logging
import threading
import time
import traceback
from collections.abc import AsyncIterator, Callable
from typing import Any, Literal

from lsp_llm.config import Settings, cpu_threads
from lsp_llm.engine.backends.base import Backend, BackendError, OutOfMemory, TokenizerLike
from lsp_llm.engine.models import ModelNotFound, ModelSpec, choose_backend, resolve_model
from lsp_llm.engine.requests import (
    ChatMessage,
    GenerationRequest,
    GenerationResult,
    Timings,
    TokenEvent,
)

log = logging.getLogger(__name__)

EngineState = Literal["stopped", "loading", "ready", "error"]
Event = TokenEvent | GenerationResult
Sink = Callable[[Event], None]
StateListener = Callable[["EngineStatus"], None]


@dataclasses.dataclass(frozen=True, kw_only=True)
class CancelRecord:
    """How fast the last cancelled generation stopped, measured on the server."""

    latency_s: float
    """From ``CancelToken.cancel`` (e.g. ``$/cancelRequest`` handled) to the worker done."""
    step_s: float
    """That request's own mean decode step (0 when it was cancelled before its first token)."""
    reason: str
    new_tokens: int

    def to_wire(self) -> dict[str, Any]:
        return {
            "ms": round(self.latency_s * 1000, 3),
            "stepMs": round(self.step_s * 1000, 3),
            "reason": self.reason,
            "newTokens": self.new_tokens,
        }


@dataclasses.dataclass(frozen=True, kw_only=True)
class EngineStatus:
    state: EngineState
    message: str = ""
    model: str = ""
    backend: str = ""
    backend_reason: str = ""
    device: str = ""
    dtype: str = ""
    progress: float | None = None
    queue_depth: int = 0
    busy: bool = False
    last: Timings | None = None
    generation: int = 0
    """Increments on every (re)load; lets listeners tell loads apart."""
    last_cancel: CancelRecord | None = None

    def to_wire(self) -> dict[str, Any]:
        last = dataclasses.asdict(self.last) if self.last else None
        if last is not None and self.last is not None:
            last["tokensPerSecond"] = round(self.last.tokens_per_s, 2)
        return {
            "state": self.state,
            "message": self.message,
            "model": self.model,
            "backend": self.backend,
            "backendReason": self.backend_reason,
            "device": self.device,
            "dtype": self.dtype,
            "progress": self.progress,
            "queueDepth": self.queue_depth,
            "worker": "busy" if self.busy else "idle",
            "lastRequest": last,
            "lastCancel": self.last_cancel.to_wire() if self.last_cancel else None,
        }


def make_backend(settings: Settings) -> tuple[Backend, str]:
    """Create (not load) the configured backend. Returns (backend, why it was chosen)."""
    spec: ModelSpec | None
    if settings.backend == "openai" or (settings.backend == "auto" and settings.endpoint):
        spec = None
    else:
        spec = resolve_model(settings)
    name, reason = choose_backend(settings, spec)
    if name == "openai":
        from lsp_llm.engine.backends.openai import OpenAIBackend

        return OpenAIBackend(settings), reason
    assert spec is not None
    if name == "llamacpp":
        if spec.format != "gguf":
            raise BackendError("the llamacpp backend needs a .gguf model")
        from lsp_llm.engine.backends.llamacpp import LlamaCppBackend

        return LlamaCppBackend(settings, spec.path, threads=cpu_threads(settings)), reason
    from lsp_llm.engine.backends.transformers import TransformersBackend

    return TransformersBackend(settings, spec), reason


class Engine:
    """Owns the model thread. All public methods are safe to call from the event loop."""

    def __init__(
        self,
        settings: Settings,
        backend_factory: Callable[[Settings], tuple[Backend, str]] = make_backend,
    ) -> None:
        self._settings = settings
        self._factory = backend_factory
        self._cond = threading.Condition()
        self._queue: list[tuple[int, int, GenerationRequest, Sink]] = []
        self._seq = itertools.count()
        self._current: GenerationRequest | None = None
        self._pending_load: Settings | None = settings
        self._backend: Backend | None = None
        self._chat_template = False
        self._stopping = False
        self._listeners: list[StateListener] = []
        self._status = EngineStatus(state="loading", message="starting")
        self._thread = threading.Thread(target=self._run, name="lsp-llm-model", daemon=True)
        self._idle = threading.Event()
        self._idle.set()

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> None:
        if not self._thread.is_alive():
            self._thread.start()

    def reload(self, settings: Settings) -> None:
        """Load a different model/backend; queued requests wait for it."""
        with self._cond:
            self._settings = settings
            self._pending_load = settings
            if self._current is not None:
                self._current.cancel.cancel("model reload")
            self._cond.notify_all()

    def update_settings(self, settings: Settings) -> None:
        """Settings that need no reload (sampling, budgets)."""
        with self._cond:
            self._settings = settings
            backend = self._backend
        if backend is not None and hasattr(backend, "prefix_cache_enabled"):
            backend.prefix_cache_enabled = settings.prefix_cache

    def shutdown(self, timeout: float = 5.0) -> None:
        with self._cond:
            self._stopping = True
            for _, _, req, _ in self._queue:
                req.cancel.cancel("shutdown")
            if self._current is not None:
                self._current.cancel.cancel("shutdown")
            self._cond.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def add_listener(self, listener: StateListener) -> None:
        self._listeners.append(listener)

    def remove_listener(self, listener: StateListener) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)

    # -- queries ---------------------------------------------------------------------------
    @property
    def settings(self) -> Settings:
        return self._settings

    @property
    def status(self) -> EngineStatus:
        with self._cond:
            # Cancelled requests wait in the heap until popped; they are not work.
            live = sum(1 for _, _, queued, _ in self._queue if not queued.cancel.cancelled)
            return dataclasses.replace(
                self._status, queue_depth=live, busy=self._current is not None
            )

    @property
    def ready(self) -> bool:
        return self._status.state == "ready"

    @property
    def tokenizer(self) -> TokenizerLike | None:
        backend = self._backend
        if backend is None or self._status.state != "ready":
            return None
        return backend.tokenizer

    @property
    def has_chat_template(self) -> bool:
        """The loaded model renders chat messages (probed once on the model thread at load)."""
        return self._chat_template and self._status.state == "ready"

    @property
    def backend(self) -> Backend | None:
        return self._backend if self._status.state == "ready" else None

    def wait_idle(self, timeout: float) -> bool:
        """Block until the worker has nothing running (tests, benchmarks)."""
        return self._idle.wait(timeout)

    # -- submitting ------------------------------------------------------------------------
    def submit(self, request: GenerationRequest, sink: Sink) -> None:
        """Queue ``request``; ``sink`` gets events on the worker thread. Never blocks."""
        with self._cond:
            if request.supersede_key:
                for _, _, queued, _ in self._queue:
                    if queued.supersede_key == request.supersede_key:
                        queued.cancel.cancel("superseded")
                cur = self._current
                if cur is not None and cur.supersede_key == request.supersede_key:
                    cur.cancel.cancel("superseded")
            heapq.heappush(self._queue, (request.priority, next(self._seq), request, sink))
            self._cond.notify_all()

    async def stream(self, request: GenerationRequest) -> AsyncIterator[Event]:
        """Yield token events, then exactly one :class:`GenerationResult`.

        If the consumer stops iterating (or its task is cancelled), the request is cancelled.
        """
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Event] = asyncio.Queue()

        def sink(event: Event) -> None:
            try:
                loop.call_soon_threadsafe(queue.put_nowait, event)
            except RuntimeError:  # the loop is closed: nobody is listening any more
                request.cancel.cancel("loop closed")

        self.submit(request, sink)
        try:
            while True:
                event = await queue.get()
                yield event
                if isinstance(event, GenerationResult):
                    return
        finally:
            request.cancel.cancel("consumer gone")

    async def generate(self, request: GenerationRequest) -> GenerationResult:
        """The result alone. Token events stay on the model thread: waking the loop for each
        would take the GIL and a core from the decode loop for text nobody reads before the
        result (the result's timings say when the first token came). Cancelled if the
        awaiting task is."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[GenerationResult] = loop.create_future()

        def deliver(result: GenerationResult) -> None:
            if not done.done():
                done.set_result(result)

        def sink(event: Event) -> None:
            if isinstance(event, GenerationResult):
                try:
                    loop.call_soon_threadsafe(deliver, event)
                except RuntimeError:  # the loop is closed: nobody is listening any more
                    request.cancel.cancel("loop closed")

        self.submit(request, sink)
        try:
            return await done
        finally:
            request.cancel.cancel("consumer gone")

    # -- the worker thread -----------------------------------------------------------------
    def _set_status(self, **changes: Any) -> None:
        self._notify(self._update_status(**changes))

    def _update_status(self, **changes: Any) -> EngineStatus:
        """Change the status without telling listeners (see ``_notify``)."""
        with self._cond:
            self._status = dataclasses.replace(self._status, **changes)
            return self._status

    def _notify(self, status: EngineStatus) -> None:
        for listener in list(self._listeners):
            try:
                listener(status)
            except Exception:  # a listener must never kill the model thread
                log.exception("status listener failed")

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._stopping and self._pending_load is None and not self._queue:
                    self._cond.wait()
                if self._stopping:
                    break
                load = self._pending_load
                self._pending_load = None
                item = None
                if load is None:
                    item = heapq.heappop(self._queue)
                    self._current = item[2]
                    self._idle.clear()
            if load is not None:
                self._load(load)
                continue
            assert item is not None
            _, _, request, sink = item
            try:
                self._execute(request, sink)
            finally:
                with self._cond:
                    self._current = None
                    if not self._queue:
                        self._idle.set()
        self._close_backend()
        self._set_status(state="stopped", message="shut down")
        self._idle.set()

    def _close_backend(self) -> None:
        self._chat_template = False
        if self._backend is not None:
            try:
                self._backend.close()
            except Exception:  # a backend that fails to close must not stop a reload; logged
                log.exception("closing the backend failed")
            self._backend = None

    def _load(self, settings: Settings) -> None:
        self._close_backend()
        generation = self._status.generation + 1
        self._set_status(
            state="loading", message="loading model", progress=0.0, generation=generation
        )
        t0 = time.perf_counter()
        try:
            backend, reason = self._factory(settings)
            self._set_status(backend=backend.name, backend_reason=reason, model=backend.model_name)
            log.info("backend %s chosen: %s", backend.name, reason)

            def progress(message: str, fraction: float | None) -> None:
                self._set_status(message=message, progress=fraction)

            backend.load(progress)
        except (BackendError, ModelNotFound) as exc:
            log.error("model failed to load: %s", exc)
            self._set_status(state="error", message=str(exc), progress=None)
            return
        except Exception as exc:  # any load failure is a status, not a dead thread; logged
            log.error("model failed to load:\n%s", traceback.format_exc())
            self._set_status(
                state="error",
                message=f"model failed to load: {exc.__class__.__name__}: {exc}",
                progress=None,
            )
            return
        try:
            probe = backend.render_chat((ChatMessage(role="user", content="hi"),))
        except Exception:  # a template that fails here fails for every request
            log.exception("probing the chat template failed")
            probe = None
        self._chat_template = probe is not None
        self._backend = backend
        # Settings that changed while the model loaded (initializationOptions) apply now.
        self.update_settings(self._settings)
        log.info(
            "model %s ready on %s (%s) in %.1fs",
            backend.model_name,
            backend.device,
            backend.dtype,
            time.perf_counter() - t0,
        )
        self._set_status(
            state="ready",
            message=f"ready in {time.perf_counter() - t0:.1f}s",
            progress=None,
            device=backend.device,
            dtype=backend.dtype,
        )

    def _execute(self, request: GenerationRequest, sink: Sink) -> None:
        n = max(1, request.num_return_sequences)
        backend = self._backend
        if request.cancel.cancelled:
            sink(GenerationResult(texts=("",) * n, finish_reason="cancelled"))
            return
        if backend is None or self._status.state != "ready":
            sink(
                GenerationResult(
                    texts=("",) * n,
                    finish_reason="error",
                    error=f"model is {self._status.state}: {self._status.message}",
                )
            )
            return
        if request.prepare is not None:
            try:
                prepared = request.prepare(backend)
            except Exception as exc:  # a bug in prompt building fails this request only
                log.error("request %d: preparing failed:\n%s", request.id, traceback.format_exc())
                sink(
                    GenerationResult(
                        texts=("",) * n,
                        finish_reason="error",
                        error=f"preparing the prompt failed: {exc.__class__.__name__}: {exc}",
                    )
                )
                return
            request = dataclasses.replace(
                request,
                prompt=prepared.prompt,
                stop=prepared.stop,
                should_stop=prepared.should_stop,
                prepare=None,
            )
            if request.cancel.cancelled:  # cancelled while its prompt was being built
                cancelled_at = request.cancel.cancelled_at
                if cancelled_at is not None:
                    self._update_status(
                        last_cancel=CancelRecord(
                            latency_s=max(0.0, time.perf_counter() - cancelled_at),
                            step_s=0.0,
                            reason=request.cancel.reason,
                            new_tokens=0,
                        )
                    )
                sink(GenerationResult(texts=("",) * n, finish_reason="cancelled"))
                return
        try:
            result = backend.generate(request, sink)
        except OutOfMemory as exc:
            log.error("request %d: %s", request.id, exc)
            result = GenerationResult(texts=("",) * n, finish_reason="error", error=str(exc))
        except BackendError as exc:
            log.error("request %d failed: %s", request.id, exc)
            result = GenerationResult(texts=("",) * n, finish_reason="error", error=str(exc))
        except Exception as exc:  # a failed request must not kill the model thread; logged
            log.error("request %d failed:\n%s", request.id, traceback.format_exc())
            result = GenerationResult(
                texts=("",) * n,
                finish_reason="error",
                error=f"generation failed: {exc.__class__.__name__}: {exc}",
            )
        # The answer goes out first; the status notification (for status bars) after it, so
        # it never delays a response. The status itself is updated before, so a client that
        # asks for it as soon as it has the answer sees this request.
        cancelled_at = request.cancel.cancelled_at
        status: EngineStatus | None = None
        if request.kind == "warmup":
            pass  # an idle prefill: status reports what users asked for
        elif result.finish_reason == "cancelled" and cancelled_at is not None:
            t = result.timings
            self._update_status(
                last_cancel=CancelRecord(
                    latency_s=max(0.0, time.perf_counter() - cancelled_at),
                    step_s=t.decode_s / t.new_tokens if t.new_tokens else 0.0,
                    reason=request.cancel.reason,
                    new_tokens=t.new_tokens,
                )
            )
        elif result.finish_reason != "cancelled" and result.timings.total_s > 0:
            status = self._update_status(last=result.timings)
        sink(result)
        if status is not None:
            self._notify(status)


def wait_for_engine(
    engine: Engine,
    timeout: float,
    on_progress: Callable[[str], None] | None = None,
) -> tuple[bool, str]:
    """Wait until a started engine is ready or failed: (ready, its last status message).
    ``on_progress`` gets each new load message. The one wait loop (one-shot commands, doctor)."""
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        status = engine.status
        if status.state == "ready":
            return True, status.message
        if status.state == "error":
            return False, status.message
        if on_progress is not None and status.message != last:
            on_progress(status.message)
            last = status.message
        time.sleep(0.05)
    return False, f"timed out after {timeout:.0f} s waiting for the model to load"
