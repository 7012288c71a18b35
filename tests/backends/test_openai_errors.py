"""The openai backend's failure modes, against a real (tiny, scriptable) local HTTP server."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import pytest

from lsp_llm.config import Settings
from lsp_llm.engine.backends.approx_tokenizer import ApproxTokenizer
from lsp_llm.engine.backends.base import BackendError
from lsp_llm.engine.backends.openai import OpenAIBackend
from lsp_llm.engine.requests import ChatMessage, GenerationRequest, TokenEvent

from .conftest import (
    RecordingServer,
    _Handler,
    completion_route,
    free_port,
    models_route,
    sse_route,
)

KEY_ENV = "LSP_LLM_TEST_API_KEY"
SECRET = "sk-test-7f3a9c1e-do-not-log-me"


def _backend(server_url: str, **kw: Any) -> OpenAIBackend:
    settings = Settings(
        backend="openai", endpoint=server_url, model=kw.pop("model", "served-model"), **kw
    )
    return OpenAIBackend(settings)


def test_api_key_is_sent_but_never_logged(
    recording_server: RecordingServer,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv(KEY_ENV, SECRET)
    recording_server.routes["GET /models"] = models_route()
    recording_server.routes["POST /completions"] = completion_route(["Hel", "lo", " world"])
    caplog.set_level(logging.DEBUG)  # everything, httpx and httpcore included
    b = _backend(recording_server.base_url, api_key_env=KEY_ENV)
    b.load(lambda m, f: None)
    events: list[TokenEvent] = []
    result = b.generate(GenerationRequest(prompt="say hi", max_new_tokens=8), events.append)
    assert result.text == "Hello world" and result.finish_reason == "stop"
    assert [e.text for e in events] == ["Hel", "lo", " world"]
    for req in recording_server.requests:
        assert req["headers"].get("Authorization") == f"Bearer {SECRET}"
    post = recording_server.requests[-1]
    assert post["body"]["prompt"] == "say hi" and post["body"]["stream"] is True
    assert post["body"]["model"] == "served-model" and post["body"]["max_tokens"] == 8
    assert SECRET not in caplog.text
    assert SECRET not in repr(b) and SECRET not in repr(vars(b))
    assert isinstance(b.tokenizer, ApproxTokenizer)


def test_no_key_no_header(recording_server: RecordingServer) -> None:
    recording_server.routes["GET /models"] = models_route()
    b = _backend(recording_server.base_url, api_key_env="LSP_LLM_TEST_UNSET_VAR")
    b.load(lambda m, f: None)
    assert "Authorization" not in recording_server.requests[0]["headers"]


def _status(status: int, message: str) -> Any:
    def route(handler: _Handler, body: dict[str, Any] | None) -> None:
        handler.send_json(status, {"error": {"message": message, "code": status}})

    return route


def test_401_names_the_key_variable(
    recording_server: RecordingServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(KEY_ENV, "wrong-key")
    recording_server.routes["GET /models"] = _status(401, "Invalid API Key")
    recording_server.routes["POST /completions"] = _status(403, "Forbidden")
    b = _backend(recording_server.base_url, api_key_env=KEY_ENV)
    with pytest.raises(
        BackendError, match=rf"401.*check the API key in \${KEY_ENV}.*Invalid API Key"
    ):
        b.load(lambda m, f: None)
    with pytest.raises(BackendError, match=rf"403.*check the API key in \${KEY_ENV}"):
        b.generate(GenerationRequest(prompt="x"), lambda e: None)
    assert len(recording_server.requests) == 2  # no retries on HTTP errors
    monkeypatch.delenv(KEY_ENV)
    with pytest.raises(BackendError, match=rf"\${KEY_ENV} \(apiKeyEnv\) is not set"):
        b.load(lambda m, f: None)
    b = _backend(recording_server.base_url)
    with pytest.raises(BackendError, match="set apiKeyEnv"):
        b.load(lambda m, f: None)


def test_404_unknown_model(recording_server: RecordingServer) -> None:
    recording_server.routes["GET /models"] = models_route("the-real-model")
    recording_server.routes["POST /completions"] = _status(404, "The model `nope` does not exist.")
    b = _backend(recording_server.base_url, model="nope")
    b.load(lambda m, f: None)  # a warning only: some servers accept any name
    with pytest.raises(BackendError, match=r"404.*check the model name \(nope\).*does not exist"):
        b.generate(GenerationRequest(prompt="x"), lambda e: None)


def test_served_model_is_used_when_none_configured(recording_server: RecordingServer) -> None:
    recording_server.routes["GET /models"] = models_route("qwen-coder")
    recording_server.routes["POST /chat/completions"] = sse_route(
        [
            {"choices": [{"index": 0, "delta": {"role": "assistant"}}]},
            {"choices": [{"index": 0, "delta": {"content": "It prints."}}]},
            {"choices": [], "usage": {"prompt_tokens": 11, "completion_tokens": 3}},
            "[DONE]",
        ]
    )
    b = _backend(recording_server.base_url, model="")
    b.load(lambda m, f: None)
    assert b.model_name == "qwen-coder"
    result = b.generate(
        GenerationRequest(messages=(ChatMessage(role="user", content="explain"),)),
        lambda e: None,
    )
    assert result.text == "It prints."
    assert result.timings.prompt_tokens == 11 and result.timings.new_tokens == 3
    body = recording_server.requests[-1]["body"]
    assert body["model"] == "qwen-coder"
    assert body["messages"] == [{"role": "user", "content": "explain"}]


def test_server_errors_are_not_retried(recording_server: RecordingServer) -> None:
    recording_server.routes["GET /models"] = models_route()
    recording_server.routes["POST /completions"] = _status(500, "kaboom")
    b = _backend(recording_server.base_url)
    b.load(lambda m, f: None)
    with pytest.raises(BackendError, match=r"HTTP 500.*kaboom"):
        b.generate(GenerationRequest(prompt="x"), lambda e: None)
    assert [r["path"] for r in recording_server.requests] == ["/models", "/completions"]


def test_garbage_is_a_clear_error(recording_server: RecordingServer) -> None:
    recording_server.routes["GET /models"] = lambda h, body: h.send_raw(
        200, b"<html>hello</html>", "text/html"
    )
    b = _backend(recording_server.base_url)
    with pytest.raises(BackendError, match="did not return OpenAI-compatible JSON"):
        b.load(lambda m, f: None)
    recording_server.routes["GET /models"] = models_route()
    recording_server.routes["POST /completions"] = sse_route(
        [{"choices": [{"index": 0, "text": "ok"}]}, "{not json"]
    )
    b.load(lambda m, f: None)
    with pytest.raises(BackendError, match="not JSON in its event stream"):
        b.generate(GenerationRequest(prompt="x"), lambda e: None)
    recording_server.routes["POST /completions"] = sse_route(
        [{"error": {"message": "model crashed"}}]
    )
    with pytest.raises(BackendError, match="model crashed"):
        b.generate(GenerationRequest(prompt="x"), lambda e: None)


def test_slow_server_times_out(recording_server: RecordingServer) -> None:
    def hang(handler: _Handler, body: dict[str, Any] | None) -> None:
        handler.start_sse()
        handler.send_event({"choices": [{"index": 0, "text": "a"}]})
        time.sleep(3)

    recording_server.routes["GET /models"] = models_route()
    recording_server.routes["POST /completions"] = hang
    b = _backend(recording_server.base_url, request_timeout_s=0.5)
    b.load(lambda m, f: None)
    t0 = time.perf_counter()
    with pytest.raises(BackendError, match=r"stopped sending for 0\.5s"):
        b.generate(GenerationRequest(prompt="x"), lambda e: None)
    assert time.perf_counter() - t0 < 2.5


def test_cancel_while_the_server_is_silent(recording_server: RecordingServer) -> None:
    """A server still in prefill sends nothing; cancelling must not wait for it."""
    gone = threading.Event()

    def slow(handler: _Handler, body: dict[str, Any] | None) -> None:
        handler.start_sse()
        for _ in range(100):  # "prefill" for 5 s: only keep-alive comments, no tokens
            time.sleep(0.05)
            try:
                handler.wfile.write(b": ping\n\n")
                handler.wfile.flush()
            except OSError:
                gone.set()
                return

    recording_server.routes["GET /models"] = models_route()
    recording_server.routes["POST /completions"] = slow
    b = _backend(recording_server.base_url)
    b.load(lambda m, f: None)
    request = GenerationRequest(prompt="x", max_new_tokens=100)
    threading.Timer(0.2, request.cancel.cancel).start()
    result = b.generate(request, lambda e: None)
    assert request.cancel.cancelled_at is not None
    assert time.perf_counter() - request.cancel.cancelled_at < 0.5
    assert result.finish_reason == "cancelled"
    assert gone.wait(3), "the server never saw the connection close"


def test_connection_errors_are_retried(recording_server: RecordingServer) -> None:
    """The server comes up during the backoff: the request succeeds."""
    port = free_port()
    late = RecordingServer()
    late.routes["GET /models"] = models_route()
    threading.Timer(0.3, late.start, kwargs={"port": port}).start()
    b = _backend(f"http://127.0.0.1:{port}/v1")
    try:
        b.load(lambda m, f: None)
        assert b.model_name == "served-model"
    finally:
        time.sleep(0.05)
        late.stop()


def test_cancelled_during_backoff(recording_server: RecordingServer) -> None:
    b = _backend(f"http://127.0.0.1:{free_port()}/v1")
    request = GenerationRequest(prompt="x")
    threading.Timer(0.1, request.cancel.cancel).start()
    t0 = time.perf_counter()
    result = b.generate(request, lambda e: None)
    assert result.finish_reason == "cancelled"
    assert time.perf_counter() - t0 < 0.6


def test_no_endpoint(recording_server: RecordingServer) -> None:
    b = OpenAIBackend(Settings(backend="openai"))
    with pytest.raises(BackendError, match="needs an endpoint"):
        b.load(lambda m, f: None)


def test_explicit_tokenizer_is_kept(recording_server: RecordingServer) -> None:
    recording_server.routes["GET /models"] = models_route()
    tok = ApproxTokenizer(frozenset({"<|fim_prefix|>"}))
    b = OpenAIBackend(Settings(backend="openai", endpoint=recording_server.base_url), tokenizer=tok)
    b.load(lambda m, f: None)
    assert b.tokenizer is tok
