"""textDocument/inlineCompletion and textDocument/completion: translate, call, translate back.

Errors: a failed completion raises :class:`~lsp_llm.features.completion.CompletionFailed`, a
:class:`~lsp_llm.errors.RequestFailed` (-32803 through the one mapping in ``errors``).
"""

from __future__ import annotations

import asyncio
import logging
import re

from lsprotocol import types

from lsp_llm.features.completion import CompletionFailed, CompletionOutcome, Trigger
from lsp_llm.server.documents import offset_at, open_document, snapshot, workspace_roots
from lsp_llm.server.handlers.acceptance import ACCEPT_COMMAND
from lsp_llm.server.session import LlmServer

log = logging.getLogger(__name__)

_WORD_TAIL = re.compile(r"[\w$]*$")


WARM_MOVE_LINES = 8
"""A cursor this many lines from the last warmed place is "somewhere new"."""


def warm_at(ls: LlmServer, uri: str, position: types.Position | None = None) -> bool:
    """Idle warm-up (``idleWarmup``): prefill the prompt at ``position`` (else the document's
    last known cursor, else its start) when the engine is idle, generating nothing. Called
    when a document is opened and when a request shows the cursor moved somewhere new (VS Code
    asks for code actions on every cursor move). The service drops it when real work arrives."""
    if not ls.settings.idle_warmup:
        return False
    doc = open_document(ls.workspace, uri)
    if doc is None:
        return False
    if position is None:
        line, character = ls.cursors.get(uri, (0, 0))
        position = types.Position(line=line, character=character)
    last = ls.warmed
    if last is not None and last[0] == uri and abs(last[1] - position.line) < WARM_MOVE_LINES:
        return False
    workspaces = ls.shared.workspaces
    queued = ls.completions.warm(
        snapshot(doc, workspace_roots(ls.workspace)),
        offset_at(doc, position),
        settings=ls.settings,
        retriever=workspaces.retriever_for() if workspaces is not None else None,
    )
    if queued:
        ls.warmed = (uri, position.line)
    return queued


async def run_completion(
    ls: LlmServer, uri: str, position: types.Position, trigger: Trigger
) -> tuple[CompletionOutcome | None, int]:
    """Shared body of both completion methods. Returns (outcome, offset)."""
    doc = open_document(ls.workspace, uri)
    if doc is None:
        return None, 0
    settings = ls.settings
    seq = ls.request_seq.get(uri, 0) + 1
    ls.request_seq[uri] = seq
    roots = workspace_roots(ls.workspace)
    snap = snapshot(doc, roots)
    offset = offset_at(doc, position)
    if trigger == "automatic":
        delay = ls.completions.debounce_s(settings)
        if delay > 0 and (
            settings.adaptive_debounce == "off"
            or not ls.completions.answerable_now(snap, offset, settings)
        ):
            await asyncio.sleep(delay)
            if ls.request_seq.get(uri) != seq:
                return None, 0  # a newer request for this document superseded this one
            snap = snapshot(doc, roots)
            offset = offset_at(doc, position)

    def is_current() -> bool:
        live = open_document(ls.workspace, uri)
        return live is not None and live.version == snap.version

    workspaces = ls.shared.workspaces
    retriever = workspaces.retriever_for() if workspaces is not None else None
    try:
        outcome = await ls.completions.complete(
            snap,
            offset,
            settings=settings,
            trigger=trigger,
            retriever=retriever,
            is_current=is_current,
            cancel=ls.protocol.cancel_token(),
        )
    except CompletionFailed as failed:  # answered -32803 by the one error mapping
        ls.last_completion = failed.outcome
        raise
    ls.last_completion = outcome
    ls.cursors[uri] = (position.line, position.character)
    if ls.shared.stats is not None and outcome.suggestions:
        ls.shared.stats.shown(
            snap.language,
            trigger,
            [s.id for s in outcome.suggestions],
            outcome.spans,
            uri=uri,
            position=(position.line, position.character),
            texts=[s.text for s in outcome.suggestions],
        )
    log.debug(
        "completion %s: %d suggestion(s) from %s %s",
        uri,
        len(outcome.suggestions),
        outcome.source,
        {k: round(v, 1) for k, v in outcome.spans.items()},
    )
    return outcome, offset


async def inline_completion(
    ls: LlmServer, params: types.InlineCompletionParams
) -> types.InlineCompletionList:
    trigger: Trigger = (
        "invoked"
        if params.context.trigger_kind == types.InlineCompletionTriggerKind.Invoked
        else "automatic"
    )
    outcome, _ = await run_completion(ls, params.text_document.uri, params.position, trigger)
    if outcome is None:
        return types.InlineCompletionList(items=[])
    pos = params.position
    return types.InlineCompletionList(
        items=[
            types.InlineCompletionItem(
                insert_text=s.text,
                range=types.Range(start=pos, end=pos),
                command=types.Command(
                    title="accepted", command=ACCEPT_COMMAND, arguments=[{"id": s.id}]
                ),
            )
            for s in outcome.suggestions
        ]
    )


async def completion(ls: LlmServer, params: types.CompletionParams) -> types.CompletionList:
    """For clients without inline completion: the suggestion as a completion item."""
    if ls.client_supports("text_document.inline_completion"):
        # The client shows our inline suggestions; do not run the model twice.
        return types.CompletionList(is_incomplete=False, items=[])
    invoked = (
        params.context is not None
        and params.context.trigger_kind == types.CompletionTriggerKind.Invoked
    )
    outcome, offset = await run_completion(
        ls, params.text_document.uri, params.position, "invoked" if invoked else "automatic"
    )
    if outcome is None or not outcome.suggestions:
        return types.CompletionList(is_incomplete=True, items=[])
    doc = ls.workspace.get_text_document(params.text_document.uri)
    line_before = doc.source[:offset].rsplit("\n", 1)[-1]
    word = _WORD_TAIL.search(line_before)
    word_text = word.group(0) if word else ""
    start = types.Position(
        line=params.position.line,
        character=params.position.character - doc.position_codec.client_num_units(word_text),
    )
    items = []
    for rank, s in enumerate(outcome.suggestions):
        items.append(
            types.CompletionItem(
                # The label is exactly the inserted text: clients that insert the label
                # (Emacs' completion-at-point, Sublime without textEdit) insert it right.
                label=word_text + s.text,
                kind=types.CompletionItemKind.Snippet,
                detail="lsp-llm",
                documentation=types.MarkupContent(
                    kind=types.MarkupKind.Markdown, value=f"```\n{word_text}{s.text}\n```"
                ),
                filter_text=word_text + s.text,
                sort_text=f"0{rank}",
                preselect=rank == 0,
                insert_text_format=types.InsertTextFormat.PlainText,
                text_edit=types.TextEdit(
                    range=types.Range(start=start, end=params.position),
                    new_text=word_text + s.text,
                ),
                command=types.Command(
                    title="accepted", command=ACCEPT_COMMAND, arguments=[{"id": s.id}]
                ),
            )
        )
    return types.CompletionList(is_incomplete=True, items=items)
