"""What crosses between the event loop and the model thread.

Only immutable values (and the thread-safe :class:`CancelToken`) cross threads. A request may
carry a ``prepare`` function instead of a finished prompt: the model thread calls it right before
the generation (the work that needs the tokenizer: token budgets, template detection, the stop
predicate), so none of it runs on the event loop (TGI's router hands its scheduler a validated,
tokenized request in the same way).
"""

from __future__ import annotations

import dataclasses
import itertools
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, Literal

FinishReason = Literal["stop", "length", "cancelled", "error"]
Priority = Literal[0, 1, 2]
"""0: inline completion (latency-critical), 1: docstring, 2: explanation / long work."""

PRIORITY_COMPLETION: Priority = 0
PRIORITY_DOCSTRING: Priority = 1
PRIORITY_EXPLAIN: Priority = 2

_ids = itertools.count(1)


class CancelToken:
    """Set from any thread; polled by the worker between decode steps."""

    __slots__ = ("_event", "cancelled_at", "reason")

    def __init__(self) -> None:
        self._event = threading.Event()
        self.reason = ""
        self.cancelled_at: float | None = None

    def cancel(self, reason: str = "cancelled") -> None:
        if not self._event.is_set():
            self.reason = reason
            self.cancelled_at = time.perf_counter()
            self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()


@dataclasses.dataclass(frozen=True, kw_only=True)
class ChatMessage:
    role: Literal["system", "user", "assistant"]
    content: str


@dataclasses.dataclass(frozen=True, kw_only=True)
class Prepared:
    """What a request's ``prepare`` function computed on the model thread."""

    prompt: str
    stop: tuple[str, ...] = ()
    should_stop: Callable[[str], bool] | None = None


Prepare = Callable[[Any], Prepared]
"""Model thread, before the generation: called with the loaded
:class:`~lsp_llm.engine.backends.base.Backend`, returns the prompt (raises to fail the
request). Typed ``Any`` here because the backends import this module (no circle)."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class GenerationRequest:
    """One generation. Either ``prompt`` (raw text, e.g. FIM) or ``messages`` (chat)."""

    prompt: str = ""
    messages: tuple[ChatMessage, ...] = ()
    max_new_tokens: int = 64
    temperature: float = 0.0
    top_p: float = 0.95
    num_return_sequences: int = 1
    stop: tuple[str, ...] = ()
    """Stop sequences; the text is cut before the first one."""
    should_stop: Callable[[str], bool] | None = None
    """Pure predicate on the decoded text so far (e.g. block end); checked between steps."""
    priority: Priority = PRIORITY_COMPLETION
    supersede_key: str = ""
    """A newer request with the same non-empty key cancels this one."""
    kind: Literal["completion", "explain", "docstring", "warmup"] = "completion"
    """``warmup``: an idle prefill nobody waits for; it never shows in ``lastRequest`` /
    ``lastCancel`` (status reports what users asked for)."""
    prepare: Prepare | None = None
    """Called once on the model thread before the generation; its result replaces ``prompt``,
    ``stop`` and ``should_stop``. A request cancelled before or during it never generates."""
    cancel: CancelToken = dataclasses.field(default_factory=CancelToken)
    id: int = dataclasses.field(default_factory=lambda: next(_ids))
    created_at: float = dataclasses.field(default_factory=time.perf_counter)


@dataclasses.dataclass(frozen=True)
class TokenEvent:
    """Text decoded since the previous event for sequence ``index``."""

    text: str
    index: int = 0


@dataclasses.dataclass(frozen=True, kw_only=True)
class Timings:
    queued_s: float = 0.0
    """Submit to start of work on the model thread."""
    prefill_s: float = 0.0
    first_token_s: float = 0.0
    """Start of work to first decoded token."""
    decode_s: float = 0.0
    total_s: float = 0.0
    prompt_tokens: int = 0
    prefill_tokens: int = 0
    """Prompt tokens actually computed (the rest came from the prefix cache)."""
    new_tokens: int = 0

    @property
    def tokens_per_s(self) -> float:
        return self.new_tokens / self.decode_s if self.decode_s > 0 else 0.0


@dataclasses.dataclass(frozen=True, kw_only=True)
class GenerationResult:
    texts: tuple[str, ...]
    finish_reason: FinishReason
    timings: Timings = Timings()
    error: str = ""

    @property
    def text(self) -> str:
        return self.texts[0] if self.texts else ""


def cut_at_stop(text: str, stops: Sequence[str]) -> tuple[str, bool]:
    """Cut ``text`` before the earliest stop sequence. Returns (text, stopped)."""
    cut = len(text)
    for stop in stops:
        if stop:
            pos = text.find(stop)
            if pos != -1:
                cut = min(cut, pos)
    return text[:cut], cut < len(text)
