"""A real LSP client over stdio for end-to-end tests (used with the fixtures in conftest)."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from lsprotocol import types
from pytest_lsp import LanguageClient, client_capabilities
from pytest_lsp.client import make_test_lsp_client

from benchmarks.client import BenchClient
from lsp_llm.server.documents import as_plain


def server_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "lsp_llm", "serve", *args]


async def wait_until(
    predicate: Callable[[], Any], timeout: float = 60.0, interval: float = 0.05
) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError("condition not met in time")
        await asyncio.sleep(interval)


class Session:
    """A started server plus an initialized pytest-lsp client."""

    def __init__(self, client: LanguageClient, root: Path) -> None:
        self.client = client
        self.root = root
        self.versions: dict[str, int] = {}
        self.status_events: list[dict[str, Any]] = []

        @client.feature("lspLlm/statusChanged")
        def _status(params: Any) -> None:
            self.status_events.append(params)

    async def status(self) -> dict[str, Any]:
        return await self.client.protocol.send_request_async("lspLlm/status", {})  # type: ignore[no-any-return]

    async def wait_ready(self, timeout: float = 300.0) -> dict[str, Any]:
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            st = as_plain(await self.status())
            if st["state"] in ("ready", "error"):
                return st
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError(f"model not ready: {st}")
            await asyncio.sleep(0.1)

    def open(self, name: str, text: str, language: str = "python") -> str:
        path = self.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        uri = path.as_uri()
        self.versions[uri] = 1
        self.client.text_document_did_open(
            types.DidOpenTextDocumentParams(
                text_document=types.TextDocumentItem(
                    uri=uri, language_id=language, version=1, text=text
                )
            )
        )
        return uri

    def change(self, uri: str, start: tuple[int, int], end: tuple[int, int], text: str) -> None:
        self.versions[uri] += 1
        self.client.text_document_did_change(
            types.DidChangeTextDocumentParams(
                text_document=types.VersionedTextDocumentIdentifier(
                    uri=uri, version=self.versions[uri]
                ),
                content_changes=[
                    types.TextDocumentContentChangePartial(
                        range=types.Range(
                            start=types.Position(line=start[0], character=start[1]),
                            end=types.Position(line=end[0], character=end[1]),
                        ),
                        text=text,
                    )
                ],
            )
        )

    async def inline(
        self, uri: str, line: int, character: int, invoked: bool = False
    ) -> types.InlineCompletionList | list[types.InlineCompletionItem] | None:
        return await self.client.text_document_inline_completion_async(
            self.inline_params(uri, line, character, invoked)
        )

    inline_params = staticmethod(BenchClient.inline_params)


plain = as_plain


@contextlib.asynccontextmanager
async def start_session(
    root: Path,
    args: list[str],
    env: dict[str, str],
    *,
    init_options: dict[str, Any] | None = None,
    capabilities: str = "visual-studio-code",
    wait_ready: bool = True,
    expect_state: str = "ready",
) -> AsyncIterator[Session]:
    client = make_test_lsp_client()
    await client.start_io(*server_command(*args), env=env, cwd=str(root))
    session = Session(client, root)
    caps = client_capabilities(capabilities)
    await client.initialize_session(
        types.InitializeParams(
            capabilities=caps,
            root_uri=root.as_uri(),
            workspace_folders=[types.WorkspaceFolder(uri=root.as_uri(), name=root.name)],
            initialization_options=init_options or {},
            client_info=types.ClientInfo(name="pytest", version="1"),
        )
    )
    try:
        if wait_ready:
            st = await session.wait_ready()
            assert st["state"] == expect_state, st
        yield session
    finally:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(client.shutdown_session(), 10)
        with contextlib.suppress(Exception):
            await client.stop()
