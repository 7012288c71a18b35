"""Fault injection for tests (``LSP_LLM_DEBUG=1`` only): real failures inside the engine, so the
robustness tests see what users would. Lives in the engine because only the engine touches
torch (the import contracts in ``pyproject.toml``)."""

from __future__ import annotations

from typing import Any


def arm_allocation_failure(backend: Any) -> bool:
    """Make the backend's next forward pass fail with a real allocation error (one shot).
    ``_forward`` is the transformers backend's own step; this test hook swaps it on purpose.
    False when the backend has no such step (llama.cpp, a remote server)."""
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
