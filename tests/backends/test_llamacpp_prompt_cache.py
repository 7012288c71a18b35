"""llama.cpp's host-memory prompt cache stays within ``promptCacheMib`` (issue 14, finding 3).

llama.cpp saves the slot's KV state to host memory whenever a new prompt replaces a different
one, and by default keeps up to 8 GiB of them: under a mix of edits and completions every request
left a state behind and the server's RSS grew without bound. The backend now caps that cache.
Observed through the model itself: a recent prompt is still restored (a few tokens prefilled),
the oldest one has been dropped (prefilled again in full).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from lsp_llm.config import Settings
from lsp_llm.engine.backends.llamacpp import LlamaCppBackend
from lsp_llm.engine.requests import GenerationRequest

pytestmark = pytest.mark.slow


def _prompt(k: int) -> str:
    """A distinct ~400-token prompt (different from its first token on)."""
    return f"# module {k}\n" + "".join(
        f"def f{k}_{i}(x):\n    return x * {i} + {k}\n\n" for i in range(24)
    )


def _prefilled(backend: LlamaCppBackend, prompt: str) -> tuple[int, int]:
    result = backend.generate(GenerationRequest(prompt=prompt, max_new_tokens=1), lambda e: None)
    assert result.finish_reason != "error", result.error
    return result.timings.prefill_tokens, result.timings.prompt_tokens


def test_prompt_cache_is_bounded_and_still_restores(embedded_gguf: Path) -> None:
    backend = LlamaCppBackend(
        Settings(context_window=1024, prompt_cache_mib=48), str(embedded_gguf), threads=1
    )
    backend.load(lambda message, fraction: None)
    try:
        for k in range(12):
            _prefilled(backend, _prompt(k))
        recent, total = _prefilled(backend, _prompt(10))
        assert total > 300
        assert recent < total // 10, "a recent prompt should come back from the prompt cache"
        oldest, total = _prefilled(backend, _prompt(0))
        assert oldest > total // 2, "the oldest state should have been dropped (48 MiB cap)"
    finally:
        backend.close()
