"""The transformers backend's decode paths, driven directly on the model thread's API:
the static KV cache (eager and ``torch.compile``d), and cancellation inside a forward pass
(between decoder layers) with the kept prefix cache rolled back exactly."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lsp_llm.config import Settings
from lsp_llm.engine.backends.transformers import (
    TransformersBackend,
    _decoder_layers,
    resolve_fast_path,
)
from lsp_llm.engine.models import resolve_model
from lsp_llm.engine.requests import GenerationRequest, GenerationResult, TokenEvent

PROMPT = "def compute(values):\n    result = []\n    for v in values:\n        "
LONG = PROMPT * 12


def _load(model_dir: Path, **settings: Any) -> TransformersBackend:
    s = Settings(model=str(model_dir), backend="transformers", device="cpu", **settings)
    backend = TransformersBackend(s, resolve_model(s))
    backend.load(lambda _message, _fraction: None)
    return backend


def _run(backend: TransformersBackend, prompt: str, n: int = 12) -> GenerationResult:
    events: list[TokenEvent] = []
    return backend.generate(GenerationRequest(prompt=prompt, max_new_tokens=n), events.append)


@pytest.fixture(scope="module")
def eager(tiny_model_dir: Path) -> Iterator[TransformersBackend]:
    backend = _load(tiny_model_dir, fast_path="off")
    yield backend
    backend.close()


@pytest.fixture(scope="module")
def static(tiny_model_dir: Path) -> Iterator[TransformersBackend]:
    backend = _load(tiny_model_dir, fast_path="static")
    yield backend
    backend.close()


def test_auto_compiles_only_on_cuda() -> None:
    assert resolve_fast_path("auto", "cuda") == "compile"
    assert resolve_fast_path("auto", "cpu") == "off"
    assert resolve_fast_path("static", "cpu") == "static"


def test_static_cache_gives_the_same_text_as_the_dynamic_cache(
    eager: TransformersBackend, static: TransformersBackend
) -> None:
    assert static.fast_path == "static"
    for prompt in (PROMPT, LONG, LONG + "total = 0\n"):
        want = _run(eager, prompt)
        got = _run(static, prompt)
        assert got.text == want.text and got.text
    # The static cache is also the prefix cache: the last prompt extended by a few characters
    # prefills only its tail.
    again = _run(static, LONG + "total = 0\n    ")
    assert again.timings.prefill_tokens < again.timings.prompt_tokens / 5, again.timings
    assert again.text == _run(eager, LONG + "total = 0\n    ").text


def test_too_long_for_the_static_cache_falls_back_to_dynamic(tiny_model_dir: Path) -> None:
    backend = _load(tiny_model_dir, fast_path="static", context_window=64)
    try:
        result = _run(backend, LONG * 4, n=4)  # longer than the static cache holds
        assert result.finish_reason in ("length", "stop") and result.timings.new_tokens > 0
        assert backend._cache is not backend._static
    finally:
        backend.close()


@pytest.mark.parametrize("path", ["eager", "static"])
@pytest.mark.parametrize("at_step", [0, 5])
def test_cancel_inside_a_forward_pass_rolls_the_cache_back(
    path: str, at_step: int, request: pytest.FixtureRequest
) -> None:
    """The cancel arrives while layer 0 of a pass runs: the pass stops before layer 1 (the
    first layer has written its K/V, the others not), and the next request reuses the kept
    prefix and produces exactly what a fresh run produces."""
    backend: TransformersBackend = request.getfixturevalue(path)
    _run(backend, PROMPT * 11, n=1)  # a kept prefix that the cancelled request extends
    req = GenerationRequest(prompt=LONG, max_new_tokens=50)
    passes = {"n": 0}

    def cancel_during(_module: Any, _args: Any) -> None:
        if passes["n"] == at_step:  # pass 0 is the prefill, then one pass per new token
            req.cancel.cancel("user")
        passes["n"] += 1

    last_layer_runs = {"n": 0}

    def count(_module: Any, _args: Any, _out: Any) -> None:
        last_layer_runs["n"] += 1

    layers = _decoder_layers(backend.model)
    handles = [
        layers[0].register_forward_pre_hook(cancel_during, prepend=True),
        layers[-1].register_forward_hook(count),
    ]
    try:
        tokens: list[TokenEvent] = []
        result = backend.generate(req, tokens.append)
    finally:
        for handle in handles:
            handle.remove()
    assert result.finish_reason == "cancelled"
    assert passes["n"] == at_step + 1, "no pass started after the cancel"
    assert last_layer_runs["n"] == at_step, "the cancelled pass stopped after its first layer"
    assert len(tokens) <= at_step
    assert result.timings.new_tokens == 0 or at_step > 0
    follow = LONG + "x = 1\n"
    warm = _run(backend, follow)
    backend._cache, backend._cache_ids = None, []
    cold = _run(backend, follow)
    assert warm.text == cold.text
    assert warm.timings.prefill_tokens < cold.timings.prefill_tokens / 5, warm.timings


def test_compiled_decode_step_matches_eager(
    tiny_model_dir: Path, eager: TransformersBackend
) -> None:
    """The GPU fast path (StaticCache + torch.compile), here compiled for the CPU by inductor."""
    backend = _load(tiny_model_dir, fast_path="compile")
    try:
        assert backend.fast_path == "compile" and backend._step is not None
        for prompt in (LONG, LONG + "total = 0\n"):
            assert _run(backend, prompt).text == _run(eager, prompt).text
        reused = _run(backend, LONG + "total = 0\n    ")
        assert reused.timings.prefill_tokens < reused.timings.prompt_tokens / 5
    finally:
        backend.close()


@pytest.fixture(scope="module")
def gemma(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TransformersBackend]:
    """Gemma 3's architecture (sliding-window and full attention layers, window 16 tokens)."""
    from benchmarks.tiny_models import build_tiny_model

    model_dir = build_tiny_model(
        tmp_path_factory.mktemp("gemma3") / "model", arch="gemma3", layers=4
    )
    backend = _load(model_dir, fast_path="auto")
    yield backend
    backend.close()


def test_sliding_window_model_reuses_the_prefix_only_where_it_is_exact(
    gemma: TransformersBackend,
) -> None:
    """Typing forward reuses the cache; deleting back past what a sliding-window layer still
    holds starts afresh instead of attending to a short window (this used to fail with a
    mask-size error on the second deletion)."""
    assert gemma.fast_path == "off", "auto keeps the prefix-reusing dynamic cache for Gemma"
    base = PROMPT * 4
    edits = [base, base + "x = 1", base + "x = 12", base[:-30], base + "y", base[:-5] + "zz"]
    reused = 0
    for prompt in edits:
        warm = _run(gemma, prompt, n=16)
        kept = (gemma._cache, gemma._cache_ids)
        gemma._cache, gemma._cache_ids = None, []
        cold = _run(gemma, prompt, n=16)
        gemma._cache, gemma._cache_ids = kept
        assert warm.finish_reason == "length", warm.error
        assert warm.text == cold.text, prompt[-20:]
        reused += warm.timings.prefill_tokens < warm.timings.prompt_tokens / 5
    assert reused >= 2, "typing forward must still reuse the cache"
