"""Every method this server answers, in one table, and :func:`create_server`.

One row per LSP method or ``workspace/executeCommand`` command: the handler (a plain function
``(ls, params)`` in :mod:`lsp_llm.server.handlers`) and, where the method has them, the options
pygls advertises in the ``initialize`` answer. Params and results of our own methods are typed
in :mod:`lsp_llm.server.wire`. Import order: handlers import the session, the session imports
no handler, and this module imports both.
"""

from __future__ import annotations

import dataclasses
import inspect
import logging
from collections.abc import Callable
from typing import Any

from lsprotocol import types

from lsp_llm.server import wire
from lsp_llm.server.handlers import acceptance, actions, completion, debug, lifecycle
from lsp_llm.server.session import LlmServer, Shared

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Route:
    method: str
    handler: Callable[..., Any]
    options: Any = None
    """Server capability options for the method (pygls advertises e.g. inlineCompletion only
    when they are given)."""
    command: bool = False
    """A ``workspace/executeCommand`` command rather than a method."""


ROUTES: tuple[Route, ...] = (
    # lifecycle and document sync
    Route(types.INITIALIZE, lifecycle.initialize),
    Route(types.INITIALIZED, lifecycle.initialized),
    Route(types.SHUTDOWN, lifecycle.shutdown),
    Route(types.TEXT_DOCUMENT_DID_OPEN, lifecycle.did_open),
    Route(types.TEXT_DOCUMENT_DID_CHANGE, lifecycle.did_change),
    Route(types.TEXT_DOCUMENT_DID_SAVE, lifecycle.did_save),
    Route(types.TEXT_DOCUMENT_DID_CLOSE, lifecycle.did_close),
    Route(types.WORKSPACE_DID_CHANGE_CONFIGURATION, lifecycle.did_change_configuration),
    # completion
    Route(
        types.TEXT_DOCUMENT_INLINE_COMPLETION,
        completion.inline_completion,
        types.InlineCompletionOptions(),
    ),
    Route(
        types.TEXT_DOCUMENT_COMPLETION,
        completion.completion,
        types.CompletionOptions(trigger_characters=[".", "("], resolve_provider=False),
    ),
    # explain, docstring, code actions
    Route(wire.EXPLAIN, actions.explain_request),
    Route(wire.DOCSTRING, actions.docstring_request),
    Route(types.TEXT_DOCUMENT_CODE_ACTION, actions.code_actions, actions.CODE_ACTION_OPTIONS),
    Route(types.CODE_ACTION_RESOLVE, actions.resolve_code_action),
    # status and acceptance signals
    Route(wire.STATUS, lifecycle.status),
    Route(acceptance.DID_SHOW, acceptance.did_show),
    # commands (in this order in executeCommandProvider.commands)
    Route(actions.CMD_EXPLAIN, actions.explain_command, command=True),
    Route(actions.CMD_DOCSTRING, actions.docstring_command, command=True),
    Route(actions.CMD_REINDEX, actions.reindex_command, command=True),
    Route(actions.CMD_STATUS, actions.status_command, command=True),
    Route(acceptance.ACCEPT_COMMAND, acceptance.accept_command, command=True),
)

DEBUG_ROUTES: tuple[Route, ...] = (
    Route(wire.DEBUG_DOCUMENT, debug.debug_document),
    Route(wire.DEBUG_LAST_PROMPT, debug.debug_last_prompt),
    Route(wire.DEBUG_FAULT, debug.debug_fault),
)
"""Only with ``LSP_LLM_DEBUG=1`` (they expose document text; see handlers/debug.py)."""


def routes() -> tuple[Route, ...]:
    if debug.enabled():
        log.warning("%s=1: debug requests are enabled (they expose document text)", debug.DEBUG_ENV)
        return ROUTES + DEBUG_ROUTES
    return ROUTES


def _as_command(handler: Callable[..., Any]) -> Callable[..., Any]:
    """A command handler as pygls registers it: ``(ls, *args)`` with annotations that resolve
    here. pygls structures command arguments by the handler's type hints (``get_type_hints``,
    which fails on names imported only for type checking); ours take the arguments as sent
    (LSPAny) and read them leniently themselves."""
    if inspect.iscoroutinefunction(handler):

        async def run_async(ls: LlmServer, *args: Any) -> Any:
            return await handler(ls, *args)

        return run_async

    def run(ls: LlmServer, *args: Any) -> Any:
        return handler(ls, *args)

    return run


def create_server(shared: Shared) -> LlmServer:
    """A new session with every route registered."""
    server = LlmServer(shared)
    for route in routes():
        if route.command:
            server.command(route.method)(_as_command(route.handler))
        elif route.options is not None:
            server.feature(route.method, route.options)(route.handler)
        else:
            server.feature(route.method)(route.handler)
    return server
