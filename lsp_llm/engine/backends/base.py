"""The small interface every model backend implements.

A backend is used from exactly one thread (the engine's worker). ``load`` and ``generate``
block; ``generate`` must check ``request.cancel.cancelled`` (and ``request.should_stop``) between
decode steps and return within one step of either, with ``finish_reason`` "cancelled" / "stop".
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol, runtime_checkable

from lsp_llm.engine.requests import ChatMessage, GenerationRequest, GenerationResult, TokenEvent

ProgressFn = Callable[[str, "float | None"], None]
"""(message, fraction 0..1 or None) - reported while loading."""
EmitFn = Callable[[TokenEvent], None]


class BackendError(RuntimeError):
    """A failure with a message meant for the user (load failures, remote errors)."""


class OutOfMemory(BackendError):
    """The device ran out of memory for this request; the next one may still work."""


@runtime_checkable
class TokenizerLike(Protocol):
    """What prompt building needs from a tokenizer."""

    def encode(self, text: str) -> list[int]: ...

    def decode(self, ids: Sequence[int]) -> str: ...

    @property
    def special_tokens(self) -> frozenset[str]:
        """Every special / added token string (used to detect the FIM family)."""
        ...

    @property
    def exact(self) -> bool:
        """False when this is an approximation (remote model without a local tokenizer)."""
        ...


class Backend(Protocol):
    name: str
    """"transformers", "llamacpp" or "openai"."""
    model_name: str
    device: str
    dtype: str

    def load(self, progress: ProgressFn) -> None: ...

    @property
    def tokenizer(self) -> TokenizerLike: ...

    def render_chat(self, messages: Sequence[ChatMessage]) -> str | None:
        """The model's chat template applied (generation prompt added), or None without one."""
        ...

    def generate(self, request: GenerationRequest, emit: EmitFn) -> GenerationResult: ...

    def close(self) -> None: ...
