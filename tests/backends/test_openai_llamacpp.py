"""The openai backend against a real llama.cpp server (in-process, on 127.0.0.1)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from lsp_llm.config import Settings
from lsp_llm.engine.backends.approx_tokenizer import ApproxTokenizer
from lsp_llm.engine.backends.base import BackendError
from lsp_llm.engine.backends.openai import OpenAIBackend
from lsp_llm.engine.requests import ChatMessage, GenerationRequest, TokenEvent

from .conftest import LlamaServerHandle, free_port, start_llamacpp_server

pytestmark = pytest.mark.slow

PROMPT = "def fibonacci(n):"


def _settings(endpoint: str, **kw: object) -> Settings:
    return Settings(backend="openai", endpoint=endpoint, request_timeout_s=30.0, **kw)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def backend(llamacpp_server: LlamaServerHandle) -> Iterator[OpenAIBackend]:
    b = OpenAIBackend(_settings(llamacpp_server.base_url))
    b.load(lambda m, f: None)
    yield b
    b.close()


def test_load_reports_the_served_model(backend: OpenAIBackend) -> None:
    assert backend.name == "openai"
    assert backend.served_model.endswith(".gguf")  # llama.cpp serves the path as the id
    assert backend.model_name == backend.served_model
    assert backend.served_models == [backend.served_model]
    assert isinstance(backend.tokenizer, ApproxTokenizer)
    assert backend.tokenizer.exact is False


def test_completion_streams(backend: OpenAIBackend, capsys: pytest.CaptureFixture[str]) -> None:
    events: list[TokenEvent] = []
    result = backend.generate(GenerationRequest(prompt=PROMPT, max_new_tokens=32), events.append)
    assert result.finish_reason in ("length", "stop")
    assert result.text.strip()
    assert len(events) >= 2
    assert "".join(e.text for e in events) == result.text
    t = result.timings
    assert t.prompt_tokens == 7 and 0 < t.new_tokens <= 32  # usage from the server
    assert t.first_token_s > 0 and t.total_s >= t.first_token_s
    with capsys.disabled():
        print(f"\n[openai -> llama.cpp HTTP] {t.new_tokens} tokens, {t.tokens_per_s:.1f} tok/s")


def test_greedy_matches_between_calls(backend: OpenAIBackend) -> None:
    a = backend.generate(GenerationRequest(prompt=PROMPT, max_new_tokens=10), lambda e: None)
    b = backend.generate(GenerationRequest(prompt=PROMPT, max_new_tokens=10), lambda e: None)
    assert a.text == b.text


def test_chat_completion(backend: OpenAIBackend) -> None:
    assert backend.render_chat([ChatMessage(role="user", content="hi")]) is None
    events: list[TokenEvent] = []
    result = backend.generate(
        GenerationRequest(
            messages=(
                ChatMessage(role="system", content="You explain code."),
                ChatMessage(role="user", content="What does print('hi') do?"),
            ),
            max_new_tokens=16,
        ),
        events.append,
    )
    assert result.finish_reason in ("length", "stop")
    assert result.text
    assert "".join(e.text for e in events) == result.text


def test_stop_sequence_and_should_stop(backend: OpenAIBackend) -> None:
    full = backend.generate(GenerationRequest(prompt=PROMPT, max_new_tokens=24), lambda e: None)
    stop = full.text.strip("\n").split("\n")[1][:3]
    result = backend.generate(
        GenerationRequest(prompt=PROMPT, max_new_tokens=24, stop=(stop,)), lambda e: None
    )
    assert result.finish_reason == "stop" and stop not in result.text
    assert full.text.startswith(result.text)
    early = backend.generate(
        GenerationRequest(
            prompt=PROMPT, max_new_tokens=64, should_stop=lambda text: text.count("\n") >= 2
        ),
        lambda e: None,
    )
    assert early.finish_reason == "stop" and early.text.count("\n") >= 2


def test_several_sequences(backend: OpenAIBackend) -> None:
    events: list[TokenEvent] = []
    result = backend.generate(
        GenerationRequest(prompt=PROMPT, max_new_tokens=6, num_return_sequences=2, temperature=0.8),
        events.append,
    )
    assert len(result.texts) == 2 and all(result.texts)
    for i in range(2):
        assert "".join(e.text for e in events if e.index == i) == result.texts[i]


def test_cancel_mid_stream_releases_the_slot(
    backend: OpenAIBackend, llamacpp_server: LlamaServerHandle
) -> None:
    request = GenerationRequest(prompt="Once upon a time", max_new_tokens=1000)
    events: list[TokenEvent] = []

    def emit(event: TokenEvent) -> None:
        events.append(event)
        if len(events) == 3:
            request.cancel.cancel()

    result = backend.generate(request, emit)
    assert request.cancel.cancelled_at is not None
    returned_after = time.perf_counter() - request.cancel.cancelled_at
    assert result.finish_reason == "cancelled"
    assert len(events) == 3
    assert returned_after < 1.0, returned_after
    # llama.cpp notices the closed connection and frees the slot (1000 tokens would take ~15 s).
    idle_after = llamacpp_server.wait_idle(timeout=10.0)
    follow = backend.generate(GenerationRequest(prompt=PROMPT, max_new_tokens=4), lambda e: None)
    assert follow.finish_reason in ("length", "stop") and follow.text
    print(f"cancel returned in {returned_after * 1000:.0f} ms, slot idle after {idle_after:.2f}s")


def test_cancel_while_waiting_for_the_first_token(
    backend: OpenAIBackend, llamacpp_server: LlamaServerHandle
) -> None:
    """Cancelled during prefill: we return at once. (llama.cpp itself only notices the closed
    connection when it has the first token to send, so the slot frees after the prefill.)"""
    long_prompt = "".join(f"def f{i}(x):\n    return x * {i}\n\n" for i in range(25))
    request = GenerationRequest(prompt=long_prompt, max_new_tokens=300)
    timer = threading.Timer(0.05, request.cancel.cancel)
    timer.start()
    result = backend.generate(request, lambda e: None)
    timer.join()
    assert result.finish_reason == "cancelled"
    assert request.cancel.cancelled_at is not None
    assert time.perf_counter() - request.cancel.cancelled_at < 1.0
    llamacpp_server.wait_idle(timeout=60.0)


def test_wrong_endpoint_path_is_a_clear_404(llamacpp_server: LlamaServerHandle) -> None:
    b = OpenAIBackend(_settings(llamacpp_server.root_url + "/v2"))
    with pytest.raises(BackendError, match=r"404.*check the model name.*endpoint"):
        b.load(lambda m, f: None)
    with pytest.raises(BackendError, match="404"):
        b.generate(GenerationRequest(prompt="x", max_new_tokens=2), lambda e: None)
    b.close()


def test_context_overflow_message_comes_through(backend: OpenAIBackend) -> None:
    with pytest.raises(BackendError, match="context size"):
        backend.generate(GenerationRequest(prompt="x " * 6000, max_new_tokens=4), lambda e: None)


def test_down_server_then_recovery(embedded_gguf: Path) -> None:
    port = free_port()
    b = OpenAIBackend(_settings(f"http://127.0.0.1:{port}/v1", model="anything"))
    t0 = time.perf_counter()
    with pytest.raises(
        BackendError, match=r"cannot reach http://127\.0\.0\.1:\d+/v1: is the server running\?"
    ):
        b.load(lambda m, f: None)
    assert time.perf_counter() - t0 < 5  # three quick retries, then a clear error
    with pytest.raises(BackendError, match="cannot reach"):
        b.generate(GenerationRequest(prompt="x", max_new_tokens=2), lambda e: None)
    _, handle = start_llamacpp_server(embedded_gguf, port=port, n_ctx=512)
    try:
        b.load(lambda m, f: None)  # the engine simply calls load again
        result = b.generate(GenerationRequest(prompt=PROMPT, max_new_tokens=4), lambda e: None)
        assert result.text
        handle.stop()
        with pytest.raises(BackendError, match="cannot reach"):
            b.generate(GenerationRequest(prompt=PROMPT, max_new_tokens=4), lambda e: None)
    finally:
        handle.stop()
        b.close()


def test_slots_endpoint_is_reachable(llamacpp_server: LlamaServerHandle) -> None:
    assert httpx.get(f"{llamacpp_server.root_url}/health", timeout=5).json()["status"] == "ok"
    assert llamacpp_server.slots_busy() is False
