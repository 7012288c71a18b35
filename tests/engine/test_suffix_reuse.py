"""Reuse of the cached suffix after an edit in the prefix (transformers backend, RoPE models).

A keystroke at the end of a FIM prefix changes a few tokens in the middle of the prompt; the
suffix after them is the same text one or two positions further on. The backend reuses its K/V
from the kept cache with the keys re-rotated to the new positions, and prefills only the
changed tokens. Driven on real random-weight Qwen2 models (1 and 2 layers) with a BPE
tokenizer that has Qwen's FIM tokens.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from benchmarks.tiny_models import build_tiny_model
from lsp_llm.config import Settings
from lsp_llm.engine.backends.transformers import (
    _MAX_SHIFTS,
    Chunk,
    TransformersBackend,
    _decoder_layers,
    plan_chunks,
    rope_inv_freq,
    shift_rope,
)
from lsp_llm.engine.models import resolve_model
from lsp_llm.engine.requests import CancelToken, GenerationRequest, GenerationResult, TokenEvent

HEAD = "import os\n\n"
TYPED = "def total(values):\n"
SUFFIX = "".join(
    f"def helper_{i}(x, y):\n    result = x * {i} + y\n    return result\n\n" for i in range(12)
)


def psm(prefix: str, suffix: str = SUFFIX) -> str:
    return f"<|fim_prefix|>{prefix}<|fim_suffix|>{suffix}<|fim_middle|>"


def _variant(src: Path, dst: Path, **overrides: Any) -> Path:
    """A copy of the model directory ``src`` (same tokenizer) with a changed config and new
    random weights."""
    from transformers import AutoConfig, AutoModelForCausalLM

    if (dst / "config.json").is_file():
        return dst
    shutil.copytree(src, dst)
    config = AutoConfig.from_pretrained(src, **overrides)
    torch.manual_seed(1)
    AutoModelForCausalLM.from_config(config).save_pretrained(dst)
    return dst


@pytest.fixture(scope="module")
def qwen_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model(
        tmp_path_factory.mktemp("qwen2") / "model", arch="qwen2", fim="qwen", layers=2
    )


@pytest.fixture(scope="module")
def qwen1_dir(qwen_dir: Path) -> Path:
    """One decoder layer: its K/V depend on the token and its position only, never on the
    text in front of it, so reusing shifted K/V is exact, not an approximation."""
    return _variant(
        qwen_dir,
        qwen_dir.with_name("one-layer"),
        num_hidden_layers=1,
        layer_types=["full_attention"],
    )


def _load(model_dir: Path, **settings: Any) -> TransformersBackend:
    s = Settings(model=str(model_dir), backend="transformers", device="cpu", **settings)
    backend = TransformersBackend(s, resolve_model(s))
    backend.load(lambda _message, _fraction: None)
    return backend


@pytest.fixture(scope="module")
def qwen(qwen_dir: Path) -> Iterator[TransformersBackend]:
    backend = _load(qwen_dir, fast_path="off")
    yield backend
    backend.close()


def _run(backend: TransformersBackend, prompt: str, n: int = 8) -> GenerationResult:
    events: list[TokenEvent] = []
    return backend.generate(GenerationRequest(prompt=prompt, max_new_tokens=n), events.append)


def _fresh(backend: TransformersBackend, prompt: str, n: int = 8) -> GenerationResult:
    """``prompt`` from an empty cache; the kept cache is put back afterwards."""
    kept = (backend._cache, backend._cache_ids, backend._cache_ages)
    backend._cache, backend._cache_ids, backend._cache_ages = None, [], []
    try:
        return _run(backend, prompt, n)
    finally:
        backend._cache, backend._cache_ids, backend._cache_ages = kept


def _changed_tokens(backend: TransformersBackend, old: str, new: str) -> int:
    """Tokens of ``new`` from the first difference to ``old`` up to the suffix marker."""
    a = backend.prompt_ids(GenerationRequest(prompt=old))
    b = backend.prompt_ids(GenerationRequest(prompt=new))
    common = 0
    while common < min(len(a), len(b)) and a[common] == b[common]:
        common += 1
    marker = backend.tokenizer.token_id("<|fim_suffix|>")
    assert marker is not None
    return b.index(marker) - common


def _type(backend: TransformersBackend, text: str, start: int = 1) -> list[tuple[int, int, int]]:
    """Type ``text`` one character at a time: (prefill tokens, changed tokens, prompt tokens)
    for every keystroke after the first, starting from an empty cache."""
    backend._cache, backend._cache_ids, backend._cache_ages = None, [], []
    out = []
    prev = psm(HEAD + text[:start])
    _run(backend, prev, n=4)
    for i in range(start + 1, len(text) + 1):
        prompt = psm(HEAD + text[:i])
        result = _run(backend, prompt, n=4)
        out.append(
            (
                result.timings.prefill_tokens,
                _changed_tokens(backend, prev, prompt),
                result.timings.prompt_tokens,
            )
        )
        prev = prompt
    return out


# -- the plan: which chunks are reused --------------------------------------------------------


def test_plan_finds_the_suffix_after_an_insertion_and_never_the_last_token() -> None:
    old = [1, 2, 3, *list(range(100, 180)), 9]
    new = [1, 2, 3, 7, 7, *list(range(100, 180)), 9]
    assert plan_chunks(old, new, 3, 64) == [Chunk(new_start=5, old_start=3, length=80)]
    # The suffix shortened at its far end by the prompt budget: still reused, up to there.
    shorter = [1, 2, 3, 7, *list(range(100, 170)), 9]
    assert plan_chunks(old, shorter, 3, 64) == [Chunk(new_start=4, old_start=3, length=70)]
    # A deletion: the chunk moves back. The last token (whose logits start the answer) stays
    # out even when it matches.
    deleted = [1, 2, 3, *list(range(110, 180)), 9]
    assert plan_chunks(old, deleted, 3, 64) == [Chunk(new_start=3, old_start=13, length=70)]


def test_plan_skips_chunks_below_the_minimum_and_when_off() -> None:
    old = [1, *list(range(100, 150)), 9]
    new = [1, 7, *list(range(100, 150)), 9]
    assert plan_chunks(old, new, 1, 64) == []  # 50 tokens < 64
    assert plan_chunks(old, new, 1, 32) == [Chunk(new_start=2, old_start=1, length=50)]
    assert plan_chunks(old, new, 1, 0) == []


# -- (a) the re-rotation is exact ------------------------------------------------------------


@pytest.mark.parametrize("delta", [1, 7, -3, 500])
def test_rotated_keys_equal_the_keys_the_model_computes_at_the_new_positions(
    qwen: TransformersBackend, delta: int
) -> None:
    """The same tokens run at positions p.. and at p+delta.. (the same text in front, so the
    same hidden states in every layer): re-rotating the first run's keys by delta gives the
    second run's keys in every layer; the values are equal as they are."""
    from transformers import DynamicCache

    assert qwen._inv_freq is not None, "chunk reuse is on for Qwen2"
    ids = torch.tensor([qwen.tokenizer.encode(SUFFIX)[:48]])
    start = 10

    def run(offset: int) -> Any:
        cache = DynamicCache(config=qwen.model.config)
        positions = torch.arange(offset, offset + ids.shape[1]).unsqueeze(0)
        with torch.inference_mode():
            qwen.model(
                input_ids=ids, position_ids=positions, use_cache=True, **{qwen._cache_kw: cache}
            )
        return cache

    a, b = run(start), run(start + delta)
    assert len(a.layers) == 2
    for la, lb in zip(a.layers, b.layers, strict=True):
        assert not torch.allclose(la.keys, lb.keys, atol=1e-3)  # RoPE does move them
        torch.testing.assert_close(shift_rope(la.keys, delta, qwen._inv_freq), lb.keys)
        torch.testing.assert_close(la.values, lb.values)


