"""Open documents: immutable snapshots, positions, and validated edits.

pygls keeps the mutable store. Edits do not go through pygls' own ``apply_change``: the
protocol (``LlmProtocol.lsp_text_document__did_change``) hands each ``didChange`` to
:func:`apply_did_change`, which checks it and computes the new text with the pure functions
below, and only then stores that text in the workspace. Positions follow the LSP spec: lines end
at ``\n``, ``\r\n`` or ``\r`` (not at the other breaks ``str.splitlines`` knows, such as form
feeds), and characters are counted in the negotiated position encoding.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from lsprotocol import types
from pygls.uris import to_fs_path
from pygls.workspace import TextDocument, Workspace

from lsp_llm.features.completion import DocumentSnapshot
from lsp_llm.prompts.completion import language_from_path

log = logging.getLogger(__name__)


def workspace_roots(workspace: Workspace) -> list[Path]:
    roots: list[Path] = []
    for folder in workspace.folders.values():
        path = to_fs_path(folder.uri)
        if path:
            roots.append(Path(path))
    if not roots and workspace.root_path:
        roots.append(Path(workspace.root_path))
    return roots


def relative_label(path: str, roots: list[Path]) -> str:
    """Workspace-relative path with forward slashes, or the bare file name."""
    p = Path(path)
    for root in roots:
        try:
            return p.relative_to(root).as_posix()
        except ValueError:
            continue
    return p.name


def snapshot(doc: TextDocument, roots: list[Path]) -> DocumentSnapshot:
    path = doc.path or doc.uri
    language = doc.language_id or language_from_path(path)
    if language in ("", "plaintext") and path:
        language = language_from_path(path)
    return DocumentSnapshot(
        uri=doc.uri,
        path=relative_label(path, roots),
        language=language,
        version=doc.version,
        text=doc.source,
    )


def _encoding(doc: TextDocument) -> str:
    """The negotiated position encoding (``utf-16`` unless the client offered another)."""
    return doc.position_codec.encoding or types.PositionEncodingKind.Utf16


def offset_at(doc: TextDocument, position: types.Position) -> int:
    """Python string offset for a client position, clamped into the document."""
    if position.line < 0 or position.character < 0:
        return 0
    return position_offset(doc.source, position.line, position.character, _encoding(doc))


# -- positions and edits (pure) -------------------------------------------------------------

_LINE_BREAK = re.compile(r"\r\n?|\n")


class InvalidEdit(ValueError):
    """A ``didChange`` that cannot be applied. The message names positions and versions, never
    document text, so it can be logged."""


def _line_bounds(text: str, line: int) -> tuple[int, int] | None:
    """Offsets where ``line`` starts and where its content ends (before its line break), or
    None when the document has no such line."""
    if "\r" not in text or text.count("\r") == text.count("\r\n"):
        # Every line ends with \n (a \r before it is part of the break): split in C.
        start = 0
        if line > 0:
            rest = text.split("\n", line)
            if len(rest) <= line:
                return None
            start = len(text) - len(rest[-1])
        end = text.find("\n", start)
        if end < 0:
            return start, len(text)
        return start, end - 1 if end > start and text[end - 1] == "\r" else end
    start = 0
    if line > 0:
        for count, match in enumerate(_LINE_BREAK.finditer(text), 1):
            if count == line:
                start = match.end()
                break
        else:
            return None
    found = _LINE_BREAK.search(text, start)
    return start, found.start() if found is not None else len(text)


def _units(char: str, encoding: str) -> int:
    code = ord(char)
    if encoding == types.PositionEncodingKind.Utf8:
        return 1 if code < 0x80 else 2 if code < 0x800 else 3 if code < 0x10000 else 4
    return 2 if code > 0xFFFF else 1


def _column(line_text: str, character: int, encoding: str) -> int:
    """Code points of ``line_text`` before ``character`` code units (clamped to the line; a
    position inside a character moves to that character's end)."""
    if encoding == types.PositionEncodingKind.Utf32 or line_text.isascii():
        return min(character, len(line_text))
    units = 0
    for i, char in enumerate(line_text):
        if units >= character:
            return i
        units += _units(char, encoding)
    return len(line_text)


def position_offset(text: str, line: int, character: int, encoding: str = "utf-16") -> int:
    """Python offset of a valid (non-negative) LSP position, clamped as the spec allows: a
    character past the end of its line is the end of that line (before its line break), and a
    line past the last one is the end of the document."""
    bounds = _line_bounds(text, line)
    if bounds is None:
        return len(text)
    start, end = bounds
    return start + _column(text[start:end], character, encoding)


def _range_offsets(
    text: str, start: tuple[int, int], end: tuple[int, int], encoding: str
) -> tuple[int, int]:
    """Offsets of an ordered range; the lines are found once when it stays on one line."""
    if start[0] != end[0]:
        return position_offset(text, *start, encoding), position_offset(text, *end, encoding)
    bounds = _line_bounds(text, start[0])
    if bounds is None:
        return len(text), len(text)
    line_text = text[bounds[0] : bounds[1]]
    return (
        bounds[0] + _column(line_text, start[1], encoding),
        bounds[0] + _column(line_text, end[1], encoding),
    )


def _position(pos: types.Position) -> tuple[int, int]:
    return pos.line, pos.character


def apply_content_changes(
    text: str,
    changes: Sequence[types.TextDocumentContentChangeEvent],
    encoding: str = "utf-16",
) -> str:
    """``text`` after ``changes``, applied in order, each to the result of the one before.

    A change without a range replaces the whole text. A range past the end of the document is
    clamped (see :func:`position_offset`). Raises :class:`InvalidEdit` for a range whose start
    comes after its end, or a negative position: the spec has no such range, and no way to
    apply one that gives text the client has too.
    """
    for i, change in enumerate(changes, 1):
        if not isinstance(change, types.TextDocumentContentChangePartial):
            text = change.text
            continue
        start, end = _position(change.range.start), _position(change.range.end)
        where = f"change {i} of {len(changes)}"
        if min(*start, *end) < 0:
            raise InvalidEdit(f"{where}: negative position in range {start}-{end}")
        if start > end:
            raise InvalidEdit(f"{where}: range start {start} comes after its end {end}")
        a, b = _range_offsets(text, start, end, encoding)
        text = text[:a] + change.text + text[b:]
    return text


def check_version(current: int | None, new: int) -> None:
    """Versions of a document only go up (the spec allows gaps). Raises :class:`InvalidEdit`
    for a change that repeats the current version or goes back from it: its ranges were
    computed against a text this server has already moved past."""
    if current is None:
        return
    if new == current:
        raise InvalidEdit(f"version {new} repeats the current version")
    if new < current:
        raise InvalidEdit(f"version {new} goes back from the current version {current}")


def changed_text(
    text: str,
    version: int | None,
    params: types.DidChangeTextDocumentParams,
    encoding: str = "utf-16",
) -> str:
    """The text after a whole ``didChange`` notification, or :class:`InvalidEdit` (then
    nothing of it applies: a partly applied batch is a text no client ever had)."""
    check_version(version, params.text_document.version)
    return apply_content_changes(text, params.content_changes, encoding)


@dataclasses.dataclass(frozen=True)
class AppliedChange:
    """A ``didChange`` that was applied: the notification and the whole text before and after
    (what the ``didChange`` handler gets)."""

    params: types.DidChangeTextDocumentParams
    before: str
    after: str


def apply_did_change(
    workspace: Workspace, params: types.DidChangeTextDocumentParams
) -> AppliedChange | None:
    """Apply a ``didChange`` to the workspace if it is valid. Returns the applied change, or
    None when it was rejected.

    An invalid notification (a reversed range, a version that repeats or goes back, a
    document that is not open) is rejected whole with one warning, which names the document
    and the reason but no text, and the document keeps its text and version. Rejecting is the
    one choice that never makes text up: LSP has no request by which a server asks a client
    for a document's text, and the file on disk lacks the unsaved edits, so a "resync" could
    only guess. The client's next whole-document change, or a close and reopen, brings the
    two back together; until then completions see the last text that was valid.
    """
    ident = params.text_document
    doc = open_document(workspace, ident.uri)
    if doc is None:
        log.warning("didChange for %s ignored: the document is not open", ident.uri)
        return None
    try:
        text = changed_text(doc.source, doc.version, params, _encoding(doc))
    except InvalidEdit as exc:
        log.warning(
            "didChange for %s (version %s) rejected, the text stays at version %s: %s",
            ident.uri,
            ident.version,
            doc.version,
            exc,
        )
        return None
    before = doc.source
    workspace.update_text_document(ident, types.TextDocumentContentChangeWholeDocument(text=text))
    return AppliedChange(params=params, before=before, after=text)


def open_document(workspace: Workspace, uri: str) -> TextDocument | None:
    """The open document at ``uri``. pygls files documents under the percent-decoded URI, so
    ``file:///c%3A/a%20b.py`` (how VS Code spells Windows paths and spaces) finds it too."""
    return workspace.text_documents.get(unquote(uri))


def is_open(workspace: Workspace, uri: str) -> bool:
    return open_document(workspace, uri) is not None


def fs_path(uri: str) -> str | None:
    path = to_fs_path(uri)
    return os.path.abspath(path) if path else None


def as_plain(obj: Any) -> Any:
    """pygls hands custom-method params over as namedtuples; turn them back into dicts."""
    if hasattr(obj, "_asdict"):
        return {k: as_plain(v) for k, v in obj._asdict().items()}
    if isinstance(obj, (list, tuple)):
        return [as_plain(v) for v in obj]
    return obj
