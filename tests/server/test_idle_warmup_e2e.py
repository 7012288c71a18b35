"""Idle warm-up over stdio (issue 15, item 4): a real server, a tiny real model.

Opening a document and moving the cursor (a ``textDocument/codeAction`` at the cursor, which
VS Code sends on every cursor move) prefills that place's prompt while the engine is idle, so
the first suggestion there computes only the prompt's tail. ``idleWarmup: false`` is today's
behaviour: the first suggestion computes the whole prompt.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from lsprotocol import types

from tests.lsp_helpers import plain, start_session
from tests.server.test_typing_engine_e2e import QUIET, idle

BODY = "".join(
    f"def helper_{i}(value):\n    result = value * {i} + {i * 7}\n    return result\n\n\n"
    for i in range(20)
)
TEXT = BODY + "def main():\n    total = 0\n    for i in range(10):\n        total += \n"
LINE = TEXT.count("\n") - 1
COLUMN = len("        total += ")


async def first_suggestion_prefill(
    tmp_path: Path, tiny_args: list[str], server_env: dict[str, str], warmup: bool
) -> dict[str, Any]:
    options = {
        **QUIET,
        "maxNewTokens": 8,
        "acceptAhead": False,
        "completionCache": False,
        "idleWarmup": warmup,
    }
    async with start_session(tmp_path, tiny_args, server_env, init_options=options) as s:
        uri = s.open("warm.py", TEXT)
        cursor = types.Position(line=LINE, character=COLUMN)
        await s.client.text_document_code_action_async(
            types.CodeActionParams(
                text_document=types.TextDocumentIdentifier(uri=uri),
                range=types.Range(start=cursor, end=cursor),
                context=types.CodeActionContext(diagnostics=[]),
            )
        )
        await idle(s)
        await s.inline(uri, LINE, COLUMN)
        last = plain(await s.status())["lastRequest"]
        assert last["prompt_tokens"] > 200, last
        return dict(last)


@pytest.mark.parametrize("warmup", [True, False])
async def test_first_suggestion_after_moving_there_pays_only_the_tail(
    tmp_path: Path, tiny_args: list[str], server_env: dict[str, str], warmup: bool
) -> None:
    last = await first_suggestion_prefill(tmp_path, tiny_args, server_env, warmup)
    if warmup:
        assert last["prefill_tokens"] <= 8, last
    else:
        assert last["prefill_tokens"] >= last["prompt_tokens"] // 2, last
