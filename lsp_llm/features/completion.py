"""Inline completion as a domain operation: snapshot in, suggestions out.

Used by the LSP handlers and by the one-shot ``lsp-llm complete`` command, so both take the
same path: completion cache -> accept-ahead cache -> an in-flight generation to attach to ->
retrieval -> prompt -> engine -> post-processing. The shape (one line or several) is decided
before the model runs and is its stop rule. The typing engine's pieces are in
:mod:`lsp_llm.features.typing`.

Where the work happens: a request's cursor is split into prefix and suffix once
(:class:`CursorContext`); caches, recycling, retrieval (it reads the index's state, which the
loop owns) and the shape run on the event loop. Everything that needs the model's tokenizer
(the exact-token budget, the prompt format detected from its special tokens, the rendered
prompt and its stop predicate) is the job's ``prepare`` step, which the engine runs on the model
thread right before the generation (:class:`CompletionJob`). On the llama.cpp backend every
``encode`` is a call into the model server, so none of it may block the loop.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import logging
import time
from collections.abc import Callable, Sequence
from typing import Literal

from lsp_llm.config import Settings
from lsp_llm.context.retrieve import retrieval_budget
from lsp_llm.context.types import ContextSnippet
from lsp_llm.engine.backends.base import Backend, TokenizerLike
from lsp_llm.engine.requests import (
    PRIORITY_COMPLETION,
    PRIORITY_EXPLAIN,
    CancelToken,
    GenerationRequest,
    GenerationResult,
    Prepared,
)
from lsp_llm.engine.worker import Engine, Event
from lsp_llm.errors import RequestFailed
from lsp_llm.features.typing import (
    AdaptiveDebounce,
    AheadCache,
    InflightGeneration,
    SharedCancel,
    TypingOptions,
    answer_from,
    useful_partial,
)
from lsp_llm.prompts.budget import PromptBudget
from lsp_llm.prompts.completion import CompletionPrompt, build_completion_prompt, repo_name_for
from lsp_llm.prompts.postprocess import make_stop_predicate, postprocess_completion
from lsp_llm.prompts.shape import Shape, decide_shape
from lsp_llm.prompts.templates import TEMPLATES, FimTemplate, detect_family
from lsp_llm.security import is_secret_path

log = logging.getLogger(__name__)

Trigger = Literal["automatic", "invoked"]
_suggestion_ids = itertools.count(1)


@dataclasses.dataclass(frozen=True, kw_only=True)
class DocumentSnapshot:
    """An immutable view of one open document at one version."""

    uri: str
    path: str
    """Workspace-relative path (or the file name) used to label the prompt."""
    language: str
    version: int | None
    text: str


@dataclasses.dataclass(frozen=True, kw_only=True)
class Suggestion:
    id: str
    text: str


@dataclasses.dataclass(frozen=True, kw_only=True)
class CompletionOutcome:
    suggestions: tuple[Suggestion, ...]
    source: Literal["model", "cache", "recycled", "ahead", "none"]
    """model: a generation started for this request; recycled: a generation already running
    for an earlier request; ahead: the accept-ahead cache; cache: the completion cache."""
    reason: str = ""
    """Why there is nothing (not ready, superseded, stale, error...), or "time budget" when
    the suggestion is what was ready at the deadline."""
    shape: str = ""
    """One line or several, and why (:func:`lsp_llm.prompts.shape.decide_shape`)."""
    spans: dict[str, float] = dataclasses.field(default_factory=dict)
    """Milliseconds: received->prompt, ->first token, ->last token, total."""
    prompt: str = ""
    error: str = ""
    snippets: tuple[ContextSnippet, ...] = ()
    """Cross-file context that went into the prompt."""


class CompletionFailed(RequestFailed):
    """The model failed this completion (-32803, like every :class:`RequestFailed`); carries
    the outcome (its spans and error) for status and the one-shot command."""

    def __init__(self, outcome: CompletionOutcome) -> None:
        super().__init__(outcome.error)
        self.outcome = outcome


@dataclasses.dataclass(frozen=True)
class _CacheEntry:
    prefix: str
    suffix: str
    texts: tuple[str, ...]


Retriever = Callable[[DocumentSnapshot, int, int], Sequence[ContextSnippet]]
"""(snapshot, offset, max_tokens) -> snippets from other files."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class CursorContext:
    """One cursor in one snapshot, split once: every later step reads these fields."""

    snap: DocumentSnapshot
    offset: int
    """Clamped to the text."""
    prefix: str
    suffix: str

    @classmethod
    def at(cls, snap: DocumentSnapshot, offset: int) -> CursorContext:
        offset = max(0, min(offset, len(snap.text)))
        return cls(snap=snap, offset=offset, prefix=snap.text[:offset], suffix=snap.text[offset:])


