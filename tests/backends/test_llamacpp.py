"""The in-process llama.cpp backend on the embedded default GGUF (real model, CPU)."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from lsp_llm.config import Settings
from lsp_llm.engine.backends.base import BackendError, TokenizerLike
from lsp_llm.engine.backends.llamacpp import LlamaCppBackend
from lsp_llm.engine.requests import ChatMessage, GenerationRequest, TokenEvent

pytestmark = pytest.mark.slow

PROMPT = "def fibonacci(n):"
LONG_PROMPT = "".join(f"def f{i}(x):\n    return x + {i}\n\n" for i in range(120))


@pytest.fixture(scope="module")
def backend(embedded_gguf: Path) -> Iterator[LlamaCppBackend]:
    # LSP_LLM_TEST_THREADS=2 measures both cores; 1 keeps a shared CI machine fast (see
    # LlamaCppBackend.__init__ for why two threads collapse when a neighbour is busy).
    threads = int(os.environ.get("LSP_LLM_TEST_THREADS", "1"))
    b = LlamaCppBackend(Settings(context_window=2048), str(embedded_gguf), threads=threads)
    messages: list[str] = []
    b.load(lambda message, fraction: messages.append(message))
    assert messages and messages[-1] == "model ready"
    yield b
    b.close()


def test_loaded(backend: LlamaCppBackend) -> None:
    assert backend.name == "llamacpp"
    assert backend.device == "cpu"
    assert "Q4_K" in backend.dtype
    assert "gemma" in backend.model_name.lower()
    assert backend.n_ctx >= 2048
    assert LlamaCppBackend(Settings()).threads >= 1  # default: every usable core


def test_tokenizer_is_llama_cpp_exact(backend: LlamaCppBackend) -> None:
    tok = backend.tokenizer
    assert isinstance(tok, TokenizerLike)
    assert tok.exact is True
    assert "<start_of_turn>" in tok.special_tokens and "<bos>" in tok.special_tokens
    ids = tok.encode(PROMPT)
    assert ids and ids[0] != 2  # no BOS added by encode
    assert tok.decode(ids) == PROMPT
    assert len(tok.encode("<start_of_turn>user")) == 2  # special tokens are parsed
    assert tok.encode("") == [] and tok.decode([]) == ""
    text = "naïve 日本語 🙂\n\tx"
    assert tok.decode(tok.encode(text)) == text
    assert "Bearer" not in repr(tok)


def test_generates_and_streams(
    backend: LlamaCppBackend, capsys: pytest.CaptureFixture[str]
) -> None:
    events: list[TokenEvent] = []
    result = backend.generate(GenerationRequest(prompt=PROMPT, max_new_tokens=48), events.append)
    assert result.finish_reason in ("length", "stop")
    assert result.text.strip()
    assert len(events) >= 2
    assert "".join(e.text for e in events) == result.text
    t = result.timings
    assert t.prompt_tokens == len(backend.tokenizer.encode(PROMPT)) + 1  # + BOS
    assert 0 < t.new_tokens <= 48
    assert t.decode_s > 0 and t.total_s >= t.first_token_s > 0
    with capsys.disabled():
        print(
            f"\n[llamacpp in-process] {t.new_tokens} tokens in {t.decode_s:.2f}s decode = "
            f"{t.tokens_per_s:.1f} tok/s (first token {t.first_token_s * 1000:.0f} ms, "
            f"{backend.threads} threads)"
        )


def test_greedy_is_deterministic(backend: LlamaCppBackend) -> None:
    a = backend.generate(GenerationRequest(prompt=PROMPT, max_new_tokens=12), lambda e: None)
    b = backend.generate(GenerationRequest(prompt=PROMPT, max_new_tokens=12), lambda e: None)
    assert a.text == b.text
    assert b.timings.prefill_tokens < b.timings.prompt_tokens  # prompt cache reused


def test_stop_sequence(backend: LlamaCppBackend) -> None:
    full = backend.generate(GenerationRequest(prompt=PROMPT, max_new_tokens=24), lambda e: None)
    assert "\n" in full.text.strip("\n")
    stop = full.text.strip("\n").split("\n")[1][:3]
    events: list[TokenEvent] = []
    result = backend.generate(
        GenerationRequest(prompt=PROMPT, max_new_tokens=24, stop=(stop,)), events.append
    )
    assert result.finish_reason == "stop"
    assert stop not in result.text
    assert full.text.startswith(result.text)
    assert "".join(e.text for e in events) == result.text


def test_should_stop(backend: LlamaCppBackend) -> None:
    seen: list[str] = []

    def two_lines(text: str) -> bool:
        seen.append(text)
        return text.count("\n") >= 2

    result = backend.generate(
        GenerationRequest(prompt=PROMPT, max_new_tokens=64, should_stop=two_lines),
        lambda e: None,
    )
    assert result.finish_reason == "stop"
    assert result.text.count("\n") >= 2
    assert result.timings.new_tokens < 64


def test_several_sequences(backend: LlamaCppBackend) -> None:
    events: list[TokenEvent] = []
    result = backend.generate(
        GenerationRequest(prompt=PROMPT, max_new_tokens=8, num_return_sequences=3, temperature=0.9),
        events.append,
    )
    assert len(result.texts) == 3
    assert all(text for text in result.texts)
    for i in range(3):
        assert "".join(e.text for e in events if e.index == i) == result.texts[i]


def test_cancel_within_a_step(backend: LlamaCppBackend) -> None:
    request = GenerationRequest(prompt="Once upon a time", max_new_tokens=400)
    events: list[TokenEvent] = []
    after_cancel: list[TokenEvent] = []

    def emit(event: TokenEvent) -> None:
        if request.cancel.cancelled:
            after_cancel.append(event)
        events.append(event)
        if len(events) == 5:
            request.cancel.cancel()

    result = backend.generate(request, emit)
    assert request.cancel.cancelled_at is not None
    took = time.perf_counter() - request.cancel.cancelled_at
    assert result.finish_reason == "cancelled"
    assert after_cancel == []  # not a single token after the cancel
    assert result.timings.new_tokens < 20
    assert took < 2.0, took  # generous: one decode step is ~15 ms here
    # The slot is free: the next request starts at once.
    after = backend.generate(GenerationRequest(prompt=PROMPT, max_new_tokens=4), lambda e: None)
    assert after.finish_reason in ("length", "stop") and after.text


def test_cancel_during_prefill(backend: LlamaCppBackend) -> None:
    request = GenerationRequest(prompt=LONG_PROMPT, max_new_tokens=32)
    timer = threading.Timer(0.2, request.cancel.cancel)
    timer.start()
    result = backend.generate(request, lambda e: None)
    timer.join()
    assert result.finish_reason == "cancelled"
    assert request.cancel.cancelled_at is not None
    # One prefill chunk (256 tokens) at most; generous bound for a shared CI machine.
    assert time.perf_counter() - request.cancel.cancelled_at < 5.0


def test_cancelled_before_start(backend: LlamaCppBackend) -> None:
    request = GenerationRequest(prompt=PROMPT, max_new_tokens=8)
    request.cancel.cancel()
    result = backend.generate(request, lambda e: None)
    assert result.finish_reason == "cancelled"
    assert result.texts == ("",)


def test_prompt_too_long_is_a_clear_error(backend: LlamaCppBackend) -> None:
    with pytest.raises(BackendError, match="context size"):
        backend.generate(GenerationRequest(prompt="x " * 5000, max_new_tokens=4), lambda e: None)


def test_chat_without_template(backend: LlamaCppBackend) -> None:
    messages = (ChatMessage(role="user", content="hi"),)
    assert backend.render_chat(messages) is None  # Gemma 3 270M base: no template in the GGUF
    with pytest.raises(BackendError, match="no chat template"):
        backend.generate(GenerationRequest(messages=messages), lambda e: None)


def test_missing_model_is_a_clear_error(tmp_path: Path) -> None:
    b = LlamaCppBackend(Settings(), str(tmp_path / "nope.gguf"))
    with pytest.raises(BackendError, match="not found"):
        b.load(lambda m, f: None)
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"not a gguf at all")
    b = LlamaCppBackend(Settings(), str(bad))
    with pytest.raises(BackendError, match="cannot read"):
        b.load(lambda m, f: None)
    with pytest.raises(BackendError, match="not loaded"):
        b.generate(GenerationRequest(prompt="x"), lambda e: None)
