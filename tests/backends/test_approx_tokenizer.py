"""The approximate tokenizer: reversible pseudo ids and conservative counts."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from lsp_llm.engine.backends import approx_tokenizer
from lsp_llm.engine.backends.approx_tokenizer import ApproxTokenizer
from lsp_llm.engine.backends.base import TokenizerLike

from .conftest import LlamaServerHandle

SAMPLES = [
    "",
    "def fibonacci(n: int) -> int:\n    return n if n < 2 else fibonacci(n - 1)\n",
    "    \t\t  mixed   whitespace\r\n\n",
    "naïve café — 日本語のテキスト 🙂 and emoji",
    "x = 1234567890 + 0.5e-10; y = a[i] != b[j] && c || d",
    "<|fim_prefix|>left<|fim_suffix|>right<|fim_middle|>",
]


@pytest.mark.parametrize("text", SAMPLES)
def test_round_trip_and_small_ids(text: str) -> None:
    tok = ApproxTokenizer()
    ids = tok.encode(text)
    assert tok.decode(ids) == text
    assert all(0 < i < 1 << 41 for i in ids)
    assert tok.count(text) == len(ids)
    # Cutting at any token boundary gives a prefix of the text.
    for k in range(len(ids) + 1):
        assert text.startswith(tok.decode(ids[:k]))


def test_protocol_and_flags() -> None:
    tok = ApproxTokenizer()
    assert isinstance(tok, TokenizerLike)
    assert tok.exact is False
    assert tok.special_tokens == frozenset()
    assert "exact=False" in repr(tok)


def test_over_counts_code() -> None:
    code = Path(__file__).read_text() + Path(approx_tokenizer.__file__).read_text()
    tok = ApproxTokenizer()
    ratio = len(code) / len(tok.encode(code))
    assert 2.2 < ratio < 3.2, ratio  # Gemma 3: ~3.5 characters per token of Python


@pytest.mark.slow
def test_never_under_counts_the_real_tokenizer(llamacpp_server: LlamaServerHandle) -> None:
    """Against Gemma 3's real (llama.cpp) tokenizer, the estimate is never lower."""
    tok = ApproxTokenizer()
    texts = [*SAMPLES[1:], Path(__file__).read_text()]
    for text in texts:
        real = httpx.post(
            f"{llamacpp_server.root_url}/tokenize", json={"content": text}, timeout=30
        ).json()["tokens"]
        assert len(tok.encode(text)) >= len(real), text[:40]
