"""The typing engine: what happens between keystrokes. Pure logic; no model calls, no LSP.

:class:`~lsp_llm.features.completion.CompletionService` drives these pieces:

* **Request recycling** (:func:`recycle_typed`, :class:`InflightGeneration`). A new request
  whose prefix extends a running generation's prefix by text that generation has already
  produced (and whose suffix is the same) attaches to it instead of starting over; its answer
  is the generation's text after what the user typed (:func:`answer_from`). The generation
  stops only when every attached request is gone (:class:`SharedCancel`).
* **Accept-ahead** (:class:`AheadCache`). After a suggestion, while the engine is idle, one
  low-priority generation continues as if the suggestion had been accepted; the request right
  after an accept is served from this cache.
* **Adaptive debounce** (:class:`AdaptiveDebounce`): from the measured keystroke gaps and
  response times, Tabby-style (1.5-3x the moving average of the gaps, clamped).
* **Time budget** (:func:`useful_partial`): what a single-line generation has produced by its
  deadline, when that is worth showing.

Threads: :class:`InflightGeneration` is created and awaited on the event loop; the model thread
only writes ``produced`` (one attribute assignment) and reads ``SharedCancel.cancelled``, whose
member list is replaced, never mutated, on the loop.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
import time

from lsp_llm.config import Settings
from lsp_llm.engine.requests import CancelToken, GenerationRequest, GenerationResult


@dataclasses.dataclass(frozen=True, kw_only=True)
class TypingOptions:
    """The typing engine's switches, read from :class:`~lsp_llm.config.Settings`."""

    recycle: bool = True
    accept_ahead: bool = True
    adaptive_debounce: bool = True
    debounce_ms: int = 0
    """The fixed debounce (used when ``adaptive_debounce`` is off: today's behaviour)."""
    debounce_max_ms: int = 250
    time_budget_ms: int = 0
    """0: no budget."""

    @classmethod
    def from_settings(cls, settings: Settings) -> TypingOptions:
        return cls(
            recycle=settings.request_recycling,
            accept_ahead=settings.accept_ahead,
            adaptive_debounce=settings.adaptive_debounce == "adaptive",
            debounce_ms=settings.debounce_ms,
            debounce_max_ms=settings.debounce_max_ms,
            time_budget_ms=settings.time_budget_ms,
        )


# --- request recycling -----------------------------------------------------------------------


def recycle_typed(
    *, gen_prefix: str, gen_suffix: str, produced: str, prefix: str, suffix: str
) -> str | None:
    """What the user typed since a generation started, when the new request can attach to it.

    The new cursor must sit in the same place relative to the text after it (same suffix) and
    the text typed since (``prefix`` minus ``gen_prefix``) must be exactly the start of what
    the generation has produced so far. Returns None when the request cannot attach.
    """
    if suffix != gen_suffix or len(prefix) < len(gen_prefix) or not prefix.startswith(gen_prefix):
        return None
    typed = prefix[len(gen_prefix) :]
    return typed if produced.startswith(typed) else None


def answer_from(raw: str, typed: str) -> str | None:
    """The generation's text after what the user typed (None: it went another way)."""
    return raw[len(typed) :] if raw.startswith(typed) else None


class SharedCancel(CancelToken):
    """A generation's cancel token that several requests share.

    Cancelled when it is cancelled itself (superseded, reload, shutdown) or when it has
    members and every member token is cancelled (each attached request's ``$/cancelRequest``);
    the model thread sees the latter at the very next poll, like a request's own token.
    """

    __slots__ = ("_members",)

    def __init__(self) -> None:
        super().__init__()
        self._members: tuple[CancelToken, ...] = ()

    @property
    def members(self) -> tuple[CancelToken, ...]:
        return self._members

    def attach(self, token: CancelToken) -> None:
        self._members = (*self._members, token)

    def detach(self, token: CancelToken) -> None:
        self._members = tuple(m for m in self._members if m is not token)

    @property
    def cancelled(self) -> bool:
        if self._event.is_set():
            return True
        members = self._members
        if members and all(m.cancelled for m in members):
            last = max(members, key=lambda m: m.cancelled_at or 0.0)
            self.cancel(last.reason or "cancelled")
            self.cancelled_at = last.cancelled_at or self.cancelled_at
            return True
        return False


