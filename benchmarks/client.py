"""A small real LSP client over stdio for benchmarks and the evaluation harness.

It starts ``python -m lsp_llm serve`` with the given arguments, initializes like an editor with
inline-completion support, and offers the few calls a measurement needs.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from lsprotocol import types
from pygls.lsp.client import LanguageClient

from lsp_llm.server.documents import as_plain

plain = as_plain
"""pygls turns untyped results into namedtuples; this gives back dicts and lists."""


class BenchClient:
    def __init__(self, client: LanguageClient, root: Path) -> None:
        self.client = client
        self.root = root
        self.versions: dict[str, int] = {}
        self.texts: dict[str, str] = {}

    async def status(self) -> dict[str, Any]:
        result = await self.client.protocol.send_request_async("lspLlm/status", {})
        return plain(result)

    async def wait_ready(self, timeout: float = 900.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            st = await self.status()
            if st["state"] == "ready":
                return st
            if st["state"] == "error":
                raise RuntimeError(f"model failed to load: {st['message']}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"model not ready after {timeout}s: {st}")
            await asyncio.sleep(0.1)

    async def wait_idle(self, timeout: float = 30.0) -> float:
        """Poll until the model worker is idle; returns the time it took (seconds)."""
        t0 = time.perf_counter()
        while (await self.status())["worker"] != "idle":
            if time.perf_counter() - t0 > timeout:
                raise TimeoutError("worker still busy")
            await asyncio.sleep(0.002)
        return time.perf_counter() - t0

    def open(self, path: Path, text: str, language: str = "python") -> str:
        uri = path.as_uri()
        self.versions[uri] = 1
        self.texts[uri] = text
        self.client.text_document_did_open(
            types.DidOpenTextDocumentParams(
                text_document=types.TextDocumentItem(
                    uri=uri, language_id=language, version=1, text=text
                )
            )
        )
        return uri

    def close(self, uri: str) -> None:
        self.client.text_document_did_close(
            types.DidCloseTextDocumentParams(text_document=types.TextDocumentIdentifier(uri=uri))
        )

    def insert(self, uri: str, line: int, character: int, text: str) -> None:
        """Insert ``text`` at a position (UTF-16 columns; ASCII text in benchmarks)."""
        self.versions[uri] += 1
        pos = types.Position(line=line, character=character)
        self.client.text_document_did_change(
            types.DidChangeTextDocumentParams(
                text_document=types.VersionedTextDocumentIdentifier(
                    uri=uri, version=self.versions[uri]
                ),
                content_changes=[
                    types.TextDocumentContentChangePartial(
                        range=types.Range(start=pos, end=pos), text=text
                    )
                ],
            )
        )

    @staticmethod
    def inline_params(
        uri: str, line: int, character: int, invoked: bool = False
    ) -> types.InlineCompletionParams:
        return types.InlineCompletionParams(
            text_document=types.TextDocumentIdentifier(uri=uri),
            position=types.Position(line=line, character=character),
            context=types.InlineCompletionContext(
                trigger_kind=types.InlineCompletionTriggerKind.Invoked
                if invoked
                else types.InlineCompletionTriggerKind.Automatic
            ),
        )

    async def inline(self, uri: str, line: int, character: int, invoked: bool = False) -> list[str]:
        result = await self.client.text_document_inline_completion_async(
            self.inline_params(uri, line, character, invoked)
        )
        if result is None:
            return []
        items = result.items if isinstance(result, types.InlineCompletionList) else result
        return [str(i.insert_text) for i in items]

    async def request(self, method: str, params: Any, msg_id: int | str | None = None) -> Any:
        return await self.client.protocol.send_request_async(method, params, msg_id=msg_id)

    def cancel(self, msg_id: int | str) -> None:
        self.client.protocol.notify(types.CANCEL_REQUEST, types.CancelParams(id=msg_id))


def server_env(cache_home: Path | None = None) -> dict[str, str]:
    env = dict(os.environ)
    if cache_home is not None:
        env["XDG_CACHE_HOME"] = str(cache_home)
    env.setdefault("HF_HUB_OFFLINE", "1")
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    env.setdefault("TRANSFORMERS_VERBOSITY", "error")
    return env


@contextlib.asynccontextmanager
async def start_client(
    root: Path,
    server_args: list[str],
    *,
    init_options: dict[str, Any] | None = None,
    env: dict[str, str] | None = None,
    ready_timeout: float = 900.0,
) -> AsyncIterator[BenchClient]:
    """Start the real server over stdio, initialize, wait for the model."""
    client = LanguageClient("lsp-llm-bench", "1")

    @client.feature("lspLlm/statusChanged")
    def _status_changed(params: Any) -> None:
        """Status pushes are not needed here; registering keeps the log quiet."""

    await client.start_io(
        sys.executable,
        "-m",
        "lsp_llm",
        "serve",
        *server_args,
        env=env or server_env(),
        cwd=str(root),
    )
    caps = types.ClientCapabilities(
        text_document=types.TextDocumentClientCapabilities(
            inline_completion=types.InlineCompletionClientCapabilities(),
            synchronization=types.TextDocumentSyncClientCapabilities(),
        ),
        window=types.WindowClientCapabilities(work_done_progress=False),
        general=types.GeneralClientCapabilities(
            position_encodings=[types.PositionEncodingKind.Utf16]
        ),
    )
    bench = BenchClient(client, root)
    try:
        await client.initialize_async(
            types.InitializeParams(
                capabilities=caps,
                root_uri=root.as_uri(),
                workspace_folders=[types.WorkspaceFolder(uri=root.as_uri(), name=root.name)],
                initialization_options=init_options or {},
            )
        )
        client.initialized(types.InitializedParams())
        await bench.wait_ready(ready_timeout)
        yield bench
    finally:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(client.shutdown_async(None), 10)
            client.exit(None)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(client.stop(), 10)