# -- (b) prefill per keystroke drops to the changed part -------------------------------------


def test_typing_before_a_long_suffix_prefills_only_the_changed_tokens(
    qwen: TransformersBackend,
) -> None:
    steps = _type(qwen, TYPED[:12])
    assert len(steps) == 11 < _MAX_SHIFTS
    for prefill, changed, prompt in steps:
        # The changed prefix tokens plus the final <|fim_middle|>; the suffix (~300 tokens)
        # comes from the kept cache.
        assert prefill == changed + 1, steps
        assert prefill < prompt / 20, steps


def test_the_suffix_is_recomputed_after_max_shifts(qwen: TransformersBackend) -> None:
    """Shifted K/V were computed against older text in front of them; after ``_MAX_SHIFTS``
    shifts the suffix is computed afresh (and then reused again)."""
    text = (TYPED + "    return sum(values)\n") * 2
    steps = _type(qwen, text[: _MAX_SHIFTS + 6])
    # steps[i] is the (i+1)-th shift of the suffix: shifts 1.._MAX_SHIFTS reuse it.
    full = [i for i, (prefill, changed, _) in enumerate(steps) if prefill > changed + 1]
    assert full == [_MAX_SHIFTS], steps
    assert steps[_MAX_SHIFTS][0] > 300


