"""didShow and a partial accept over stdio against the real server, read back from
``lspLlm/status``: displayed, partially accepted, and the retained characters measured after
the (shortened) retention delay from the document as the client edited it."""

from __future__ import annotations

import asyncio
from pathlib import Path

from lsprotocol import types

from tests.lsp_helpers import plain, start_session

BODY = "def total(items):\n    \n\n\nprint(total([]))\n"


async def test_did_show_and_partial_accept_are_counted_with_retention(
    tmp_path: Path, tiny_args: list[str], server_env: dict[str, str]
) -> None:
    env = {
        **server_env,
        "LSP_LLM_RETENTION_DELAY_S": "0.3",
        "XDG_CACHE_HOME": str(tmp_path / "cache"),  # a stats file of its own
    }
    root = tmp_path / "ws"
    root.mkdir()
    async with start_session(root, tiny_args, env, init_options={"completionCache": False}) as s:
        uri = s.open("t.py", BODY)
        result = await s.inline(uri, 1, 4)
        assert isinstance(result, types.InlineCompletionList) and result.items, result
        item = result.items[0]
        assert item.command is not None and item.command.arguments
        sid = plain(item.command.arguments[0])["id"]
        text = str(item.insert_text)
        s.client.protocol.notify("lspLlm/didShow", {"id": sid})
        s.client.protocol.notify("lspLlm/didShow", {"id": sid})  # counted once
        # The client inserts two pieces of the suggestion, accepting each one...
        assert len(text) >= 4 and "\n" not in text[:4], text  # the tiny model is deterministic
        first, second = text[:2], text[2:4]
        s.change(uri, (1, 4), (1, 4), first)
        answer = await s.client.workspace_execute_command_async(
            types.ExecuteCommandParams(
                command=item.command.command,
                arguments=[
                    {
                        "id": sid,
                        "kind": "word",
                        "acceptedText": first,
                        "uri": uri,
                        "position": {"line": 1, "character": 4},
                    }
                ],
            )
        )
        assert plain(answer) == {"counted": True}
        s.change(uri, (1, 6), (1, 6), second)
        await s.client.workspace_execute_command_async(
            types.ExecuteCommandParams(
                command=item.command.command,
                arguments=[
                    {
                        "id": sid,
                        "kind": "line",
                        "acceptedText": second,
                        "uri": uri,
                        "position": {"line": 1, "character": 6},
                    }
                ],
            )
        )
        # ...then deletes the second piece before the retention check runs.
        s.change(uri, (1, 6), (1, 6 + len(second)), "")
        await asyncio.sleep(1.5)
        total = plain(await s.status())["acceptance"]["total"]
    assert total["displayed"] == 1, total
    assert (total["partiallyAccepted"], total["accepted"]) == (2, 0), total
    assert total["acceptedChars"] == len(first) + len(second), total
    assert total["retainedChars"] == len(first), total
    assert total["retentionUnknown"] == 0, total
