"""End to end over stdio: a real LSP client, the real server, a tiny real model."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from lsprotocol import types

from tests.lsp_helpers import Session, plain, start_session, wait_until

LONG = "def f():\n    # "
PY = "import os\n\n\ndef add(a, b):\n    total = a + b\n    \n\n\nprint(add(1, 2))\n"


def items_of(result: object) -> list[types.InlineCompletionItem]:
    if result is None:
        return []
    if isinstance(result, types.InlineCompletionList):
        return list(result.items)
    return list(result)  # type: ignore[call-overload]


async def test_inline_completion_and_status(
    tmp_path: Path, tiny_args: list[str], server_env: dict[str, str]
) -> None:
    async with start_session(tmp_path, tiny_args, server_env) as s:
        st = plain(await s.status())
        assert st["state"] == "ready"
        assert st["backend"] == "transformers"
        assert st["device"] == "cpu"
        assert st["worker"] == "idle"
        uri = s.open("calc.py", PY)
        items = items_of(await s.inline(uri, 5, 4))
        assert items, "expected a suggestion from the tiny model"
        item = items[0]
        assert isinstance(item.insert_text, str) and item.insert_text.strip()
        assert item.range is not None and item.range.start == types.Position(line=5, character=4)
        assert item.command is not None and item.command.command == "lspLlm.didAccept"
        st = plain(await s.status())
        last = st["lastRequest"]
        assert last["prompt_tokens"] > 0 and last["new_tokens"] > 0


async def test_mid_line_completion_is_single_line(
    tmp_path: Path, tiny_args: list[str], server_env: dict[str, str]
) -> None:
    text = "def f(values):\n    return sum(values) + \n"
    async with start_session(
        tmp_path, tiny_args, server_env, init_options={"maxNewTokens": 24}
    ) as s:
        uri = s.open("m.py", "x = foo()\n" + text)
        # Cursor inside the call parentheses: text follows on the line -> one line only.
        items = items_of(await s.inline(uri, 0, 8))
        for item in items:
            assert "\n" not in str(item.insert_text)


async def test_incremental_changes_utf16_positions(
    tmp_path: Path, tiny_args: list[str], server_env: dict[str, str]
) -> None:
    env = {**server_env, "LSP_LLM_DEBUG": "1"}  # enables lspLlm/debugDocument
    async with start_session(tmp_path, tiny_args, env) as s:
        uri = s.open("u.py", "s = '😀'\n")
        # Insert after the emoji: UTF-16 column 7 (the emoji counts as two units).
        s.change(uri, (0, 7), (0, 7), "abc")
        # After the closing quote: 5 + 2 + 3 + 1 = column 11.
        s.change(uri, (0, 11), (0, 11), "\n\ndef g():\n    ")
        doc = plain(
            await s.client.protocol.send_request_async("lspLlm/debugDocument", {"uri": uri})
        )
        assert doc["text"] == "s = '😀abc'\n\ndef g():\n    \n"
        assert doc["version"] == 3
        items = items_of(await s.inline(uri, 3, 4))
        assert items and str(items[0].insert_text).strip()
        # A position past the end of the document is clamped, not a crash.
        items = items_of(await s.inline(uri, 99, 99))
        assert isinstance(items, list)
        assert plain(await s.status())["state"] == "ready"


async def test_cancel_long_generation_answers_32800_and_frees_worker(
    tmp_path: Path, tiny_args: list[str], server_env: dict[str, str]
) -> None:
    async with start_session(
        tmp_path, tiny_args, server_env, init_options={"maxNewTokens": 4000}
    ) as s:
        # Inside a comment nothing ends the suggestion early (random weights never stop).
        uri = s.open("long.py", LONG)
        fut = asyncio.ensure_future(
            s.client.protocol.send_request_async(
                types.TEXT_DOCUMENT_INLINE_COMPLETION,
                Session.inline_params(uri, 1, 6),
                msg_id=4242,
            )
        )
        await asyncio.sleep(0.5)
        st = plain(await s.status())
        assert st["worker"] == "busy", "the generation should still be running"
        t0 = time.perf_counter()
        s.client.protocol.notify(types.CANCEL_REQUEST, types.CancelParams(id=4242))
        with pytest.raises(Exception) as info:
            await asyncio.wait_for(fut, 10)
        elapsed = time.perf_counter() - t0
        assert "-32800" in str(info.value) or "cancel" in str(info.value).lower()
        assert elapsed < 2.0
        deadline = time.perf_counter() + 2.0
        while plain(await s.status())["worker"] != "idle":
            assert time.perf_counter() < deadline, "worker still busy after cancel"
            await asyncio.sleep(0.02)


async def test_supersede_second_request_wins(
    tmp_path: Path, tiny_args: list[str], server_env: dict[str, str]
) -> None:
    async with start_session(
        tmp_path, tiny_args, server_env, init_options={"maxNewTokens": 2000}
    ) as s:
        uri = s.open("sup.py", LONG)
        first = s.client.text_document_inline_completion_async(Session.inline_params(uri, 1, 6))
        await asyncio.sleep(0.3)
        s.client.workspace_did_change_configuration(
            types.DidChangeConfigurationParams(settings={"lspLlm": {"maxNewTokens": 16}})
        )
        second = s.client.text_document_inline_completion_async(Session.inline_params(uri, 1, 6))
        r1, r2 = await asyncio.wait_for(asyncio.gather(first, second, return_exceptions=True), 30)
        assert items_of(r1) == [] or isinstance(r1, Exception)
        assert items_of(r2), "the newer request gets the suggestion"


async def test_bad_settings_warn_and_keep_defaults(
    tmp_path: Path, tiny_args: list[str], server_env: dict[str, str]
) -> None:
    async with start_session(
        tmp_path,
        tiny_args,
        server_env,
        init_options={"maxNewTokens": "lots", "noSuchSetting": 1, "temperature": -3},
    ) as s:
        await wait_until(lambda: len(s.client.messages) >= 3, timeout=10)
        text = " ".join(m.message for m in s.client.messages)
        assert "maxNewTokens" in text and "noSuchSetting" in text and "temperature" in text
        st = plain(await s.status())
        assert st["settings"]["maxNewTokens"] == 64
        assert st["state"] == "ready"


async def test_model_that_cannot_load_reports_error_and_keeps_serving(
    tmp_path: Path, server_env: dict[str, str]
) -> None:
    missing = tmp_path / "nope" / "model.gguf"
    async with start_session(
        tmp_path,
        ["--model", str(missing), "--backend", "transformers"],
        server_env,
        expect_state="error",
    ) as s:
        st = plain(await s.status())
        assert st["state"] == "error"
        assert "not found" in st["message"]
        await wait_until(
            lambda: any(m.type == types.MessageType.Error for m in s.client.messages), timeout=10
        )
        uri = s.open("a.py", "x = 1\n")
        t0 = time.perf_counter()
        assert items_of(await s.inline(uri, 1, 0)) == []
        assert time.perf_counter() - t0 < 5


@pytest.mark.slow
async def test_embedded_default_model_completes_python(
    tmp_path: Path, server_env: dict[str, str]
) -> None:
    """The embedded Gemma 3 270M, for real (auto backend: llama.cpp on CPU when installed)."""
    async with start_session(tmp_path, [], server_env, init_options={"maxNewTokens": 24}) as s:
        st = plain(await s.status())
        assert "gemma-3-270m" in st["model"]
        uri = s.open(
            "fib.py",
            'def fibonacci(n):\n    """Return the n-th Fibonacci number."""\n    if n < 2:\n'
            "        return n\n    return ",
        )
        items = items_of(await s.inline(uri, 4, 11))
        assert items and str(items[0].insert_text).strip()