def test_reuse_off_prefills_the_whole_suffix_again(qwen_dir: Path) -> None:
    backend = _load(qwen_dir, fast_path="off", cache_reuse=0)
    try:
        for prefill, changed, _ in _type(backend, TYPED[:6]):
            assert prefill > changed + 200  # the suffix again, every keystroke
    finally:
        backend.close()


def test_the_static_cache_reuses_the_suffix_too(qwen_dir: Path, qwen: TransformersBackend) -> None:
    """The static cache (fastPath, default on CUDA) takes the same shifted chunks and gives the
    same completions as the dynamic cache with the same reuse."""
    static = _load(qwen_dir, fast_path="static")
    try:
        assert static.fast_path == "static"
        qwen._cache, qwen._cache_ids, qwen._cache_ages = None, [], []
        prompts = [psm(HEAD + TYPED[:i]) for i in range(3, 9)]
        for prompt in prompts:
            got, want = _run(static, prompt), _run(qwen, prompt)
            assert got.timings.prefill_tokens == want.timings.prefill_tokens
            assert got.text == want.text
        assert static._cache is static._static
        assert got.timings.prefill_tokens < got.timings.prompt_tokens / 20, got.timings
    finally:
        static.close()


# -- (c) the output: exact with one layer, reported with two ---------------------------------


def _prefill_logits(backend: TransformersBackend, prompt: str) -> tuple[torch.Tensor, int]:
    """The last position's logits through the backend's own prefill (prefix and chunk reuse
    of the kept cache), and how many tokens were computed; the cache is kept as generate
    keeps it."""
    ids = backend.prompt_ids(GenerationRequest(prompt=prompt))
    with torch.inference_mode():
        cache, reused, splices = backend._prepare_cache(ids, static=False)
        head = backend._kept_ages()[:reused]
        logits, ages = backend._prefill(ids, head, splices, cache, CancelToken())
    backend._keep(cache, ids, ages)
    return logits, len(ids) - reused - sum(s.length for s in splices)


def _fresh_logits(backend: TransformersBackend, prompt: str) -> torch.Tensor:
    ids = backend.prompt_ids(GenerationRequest(prompt=prompt))
    with torch.inference_mode():
        return backend.model(input_ids=torch.tensor([ids]), use_cache=False).logits[:, -1, :]


def test_with_one_layer_reuse_is_exact(qwen1_dir: Path) -> None:
    backend = _load(qwen1_dir, fast_path="off")
    try:
        prev = psm(HEAD + "def t")
        _run(backend, prev)
        for prefix in ("def to", "def tot", "def tota", "def total("):
            prompt = psm(HEAD + prefix)
            logits, computed = _prefill_logits(backend, prompt)
            assert computed <= 4, "the suffix came from the cache"
            torch.testing.assert_close(logits, _fresh_logits(backend, prompt))
        # And a whole completion with reuse is the fresh one.
        prompt = psm(HEAD + "def total(v")
        warm = _run(backend, prompt, n=12)
        assert warm.timings.prefill_tokens <= 4
        assert warm.text == _fresh(backend, prompt, n=12).text
    finally:
        backend.close()


