"""Debug-only requests for the robustness suite; registered only when ``LSP_LLM_DEBUG=1``.

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

from lsp_llm.server.app import LlmServer
from lsp_llm.server.documents import as_plain, open_document

log = logging.getLogger(__name__)

DEBUG_ENV = "LSP_LLM_DEBUG"
DEBUG_DOCUMENT = "lspLlm/debugDocument"
DEBUG_FAULT = "lspLlm/debugFault"
DEBUG_LAST_PROMPT = "lspLlm/debugLastPrompt"


def enabled() -> bool:
    return os.environ.get(DEBUG_ENV) == "1"


def _arm_oom(backend: Any) -> bool:
    """Make the backend's next forward pass fail with a real allocation error (one shot)."""
    forward = getattr(backend, "_forward", None)
    if forward is None:
        return False

    def failing_forward(*args: Any, **kwargs: Any) -> Any:
        import torch

        backend._forward = forward  # one shot: the next request runs normally
        torch.empty(1 << 50, dtype=torch.uint8)  # 1 PiB: the allocator refuses
        return forward(*args, **kwargs)

    backend._forward = failing_forward
    return True


def register(server: LlmServer) -> None:
    log.warning("%s=1: debug requests are enabled (they expose document text)", DEBUG_ENV)

    @server.feature(DEBUG_DOCUMENT)
    def debug_document(ls: LlmServer, params: Any) -> dict[str, Any] | None:
        uri = as_plain(params).get("uri") if params is not None else None
        doc = open_document(ls.workspace, uri) if isinstance(uri, str) else None
        if doc is None:
            return None
        return {"text": doc.source, "version": doc.version}

    @server.feature(DEBUG_LAST_PROMPT)
    def debug_last_prompt(ls: LlmServer, params: Any) -> dict[str, Any]:
        last = ls.last_completion
        return {"prompt": last.prompt if last is not None else None}

    @server.feature(DEBUG_FAULT)
    def debug_fault(ls: LlmServer, params: Any) -> dict[str, Any]:
        kind = as_plain(params).get("kind") if params is not None else None
        backend = ls.shared.engine.backend
        armed = kind == "oom" and backend is not None and _arm_oom(backend)
        return {"armed": bool(armed)}
