"""Start ``lsp-llm`` with every tokenizer and chat-template call recorded (for test_off_loop).

``python -m tests.features.loop_probe serve ...`` runs the real server after wrapping the
backends' ``encode`` / ``decode`` / ``render_chat``. Each call appends one line to the file named
by ``LSP_LLM_LOOP_PROBE``: ``loop <method>`` when it ran on a thread with a running asyncio event
loop (the server's loop: it must never block on the model), ``off <method>`` otherwise.
"""

from __future__ import annotations

import asyncio
import functools
import os
import sys
import threading
from collections.abc import Callable
from typing import Any

_lock = threading.Lock()


def _record(method: str) -> None:
    try:
        asyncio.get_running_loop()
        where = "loop"
    except RuntimeError:
        where = "off"
    with _lock, open(os.environ["LSP_LLM_LOOP_PROBE"], "a", encoding="utf-8") as out:
        out.write(f"{where} {method}\n")


def _wrap(owner: type, name: str) -> None:
    original: Callable[..., Any] = getattr(owner, name)

    @functools.wraps(original)
    def recorded(self: Any, *args: Any, **kwargs: Any) -> Any:
        _record(f"{owner.__name__}.{name}")
        return original(self, *args, **kwargs)

    setattr(owner, name, recorded)


def install() -> None:
    from lsp_llm.engine.backends.hf_tokenizer import HFTokenizer
    from lsp_llm.engine.backends.llamacpp import LlamaCppBackend, LlamaServerTokenizer
    from lsp_llm.engine.backends.transformers import TransformersBackend

    for owner, names in (
        (HFTokenizer, ("encode", "decode")),
        (LlamaServerTokenizer, ("encode", "decode")),
        (TransformersBackend, ("render_chat",)),
        (LlamaCppBackend, ("render_chat",)),
    ):
        for name in names:
            _wrap(owner, name)


if __name__ == "__main__":
    install()
    from lsp_llm.cli import main

    sys.exit(main(sys.argv[1:]))