@dataclasses.dataclass(frozen=True, kw_only=True)
class CompletionJob:
    """What a completion hands the engine: built on the loop, immutable, prepared off it.

    :meth:`prompt` is the only step that needs the tokenizer; the engine runs it on the model
    thread (through the request's ``prepare``), never the event loop.
    """

    cursor: CursorContext
    snippets: tuple[ContextSnippet, ...]
    """From retrieval (on the loop); the prompt packs those that fit."""
    budget: PromptBudget
    multiline: bool = False
    """The shape decided for this cursor (:func:`lsp_llm.prompts.shape.decide_shape`)."""
    prefix_anchor: int | None = None

    def prompt(self, tokenizer: TokenizerLike, template: FimTemplate | None) -> CompletionPrompt:
        snap = self.cursor.snap
        return build_completion_prompt(
            text=snap.text,
            offset=self.cursor.offset,
            path=snap.path,
            language=snap.language,
            tokenizer=tokenizer,
            template=template,
            budget=self.budget,
            snippets=self.snippets,
            repo_name=repo_name_for(snap.uri, snap.path),
            prefix_anchor=self.prefix_anchor,
        )

    def stops(self, prompt: CompletionPrompt) -> tuple[str, ...]:
        if self.multiline:  # several lines even mid-line (``{|}``): no newline stop
            return tuple(s for s in prompt.stop if s != "\n")
        return prompt.stop

    def stop_predicate(self) -> Callable[[str], bool]:
        return make_stop_predicate(
            prefix=self.cursor.prefix,
            suffix=self.cursor.suffix,
            language=self.cursor.snap.language,
            multiline=self.multiline,
        )


@dataclasses.dataclass(eq=False)
class _PromptSlot:
    """The prompt a job's ``prepare`` built: written once on the model thread before the
    result is sent, read on the loop after the result arrived (so never concurrently)."""

    prompt: CompletionPrompt | None = None
    ready_at: float = 0.0


@dataclasses.dataclass(frozen=True, kw_only=True)
class _Ask:
    """One completion request on its way to an answer."""

    cursor: CursorContext
    n: int
    settings: Settings
    trigger: Trigger
    retriever: Retriever | None
    is_current: Callable[[], bool]
    token: CancelToken
    t0: float
    shape: Shape

    @property
    def snap(self) -> DocumentSnapshot:
        return self.cursor.snap


def prompt_budget(settings: Settings) -> PromptBudget:
    """The completion prompt's token budget under ``settings``."""
    return PromptBudget(
        # The window holds the prompt and the tokens the model writes after it.
        total_tokens=max(1, settings.context_window - settings.max_new_tokens),
        suffix_share=settings.suffix_share,
        context_share=settings.retrieval_share if settings.retrieval else 0.0,
    )


def retrieve(
    snap: DocumentSnapshot, offset: int, settings: Settings, retriever: Retriever | None
) -> tuple[ContextSnippet, ...]:
    """Snippets of other files for a cursor (none when retrieval is off or fails)."""
    if retriever is None or not settings.retrieval:
        return ()
    try:
        return tuple(retriever(snap, offset, retrieval_budget(settings)))
    except Exception:  # the index is an optional extra: complete without it, and log why
        log.exception("retrieval failed; completing without cross-file context")
        return ()


