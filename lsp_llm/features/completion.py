"""Inline completion as a domain operation: snapshot in, suggestions out.

Used by the LSP handlers and by the one-shot ``lsp-llm complete`` command, so both take the
same path: completion cache -> retrieval -> prompt -> engine -> post-processing.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import time
from collections.abc import Callable, Sequence
from typing import Literal

from lsp_llm.config import Settings
from lsp_llm.context.types import ContextSnippet
from lsp_llm.engine.requests import (
    PRIORITY_COMPLETION,
    CancelToken,
    GenerationRequest,
)
from lsp_llm.engine.worker import Engine
from lsp_llm.prompts.budget import PromptBudget
from lsp_llm.prompts.completion import build_completion_prompt
from lsp_llm.prompts.postprocess import make_stop_predicate, postprocess_completion
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
    source: Literal["model", "cache", "none"]
    reason: str = ""
    """Why there is nothing (not ready, superseded, stale, error...)."""
    spans: dict[str, float] = dataclasses.field(default_factory=dict)
    """Milliseconds: received->prompt, ->first token, ->last token, total."""
    prompt: str = ""
    error: str = ""
    snippets: tuple[ContextSnippet, ...] = ()
    """Cross-file context that went into the prompt."""


@dataclasses.dataclass(frozen=True)
class _CacheEntry:
    prefix: str
    suffix: str
    texts: tuple[str, ...]


Retriever = Callable[[DocumentSnapshot, int, int], Sequence[ContextSnippet]]
"""(snapshot, offset, max_tokens) -> snippets from other files."""


class CompletionService:
    """Completion cache and request plumbing for one LSP session (or one CLI call)."""

    def __init__(self, engine: Engine, session_key: str = "") -> None:
        self.engine = engine
        self.session_key = session_key
        self._cache: dict[str, _CacheEntry] = {}
        self._template_for: tuple[int, FimTemplate | None] | None = None

    def forget(self, uri: str) -> None:
        self._cache.pop(uri, None)

    def _template(self) -> FimTemplate | None:
        backend = self.engine.backend
        tokenizer = self.engine.tokenizer
        if backend is None or tokenizer is None:
            return None
        key = id(tokenizer)
        if self._template_for is None or self._template_for[0] != key:
            family = detect_family(backend.model_name, tokenizer.special_tokens)
            self._template_for = (key, TEMPLATES.get(family) if family else None)
            log.info("prompt format: %s", family or "prefix-only (no FIM tokens)")
        return self._template_for[1]

    def from_cache(self, snap: DocumentSnapshot, offset: int) -> tuple[str, ...]:
        """Suggestions that the user is typing into: the rest comes back without the model."""
        entry = self._cache.get(snap.uri)
        if entry is None:
            return ()
        prefix, suffix = snap.text[:offset], snap.text[offset:]
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
        offset = max(0, min(offset, len(snap.text)))
        n = settings.num_suggestions if trigger == "invoked" else 1
        if settings.completion_cache:
            cached = self.from_cache(snap, offset)
            if cached:
                return CompletionOutcome(
                    suggestions=tuple(
                        Suggestion(id=f"s{next(_suggestion_ids)}", text=t) for t in cached[:n]
                    ),
                    source="cache",
                    spans={"total": (time.perf_counter() - t0) * 1000},
                )
        tokenizer = self.engine.tokenizer
        if tokenizer is None:
            status = self.engine.status
            return CompletionOutcome(
                suggestions=(), source="none", reason=f"model {status.state}: {status.message}"
            )
        budget = PromptBudget(
            total_tokens=settings.context_window,
            suffix_share=settings.suffix_share,
            context_share=settings.retrieval_share if settings.retrieval else 0.0,
        )
        snippets: Sequence[ContextSnippet] = ()
        if retriever is not None and settings.retrieval:
            try:
                snippets = retriever(
                    snap, offset, int(settings.context_window * settings.retrieval_share)
                )
            except Exception:
                log.exception("retrieval failed; completing without cross-file context")
        template = self._template()
        prompt = build_completion_prompt(
            text=snap.text,
            offset=offset,
            path=snap.path,
            language=snap.language,
            tokenizer=tokenizer,
            template=template,
            budget=budget,
            snippets=snippets,
        )
        t_prompt = time.perf_counter()
        request = GenerationRequest(
            prompt=prompt.text,
            max_new_tokens=settings.max_new_tokens,
            temperature=settings.temperature if n == 1 else max(settings.temperature, 0.6),
            top_p=settings.top_p,
            num_return_sequences=n,
            stop=prompt.stop,
            should_stop=make_stop_predicate(
                prefix=snap.text[:offset], suffix=snap.text[offset:], language=snap.language
            ),
            priority=PRIORITY_COMPLETION,
            supersede_key=f"{self.session_key}|{snap.uri}",
            kind="completion",
            cancel=cancel or CancelToken(),
        )
        result = await self.engine.generate(request)
        t_last = time.perf_counter()
        timings = result.timings
        # The engine's clock: work started at created_at + queued_s (the same perf_counter).
        t_first = (
            request.created_at + timings.queued_s + timings.first_token_s
            if timings.first_token_s
            else t_last
        )
        spans = {
            "prompt": (t_prompt - t0) * 1000,
            "firstToken": (t_first - t0) * 1000,
            "lastToken": (t_last - t0) * 1000,
            "total": (t_last - t0) * 1000,
            "promptTokens": float(result.timings.prompt_tokens),
            "prefillTokens": float(result.timings.prefill_tokens),
            "newTokens": float(result.timings.new_tokens),
        }
        if result.finish_reason == "error":
            return CompletionOutcome(
                suggestions=(), source="none", reason="error", error=result.error, spans=spans
            )
        if result.finish_reason == "cancelled":
            return CompletionOutcome(
                suggestions=(),
                source="none",
                reason=request.cancel.reason or "cancelled",
                spans=spans,
            )
        if not is_current():
            return CompletionOutcome(suggestions=(), source="none", reason="stale", spans=spans)
        texts: list[str] = []
        for raw in result.texts:
            text = postprocess_completion(
                raw, prefix=snap.text[:offset], suffix=snap.text[offset:], language=snap.language
            )
            if text and text not in texts:
                texts.append(text)
        if texts and settings.completion_cache:
            self._cache[snap.uri] = _CacheEntry(
                prefix=snap.text[:offset], suffix=snap.text[offset:], texts=tuple(texts)
            )
        return CompletionOutcome(
            suggestions=tuple(Suggestion(id=f"s{next(_suggestion_ids)}", text=t) for t in texts),
            source="model",
            spans=spans,
            prompt=prompt.text,
            snippets=prompt.snippets,
        )
