"""initialize / configuration / status / shutdown handlers."""

from __future__ import annotations

import logging
from typing import Any

from lsprotocol import types

from lsp_llm.server.app import STATUS_REQUEST, LlmServer
from lsp_llm.server.documents import as_plain

log = logging.getLogger(__name__)


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
