"""Code actions and commands (explain, docstring, reindex, status, acceptance)."""

from __future__ import annotations

from lsp_llm.server.app import LlmServer


def register(server: LlmServer) -> None:
    """Filled in by the explain/docstring work."""
