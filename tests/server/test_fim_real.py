"""The real FIM code-model path, end to end over stdio, on both local backends.

The model is the Qwen2.5-Coder stand-in of :mod:`tests.fim_models`: the real Qwen tokenizer
(its FIM and repository tokens) with random weights, as an HF directory for the transformers
backend and as GGUF for llama.cpp. The chain model's greedy output is known: ``alpha``, then a
stop token, then ``beta``..., so a stop token that is not honoured shows up in the editor.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from tokenizers import Tokenizer

from tests.fim_models import (
    ENDOFTEXT,
    FILE_SEP,
    FIM_PAD,
    STOP_TOKENS,
    WORDS,
    build_qwen_fim_gguf,
    build_qwen_fim_model,
    cache_root,
    qwen_tokenizer_files,
)
from tests.lsp_helpers import plain, start_session

pytestmark = pytest.mark.slow

BACKENDS = ["transformers", "llamacpp"]
SPECIALS = ("<|endoftext|>", "<|file_sep|>", "<|fim_pad|>", "<|fim_", "<|repo_name|>", "<|im_")

MODELS = '''"""Data model."""


class User:
    """A person with a name and an address."""

    def __init__(self, name: str, email: str) -> None:
        self.name = name
        self.email = email
'''
FILLER = "".join(
    f"def handler_{i}(request, *args):\n    value = request.get('k{i}', {i})\n"
    f"    return {{'id': {i}, 'value': value}}\n\n\n"
    for i in range(60)
)
HEAD = "from pkg.models import User\n\n\n" + FILLER
CURSOR_LINE = "def greet(user: User) -> str:\n    return "
GREET = HEAD + CURSOR_LINE + "\n\n\n" + FILLER.replace("handler_", "after_")
LINE = HEAD.count("\n") + 1  # the "    return " line (0-based)
COLUMN = len("    return ")


@pytest.fixture(scope="module")
def qwen_tokenizer() -> Tokenizer:
    return Tokenizer.from_file(str(qwen_tokenizer_files() / "tokenizer.json"))


def _model(backend: str, hf_dir: Path) -> str:
    return str(hf_dir if backend == "transformers" else build_qwen_fim_gguf(hf_dir, cache_root()))


def _args(backend: str, model: str) -> list[str]:
    return ["--model", model, "--backend", backend, "--device", "cpu", "--set", "threads=1"]


def _items(result: Any) -> list[str]:
    items = getattr(result, "items", result) or []
    return [str(item.insert_text) for item in items]


async def _index_ready(s: Any, timeout: float = 60.0) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while loop.time() < end:
        index = plain(await s.status()).get("index") or {}
        if index.get("state") == "ready":
            return
        await asyncio.sleep(0.1)
    raise TimeoutError("index not ready")


def _workspace(root: Path) -> None:
    (root / "pkg").mkdir()
    (root / "pkg" / "__init__.py").write_text("")
    (root / "pkg" / "models.py").write_text(MODELS)


@pytest.mark.parametrize("backend", BACKENDS)
async def test_repo_level_prompt_with_exact_budget(
    backend: str,
    qwen_fim_hf: Path,
    qwen_tokenizer: Tokenizer,
    tmp_path: Path,
    server_env: dict[str, str],
) -> None:
    """Family detected from the special tokens (Qwen's repository format, not CodeGemma's
    plain FIM); cross-file snippets as ``<|file_sep|>path`` files; the prompt counted with the
    real tokenizer and within ``contextWindow - maxNewTokens``."""
    _workspace(tmp_path)
    window, new = 640, 24
    settings = {"contextWindow": window, "maxNewTokens": new}
    env = {**server_env, "LSP_LLM_DEBUG": "1"}  # lspLlm/debugLastPrompt
    async with start_session(
        tmp_path, _args(backend, _model(backend, qwen_fim_hf)), env, init_options=settings
    ) as s:
        await _index_ready(s)
        uri = s.open("app/greet.py", GREET)
        items = _items(await s.inline(uri, LINE, COLUMN))
        prompt = plain(await s.client.protocol.send_request_async("lspLlm/debugLastPrompt", {}))[
            "prompt"
        ]
        st = plain(await s.status())

    assert items == ["alpha"]
    assert prompt.startswith(f"<|repo_name|>{tmp_path.name}\n<|file_sep|>pkg/models.py\n")
    assert "class User:" in prompt.split("<|fim_prefix|>")[0]
    assert "<|file_sep|>app/greet.py\n<|fim_prefix|>" in prompt
    assert prompt.count("<|fim_prefix|>") == prompt.count("<|fim_suffix|>") == 1
    # Least to most volatile: the cursor line's start goes after <|fim_middle|>.
    assert prompt.endswith("<|fim_middle|>    return ")
    prefix = prompt.split("<|fim_prefix|>", 1)[1].split("<|fim_suffix|>", 1)[0]
    suffix = prompt.split("<|fim_suffix|>", 1)[1].split("<|fim_middle|>", 1)[0]
    assert GREET.index(prefix) + len(prefix) == len(HEAD) + len("def greet(user: User) -> str:\n")
    assert GREET[len(HEAD) + len(CURSOR_LINE) :].startswith(suffix) and suffix.strip()

    last = st["lastRequest"]
    exact = len(qwen_tokenizer.encode(prompt, add_special_tokens=False).ids)
    assert last["prompt_tokens"] == exact
    assert exact <= window - new
    assert exact >= (window - new) * 0.6  # the budget is used, not wasted
    assert st["lastCompletion"]["context"][0]["path"] == "pkg/models.py"


@pytest.mark.parametrize("first_stop", STOP_TOKENS)
@pytest.mark.parametrize("backend", BACKENDS)
async def test_stop_tokens_never_reach_the_editor(
    backend: str, first_stop: str, tmp_path: Path, server_env: dict[str, str]
) -> None:
    """The chain model writes ``alpha``, then ``first_stop``, then the other words and stops.
    Only ``alpha`` may reach the editor, and generation must end at the stop token (not run on
    to ``maxNewTokens`` and be cut afterwards)."""
    stops = (first_stop, *(t for t in STOP_TOKENS if t != first_stop))
    hf_dir = build_qwen_fim_model(cache_root(), stops=stops)
    settings = {"maxNewTokens": 32, "retrieval": False}
    async with start_session(
        tmp_path, _args(backend, _model(backend, hf_dir)), server_env, init_options=settings
    ) as s:
        uri = s.open("greet.py", GREET)
        shown = _items(await s.inline(uri, LINE, COLUMN))
        last = plain(await s.status())["lastRequest"]
        shown += _items(await s.inline(uri, LINE, COLUMN, invoked=True))
    assert shown and set(shown) == {"alpha"}, shown
    for text in shown:
        assert not any(special in text for special in SPECIALS)
        assert not any(word in text for word in WORDS[1:])
    assert last["new_tokens"] <= 2, last


def test_stop_orders_cover_every_stop_token() -> None:
    assert set(STOP_TOKENS) == {ENDOFTEXT, FILE_SEP, FIM_PAD}


@pytest.mark.parametrize("backend", BACKENDS)
async def test_typing_on_a_line_prefills_only_the_new_tokens(
    backend: str, qwen_fim_hf: Path, tmp_path: Path, server_env: dict[str, str]
) -> None:
    """One didChange + one inline completion per keystroke in the middle of a long file: the
    prompt cache recomputes a few tokens per keystroke, not the suffix."""
    settings = {"contextWindow": 2048, "maxNewTokens": 8, "retrieval": False}
    async with start_session(
        tmp_path, _args(backend, _model(backend, qwen_fim_hf)), server_env, init_options=settings
    ) as s:
        uri = s.open("greet.py", GREET)
        await s.inline(uri, LINE, COLUMN)  # warm the cache
        rows = []
        column = COLUMN
        for ch in "user.name + 'x'":
            s.change(uri, (LINE, column), (LINE, column), ch)
            column += 1
            await s.inline(uri, LINE, column)
            last = plain(await s.status())["lastRequest"]
            rows.append((last["prefill_tokens"], last["prompt_tokens"]))
    prompt_tokens = [p for _, p in rows]
    assert min(prompt_tokens) > 1000  # a long prompt: prefix and suffix both there
    share = sum(f for f, _ in rows) / sum(prompt_tokens)
    assert share <= 0.1, rows