@dataclasses.dataclass(eq=False, kw_only=True)
class InflightGeneration:
    """One running generation and where it started (event loop side)."""

    uri: str
    prefix: str
    suffix: str
    language: str
    multiline: bool
    request: GenerationRequest
    future: asyncio.Future[GenerationResult]
    settings: Settings | None = None
    """The settings it runs with: a request with other settings does not attach."""
    speculative: bool = False
    """An accept-ahead generation (the suggestion taken as accepted)."""
    produced: str = ""
    """Text generated so far (written by the model thread)."""
    waiters: list[asyncio.Future[None]] = dataclasses.field(default_factory=list)
    """One per attached request, set when a newer request takes the generation over."""
    started_at: float = dataclasses.field(default_factory=time.perf_counter)

    @property
    def cancel(self) -> SharedCancel:
        token = self.request.cancel
        assert isinstance(token, SharedCancel)
        return token

    def observe(self, text: str) -> None:
        """Model thread: the text so far (from the request's stop predicate)."""
        self.produced = text

    def typed_since(self, prefix: str, suffix: str) -> str | None:
        if self.future.done() or self.cancel.cancelled:
            return None
        return recycle_typed(
            gen_prefix=self.prefix,
            gen_suffix=self.suffix,
            produced=self.produced,
            prefix=prefix,
            suffix=suffix,
        )


# --- accept-ahead ----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _AheadEntry:
    prefix: str
    suffix: str
    texts: tuple[str, ...]


class AheadCache:
    """Continuations computed as if a suggestion had been accepted, one entry per document."""

    def __init__(self) -> None:
        self._entries: dict[str, _AheadEntry] = {}

    def put(self, uri: str, prefix: str, suffix: str, texts: tuple[str, ...]) -> None:
        if texts:
            self._entries[uri] = _AheadEntry(prefix, suffix, texts)

    def drop(self, uri: str) -> None:
        self._entries.pop(uri, None)

    def lookup(self, uri: str, prefix: str, suffix: str) -> tuple[str, ...]:
        """The cached continuations at this cursor (also once the user types into them)."""
        entry = self._entries.get(uri)
        if entry is None or suffix != entry.suffix or not prefix.startswith(entry.prefix):
            return ()
        typed = prefix[len(entry.prefix) :]
        rests: list[str] = []
        for text in entry.texts:
            if text.startswith(typed) and len(text) > len(typed):
                rest = text[len(typed) :]
                if rest.strip() and rest not in rests:
                    rests.append(rest)
        return tuple(rests)


# --- adaptive debounce -----------------------------------------------------------------------


class AdaptiveDebounce:
    """Debounce from the user's keystroke rhythm and the measured response time.

    ``gap`` is an exponential moving average of the gaps between automatic requests (gaps
    longer than ``pause_ms`` are pauses, not rhythm). While responses come faster than the
    user types there is nothing to save: no wait. Otherwise the wait is ``rate x gap`` with the
    rate rising from 1.5 to 3 as responses get slower than the rhythm (a slow model wastes more
    work per superseded request), clamped to ``[min_ms, max_ms]``.
    """

    RATE_MIN = 1.5
    RATE_MAX = 3.0

    def __init__(
        self, *, min_ms: float = 0.0, max_ms: float = 250.0, alpha: float = 0.3,
        pause_ms: float = 1000.0,
    ) -> None:  # fmt: skip
        self.min_ms = min_ms
        self.max_ms = max_ms
        self.alpha = alpha
        self.pause_ms = pause_ms
        self.gap_ms: float | None = None
        self.latency_ms: float | None = None
        self._last: float | None = None

    def _ema(self, old: float | None, sample: float) -> float:
        return sample if old is None else old + self.alpha * (sample - old)

    def keystroke(self, now: float) -> None:
        """An automatic request arrived at ``now`` (seconds, monotonic)."""
        if self._last is not None:
            gap = (now - self._last) * 1000
            if 0 <= gap <= self.pause_ms:
                self.gap_ms = self._ema(self.gap_ms, gap)
        self._last = now

    def response(self, latency_ms: float) -> None:
        """A model answer took this long from its request."""
        self.latency_ms = self._ema(self.latency_ms, max(0.0, latency_ms))

    def delay_ms(self) -> float:
        gap, latency = self.gap_ms, self.latency_ms
        if gap is None or latency is None or latency <= gap or gap <= 0:
            return 0.0
        slower = min(1.0, (latency - gap) / (2 * gap))
        rate = self.RATE_MIN + (self.RATE_MAX - self.RATE_MIN) * slower
        return max(self.min_ms, min(self.max_ms, rate * gap))


# --- time budget -----------------------------------------------------------------------------

_WORD_END = re.compile(r"[\w$]+$")
MIN_USEFUL_CHARS = 3


def useful_partial(text: str) -> str:
    """What of a partial single-line suggestion is worth showing at the deadline ("" if none).

    An unfinished line is cut back before its last word (it may be half-written)
    and must hold at least :data:`MIN_USEFUL_CHARS` non-space characters.
    """
    line_end = text.find("\n", len(text) - len(text.lstrip("\n")))
    if line_end >= 0:
        text = text[:line_end]  # the line is complete
    else:
        word = _WORD_END.search(text)
        if word is not None:
            text = text[: word.start()]
    core = text.strip()
    return text.rstrip() if len(core) >= MIN_USEFUL_CHARS else ""
