"""Shown and accepted signals from the client, and the retention check behind them.

- ``lspLlm/didShow`` (notification, ``{"id": str}``): the client put that suggestion on screen.
  Counted as ``displayed`` (once per answer); ``shown`` stays what the completion handler
  counts when it answers (see :mod:`lsp_llm.stats` for which field means what).
- ``lspLlm.didAccept`` (the command every completion item carries): ``{"id": str}`` from any
  client (a full accept), or ``{"id", "kind": "full"|"word"|"line", "acceptedText"?, "uri"?,
  "position"?: {"line", "character"}}`` from the bundled VS Code and Neovim integrations,
  which accept by word or line too. ``position`` is where the accepted text starts (the
  client's position encoding); without it, the place the suggestion was offered for is used.
  Old clients' ``{"id", "partial": true}`` counts as a partial accept. The answer stays
  ``{"counted": bool}``.

Retention: each accept's text is looked for again :func:`retention_delay_s` later (30 s, as
Copilot does) around where it went in (:func:`lsp_llm.stats.retained_chars`), on the event loop
with ``loop.call_later``. A document that is no longer open then counts as unknown, not 0.
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import TYPE_CHECKING, Any

from lsprotocol import types

from lsp_llm.server.documents import as_plain, offset_at, open_document
from lsp_llm.stats import (
    AcceptanceStats,
    AcceptedChunk,
    AcceptKind,
    place_accepted,
    retained_chars,
)

if TYPE_CHECKING:
    from lsp_llm.server.session import LlmServer

log = logging.getLogger(__name__)

DID_SHOW = "lspLlm/didShow"
ACCEPT_COMMAND = "lspLlm.didAccept"

RETENTION_DELAY_S = 30.0
"""How long after an accept its text is looked for again."""
RETENTION_DELAY_ENV = "LSP_LLM_RETENTION_DELAY_S"
"""Overrides :data:`RETENTION_DELAY_S` (seconds, a float; the tests use a fraction of one)."""

_KINDS: dict[str, AcceptKind] = {"full": "full", "word": "word", "line": "line"}


def retention_delay_s() -> float:
    raw = os.environ.get(RETENTION_DELAY_ENV)
    if raw:
        try:
            value = float(raw)
        except ValueError:
            log.warning(
                "%s=%r is not a number; using %gs", RETENTION_DELAY_ENV, raw, RETENTION_DELAY_S
            )
        else:
            if value >= 0:
                return value
    return RETENTION_DELAY_S


def did_show(ls: LlmServer, params: Any) -> None:
    """``lspLlm/didShow``: count the suggestion's answer as displayed."""
    info = as_plain(params)
    sid = info.get("id") if isinstance(info, dict) else info
    stats: AcceptanceStats | None = ls.shared.stats
    if stats is None or sid is None:
        return
    if not stats.did_show(str(sid)):
        log.debug("didShow for an unknown suggestion %r", sid)


def accept_command(ls: LlmServer, *args: Any) -> dict[str, Any]:
    """``lspLlm.didAccept``: count a full or partial accept and schedule its retention check."""
    info = as_plain(args[0]) if args else {}
    if not isinstance(info, dict):
        info = {"id": info}
    sid = info.get("id")
    stats: AcceptanceStats | None = ls.shared.stats
    if stats is None or sid is None:
        return {"counted": False}
    raw_kind = info.get("kind")
    kind: AcceptKind = _KINDS.get(str(raw_kind), "full") if raw_kind is not None else "full"
    if raw_kind is None and info.get("partial"):
        kind = "partial"
    text = info.get("acceptedText")
    uri = info.get("uri")
    chunk = stats.accept(
        str(sid),
        kind=kind,
        text=text if isinstance(text, str) else None,
        uri=uri if isinstance(uri, str) else None,
        position=_position(info.get("position")),
    )
    if chunk is None:
        return {"counted": False}
    _schedule_retention(ls, stats, chunk)
    return {"counted": True}


def _position(value: Any) -> tuple[int, int] | None:
    if isinstance(value, dict):
        line, character = value.get("line"), value.get("character")
        if isinstance(line, int) and isinstance(character, int) and line >= 0 and character >= 0:
            return line, character
    return None


def _schedule_retention(ls: LlmServer, stats: AcceptanceStats, chunk: AcceptedChunk) -> None:
    """Note where the accepted text is now and look for it again later."""
    if chunk.text == "":
        return  # a full accept of what partial accepts had already taken
    if not chunk.measurable:
        stats.retention(chunk.key, len(chunk.text or ""), None)
        return
    assert chunk.uri is not None and chunk.position is not None and chunk.text is not None
    doc = open_document(ls.workspace, chunk.uri)
    if doc is None:
        stats.retention(chunk.key, len(chunk.text), None)
        return
    line, character = chunk.position
    anchor = offset_at(doc, types.Position(line=line, character=character)) + chunk.shift
    placement = place_accepted(chunk.text, doc.source, anchor)
    uri, key = chunk.uri, chunk.key
    text = chunk.text

    def check() -> None:
        live = open_document(ls.workspace, uri)
        if live is None:
            stats.retention(key, len(text), None)
            return
        kept = retained_chars(placement, live.source)
        log.debug("retention %s: %d of %d characters after the delay", uri, kept, len(text))
        stats.retention(key, len(text), kept)

    loop: asyncio.AbstractEventLoop | None
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        loop = ls.loop
    if loop is None:
        stats.retention(key, len(text), None)
        return
    loop.call_later(retention_delay_s(), check)
