"""In-process baselines on the very model the server runs: raw loop, ``generate``, our backend.

The server and this process load the same model directory the same way (``TransformersBackend``:
same dtype, device and thread count), so the only difference left is what we measure: the LSP
layer and the engine around the model.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from benchmarks.common import timed_generate
from lsp_llm.config import Settings
from lsp_llm.context.types import ContextSnippet
from lsp_llm.engine.requests import GenerationRequest, GenerationResult


class Reference:
    """A model loaded in this process through the server's own backend class."""

    def __init__(self, settings: Settings) -> None:
        from lsp_llm.engine.backends.transformers import TransformersBackend
        from lsp_llm.engine.models import resolve_model

        self.settings = settings
        self.backend = TransformersBackend(settings, resolve_model(settings))
        self.backend.load(lambda message, fraction: None)
        self.model: Any = self.backend.model
        self.tokenizer = self.backend.tokenizer

    # -- prompts --------------------------------------------------------------------------------
    def template(self) -> Any:
        from lsp_llm.prompts.templates import TEMPLATES, detect_family

        family = detect_family(self.backend.model_name, self.tokenizer.special_tokens)
        return TEMPLATES.get(family) if family else None

    def completion_prompt(
        self,
        *,
        text: str,
        offset: int,
        path: str,
        language: str = "python",
        snippets: tuple[ContextSnippet, ...] = (),
        file: Path | None = None,
    ) -> str:
        """The prompt ``CompletionService.complete`` builds for these inputs and settings:
        the server's own ``completion_prompt``, handed these snippets. ``file`` (the
        document's real path) gives the prompt the same repository name as the server's."""
        from lsp_llm.features.completion import DocumentSnapshot, completion_prompt

        snap = DocumentSnapshot(
            uri=file.resolve().as_uri() if file is not None else "",
            path=path,
            language=language,
            version=1,
            text=text,
        )
        return completion_prompt(
            snap,
            offset,
            settings=self.settings,
            tokenizer=self.tokenizer,
            template=self.template(),
            retriever=(lambda *_: snippets) if snippets else None,
        ).text

    def retrieve(
        self, root: Path, file: Path, text: str, offset: int, index_cache: Path
    ) -> tuple[ContextSnippet, ...]:
        """The snippets the server's retriever returns (same index code, same token counter)."""
        from lsp_llm.context.index import WorkspaceIndex
        from lsp_llm.context.retrieve import retrieval_budget

        s = self.settings
        if not s.retrieval:
            return ()
        index = WorkspaceIndex(root, s, index_cache)
        index.build()
        index.set_open_document(file, text)
        return tuple(
            index.retrieve(
                file,
                text,
                offset,
                budget=retrieval_budget(s),
            )
        )

    def prompt_ids(self, prompt: str) -> list[int]:
        return self.backend.prompt_ids(GenerationRequest(prompt=prompt))

    # -- timed runs -----------------------------------------------------------------------------
    def time_generate(self, ids: list[int], new_tokens: int) -> dict[str, float]:
        """``model.generate``, greedy, exactly ``new_tokens`` tokens. Seconds."""
        n = max(1, new_tokens)
        pad = self.tokenizer.tok.eos_token_id
        t0, t1, tokens = timed_generate(self.model, ids, n, self.backend.device, pad)
        first = (tokens[0] - t0) if tokens else t1 - t0
        last = (tokens[-1] - t0) if tokens else t1 - t0
        return {"total_s": t1 - t0, "first_token_s": first, "last_token_s": last, "new_tokens": n}

    def time_raw_loop(self, ids: list[int], new_tokens: int) -> dict[str, float]:
        """The floor: prefill + ``new_tokens`` greedy steps with a DynamicCache. Seconds."""
        import torch

        backend = self.backend
        n = max(1, new_tokens)
        with torch.inference_mode():
            t0 = time.perf_counter()
            cache = backend._new_cache(static=False)
            logits = backend._forward(torch.tensor([ids], device=backend.device), cache)
            tok = logits.argmax(-1)
            t_first = time.perf_counter()
            for _ in range(n - 1):
                tok = backend._forward(tok.view(1, 1), cache).argmax(-1)
            int(tok[0])  # sync
            t1 = time.perf_counter()
        return {"total_s": t1 - t0, "first_token_s": t_first - t0, "last_token_s": t1 - t0}

    def time_backend(
        self, prompt: str, new_tokens: int
    ) -> tuple[dict[str, float], GenerationResult]:
        """Our own decode loop (``TransformersBackend.generate``) without the LSP layer."""
        self.backend.prefix_cache_enabled = False
        self.backend._cache, self.backend._cache_ids = None, []
        request = GenerationRequest(prompt=prompt, max_new_tokens=max(1, new_tokens))
        t0 = time.perf_counter()
        result = self.backend.generate(request, lambda event: None)
        t1 = time.perf_counter()
        return {"total_s": t1 - t0, "first_token_s": result.timings.first_token_s}, result

    def close(self) -> None:
        self.backend.close()
