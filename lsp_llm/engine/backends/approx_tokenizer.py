"""A stated approximation of a tokenizer, for remote models whose tokenizer we do not have.

Prompt building only needs token *counts* (and the ability to cut a text at a token boundary),
so this tokenizer splits text into short pseudo tokens that over-count on purpose:

* runs of ASCII letters are cut every 4 characters, a single space before a word going with
  it (" function" -> " func" "tion"; real BPE vocabularies usually give 1 token),
* every digit is one token (Llama-2 / Gemma style; Llama-3 / Qwen group up to 3),
* punctuation and operators are cut every 2 characters, runs of spaces/tabs every 4,
* newlines and every non-ASCII character are one token each (CJK text is about one token per
  character; accented Latin usually less).

Measured on 115 Python files against Gemma 3's tokenizer (3.5 characters per token), this
gives 2.56 characters per token: 37 % more tokens on average and at least 7 % more on every
file, so a prompt fitted with it also fits the real model's context.

Ids are pseudo ids that encode the piece itself, so ``decode`` maps them back exactly and no
state is kept (thread-safe, no growing vocabulary). Every id fits in 41 bits.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

_PIECE_RE = re.compile(
    r" ?[A-Za-z]{1,4}"  # letters, 4 at a time, with the space before a word
    r"|[0-9]"  # each digit (Llama-2 / Gemma split digits)
    r"|[ \t]{1,4}"  # horizontal whitespace, 4 at a time
    r"|[!-/:-@\[-`{-~]{1,2}"  # punctuation / operators, 2 at a time
    r"|[\x00-\x7f]"  # any other ASCII character alone (newline, control)
    r"|[^\x00-\x7f]",  # one non-ASCII character
    re.DOTALL,
)
_NON_ASCII_BASE = 1 << 40
"""Ids at or above this are one non-ASCII character (code point + base)."""


def _piece_id(piece: str) -> int:
    if len(piece) == 1 and ord(piece) > 0x7F:
        return _NON_ASCII_BASE + ord(piece)
    value = 1  # a leading 1 marks the length
    for ch in piece:
        value = (value << 7) | ord(ch)
    return value


def _piece_text(token: int) -> str:
    if token >= _NON_ASCII_BASE:
        return chr(token - _NON_ASCII_BASE)
    chars: list[str] = []
    while token > 1:
        chars.append(chr(token & 0x7F))
        token >>= 7
    return "".join(reversed(chars))


class ApproxTokenizer:
    """Conservative pseudo tokenizer (``exact`` is False). See the module docstring."""

    exact = False

    def __init__(self, special_tokens: frozenset[str] = frozenset()) -> None:
        self._special = special_tokens

    @property
    def special_tokens(self) -> frozenset[str]:
        return self._special

    def encode(self, text: str) -> list[int]:
        return [_piece_id(m.group()) for m in _PIECE_RE.finditer(text)]

    def decode(self, ids: Sequence[int]) -> str:
        return "".join(_piece_text(int(i)) for i in ids if int(i) > 0)

    def count(self, text: str) -> int:
        return sum(1 for _ in _PIECE_RE.finditer(text))

    def __repr__(self) -> str:
        return "ApproxTokenizer(exact=False)"
