"""Several suggestions, acceptance counts that survive a restart, the completion cache, and
one TCP daemon shared by two editors."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
from pathlib import Path

from lsprotocol import types
from pygls.lsp.client import LanguageClient

from tests.lsp_helpers import plain, start_session

BODY = "def total(items):\n    "


def _texts(result: object) -> list[str]:
    items = result.items if isinstance(result, types.InlineCompletionList) else result or []
    return [str(i.insert_text) for i in items]  # type: ignore[union-attr]


async def test_invoked_gives_several_distinct_automatic_gives_one(
    tmp_path: Path, tiny_args: list[str], server_env: dict[str, str]
) -> None:
    async with start_session(
        tmp_path, tiny_args, server_env, init_options={"maxNewTokens": 12, "completionCache": False}
    ) as s:
        uri = s.open("t.py", BODY)
        automatic = _texts(await s.inline(uri, 1, 4))
        assert len(automatic) == 1
        invoked = _texts(await s.inline(uri, 1, 4, invoked=True))
        assert len(invoked) >= 2, invoked
        assert len(set(invoked)) == len(invoked)


async def test_accepted_suggestions_are_counted_and_survive_restart(
    tmp_path: Path, tiny_args: list[str], server_env: dict[str, str]
) -> None:
    async with start_session(tmp_path, tiny_args, server_env) as s:
        uri = s.open("t.py", BODY)
        result = await s.inline(uri, 1, 4)
        item = result.items[0] if isinstance(result, types.InlineCompletionList) else None
        assert item is not None and item.command is not None
        await s.client.workspace_execute_command_async(
            types.ExecuteCommandParams(
                command=item.command.command, arguments=item.command.arguments
            )
        )
        acc = plain(await s.status())["acceptance"]
        row = next(r for r in acc["byLanguageTrigger"] if r["language"] == "python")
        assert row["accepted"] >= 1 and row["shown"] >= 1
    stats = subprocess.run(
        [sys.executable, "-m", "lsp_llm", "stats", "--json"],
        capture_output=True,
        text=True,
        env=server_env,
        timeout=60,
    )
    data = json.loads(stats.stdout)
    assert data["total"]["accepted"] >= 1


async def test_typing_into_a_suggestion_is_served_from_the_cache(
    tmp_path: Path, tiny_args: list[str], server_env: dict[str, str]
) -> None:
    async with start_session(tmp_path, tiny_args, server_env) as s:
        uri = s.open("c.py", BODY)
        first = _texts(await s.inline(uri, 1, 4))[0]
        requests_before = plain(await s.status())["lastRequest"]
        typed = first[:2]
        s.change(uri, (1, 4), (1, 4), typed)
        second = _texts(await s.inline(uri, 1, 4 + len(typed)))
        assert second == [first[2:]]
        status = plain(await s.status())
        assert status["lastCompletion"]["source"] == "cache"
        assert status["lastRequest"] == requests_before, "the model must not run"


async def _client(port: int, root: Path) -> LanguageClient:
    client = LanguageClient("tcp-test", "1")

    @client.feature("lspLlm/statusChanged")
    def _status(params: object) -> None:
        pass

    await client.start_tcp("127.0.0.1", port)
    await client.initialize_async(
        types.InitializeParams(
            capabilities=types.ClientCapabilities(),
            root_uri=root.as_uri(),
            workspace_folders=[types.WorkspaceFolder(uri=root.as_uri(), name=root.name)],
        )
    )
    client.initialized(types.InitializedParams())
    return client


async def test_tcp_daemon_serves_two_editors_with_one_model(
    tmp_path: Path, tiny_args: list[str], server_env: dict[str, str]
) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "lsp_llm", "serve", "--tcp", "--port", "0", *tiny_args],
        stderr=subprocess.PIPE,
        text=True,
        env=server_env,
        cwd=tmp_path,
    )
    try:
        assert proc.stderr is not None
        port = 0
        for _ in range(200):
            line = await asyncio.to_thread(proc.stderr.readline)
            if "listening on" in line:
                port = int(line.rsplit(":", 1)[1])
                break
        assert port, "daemon did not report its port"
        a_root, b_root = tmp_path / "a", tmp_path / "b"
        a_root.mkdir()
        b_root.mkdir()
        a, b = await _client(port, a_root), await _client(port, b_root)
        for _ in range(600):
            st = plain(await a.protocol.send_request_async("lspLlm/status", {}))
            if st["state"] == "ready":
                break
            await asyncio.sleep(0.1)
        assert st["sessions"] == 2
        uris = []
        for client, root in ((a, a_root), (b, b_root)):
            uri = (root / "x.py").as_uri()
            uris.append(uri)
            client.text_document_did_open(
                types.DidOpenTextDocumentParams(
                    text_document=types.TextDocumentItem(
                        uri=uri, language_id="python", version=1, text=BODY
                    )
                )
            )
        params = [
            types.InlineCompletionParams(
                text_document=types.TextDocumentIdentifier(uri=u),
                position=types.Position(line=1, character=4),
                context=types.InlineCompletionContext(
                    trigger_kind=types.InlineCompletionTriggerKind.Automatic
                ),
            )
            for u in uris
        ]
        ra, rb = await asyncio.gather(
            a.text_document_inline_completion_async(params[0]),
            b.text_document_inline_completion_async(params[1]),
        )
        assert _texts(ra) and _texts(rb)
        # Documents are per session: b never opened a's file.
        rb2 = await b.text_document_inline_completion_async(params[0])
        assert _texts(rb2) == []
        # One session leaving does not stop the daemon or the other session.
        await a.shutdown_async(None)
        a.exit(None)
        await asyncio.sleep(0.3)
        assert proc.poll() is None
        st = plain(await b.protocol.send_request_async("lspLlm/status", {}))
        assert st["state"] == "ready" and st["sessions"] == 1
        with contextlib.suppress(Exception):
            await a.stop()
        await b.shutdown_async(None)
        b.exit(None)
        with contextlib.suppress(Exception):
            await b.stop()
    finally:
        proc.terminate()
        with contextlib.suppress(Exception):
            proc.wait(10)
        if proc.poll() is None:
            os.kill(proc.pid, 9)


async def test_plain_completion_for_clients_without_inline_completion(
    tmp_path: Path, tiny_args: list[str], server_env: dict[str, str]
) -> None:
    async with start_session(tmp_path, tiny_args, server_env, capabilities="neovim@v0.10.0") as s:
        uri = s.open("p.py", "def total(items):\n    resu")
        result = await s.client.text_document_completion_async(
            types.CompletionParams(
                text_document=types.TextDocumentIdentifier(uri=uri),
                position=types.Position(line=1, character=8),
                context=types.CompletionContext(trigger_kind=types.CompletionTriggerKind.Invoked),
            )
        )
        items = result.items if isinstance(result, types.CompletionList) else result or []
        assert items, "a client without inline completion still gets the suggestion"
        edit = items[0].text_edit
        assert isinstance(edit, types.TextEdit)
        # The edit replaces the word being typed and keeps it as the start of the new text.
        assert edit.range.start == types.Position(line=1, character=4)
        assert edit.new_text.startswith("resu")