def completion_prompt(
    snap: DocumentSnapshot,
    offset: int,
    *,
    settings: Settings,
    tokenizer: TokenizerLike,
    template: FimTemplate | None,
    retriever: Retriever | None = None,
    prefix_anchor: int | None = None,
) -> CompletionPrompt:
    """Retrieval, then the prompt: the one path from a cursor to the text the model sees.

    The server's completions (as a :class:`CompletionJob`), ``lsp-llm context`` and the
    retrieval benchmark all build it this way, so the snippets they report are the ones the
    prompt holds (``prompt.snippets``). It tokenizes: not for the event loop.
    """
    cursor = CursorContext.at(snap, offset)
    job = CompletionJob(
        cursor=cursor,
        snippets=retrieve(snap, cursor.offset, settings, retriever),
        budget=prompt_budget(settings),
        prefix_anchor=prefix_anchor,
    )
    return job.prompt(tokenizer, template)


class CompletionService:
    """Completion caches, in-flight generations and request plumbing for one LSP session (or
    one CLI call). Lives on the event loop; only the engine's thread runs the model."""

    def __init__(self, engine: Engine, session_key: str = "") -> None:
        self.engine = engine
        self.session_key = session_key
        self._cache: dict[str, _CacheEntry] = {}
        self._template_for: tuple[int, FimTemplate | None] | None = None
        """Model thread only: the prompt format detected for the current tokenizer."""
        self._prefix_starts: dict[str, int] = {}
        """uri -> where the last prompt's prefix window started (prompt layout hysteresis).
        Read and written by jobs' ``prepare`` on the model thread, so the next prompt sees the
        previous one's start; the loop only drops a closed document's entry (one atomic dict
        operation; a stale start is only a hint that :func:`prefix_window_start` checks)."""
        self._inflight: dict[str, InflightGeneration] = {}
        """uri -> the newest generation for that document (running or just finished)."""
        self._ahead = AheadCache()
        self._warming: GenerationRequest | None = None
        """The idle warm-up running or queued (at most one per session)."""
        self.debounce = AdaptiveDebounce()

    def forget(self, uri: str) -> None:
        self._cache.pop(uri, None)
        self._prefix_starts.pop(uri, None)
        self._ahead.drop(uri)
        gen = self._inflight.pop(uri, None)
        if gen is not None and gen.speculative:
            gen.cancel.cancel("document closed")

    def _template(self, backend: Backend) -> FimTemplate | None:
        """Model thread: the FIM format from the tokenizer's special tokens (once per model)."""
        tokenizer = backend.tokenizer
        key = id(tokenizer)
        if self._template_for is None or self._template_for[0] != key:
            family = detect_family(backend.model_name, tokenizer.special_tokens)
            self._template_for = (key, TEMPLATES.get(family) if family else None)
            log.info("prompt format: %s", family or "prefix-only (no FIM tokens)")
        return self._template_for[1]

    def from_cache(self, snap: DocumentSnapshot, offset: int) -> tuple[str, ...]:
        """Suggestions that the user is typing into: the rest comes back without the model."""
        cursor = CursorContext.at(snap, offset)
        return self._from_cache(snap.uri, cursor.prefix, cursor.suffix)

    def _from_cache(self, uri: str, prefix: str, suffix: str) -> tuple[str, ...]:
        entry = self._cache.get(uri)
        if entry is None:
            return ()
        if suffix != entry.suffix or not prefix.startswith(entry.prefix):
            return ()
        typed = prefix[len(entry.prefix) :]
        rests = []
        for text in entry.texts:
            if text.startswith(typed) and len(text) > len(typed):
                rest = text[len(typed) :]
                if rest.strip() and rest not in rests:
                    rests.append(rest)
        return tuple(rests)

    # -- the typing engine -------------------------------------------------------------------
    def debounce_s(self, settings: Settings, now: float | None = None) -> float:
        """How long an automatic request waits before it runs (and note the keystroke)."""
        options = TypingOptions.from_settings(settings)
        if not options.adaptive_debounce:
            return options.debounce_ms / 1000
        self.debounce.max_ms = options.debounce_max_ms
        self.debounce.keystroke(time.perf_counter() if now is None else now)
        return self.debounce.delay_ms() / 1000

    def answerable_now(self, snap: DocumentSnapshot, offset: int, settings: Settings) -> bool:
        """True when a request here needs no new generation (a cache, or one to attach to)."""
        cursor = CursorContext.at(snap, offset)
        prefix, suffix = cursor.prefix, cursor.suffix
        options = TypingOptions.from_settings(settings)
        if settings.completion_cache and self._from_cache(snap.uri, prefix, suffix):
            return True
        if options.accept_ahead and self._ahead.lookup(snap.uri, prefix, suffix):
            return True
        gen = self._inflight.get(snap.uri)
        return (
            options.recycle
            and gen is not None
            and gen.settings == settings
            and gen.typed_since(prefix, suffix) is not None
        )

    def _attachable(
        self, uri: str, prefix: str, suffix: str, settings: Settings
    ) -> tuple[InflightGeneration | None, str]:
        """The running generation a request here can attach to, and what was typed since."""
        gen = self._inflight.get(uri)
        if gen is None or gen.settings != settings:
            return None, ""
        typed = gen.typed_since(prefix, suffix)
        return (gen, typed) if typed is not None else (None, "")

    def _start(
        self,
        cursor: CursorContext,
        *,
        settings: Settings,
        n: int,
        shape: Shape,
        retriever: Retriever | None,
        speculative: bool = False,
        warmup: bool = False,
    ) -> tuple[InflightGeneration, _PromptSlot]:
        """Submit one generation for ``cursor`` (superseding this document's older one).

        Retrieval runs here, on the loop; the prompt is built by the job's ``prepare`` on the
        model thread and lands in the returned slot before the result is delivered.
        ``warmup``: only fill the model's prefix cache (one token, result discarded, never
        attached to, lowest priority, making way like accept-ahead).
        """
        speculative = speculative or warmup
        snap = cursor.snap
        job = CompletionJob(
            cursor=cursor,
            snippets=retrieve(snap, cursor.offset, settings, retriever),
            budget=prompt_budget(settings),
            multiline=shape.multiline,
        )
        loop = asyncio.get_running_loop()
        future: asyncio.Future[GenerationResult] = loop.create_future()
        engine = self.engine
        holder: list[InflightGeneration] = []
        slot = _PromptSlot()
        anchors = self._prefix_starts

        def prepare(backend: Backend) -> Prepared:
            """Model thread: every tokenizer call of this completion happens here."""
            anchored = dataclasses.replace(job, prefix_anchor=anchors.get(snap.uri))
            prompt = anchored.prompt(backend.tokenizer, self._template(backend))
            if not speculative or warmup:  # the warm-up lays out what the next prompt reuses
                anchors[snap.uri] = prompt.prefix_start
            predicate = job.stop_predicate()

            def should_stop(text: str) -> bool:
                holder[0].observe(text)
                if speculative and engine.status.queue_depth:
                    holder[0].cancel.cancel("real work arrived")
                    return True
                return predicate(text)

            slot.prompt = prompt
            slot.ready_at = time.perf_counter()
            if speculative and engine.status.queue_depth:
                holder[0].cancel.cancel("real work arrived")
            return Prepared(prompt=prompt.text, stop=job.stops(prompt), should_stop=should_stop)

        request = GenerationRequest(
            max_new_tokens=1 if warmup else settings.max_new_tokens,
            temperature=settings.temperature if n == 1 else max(settings.temperature, 0.6),
            top_p=settings.top_p,
            num_return_sequences=n,
            prepare=prepare,
            priority=PRIORITY_EXPLAIN if speculative else PRIORITY_COMPLETION,
            supersede_key=f"{self.session_key}|{snap.uri}",
            kind="warmup" if warmup else "completion",
            cancel=SharedCancel(),
        )
        gen = InflightGeneration(
            uri=snap.uri,
            prefix=cursor.prefix,
            suffix=cursor.suffix,
            language=snap.language,
            multiline=shape.multiline,
            request=request,
            future=future,
            settings=settings,
            speculative=speculative,
        )
        holder.append(gen)

        def deliver(result: GenerationResult) -> None:
            if warmup:
                if self._warming is request:
                    self._warming = None
                if not future.done():
                    future.set_result(result)
                return
            if not future.done():
                future.set_result(result)
                self._finished(gen, result, settings, retriever, snap)

        def sink(event: Event) -> None:
            if isinstance(event, GenerationResult):
                try:
                    loop.call_soon_threadsafe(deliver, event)
                except RuntimeError:  # the loop is closed: nobody is listening any more
                    request.cancel.cancel("loop closed")

        if warmup:
            self._warming = request
            engine.submit(request, sink)
            return gen, slot
        for other in self._inflight.values():  # real work: accept-ahead makes way at once
            if other.speculative and not speculative and not other.future.done():
                other.cancel.cancel("real work arrived")
        if not speculative and self._warming is not None:
            self._warming.cancel.cancel("real work arrived")
            self._warming = None
        self._inflight[snap.uri] = gen
        engine.submit(request, sink)
        return gen, slot

    def warm(
        self,
        snap: DocumentSnapshot,
        offset: int,
        *,
        settings: Settings,
        retriever: Retriever | None = None,
    ) -> bool:
        """Idle warm-up: prefill the prompt at this cursor in the background, generate nothing.

        Call it when a document is opened or focused, or the cursor moves somewhere new. Only
        when the engine is idle; the job runs at the lowest priority and is cancelled the
        moment real work arrives, so the first suggestion after a pause pays only for the
        prompt's tail. ``idleWarmup`` off (a ``Settings.idle_warmup`` field) turns it off.
        Returns True when a warm-up was queued. Call on the event loop.
        """
        if not getattr(settings, "idle_warmup", True) or not self.session_key:
            return False
        if self.engine.backend is None or is_secret_path(snap.uri, settings.secret_patterns):
            return False
        status = self.engine.status
        # Busy with nothing but this session's own warm-up counts as idle: the new place wins.
        own_warmup = self._warming is not None and status.queue_depth == 0
        if (
            (status.busy and not own_warmup)
            or status.queue_depth
            or any(not g.future.done() for g in self._inflight.values())
        ):
            return False
        if self._warming is not None:
            self._warming.cancel.cancel("superseded")
        cursor = CursorContext.at(snap, offset)
        try:
            self._start(
                cursor,
                settings=settings,
                n=1,
                shape=decide_shape(cursor.prefix, cursor.suffix, snap.language),
                retriever=retriever,
                warmup=True,
            )
        except Exception:  # a warm-up must never break anything
            log.exception("idle warm-up failed")
            return False
        return True

    def _finished(
        self,
        gen: InflightGeneration,
        result: GenerationResult,
        settings: Settings,
        retriever: Retriever | None,
        snap: DocumentSnapshot,
    ) -> None:
        """On the loop, once per generation, before any request waiting for it resumes."""
        if self._inflight.get(gen.uri) is gen:
            del self._inflight[gen.uri]
        if result.finish_reason in ("cancelled", "error"):
            return
        texts = self._texts(result.texts, gen.prefix, gen.suffix, gen.language, gen.multiline)
        if gen.speculative:
            self._ahead.put(gen.uri, gen.prefix, gen.suffix, texts)
            return
        if texts and settings.completion_cache:
            self._cache[gen.uri] = _CacheEntry(prefix=gen.prefix, suffix=gen.suffix, texts=texts)
        options = TypingOptions.from_settings(settings)
        if (
            texts
            and options.accept_ahead
            and self.session_key  # a one-shot caller (the CLI) has no next request
            and gen.request.num_return_sequences == 1
            and not self.engine.status.queue_depth
            and gen.uri not in self._inflight
        ):
            self._speculate(gen, texts[0], settings, retriever, snap)

    def _speculate(
        self,
        gen: InflightGeneration,
        accepted: str,
        settings: Settings,
        retriever: Retriever | None,
        snap: DocumentSnapshot,
    ) -> None:
        """Accept-ahead: the completion after ``accepted``, at the lowest priority."""
        if self.engine.backend is None:
            return
        prefix = gen.prefix + accepted
        ahead = dataclasses.replace(snap, text=prefix + gen.suffix, version=None)
        try:
            self._start(
                CursorContext(snap=ahead, offset=len(prefix), prefix=prefix, suffix=gen.suffix),
                settings=settings,
                n=1,
                shape=decide_shape(prefix, gen.suffix, gen.language),
                retriever=retriever,
                speculative=True,
            )
        except Exception:  # never let speculation break the answer that triggered it
            log.exception("accept-ahead failed")

    @staticmethod
    def _texts(
        raws: Sequence[str], prefix: str, suffix: str, language: str, multiline: bool
    ) -> tuple[str, ...]:
        texts: list[str] = []
        for raw in raws:
            text = postprocess_completion(
                raw, prefix=prefix, suffix=suffix, language=language, multiline=multiline
            )
            if text and text not in texts:
                texts.append(text)
        return tuple(texts)

    def _suggest(self, texts: Sequence[str], n: int) -> tuple[Suggestion, ...]:
        return tuple(Suggestion(id=f"s{next(_suggestion_ids)}", text=t) for t in texts[:n])

    def _join(self, gen: InflightGeneration, token: CancelToken) -> asyncio.Future[None]:
        """Attach a request to ``gen``: its ``token`` joins the generation's shared cancel (the
        generation stops when every request waiting for it is cancelled), and the requests
        that waited before it are superseded (answered now, without a suggestion)."""
        for older in gen.waiters:
            if not older.done():
                older.set_result(None)
        superseded: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        gen.waiters.append(superseded)
        gen.cancel.attach(token)
        return superseded

    async def _wait(
        self,
        gen: InflightGeneration,
        token: CancelToken,
        superseded: asyncio.Future[None],
        deadline: float | None,
    ) -> GenerationResult | Literal["deadline", "superseded"]:
        """The generation's result, unless a newer request took it over or ``deadline`` came
        first (the generation keeps running). A task cancelled while waiting leaves."""
        try:
            timeout = None if deadline is None else max(0.0, deadline - time.perf_counter())
            pending: set[asyncio.Future[object]] = {gen.future, superseded}  # type: ignore[arg-type]
            await asyncio.wait(pending, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            gen.cancel.detach(token)
            if not gen.cancel.members and not gen.future.done():
                gen.cancel.cancel(token.reason or "consumer gone")
            raise
        if gen.future.done():
            return gen.future.result()
        return "superseded" if superseded.done() else "deadline"

    async def complete(
        self,
        snap: DocumentSnapshot,
        offset: int,
        *,
        settings: Settings,
        trigger: Trigger = "automatic",
        retriever: Retriever | None = None,
        is_current: Callable[[], bool] = lambda: True,
        cancel: CancelToken | None = None,
    ) -> CompletionOutcome:
        t0 = time.perf_counter()
        if is_secret_path(snap.uri, settings.secret_patterns):
            return CompletionOutcome(suggestions=(), source="none", reason="secret file")
        cursor = CursorContext.at(snap, offset)
        n = settings.num_suggestions if trigger == "invoked" else 1
        options = TypingOptions.from_settings(settings)
        prefix, suffix = cursor.prefix, cursor.suffix
        if settings.completion_cache:
            cached = self._from_cache(snap.uri, prefix, suffix)
            if cached:
                return CompletionOutcome(
                    suggestions=self._suggest(cached, n),
                    source="cache",
                    spans={"total": (time.perf_counter() - t0) * 1000},
                )
        if options.accept_ahead:
            ahead = self._ahead.lookup(snap.uri, prefix, suffix)
            if ahead:
                return CompletionOutcome(
                    suggestions=self._suggest(ahead, n),
                    source="ahead",
                    spans={"total": (time.perf_counter() - t0) * 1000},
                )
        if self.engine.backend is None:
            status = self.engine.status
            return CompletionOutcome(
                suggestions=(), source="none", reason=f"model {status.state}: {status.message}"
            )
        ask = _Ask(
            cursor=cursor,
            n=n,
            settings=settings,
            trigger=trigger,
            retriever=retriever,
            is_current=is_current,
            token=cancel or CancelToken(),
            t0=t0,
            shape=decide_shape(prefix, suffix, snap.language),
        )
        outcome = await self._generate(ask, recycle=options.recycle and n == 1)
        if outcome.error:  # one error style: a failure is an exception, mapped in one place
            raise CompletionFailed(outcome)
        return outcome

    async def _generate(self, ask: _Ask, *, recycle: bool) -> CompletionOutcome:
        """Attach to a running generation (recycling) or start one, and answer from it."""
        gen, typed = (
            self._attachable(ask.snap.uri, ask.cursor.prefix, ask.cursor.suffix, ask.settings)
            if recycle
            else (None, "")
        )
        recycled = gen is not None and gen.request.num_return_sequences == 1
        slot: _PromptSlot | None = None
        if gen is None or not recycled:
            gen, slot = self._start(
                ask.cursor,
                settings=ask.settings,
                n=ask.n,
                shape=ask.shape,
                retriever=ask.retriever,
            )
            typed = ""
        t_prompt = time.perf_counter()
        superseded = self._join(gen, ask.token)
        try:
            outcome = await self._answer(ask, gen, typed, superseded, recycled)
        finally:
            gen.cancel.detach(ask.token)
        if outcome is None:  # the generation went another way than the user typed
            return await self._generate(ask, recycle=False)
        prompt = slot.prompt if slot is not None else None
        if prompt is not None and slot is not None:
            t_prompt = slot.ready_at  # built on the model thread (the same perf_counter)
        spans = {"prompt": (t_prompt - ask.t0) * 1000, **outcome.spans}
        if prompt is None:
            return dataclasses.replace(outcome, spans=spans)
        return dataclasses.replace(
            outcome, spans=spans, prompt=prompt.text, snippets=prompt.snippets
        )

    async def _answer(
        self,
        ask: _Ask,
        gen: InflightGeneration,
        typed: str,
        superseded: asyncio.Future[None],
        recycled: bool,
    ) -> CompletionOutcome | None:
        """One request's answer from the generation it waits for (None: it diverged from
        what the user typed, so this request needs its own)."""
        options = TypingOptions.from_settings(ask.settings)
        automatic_line = ask.trigger == "automatic" and ask.n == 1 and not ask.shape.multiline
        budget = options.time_budget_ms if automatic_line else 0
        deadline = ask.t0 + budget / 1000 if budget else None
        source: Literal["model", "recycled"] = "recycled" if recycled else "model"
        base = {"generation": float(gen.request.id)}
        result = await self._wait(gen, ask.token, superseded, deadline)
        if result == "deadline":  # show what is ready, when it is worth showing
            rest = answer_from(gen.produced, typed)
            partial = useful_partial(
                postprocess_completion(
                    rest or "", prefix=ask.cursor.prefix, suffix=ask.cursor.suffix,
                    language=ask.snap.language, multiline=False,
                )
            )  # fmt: skip
            if partial and ask.is_current():
                return CompletionOutcome(
                    suggestions=self._suggest([partial], 1),
                    source=source,
                    reason="time budget",
                    shape=ask.shape.reason,
                    spans={**base, "total": (time.perf_counter() - ask.t0) * 1000},
                )
            result = await self._wait(gen, ask.token, superseded, None)
        t_last = time.perf_counter()
        if result == "superseded" or result == "deadline":
            return CompletionOutcome(
                suggestions=(),
                source="none",
                reason="superseded",
                spans={**base, "total": (t_last - ask.t0) * 1000},
            )
        request = gen.request
        timings = result.timings
        # The engine's clock: work started at created_at + queued_s (the same perf_counter).
        t_first = (
            request.created_at + timings.queued_s + timings.first_token_s
            if timings.first_token_s
            else t_last
        )
        spans = {
            **base,
            "firstToken": max(0.0, (t_first - ask.t0) * 1000),
            "lastToken": (t_last - ask.t0) * 1000,
            "total": (t_last - ask.t0) * 1000,
            "promptTokens": float(timings.prompt_tokens),
            "prefillTokens": float(timings.prefill_tokens),
            "newTokens": float(timings.new_tokens),
        }
        if result.finish_reason == "error":
            return CompletionOutcome(
                suggestions=(), source="none", reason="error", error=result.error, spans=spans
            )
        if result.finish_reason == "cancelled":
            return CompletionOutcome(
                suggestions=(),
                source="none",
                reason=ask.token.reason or request.cancel.reason or "cancelled",
                spans=spans,
            )
        if not ask.is_current():
            return CompletionOutcome(suggestions=(), source="none", reason="stale", spans=spans)
        raws = [r for r in (answer_from(raw, typed) for raw in result.texts) if r is not None]
        if recycled and not raws:
            return None
        texts = self._texts(
            raws, ask.cursor.prefix, ask.cursor.suffix, ask.snap.language, ask.shape.multiline
        )
        if not recycled and options.adaptive_debounce:
            self.debounce.response((t_last - ask.t0) * 1000)
        return CompletionOutcome(
            suggestions=self._suggest(texts, ask.n),
            source=source,
            shape=ask.shape.reason,
            spans=spans,
        )
