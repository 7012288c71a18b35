"""Open documents as immutable snapshots (pygls keeps the mutable store and applies edits)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from lsprotocol import types
from pygls.uris import to_fs_path
from pygls.workspace import TextDocument, Workspace

from lsp_llm.features.completion import DocumentSnapshot
from lsp_llm.prompts.completion import language_from_path


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


def offset_at(doc: TextDocument, position: types.Position) -> int:
    """Python string offset for a client position, clamped into the document."""
    lines = doc.lines
    if position.line < 0:
        return 0
    if position.line >= len(lines):
        return len(doc.source)
    line_text = lines[position.line]
    col = doc.position_codec.position_from_client_units(
        lines, types.Position(line=position.line, character=max(0, position.character))
    ).character
    col = min(col, len(line_text.rstrip("\r\n")))
    return sum(len(line) for line in lines[: position.line]) + col


def is_open(workspace: Workspace, uri: str) -> bool:
    return uri in workspace.text_documents


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
