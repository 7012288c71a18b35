"""Debug-only requests for the robustness suite; routed only when ``LSP_LLM_DEBUG=1``.

* ``lspLlm/debugDocument`` ``{uri}`` -> ``{text, version}`` (or null when the document is not
  open): the server's own view of a document, to check incremental edits against a reference.
* ``lspLlm/debugLastPrompt`` -> ``{prompt}``: the prompt of this session's last completion
  (to check that secrets never reach the model).
* ``lspLlm/debugFault`` ``{kind: "oom"}`` -> ``{armed: bool}``: the next generation on the
  transformers backend makes a real, impossible tensor allocation inside its forward pass, so
  the out-of-memory path (classification, cache reset, -32803 answer) runs for real.

These expose workspace text, so they are never available in normal use.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from lsp_llm.engine.faults import arm_allocation_failure
from lsp_llm.server import wire
from lsp_llm.server.documents import open_document
from lsp_llm.server.session import LlmServer

log = logging.getLogger(__name__)

DEBUG_ENV = "LSP_LLM_DEBUG"
DEBUG_DOCUMENT = wire.DEBUG_DOCUMENT
DEBUG_FAULT = wire.DEBUG_FAULT
DEBUG_LAST_PROMPT = wire.DEBUG_LAST_PROMPT


def enabled() -> bool:
    return os.environ.get(DEBUG_ENV) == "1"


def debug_document(ls: LlmServer, params: wire.DebugDocumentParams) -> dict[str, Any] | None:
    uri = params.uri
    doc = open_document(ls.workspace, uri) if isinstance(uri, str) else None
    if doc is None:
        return None
    return {"text": doc.source, "version": doc.version}


def debug_last_prompt(ls: LlmServer, params: Any) -> dict[str, Any]:
    last = ls.last_completion
    return {"prompt": last.prompt if last is not None else None}


def debug_fault(ls: LlmServer, params: wire.DebugFaultParams) -> dict[str, Any]:
    backend = ls.shared.engine.backend
    armed = params.kind == "oom" and backend is not None and arm_allocation_failure(backend)
    return {"armed": bool(armed)}
