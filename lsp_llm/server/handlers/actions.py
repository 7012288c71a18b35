"""Explain and docstring over LSP: custom requests, code actions, commands; plus the small
commands (reindex, status). Wire types: :mod:`lsp_llm.server.wire`.

Streaming: with a ``partialResultToken`` each decoded chunk goes out as ``$/progress``
``{token, value: {text: chunk}}`` (chunks to append); with only a ``workDoneToken`` as work-done
reports whose ``message`` is the chunk. The final response always carries the full text.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
from pathlib import Path
from typing import Any

from lsprotocol import types
from pygls.workspace import TextDocument

from lsp_llm.config import cache_dir
from lsp_llm.docstrings import TextEdit, find_target
from lsp_llm.errors import DocumentChanged, DocumentNotOpen, InvalidParams
from lsp_llm.features import assist
from lsp_llm.languages import docstring_language
from lsp_llm.server import wire
from lsp_llm.server.documents import (
    as_plain,
    offset_at,
    open_document,
    snapshot,
    workspace_roots,
)
from lsp_llm.server.handlers.completion import warm_at
from lsp_llm.server.session import LlmServer

log = logging.getLogger(__name__)

EXPLAIN_REQUEST = wire.EXPLAIN
DOCSTRING_REQUEST = wire.DOCSTRING
CMD_EXPLAIN = "lspLlm.explain"
CMD_DOCSTRING = "lspLlm.generateDocstring"
CMD_REINDEX = "lspLlm.reindex"
CMD_STATUS = "lspLlm.status"
KIND_EXPLAIN = "source.lspLlm.explain"
KIND_DOCSTRING = types.CodeActionKind.RefactorRewrite + ".lspLlm.docstring"


# -- conversions ---------------------------------------------------------------------------
def _document(ls: LlmServer, uri: object) -> TextDocument:
    if not isinstance(uri, str) or uri not in ls.workspace.text_documents:
        raise DocumentNotOpen(f"document {uri!r} is not open")
    return ls.workspace.text_documents[uri]


def _uri(ref: wire.DocumentRef | None) -> str | None:
    return ref.uri if ref is not None else None


def _range(rng: wire.ClientRange) -> tuple[types.Position, types.Position]:
    return rng.start.lsp(), rng.end.lsp()


def _plain_position(position: types.Position) -> dict[str, int]:
    """A position as a command argument / ``data`` value (plain JSON, read back leniently)."""
    return {"line": position.line, "character": position.character}


def _plain_range(rng: types.Range) -> dict[str, dict[str, int]]:
    return {"start": _plain_position(rng.start), "end": _plain_position(rng.end)}


def _text_edit(doc: TextDocument, edit: TextEdit) -> types.TextEdit:
    """Python (line, str column) -> client position units."""
    lines = doc.source.split("\n")

    def offset(line: int, col: int) -> int:
        if line >= len(lines):
            return len(doc.source)
        return sum(len(x) + 1 for x in lines[:line]) + min(col, len(lines[line]))

    start = doc.client_position_at_offset(offset(edit.start_line, edit.start_col))
    end = doc.client_position_at_offset(offset(edit.end_line, edit.end_col))
    return types.TextEdit(range=types.Range(start=start, end=end), new_text=edit.new_text)


def _workspace_edit(ls: LlmServer, doc: TextDocument, edit: TextEdit | None) -> types.WorkspaceEdit:
    edits = [_text_edit(doc, edit)] if edit is not None else []
    if ls.client_supports("workspace.workspace_edit.document_changes"):
        # Versioned: a client applies it only to the version it was computed for.
        return types.WorkspaceEdit(
            document_changes=[
                types.TextDocumentEdit(
                    text_document=types.OptionalVersionedTextDocumentIdentifier(
                        uri=doc.uri, version=doc.version
                    ),
                    edits=edits,
                )
            ]
        )
    return types.WorkspaceEdit(changes={doc.uri: edits})


class _Streamer:
    """Sends chunks as partial results or work-done reports, whichever the client asked for."""

    def __init__(
        self,
        ls: LlmServer,
        partial: wire.ProgressToken | None,
        work_done: wire.ProgressToken | None,
        title: str,
    ) -> None:
        self.ls = ls
        self.partial = partial
        self.work_done = work_done
        if work_done is not None and partial is None:
            with contextlib.suppress(Exception):  # progress is a courtesy; the answer comes anyway
                ls.work_done_progress.begin(
                    work_done, types.WorkDoneProgressBegin(title=title, cancellable=True)
                )

    def __call__(self, chunk: str) -> None:
        if self.partial is not None:
            self.ls.progress(types.ProgressParams(token=self.partial, value={"text": chunk}))
        elif self.work_done is not None:
            self.ls.work_done_progress.report(
                self.work_done, types.WorkDoneProgressReport(message=chunk)
            )

    def end(self, message: str = "") -> None:
        if self.work_done is not None and self.partial is None:
            with contextlib.suppress(Exception):  # the answer matters, the closing report does not
                self.ls.work_done_progress.end(
                    self.work_done, types.WorkDoneProgressEnd(message=message)
                )


async def explain(
    ls: LlmServer, uri: object, rng: tuple[types.Position, types.Position], stream: _Streamer | None
) -> assist.ExplainResult:
    doc = _document(ls, uri)
    snap = snapshot(doc, workspace_roots(ls.workspace))
    start, end = offset_at(doc, rng[0]), offset_at(doc, rng[1])
    try:
        return await assist.explain(
            ls.shared.engine,
            snap,
            start,
            end,
            settings=ls.settings,
            on_chunk=stream,
            cancel=ls.protocol.cancel_token(),
        )
    finally:
        if stream is not None:
            stream.end()


async def docstring(
    ls: LlmServer, uri: object, position: types.Position, stream: _Streamer | None
) -> tuple[assist.DocstringResult, types.WorkspaceEdit]:
    doc = _document(ls, uri)
    version = doc.version
    snap = snapshot(doc, workspace_roots(ls.workspace))
    line = doc.position_codec.position_from_client_units(doc.lines, position).line
    try:
        result = await assist.docstring(
            ls.shared.engine,
            snap,
            line,
            settings=ls.settings,
            on_chunk=stream,
            cancel=ls.protocol.cancel_token(),
        )
    finally:
        if stream is not None:
            stream.end()
    live = open_document(ls.workspace, doc.uri)
    if live is None or live.version != version:
        raise DocumentChanged("the document changed while the docstring was written; try again")
    return result, _workspace_edit(ls, doc, result.edit)


def _markdown_file(text: str, title: str) -> Path:
    folder = cache_dir() / "explanations"
    folder.mkdir(parents=True, exist_ok=True)
    name = hashlib.sha1(title.encode()).hexdigest()[:10] + ".md"
    path = folder / name
    path.write_text(f"# {title}\n\n{text}\n", encoding="utf-8")
    return path


# -- handlers ------------------------------------------------------------------------------
async def explain_request(ls: LlmServer, params: wire.ExplainParams) -> wire.ExplainResult:
    stream = _Streamer(ls, params.partial_result_token, params.work_done_token, "Explaining")
    result = await explain(ls, _uri(params.text_document), _range(params.range), stream)
    return wire.ExplainResult(
        text=result.text,
        finish_reason=result.finish_reason,
        range=types.Range(
            start=types.Position(line=result.start_line, character=0),
            end=types.Position(line=result.end_line + 1, character=0),
        ),
    )


async def docstring_request(ls: LlmServer, params: wire.DocstringParams) -> wire.DocstringResult:
    stream = _Streamer(ls, params.partial_result_token, params.work_done_token, "Docstring")
    result, edit = await docstring(ls, _uri(params.text_document), params.position.lsp(), stream)
    return wire.DocstringResult(
        text=result.text,
        edit=edit,
        target=wire.DocstringTarget(name=result.target.name, kind=result.target.kind),
    )


CODE_ACTION_OPTIONS = types.CodeActionOptions(
    code_action_kinds=[KIND_EXPLAIN, KIND_DOCSTRING], resolve_provider=True
)


def code_actions(ls: LlmServer, params: types.CodeActionParams) -> list[types.CodeAction]:
    """Listed without model time; the docstring edit is computed on resolve."""
    uri = params.text_document.uri
    doc = open_document(ls.workspace, uri)
    if doc is None:
        return []
    only = params.context.only
    rng = params.range
    ls.cursors[uri] = (rng.start.line, rng.start.character)
    warm_at(ls, uri, rng.start)  # VS Code asks on every cursor move: warm the new place
    actions: list[types.CodeAction] = []
    if not only or any(KIND_EXPLAIN.startswith(k) for k in only):
        actions.append(
            types.CodeAction(
                title="Explain this code",
                kind=KIND_EXPLAIN,
                command=types.Command(
                    title="Explain this code",
                    command=CMD_EXPLAIN,
                    arguments=[uri, _plain_range(rng)],
                ),
            )
        )
    snap = snapshot(doc, workspace_roots(ls.workspace))
    line = doc.position_codec.position_from_client_units(doc.lines, rng.start).line
    # find_target returns None for what it cannot read (unsupported language, a file that
    # does not parse); anything it raises is a bug and is answered as one.
    has_target = bool(
        docstring_language(snap.language) and find_target(snap.text, line, snap.language)
    )
    if has_target and (not only or any(KIND_DOCSTRING.startswith(k) for k in only)):
        data = {"uri": uri, "position": _plain_position(rng.start)}
        if ls.client_supports("text_document.code_action.resolve_support"):
            actions.append(
                types.CodeAction(title="Generate docstring", kind=KIND_DOCSTRING, data=data)
            )
        else:
            actions.append(
                types.CodeAction(
                    title="Generate docstring",
                    kind=KIND_DOCSTRING,
                    command=types.Command(
                        title="Generate docstring",
                        command=CMD_DOCSTRING,
                        arguments=[uri, data["position"]],
                    ),
                )
            )
    return actions


async def resolve_code_action(ls: LlmServer, action: types.CodeAction) -> types.CodeAction:
    data = as_plain(action.data)  # LSPAny: whatever we put there in code_actions
    if action.kind == KIND_DOCSTRING and isinstance(data, dict):
        position = wire.position_from_wire(data.get("position")).lsp()
        _, edit = await docstring(ls, data.get("uri"), position, None)
        action.edit = edit
    return action


async def explain_command(ls: LlmServer, *args: Any) -> dict[str, Any]:
    if len(args) < 2:
        raise InvalidParams("lspLlm.explain expects [uri, range]")
    uri, rng = as_plain(args[0]), _range(wire.range_from_wire(as_plain(args[1])))
    result = await explain(ls, uri, rng, None)
    title = f"Explanation of {Path(uri).name}:{result.start_line + 1}-{result.end_line + 1}"
    shown = False
    if ls.client_supports("window.show_document"):
        path = _markdown_file(result.text, title)
        with contextlib.suppress(Exception):  # not shown: the text goes out as a message below
            reply = await ls.window_show_document_async(
                types.ShowDocumentParams(uri=path.as_uri(), take_focus=False)
            )
            shown = bool(reply and reply.success)
    if not shown:
        ls.show(f"{title}\n\n{result.text}")
    return {"text": result.text, "finishReason": result.finish_reason}


async def docstring_command(ls: LlmServer, *args: Any) -> dict[str, Any]:
    if len(args) < 2:
        raise InvalidParams("lspLlm.generateDocstring expects [uri, position]")
    uri = as_plain(args[0])
    position = wire.position_from_wire(as_plain(args[1])).lsp()
    result, edit = await docstring(ls, uri, position, None)
    applied = False
    if result.edit is not None:
        reply = await ls.workspace_apply_edit_async(
            types.ApplyWorkspaceEditParams(edit=edit, label="Generate docstring")
        )
        applied = bool(reply and reply.applied)
    return {"text": result.text, "applied": applied}


async def reindex_command(ls: LlmServer, *args: Any) -> dict[str, Any]:
    if ls.shared.workspaces is None:
        return {"state": "off"}
    return await ls.shared.workspaces.reindex(ls)


def status_command(ls: LlmServer, *args: Any) -> wire.StatusReport:
    return ls.status_report()
