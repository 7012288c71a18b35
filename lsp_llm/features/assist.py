"""Explanations and docstrings as domain operations (no LSP types).

Both stream the model's text through ``on_chunk`` as it decodes, and both choose the prompt by
model kind: the model's chat template for instruction-tuned models (and remote servers), a
few-shot plain prompt with stop sequences for base models such as the embedded Gemma 3 270M.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from lsp_llm.config import Settings
from lsp_llm.docstrings import (
    DocTarget,
    TextEdit,
    docstring_edit,
    docstring_language,
    find_target,
    render_docstring,
)
from lsp_llm.engine.requests import (
    PRIORITY_DOCSTRING,
    PRIORITY_EXPLAIN,
    CancelToken,
    GenerationRequest,
    GenerationResult,
)
from lsp_llm.engine.worker import Engine
from lsp_llm.errors import InvalidParams, RequestFailed
from lsp_llm.features.completion import DocumentSnapshot
from lsp_llm.prompts.instructions import (
    docstring_messages,
    docstring_plain_prompt,
    explain_messages,
    explain_plain_prompt,
    explain_should_stop,
    finish_explanation,
)
from lsp_llm.security import is_secret_path

OnChunk = Callable[[str], None]
_INSTRUCT_MARKERS = ("instruct", "-it", "_it", "chat", "-sft")


@dataclasses.dataclass(frozen=True)
class ExplainResult:
    text: str
    finish_reason: str
    code: str
    start_line: int
    end_line: int


@dataclasses.dataclass(frozen=True)
class DocstringResult:
    text: str
    """The rendered docstring / doc comment."""
    edit: TextEdit | None
    """Python string columns; None when there is nothing to change."""
    target: DocTarget
    raw: str
    """What the model said."""


def use_chat(engine: Engine) -> bool:
    """Chat prompts for remote servers and instruction-tuned local models.

    Reads only names and the engine's load-time probe of the chat template: the template
    itself is rendered on the model thread (``backend.generate``), never on the event loop.
    """
    backend = engine.backend
    if backend is None:
        return False
    if backend.name == "openai":
        return True
    name = backend.model_name.lower()
    return any(m in name for m in _INSTRUCT_MARKERS) and engine.has_chat_template


def _ensure_allowed(snap: DocumentSnapshot, settings: Settings) -> None:
    if is_secret_path(snap.uri, settings.secret_patterns):
        raise InvalidParams(
            "this file matches secretPatterns: its content is never sent to a model"
        )


def _ensure_ready(engine: Engine) -> None:
    if engine.backend is None:
        status = engine.status
        raise RequestFailed(f"the model is {status.state}: {status.message}")


async def _run(
    engine: Engine, request: GenerationRequest, on_chunk: OnChunk | None
) -> GenerationResult:
    result: GenerationResult | None = None
    async for event in engine.stream(request):
        if isinstance(event, GenerationResult):
            result = event
        elif on_chunk is not None and event.index == 0 and event.text:
            on_chunk(event.text)
    assert result is not None
    if result.finish_reason == "error":
        raise RequestFailed(result.error or "generation failed")
    return result


def explain_region(snap: DocumentSnapshot, start: int, end: int) -> tuple[str, int, int]:
    """The code to explain: the selection, or the enclosing definition for an empty one.

    Returns (code, first line, last line), lines 0-based.
    """
    text = snap.text
    start, end = sorted((max(0, min(start, len(text))), max(0, min(end, len(text)))))
    if text[start:end].strip():
        first = text.count("\n", 0, start)
        return text[start:end], first, first + text[start:end].rstrip("\n").count("\n")
    line = text.count("\n", 0, start)
    target = find_target(text, line, snap.language) if docstring_language(snap.language) else None
    lines = text.split("\n")
    if target is not None:
        first, last = target.decl_start[0], target.end_line
    else:  # no definition: a window of lines around the cursor
        first, last = max(0, line - 10), min(len(lines) - 1, line + 10)
    code = "\n".join(lines[first : last + 1])
    if not code.strip():
        raise InvalidParams("nothing to explain here: select some code")
    return code, first, last


async def explain(
    engine: Engine,
    snap: DocumentSnapshot,
    start: int,
    end: int,
    *,
    settings: Settings,
    on_chunk: OnChunk | None = None,
    cancel: CancelToken | None = None,
) -> ExplainResult:
    _ensure_allowed(snap, settings)
    _ensure_ready(engine)
    code, first, last = explain_region(snap, start, end)
    if use_chat(engine):
        request = GenerationRequest(
            messages=explain_messages(code, language=snap.language, path=snap.path),
            max_new_tokens=settings.explain_max_new_tokens,
            temperature=settings.temperature,
            priority=PRIORITY_EXPLAIN,
            kind="explain",
            cancel=cancel or CancelToken(),
        )
    else:
        prompt, stops = explain_plain_prompt(code, language=snap.language, path=snap.path)
        request = GenerationRequest(
            prompt=prompt,
            stop=stops,
            should_stop=explain_should_stop,
            max_new_tokens=settings.explain_max_new_tokens,
            temperature=settings.temperature,
            priority=PRIORITY_EXPLAIN,
            kind="explain",
            cancel=cancel or CancelToken(),
        )
    result = await _run(engine, request, on_chunk)
    text = finish_explanation(result.text)
    if not text.strip() and result.finish_reason != "cancelled":
        text = "(the model gave no explanation)"
    return ExplainResult(
        text=text, finish_reason=result.finish_reason, code=code, start_line=first, end_line=last
    )


def docstring_style(settings: Settings, language: str) -> str:
    return settings.docstring_style if docstring_language(language) == "python" else "default"


async def docstring(
    engine: Engine,
    snap: DocumentSnapshot,
    line: int,
    *,
    settings: Settings,
    on_chunk: OnChunk | None = None,
    replace_existing: bool = True,
    cancel: CancelToken | None = None,
) -> DocstringResult:
    from lsp_llm.prompts.instructions import parse_docstring_answer

    if docstring_language(snap.language) is None:
        raise InvalidParams(f"docstrings are not supported for {snap.language!r} files")
    _ensure_allowed(snap, settings)
    target = find_target(snap.text, line, snap.language)
    if target is None:
        raise InvalidParams("no function, method or class at this position")
    _ensure_ready(engine)
    style = settings.docstring_style
    if use_chat(engine):
        request = GenerationRequest(
            messages=docstring_messages(target, style),
            max_new_tokens=settings.docstring_max_new_tokens,
            temperature=settings.temperature,
            priority=PRIORITY_DOCSTRING,
            kind="docstring",
            cancel=cancel or CancelToken(),
        )
    else:
        prompt, stops = docstring_plain_prompt(target, style)
        request = GenerationRequest(
            prompt=prompt,
            stop=stops,
            max_new_tokens=settings.docstring_max_new_tokens,
            temperature=settings.temperature,
            priority=PRIORITY_DOCSTRING,
            kind="docstring",
            cancel=cancel or CancelToken(),
        )
    result = await _run(engine, request, on_chunk)
    raw = result.text if request.messages else "Summary:" + result.text
    content = parse_docstring_answer(raw, target)
    rendered = render_docstring(target, content, style)
    edit = docstring_edit(snap.text, target, rendered, replace_existing=replace_existing)
    return DocstringResult(text=rendered, edit=edit, target=target, raw=result.text)
