"""The typing engine over stdio (issue 17): a real server, a tiny real model.

Recycling, accept-ahead and the one-line decision are observable to a client: the answers it
gets, ``lastCompletion.source`` and ``lastRequest`` in ``lspLlm/status``.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from tests.lsp_helpers import Session, plain, start_session
from tests.server.test_completion_e2e import items_of

MODULE = (
    "import os\n\n\n"
    "def add(a, b):\n"
    "    total = a + b\n"
    "    \n"
    "    return total\n\n\n"
    "print(add(1, 2))\n"
)
"""Line 5 is a blank line in the middle of a function: the next line of code already exists."""
QUIET = {"adaptiveDebounce": "off", "timeBudgetMs": 0}
"""Nothing time-dependent: each test switches on only the part it is about."""


def position(text: str, offset: int) -> tuple[int, int]:
    line = text.count("\n", 0, offset)
    return line, offset - (text.rfind("\n", 0, offset) + 1)


def offset_of(text: str, line: int, col: int) -> int:
    start = 0
    for _ in range(line):
        start = text.index("\n", start) + 1
    return start + col


async def idle(s: Session) -> dict[str, Any]:
    async def check() -> dict[str, Any] | None:
        st = plain(await s.status())
        return st if st["worker"] == "idle" and st["queueDepth"] == 0 else None

    for _ in range(600):
        st = await check()
        if st is not None:
            return st
        await asyncio.sleep(0.05)
    raise TimeoutError("the engine did not become idle")


def text_of(result: object) -> str:
    items = items_of(result)
    return str(items[0].insert_text) if items else ""


async def test_every_request_of_a_burst_is_answered_once(
    tmp_path: Path, tiny_args: list[str], server_env: dict[str, str]
) -> None:
    async with start_session(
        tmp_path, tiny_args, server_env, init_options={"maxNewTokens": 32}
    ) as s:
        text = MODULE
        uri = s.open("burst.py", text)
        cursor = offset_of(text, 4, len("    total = a + b"))
        tasks = []
        for ch in " # the sum":
            line, col = position(text, cursor)
            s.change(uri, (line, col), (line, col), ch)
            text = text[:cursor] + ch + text[cursor:]
            cursor += 1
            line, col = position(text, cursor)
            tasks.append(asyncio.ensure_future(s.inline(uri, line, col)))
            await asyncio.sleep(0.02)
        answers = await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 120)
        assert len(answers) == len(tasks)
        assert not [a for a in answers if isinstance(a, BaseException)], answers
        assert items_of(answers[-1]), "the newest request gets a suggestion"
        await idle(s)


async def test_a_request_that_types_the_generation_is_answered_from_it(
    tmp_path: Path, tiny_args: list[str], server_env: dict[str, str]
) -> None:
    # The completion cache and accept-ahead are off: only recycling can answer without the
    # model. The model is deterministic (greedy), so the first request tells the test what
    # the generation at that cursor writes.
    opts = {**QUIET, "maxNewTokens": 400, "completionCache": False, "acceptAhead": False}
    async with start_session(tmp_path, tiny_args, server_env, init_options=opts) as s:
        text = MODULE
        uri = s.open("recycle.py", text)
        line, col = 4, len("    total = a + b")
        await s.inline(uri, line, col)  # from here on the prompt's K/V come from the cache
        first = text_of(await s.inline(uri, line, col))
        assert len(first) > 2 and "\n" not in first[:2], first
        at_cursor = plain(await s.status())["lastRequest"]

        # A request at the cursor, then the user types what it will write, then another one.
        a = asyncio.ensure_future(s.inline(uri, line, col))
        await asyncio.sleep(0.2)  # on the wire, and its generation has written a few tokens
        s.change(uri, (line, col), (line, col), first[:2])
        b = asyncio.ensure_future(s.inline(uri, line, col + 2))
        ra, rb = await asyncio.wait_for(asyncio.gather(a, b), 120)
        assert items_of(ra) == [], "the older request is superseded, and answered"
        assert text_of(rb) == first[2:], "the rest of the same generation"
        st = plain(await s.status())
        assert st["lastCompletion"]["source"] == "recycled"
        # The only generation ran at the first cursor: its prompt, not one with the typed text.
        assert st["lastRequest"]["prompt_tokens"] == at_cursor["prompt_tokens"]


async def test_recycling_off_restores_a_second_model_call(
    tmp_path: Path, tiny_args: list[str], server_env: dict[str, str]
) -> None:
    opts = {
        **QUIET,
        "maxNewTokens": 400,
        "completionCache": False,
        "acceptAhead": False,
        "requestRecycling": False,
    }
    async with start_session(tmp_path, tiny_args, server_env, init_options=opts) as s:
        uri = s.open("norecycle.py", MODULE)
        line, col = 4, len("    total = a + b")
        await s.inline(uri, line, col)
        first = text_of(await s.inline(uri, line, col))
        assert len(first) > 2
        a = asyncio.ensure_future(s.inline(uri, line, col))
        await asyncio.sleep(0.2)
        s.change(uri, (line, col), (line, col), first[:2])
        b = asyncio.ensure_future(s.inline(uri, line, col + 2))
        await asyncio.wait_for(asyncio.gather(a, b), 120)
        st = plain(await s.status())
        assert st["lastCompletion"]["source"] == "model"


@pytest.fixture(scope="module")
def two_line_model() -> Path:
    """The Qwen stand-in whose greedy output is known: ``alpha``, a newline, ``beta``, end."""
    from tests.fim_models import ENDOFTEXT, build_qwen_fim_model, cache_root

    return build_qwen_fim_model(cache_root(), stops=("Ċ", ENDOFTEXT))  # Ċ: "\n" in Qwen's BPE


JS_MODULE = "function add(a, b) {\n  const total = a + b;\n  \n  return total;\n}\n"


async def test_a_one_line_hole_in_a_function_gets_one_line(
    tmp_path: Path, two_line_model: Path, server_env: dict[str, str]
) -> None:
    args = ["--model", str(two_line_model), "--backend", "transformers", "--device", "cpu"]
    async with start_session(
        tmp_path, args, server_env, init_options={**QUIET, "maxNewTokens": 16}
    ) as s:
        # The model writes "alpha\nbeta". In the middle of the function (the next line of code
        # is already there, at the cursor's indentation) only the first line is a completion.
        uri = s.open("hole.js", JS_MODULE, language="javascript")
        assert text_of(await s.inline(uri, 2, 2)) == "alpha"
        hole = plain(await s.status())["lastRequest"]
        # In an empty block several lines are the completion.
        empty = "function add(a, b) {\n  \n}\n"
        uri2 = s.open("empty.js", empty, language="javascript")
        assert text_of(await s.inline(uri2, 1, 2)) == "alpha\nbeta"
        # The one-line decision is also the stop rule: the hole's generation ended at the
        # newline instead of running on to the end of the model's text.
        assert hole["new_tokens"] < plain(await s.status())["lastRequest"]["new_tokens"]


async def test_the_request_after_an_accept_is_served_from_the_accept_ahead_cache(
    tmp_path: Path, tiny_args: list[str], server_env: dict[str, str]
) -> None:
    async with start_session(
        tmp_path, tiny_args, server_env, init_options={**QUIET, "maxNewTokens": 16}
    ) as s:
        text = MODULE
        uri = s.open("ahead.py", text)
        line, col = 4, len("    total = a + b")
        shown = text_of(await s.inline(uri, line, col))
        assert shown
        await idle(s)  # the engine continued as if the suggestion had been accepted
        before = plain(await s.status())["lastRequest"]

        # The user accepts the whole suggestion; the editor asks again at its end.
        s.change(uri, (line, col), (line, col), shown)
        text = text[: offset_of(text, line, col)] + shown + text[offset_of(text, line, col) :]
        end_line, end_col = position(text, offset_of(text, line, col) + len(shown))
        after = items_of(await s.inline(uri, end_line, end_col))
        assert after, "the continuation was cached"
        st = plain(await s.status())
        assert st["lastCompletion"]["source"] == "ahead"
        assert st["lastRequest"] == before, "no model call for it"


async def test_accept_ahead_makes_way_for_real_work(
    tmp_path: Path, tiny_args: list[str], server_env: dict[str, str]
) -> None:
    async with start_session(
        tmp_path, tiny_args, server_env, init_options={**QUIET, "maxNewTokens": 2000}
    ) as s:
        uri = s.open("way.py", MODULE)
        assert text_of(await s.inline(uri, 4, len("    total = a + b"))) is not None
        # The accept-ahead generation (2000 tokens) is running or queued now; a real request
        # elsewhere cancels it instead of waiting behind it.
        other = await asyncio.wait_for(s.inline(uri, 9, 0), 60)
        assert other is not None
        st = await idle(s)
        assert st["lastCancel"] is not None and st["lastCancel"]["reason"] == "real work arrived"
