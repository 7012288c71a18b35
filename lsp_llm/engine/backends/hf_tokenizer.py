"""A Hugging Face tokenizer seen through :class:`TokenizerLike` (no torch import)."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any


class HFTokenizer:
    """A transformers tokenizer seen through :class:`TokenizerLike`."""

    exact = True

    def __init__(self, tok: Any) -> None:
        self.tok = tok
        specials: set[str] = set(getattr(tok, "all_special_tokens", []) or [])
        with contextlib.suppress(Exception):  # a tokenizer without added vocab
            specials.update(str(t) for t in tok.get_added_vocab())
        self._specials = frozenset(specials)

    @property
    def special_tokens(self) -> frozenset[str]:
        return self._specials

    def encode(self, text: str) -> list[int]:
        return list(self.tok.encode(text, add_special_tokens=False))

    def decode(self, ids: Sequence[int]) -> str:
        return str(self.tok.decode(list(ids), skip_special_tokens=False))

    def token_id(self, token: str) -> int | None:
        ids = self.tok.convert_tokens_to_ids([token])
        unk = getattr(self.tok, "unk_token_id", None)
        if ids and ids[0] is not None and ids[0] != unk:
            return int(ids[0])
        return None
