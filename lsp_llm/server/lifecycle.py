"""initialize / configuration / status / shutdown handlers."""

from __future__ import annotations

import logging
from typing import Any

from lsprotocol import types

from lsp_llm.server.app import STATUS_REQUEST, LlmServer
from lsp_llm.server.documents import as_plain, open_document

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


def register(server: LlmServer) -> None:
    @server.feature(types.INITIALIZE)
    def initialize(ls: LlmServer, params: types.InitializeParams) -> None:
        ls.initialized = True
        client = params.client_info.name if params.client_info else "unknown client"
        log.info("session %d: %s connected", ls.session_id, client)
        ls.initial_settings(params)

    @server.feature(types.INITIALIZED)
    def initialized(ls: LlmServer, params: types.InitializedParams) -> None:
        if ls.shared.workspaces is not None:
            ls.shared.workspaces.session_started(ls)
        # Tell the client where the model stands right away (it may still be loading).
        ls._publish_status(ls.shared.engine.status)

    @server.feature(types.TEXT_DOCUMENT_DID_OPEN)
    def did_open(ls: LlmServer, params: types.DidOpenTextDocumentParams) -> None:
        _track(ls, params.text_document.uri)

    @server.feature(types.TEXT_DOCUMENT_DID_CHANGE)
    def did_change(ls: LlmServer, params: types.DidChangeTextDocumentParams) -> None:
        _track(ls, params.text_document.uri)

    @server.feature(types.TEXT_DOCUMENT_DID_SAVE)
    def did_save(ls: LlmServer, params: types.DidSaveTextDocumentParams) -> None:
        if ls.shared.workspaces is not None:
            ls.shared.workspaces.document_saved(params.text_document.uri)

    @server.feature(types.TEXT_DOCUMENT_DID_CLOSE)
    def did_close(ls: LlmServer, params: types.DidCloseTextDocumentParams) -> None:
        uri = params.text_document.uri
        ls.completions.forget(uri)
        ls.request_seq.pop(uri, None)
        if ls.shared.workspaces is not None:
            ls.shared.workspaces.document_closed(uri)

    @server.feature(types.WORKSPACE_DID_CHANGE_CONFIGURATION)
    def did_change_configuration(ls: LlmServer, params: types.DidChangeConfigurationParams) -> None:
        settings = params.settings
        if settings is None:
            return
        ls.apply_settings_layer(as_plain(settings), "workspace/didChangeConfiguration")

    @server.feature(STATUS_REQUEST)
    def status(ls: LlmServer, params: Any) -> dict[str, Any]:
        return ls.status_payload()

    @server.feature(types.SHUTDOWN)
    def shutdown(ls: LlmServer, params: Any) -> None:
        log.info("session %d: shutdown requested", ls.session_id)

    from lsp_llm.server import debug

    if debug.enabled():
        debug.register(server)
