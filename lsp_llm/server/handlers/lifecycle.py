"""initialize / initialized / document sync / configuration / status / shutdown."""

from __future__ import annotations

import logging

from lsprotocol import types

from lsp_llm.server import wire
from lsp_llm.server.documents import AppliedChange, as_plain, open_document
from lsp_llm.server.handlers.completion import warm_at
from lsp_llm.server.session import LlmServer

log = logging.getLogger(__name__)


def _track(ls: LlmServer, uri: str) -> None:
    """Unsaved content reaches the index (debounced; the text is read when it applies)."""
    workspaces = ls.shared.workspaces
    if workspaces is None:
        return

    def text_of() -> str | None:
        doc = open_document(ls.workspace, uri)
        return doc.source if doc is not None else None

    workspaces.document_changed(uri, text_of)


def initialize(ls: LlmServer, params: types.InitializeParams) -> None:
    ls.initialized = True
    client = params.client_info.name if params.client_info else "unknown client"
    log.info("session %d: %s connected", ls.session_id, client)
    ls.initial_settings(params)


def initialized(ls: LlmServer, params: types.InitializedParams) -> None:
    if ls.shared.workspaces is not None:
        ls.shared.workspaces.session_started(ls)
    # Tell the client where the model stands right away (it may still be loading).
    ls.publish_status()


def did_open(ls: LlmServer, params: types.DidOpenTextDocumentParams) -> None:
    item = params.text_document
    if ls.shared.workspaces is not None:
        ls.shared.workspaces.observe_open(item.uri, item.text, item.language_id)
    _track(ls, item.uri)
    warm_at(ls, item.uri)


def did_change(ls: LlmServer, change: AppliedChange) -> None:
    """Called by the protocol after it applied a valid ``didChange`` (invalid ones never get
    here), with the document's whole text before and after."""
    uri = change.params.text_document.uri
    if ls.shared.workspaces is not None:
        ls.shared.workspaces.observe_change(uri, change.before, change.after)
    _track(ls, uri)


def did_save(ls: LlmServer, params: types.DidSaveTextDocumentParams) -> None:
    if ls.shared.workspaces is not None:
        ls.shared.workspaces.document_saved(params.text_document.uri)


def did_close(ls: LlmServer, params: types.DidCloseTextDocumentParams) -> None:
    uri = params.text_document.uri
    ls.completions.forget(uri)
    ls.request_seq.pop(uri, None)
    if ls.shared.workspaces is not None:
        ls.shared.workspaces.observe_close(uri)
        ls.shared.workspaces.document_closed(uri)


def did_change_configuration(ls: LlmServer, params: types.DidChangeConfigurationParams) -> None:
    settings = params.settings
    if settings is None:
        return
    # Settings are LSPAny by the spec; config.merge checks every key and warns.
    ls.apply_settings_layer(as_plain(settings), "workspace/didChangeConfiguration")


def status(ls: LlmServer, params: wire.StatusParams) -> wire.StatusReport:
    return ls.status_report()


def shutdown(ls: LlmServer, params: None) -> None:
    log.info("session %d: shutdown requested", ls.session_id)