def test_with_two_layers_reuse_is_close(
    qwen_dir: Path, qwen: TransformersBackend, capsys: pytest.CaptureFixture[str]
) -> None:
    """Two layers: the second layer's shifted K/V saw the older prefix, so the logits are
    approximate. Reported, with the greedy completions; asserted only to stay close."""
    qwen._cache, qwen._cache_ids, qwen._cache_ages = None, [], []
    _run(qwen, psm(HEAD + "def tota"))
    prompt = psm(HEAD + "def total")
    logits, computed = _prefill_logits(qwen, prompt)
    fresh = _fresh_logits(qwen, prompt)
    diff = float((logits - fresh).abs().max())
    scale = float(fresh.abs().max())
    qwen._cache, qwen._cache_ids, qwen._cache_ages = None, [], []
    _run(qwen, psm(HEAD + "def tota"), n=16)
    warm = _run(qwen, prompt, n=16)
    cold = _fresh(qwen, prompt, n=16)
    with capsys.disabled():
        print(
            f"\n2-layer Qwen2, one keystroke: computed {computed} tokens, "
            f"max |logit diff| {diff:.4f} (max |logit| {scale:.2f}); "
            f"greedy with reuse {warm.text!r}, without {cold.text!r}"
        )
    assert computed <= 4
    assert diff < 0.1 * scale


def test_cancel_during_the_changed_middle_keeps_only_the_common_head(
    qwen: TransformersBackend,
) -> None:
    """A cancel while the middle is computed (before the suffix is spliced in) stops that pass
    after its first layer; the kept cache is the common head, exactly, and the next request
    gives what a fresh run gives."""
    qwen._cache, qwen._cache_ids, qwen._cache_ages = None, [], []
    _run(qwen, psm(HEAD + "def t"))
    prompt = psm(HEAD + "def to")
    req = GenerationRequest(prompt=prompt, max_new_tokens=8)

    def cancel(_module: Any, _args: Any) -> None:
        req.cancel.cancel("user")

    handle = _decoder_layers(qwen.model)[0].register_forward_pre_hook(cancel)
    try:
        assert qwen.generate(req, lambda _e: None).finish_reason == "cancelled"
    finally:
        handle.remove()
    kept = len(qwen._cache_ids)
    assert 0 < kept < 10  # the common head only, not the suffix
    assert qwen._cache.get_seq_length() == kept == len(qwen._cache_ages)
    assert _run(qwen, prompt).text == _fresh(qwen, prompt).text


# -- (d) only where it is right: RoPE, no sliding window -------------------------------------


def test_sliding_window_models_do_not_reuse_shifted_chunks(qwen_dir: Path) -> None:
    sliding = _variant(
        qwen_dir,
        qwen_dir.with_name("sliding"),
        use_sliding_window=True,
        sliding_window=32,
        max_window_layers=0,
        layer_types=["sliding_attention", "sliding_attention"],
    )
    backend = _load(sliding, fast_path="off")
    try:
        assert backend._inv_freq is None
        for prefill, changed, _ in _type(backend, TYPED[:4]):
            assert prefill > changed + 200
    finally:
        backend.close()


def test_models_without_rope_or_with_sliding_layers_are_refused() -> None:
    from transformers import AutoModelForCausalLM, Gemma3TextConfig, GPT2Config

    gpt2 = AutoModelForCausalLM.from_config(
        GPT2Config(
            vocab_size=64,
            n_embd=32,
            n_layer=1,
            n_head=2,
            n_positions=64,
            bos_token_id=0,
            eos_token_id=0,
        )
    )
    gemma3 = AutoModelForCausalLM.from_config(
        Gemma3TextConfig(
            vocab_size=64,
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=2,
            num_key_value_heads=1,
            head_dim=16,
            sliding_window=16,
        )
    )
    assert rope_inv_freq(gpt2) is None
    assert rope_inv_freq(gemma3) is None
