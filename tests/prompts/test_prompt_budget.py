"""Token budgeting with a real byte-level BPE tokenizer (trained in conftest)."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from lsp_llm.context.types import ContextSnippet
from lsp_llm.engine.backends.base import TokenizerLike
from lsp_llm.prompts.budget import (
    CHARS_PER_TOKEN_CAP,
    PromptBudget,
    count_tokens,
    fit_completion,
    fit_prefix,
    fit_suffix,
    pack_snippets,
)

CODE = "".join(
    f"def handler_{i}(request, *args):\n    value = request.get('k{i}', {i})\n"
    f"    return {{'id': {i}, 'value': value}}\n\n"
    for i in range(40)
)
UNICODE = "# 注释：处理数据 😀🎉\nname = '名前' + \"ünïcødé\"  # ✓ 👩‍💻\n" * 20


class RecordingTokenizer:
    """Wraps a tokenizer and records the longest text it was asked to encode."""

    def __init__(self, inner: TokenizerLike) -> None:
        self.inner = inner
        self.longest = 0

    def encode(self, text: str) -> list[int]:
        self.longest = max(self.longest, len(text))
        return self.inner.encode(text)

    def decode(self, ids: Sequence[int]) -> str:
        return self.inner.decode(ids)

    @property
    def special_tokens(self) -> frozenset[str]:
        return frozenset()

    @property
    def exact(self) -> bool:
        return True


@pytest.mark.parametrize("max_tokens", [1, 2, 7, 30, 100, 250])
@pytest.mark.parametrize("text", [CODE, UNICODE], ids=["code", "unicode"])
def test_fit_prefix_keeps_end_within_budget(bpe, text: str, max_tokens: int) -> None:
    fitted = fit_prefix(text, bpe, max_tokens)
    assert text.endswith(fitted)
    assert count_tokens(fitted, bpe) <= max_tokens
    assert "\ufffd" not in fitted
    if max_tokens >= 30:
        assert len(fitted) > 0


@pytest.mark.parametrize("max_tokens", [1, 2, 7, 30, 100, 250])
@pytest.mark.parametrize("text", [CODE, UNICODE], ids=["code", "unicode"])
def test_fit_suffix_keeps_start_within_budget(bpe, text: str, max_tokens: int) -> None:
    fitted = fit_suffix(text, bpe, max_tokens)
    assert text.startswith(fitted)
    assert count_tokens(fitted, bpe) <= max_tokens
    assert "\ufffd" not in fitted
    if max_tokens >= 30:
        assert len(fitted) > 0


def test_fit_prefix_uses_most_of_the_budget(bpe) -> None:
    fitted = fit_prefix(CODE, bpe, 200)
    assert count_tokens(fitted, bpe) >= 170  # only a line boundary's worth may be lost


def test_fit_prefix_prefers_line_start(bpe) -> None:
    fitted = fit_prefix(CODE, bpe, 200)
    start = len(CODE) - len(fitted)
    assert CODE[start - 1] == "\n"


def test_fit_suffix_prefers_line_end(bpe) -> None:
    fitted = fit_suffix(CODE, bpe, 200)
    assert fitted.endswith("\n")


def test_fit_whole_text_unchanged(bpe) -> None:
    text = "x = 1\ny = 2"
    assert fit_prefix(text, bpe, 1000) == text
    assert fit_suffix(text, bpe, 1000) == text


@pytest.mark.parametrize("max_tokens", [0, -5])
def test_fit_nothing(bpe, max_tokens: int) -> None:
    assert fit_prefix(CODE, bpe, max_tokens) == ""
    assert fit_suffix(CODE, bpe, max_tokens) == ""
    assert fit_prefix("", bpe, 10) == ""


def test_every_cut_of_emoji_text_fits(bpe) -> None:
    """Byte-level tokens split characters; every budget must still be honoured exactly."""
    text = "a😀b中文c👩‍💻d"
    for max_tokens in range(count_tokens(text, bpe) + 1):
        head = fit_suffix(text, bpe, max_tokens)
        tail = fit_prefix(text, bpe, max_tokens)
        assert count_tokens(head, bpe) <= max_tokens
        assert count_tokens(tail, bpe) <= max_tokens
        assert text.startswith(head) and text.endswith(tail)


def test_huge_input_is_cut_by_characters_first(bpe) -> None:
    big = "value = compute(value) + 1\n" * 800_000  # ~21 MB
    recording = RecordingTokenizer(bpe)
    fitted = fit_prefix(big, recording, 256)
    assert big.endswith(fitted) and count_tokens(fitted, bpe) <= 256
    assert recording.longest <= 256 * CHARS_PER_TOKEN_CAP
    recording.longest = 0
    fitted = fit_suffix(big, recording, 256)
    assert big.startswith(fitted) and count_tokens(fitted, bpe) <= 256
    assert recording.longest <= 256 * CHARS_PER_TOKEN_CAP


def _snippet(path: str, text: str, score: float, start_line: int = 0) -> ContextSnippet:
    return ContextSnippet(
        path=path, text=text, score=score, source="similar", start_line=start_line
    )


def test_pack_snippets_dedupes_and_orders(bpe) -> None:
    snippets = [
        _snippet("b.py", "def b():\n    return 2\n", 0.9, 1),
        _snippet("b.py", "def b_other():\n    pass\n", 0.8, 1),  # same place
        _snippet("c.py", "  def b():\n    return 2\n\n", 0.7, 5),  # same text
        _snippet("a.py", "def a():\n    return 1\n", 0.5, 3),
        _snippet("d.py", "   \n", 1.0, 0),  # blank
    ]
    packed = pack_snippets(snippets, bpe, 10_000)
    assert [(s.path, s.start_line) for s in packed] == [("a.py", 3), ("b.py", 1)]
    assert packed[1].text.startswith("def b():")


def test_pack_snippets_respects_budget_and_prefers_score(bpe) -> None:
    small = _snippet("s.py", "x = 1\n", 0.1)
    big = _snippet("big.py", CODE[:600], 0.95)
    best = _snippet("best.py", "def best():\n    return 42\n", 0.99)
    overhead = 5
    room = count_tokens(best.text, bpe) + count_tokens(small.text, bpe) + 2 * overhead + 3
    packed = pack_snippets([small, big, best], bpe, room, lambda s: overhead)
    assert {s.path for s in packed} == {"best.py", "s.py"}  # big skipped, smaller still taken
    used = sum(count_tokens(s.text, bpe) + overhead for s in packed)
    assert used <= room


def test_pack_snippets_zero_budget(bpe) -> None:
    assert pack_snippets([_snippet("a.py", "x = 1", 1.0)], bpe, 0) == []


def test_fit_completion_shares(bpe) -> None:
    snippets = [
        _snippet(f"m{i}.py", CODE[i * 200 : i * 200 + 150], 1.0 - i / 10, i) for i in range(6)
    ]
    budget = PromptBudget(total_tokens=400, suffix_share=0.25, context_share=0.3)
    prefix, suffix, packed = fit_completion(CODE, CODE, snippets, bpe, budget, fim=True)
    suffix_tokens = count_tokens(suffix, bpe)
    context_tokens = sum(count_tokens(s.text, bpe) for s in packed)
    prefix_tokens = count_tokens(prefix, bpe)
    assert suffix_tokens <= 100
    assert context_tokens <= 120
    assert prefix_tokens + suffix_tokens + context_tokens <= 400
    assert prefix_tokens >= 400 - 100 - 120 - 40  # the prefix gets the rest
    assert CODE.endswith(prefix) and CODE.startswith(suffix)


def test_fit_completion_prefix_only_has_no_suffix(bpe) -> None:
    budget = PromptBudget(total_tokens=300)
    prefix, suffix, _ = fit_completion(CODE, CODE, [], bpe, budget, fim=False)
    assert suffix == ""
    assert count_tokens(prefix, bpe) > 250  # the suffix share went to the prefix


def test_fit_completion_short_prefix_does_not_grow_the_suffix(bpe) -> None:
    """Near the top of a file the suffix keeps its share: a suffix that took the prefix's
    unused room would end somewhere else after every keystroke and make the prompt ~all
    suffix, which a prefix cache must recompute on every keystroke (issue 15)."""
    budget = PromptBudget(total_tokens=400, suffix_share=0.25)
    prefix, suffix, _ = fit_completion("x = 1\n", CODE, [], bpe, budget, fim=True)
    assert prefix == "x = 1\n"
    assert 80 <= count_tokens(suffix, bpe) <= 100
    _, suffix2, _ = fit_completion("x = 1\ny = 2\n", CODE, [], bpe, budget, fim=True)
    assert suffix2 == suffix  # typing before the cursor leaves the suffix as it was


def test_fit_completion_suffix_capped_by_lines(bpe) -> None:
    budget = PromptBudget(total_tokens=4000, suffix_share=0.5, suffix_max_lines=5)
    _, suffix, _ = fit_completion("x = 1\n", CODE, [], bpe, budget, fim=True)
    assert suffix == "".join(CODE.splitlines(keepends=True)[:5])


def test_fit_completion_reserve(bpe) -> None:
    budget = PromptBudget(total_tokens=200)
    prefix, _, _ = fit_completion(CODE, "", [], bpe, budget, fim=False, reserve_tokens=50)
    assert count_tokens(prefix, bpe) <= 150


class SkewedDecodeTokenizer(RecordingTokenizer):
    """Real encode, but ``decode`` whose length does not match the text (like SentencePiece
    dropping a leading space, or a decoder that skips special tokens)."""

    def __init__(self, inner: TokenizerLike, skew: str) -> None:
        super().__init__(inner)
        self.skew = skew

    def decode(self, ids: Sequence[int]) -> str:
        text = self.inner.decode(ids)
        if self.skew == "short":
            return text[len(text) // 2 :]
        if self.skew == "long":
            return text + "#" * 40
        return ""


@pytest.mark.parametrize("skew", ["short", "long", "empty"])
@pytest.mark.parametrize("max_tokens", [5, 60, 180])
def test_fit_verifies_with_encode_when_decode_misleads(bpe, skew: str, max_tokens: int) -> None:
    tokenizer = SkewedDecodeTokenizer(bpe, skew)
    tail = fit_prefix(CODE, tokenizer, max_tokens)
    head = fit_suffix(CODE, tokenizer, max_tokens)
    assert CODE.endswith(tail) and CODE.startswith(head)
    assert count_tokens(tail, bpe) <= max_tokens
    assert count_tokens(head, bpe) <= max_tokens
    if max_tokens >= 60:  # still a useful amount of text
        assert count_tokens(tail, bpe) >= max_tokens // 3
        assert count_tokens(head, bpe) >= max_tokens // 3
