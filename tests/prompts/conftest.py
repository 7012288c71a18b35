"""Fixtures for prompt tests: a real (tiny, trained here) BPE tokenizer and golden files.

Set ``UPDATE_GOLDEN=1`` to rewrite the golden files instead of comparing against them.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from lsp_llm.engine.backends.base import TokenizerLike

GOLDEN_DIR = Path(__file__).parent / "golden"

SPECIAL_TOKENS = [
    "<|endoftext|>",
    "<fim_prefix>",
    "<fim_suffix>",
    "<fim_middle>",
    "<fim_pad>",
    "<file_sep>",
    "<repo_name>",
    "<|fim_prefix|>",
    "<|fim_suffix|>",
    "<|fim_middle|>",
    "<|fim_pad|>",
    "<|file_sep|>",
    "<|repo_name|>",
    "<|im_end|>",
    "<｜fim▁begin｜>",
    "<｜fim▁hole｜>",
    "<｜fim▁end｜>",
    "<｜end▁of▁sentence｜>",
    "<PRE>",
    "<SUF>",
    "<MID>",
    "<EOT>",
    "[PREFIX]",
    "[SUFFIX]",
]

_CORPUS = [
    '''import os
import sys


def read_config(path: str) -> dict[str, str]:
    """Read a key=value file."""
    result: dict[str, str] = {}
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            key, _, value = line.partition("=")
            result[key.strip()] = value.strip()
    return result


class Cache:
    def __init__(self, size: int = 128) -> None:
        self.size = size
        self.items: dict[str, object] = {}

    def get(self, key: str) -> object | None:
        return self.items.get(key)

    def put(self, key: str, value: object) -> None:
        if len(self.items) >= self.size:
            self.items.pop(next(iter(self.items)))
        self.items[key] = value
''',
    """export function debounce(fn, wait) {
  let timer = null;
  return function (...args) {
    if (timer !== null) {
      clearTimeout(timer);
    }
    timer = setTimeout(() => {
      timer = null;
      fn.apply(this, args);
    }, wait);
  };
}

const items = [1, 2, 3].map((x) => x * 2).filter((x) => x > 2);
console.log(items.length, JSON.stringify({ a: 1, b: [2, 3] }));
""",
]


class HFTokenizer:
    """A ``tokenizers.Tokenizer`` behind the ``TokenizerLike`` protocol."""

    def __init__(self, tokenizer: Tokenizer) -> None:
        self._tokenizer = tokenizer
        self.calls = 0

    def encode(self, text: str) -> list[int]:
        self.calls += 1
        return list(self._tokenizer.encode(text, add_special_tokens=False).ids)

    def decode(self, ids: Sequence[int]) -> str:
        return str(self._tokenizer.decode(list(ids), skip_special_tokens=False))

    @property
    def special_tokens(self) -> frozenset[str]:
        return frozenset(SPECIAL_TOKENS)

    @property
    def exact(self) -> bool:
        return True


class CharTokenizer:
    """One token per character: token counts equal string lengths."""

    def encode(self, text: str) -> list[int]:
        return [ord(c) for c in text]

    def decode(self, ids: Sequence[int]) -> str:
        return "".join(chr(i) for i in ids)

    @property
    def special_tokens(self) -> frozenset[str]:
        return frozenset()

    @property
    def exact(self) -> bool:
        return True


def train_bpe(vocab_size: int = 400) -> Tokenizer:
    """A byte-level BPE trained on a few lines of Python and JavaScript (milliseconds)."""
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(_CORPUS * 4, trainer=trainer)
    return tokenizer


@pytest.fixture(scope="session")
def bpe() -> HFTokenizer:
    tokenizer = HFTokenizer(train_bpe())
    assert isinstance(tokenizer, TokenizerLike)
    return tokenizer


@pytest.fixture(scope="session")
def chars() -> CharTokenizer:
    return CharTokenizer()


@pytest.fixture(scope="session")
def golden() -> Callable[[str, str], None]:
    """``golden(name, text)``: compare with tests/prompts/golden/<name> (or rewrite it)."""

    def check(name: str, text: str) -> None:
        path = GOLDEN_DIR / name
        if os.environ.get("UPDATE_GOLDEN") == "1":
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(text.encode("utf-8"))
            return
        assert path.exists(), f"missing golden file {path}; run with UPDATE_GOLDEN=1"
        expected = path.read_bytes().decode("utf-8")
        assert text == expected, f"{name} differs from its golden file (UPDATE_GOLDEN=1 rewrites)"

    return check
