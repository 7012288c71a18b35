"""Explanations, docstrings and code actions end to end over stdio (tiny real model)."""

from __future__ import annotations

import ast
import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
from lsprotocol import types

from tests.lsp_helpers import Session, plain, start_session, wait_until

SOURCE = """import math


class Shape:
    def area(self, scale: float, *, rounded: bool = False) -> float:
        value = math.pi * scale**2
        return round(value) if rounded else value


def outer(a, b=2, *args, **kwargs):
    def inner(x):
        return x * a

    return inner(b) + len(args) + len(kwargs)
"""


def _collect_partials(s: Session) -> dict[str, list[str]]:
    chunks: dict[str, list[str]] = {}

    def on_progress(params: Any) -> None:
        value = plain(params.value)
        if isinstance(value, dict) and "text" in value:
            chunks.setdefault(str(params.token), []).append(value["text"])

    # pytest-lsp's own $/progress handler only knows work-done values; partial results are ours.
    s.client.protocol.fm._features[types.PROGRESS] = on_progress
    return chunks


def _apply(text: str, edit: dict[str, Any], uri: str) -> str:
    changes = edit.get("documentChanges")
    edits = changes[0]["edits"] if changes else edit["changes"][uri]
    lines = text.split("\n")

    def off(pos: dict[str, int]) -> int:
        return sum(len(x) + 1 for x in lines[: pos["line"]]) + pos["character"]

    for e in sorted(edits, key=lambda e: off(e["range"]["start"]), reverse=True):
        text = text[: off(e["range"]["start"])] + e["newText"] + text[off(e["range"]["end"]) :]
    return text


async def test_explain_streams_partial_results_then_full_text(
    tmp_path: Path, tiny_args: list[str], server_env: dict[str, str]
) -> None:
    async with start_session(tmp_path, tiny_args, server_env) as s:
        chunks = _collect_partials(s)
        uri = s.open("shapes.py", SOURCE)
        result = plain(
            await s.client.protocol.send_request_async(
                "lspLlm/explain",
                {
                    "textDocument": {"uri": uri},
                    "range": {
                        "start": {"line": 5, "character": 0},
                        "end": {"line": 5, "character": 0},
                    },
                    "partialResultToken": "explain-1",
                },
            )
        )
        assert result["text"].strip()
        parts = chunks.get("explain-1", [])
        assert len(parts) >= 2, "expected at least two streamed chunks"
        # The enclosing method was explained (the empty selection was inside it).
        assert result["range"]["start"]["line"] == 4


async def test_explain_cancel_mid_stream_answers_32800(
    tmp_path: Path, tiny_args: list[str], server_env: dict[str, str]
) -> None:
    async with start_session(
        tmp_path, tiny_args, server_env, init_options={"explainMaxNewTokens": 4000}
    ) as s:
        chunks = _collect_partials(s)
        uri = s.open("shapes.py", SOURCE)
        fut = asyncio.ensure_future(
            s.client.protocol.send_request_async(
                "lspLlm/explain",
                {
                    "textDocument": {"uri": uri},
                    "range": {
                        "start": {"line": 9, "character": 0},
                        "end": {"line": 13, "character": 0},
                    },
                    "partialResultToken": "explain-2",
                },
                msg_id=777,
            )
        )
        await wait_until(lambda: len(chunks.get("explain-2", [])) >= 2, timeout=30)
        t0 = time.perf_counter()
        s.client.protocol.notify(types.CANCEL_REQUEST, types.CancelParams(id=777))
        with pytest.raises(Exception) as info:
            await asyncio.wait_for(fut, 10)
        assert "-32800" in str(info.value) or "cancel" in str(info.value).lower()
        assert time.perf_counter() - t0 < 2
        deadline = time.perf_counter() + 2
        while plain(await s.status())["worker"] != "idle":
            assert time.perf_counter() < deadline
            await asyncio.sleep(0.02)


@pytest.mark.parametrize(
    ("line", "name", "params"),
    [
        (4, "area", {"scale", "rounded"}),
        (10, "inner", {"x"}),
        (9, "outer", {"a", "b", "*args", "**kwargs"}),
    ],
)
async def test_docstring_edit_is_valid_python_with_exact_params(
    tmp_path: Path,
    tiny_args: list[str],
    server_env: dict[str, str],
    line: int,
    name: str,
    params: set[str],
) -> None:
    async with start_session(tmp_path, tiny_args, server_env) as s:
        uri = s.open("shapes.py", SOURCE)
        result = plain(
            await s.client.protocol.send_request_async(
                "lspLlm/docstring",
                {"textDocument": {"uri": uri}, "position": {"line": line, "character": 8}},
            )
        )
        new = _apply(SOURCE, result["edit"], uri)
        tree = ast.parse(new)
        node = next(
            n
            for n in ast.walk(tree)
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.name == name
        )
        doc = ast.get_docstring(node)
        assert doc, new
        for p in params:
            assert p.lstrip("*") in doc, (p, doc)
        assert "self" not in doc.split("Args:")[-1].split()[:1]
        # Everything else is unchanged: removing the docstring gives the original back.
        assert new.replace(result["text"], "", 1) == SOURCE


async def test_jsdoc_for_a_javascript_function(
    tmp_path: Path, tiny_args: list[str], server_env: dict[str, str]
) -> None:
    js = "function scale(point, factor = 2) {\n  return point.map((v) => v * factor);\n}\n"
    async with start_session(tmp_path, tiny_args, server_env) as s:
        uri = s.open("geo.js", js, language="javascript")
        result = plain(
            await s.client.protocol.send_request_async(
                "lspLlm/docstring",
                {"textDocument": {"uri": uri}, "position": {"line": 0, "character": 10}},
            )
        )
        new = _apply(js, result["edit"], uri)
        assert new.startswith("/**")
        assert "@param" in new and "point" in new and "factor" in new
        assert new.endswith(js)


async def test_code_actions_listed_without_model_and_resolve_to_edit(
    tmp_path: Path, tiny_args: list[str], server_env: dict[str, str]
) -> None:
    async with start_session(tmp_path, tiny_args, server_env) as s:
        uri = s.open("shapes.py", SOURCE)
        before = plain(await s.status())["lastRequest"]
        pos = types.Position(line=10, character=8)
        actions = await s.client.text_document_code_action_async(
            types.CodeActionParams(
                text_document=types.TextDocumentIdentifier(uri=uri),
                range=types.Range(start=pos, end=pos),
                context=types.CodeActionContext(diagnostics=[]),
            )
        )
        assert actions is not None
        # The client's converter reads an action that carries a command as a Command.
        titles = {a.title for a in actions}
        assert {"Explain this code", "Generate docstring"} <= titles
        # Listing runs no request of its own (an idle warm-up may prefill this place in the
        # background, at the lowest priority; it never shows as lastRequest).
        assert plain(await s.status())["lastRequest"] == before, "listing must not run the model"
        doc_action = next(
            a
            for a in actions
            if isinstance(a, types.CodeAction) and a.title == "Generate docstring"
        )
        resolved = await s.client.code_action_resolve_async(doc_action)
        assert resolved.edit is not None
        edit = s.client.protocol._converter.unstructure(resolved.edit)
        new = _apply(SOURCE, edit, uri)
        tree = ast.parse(new)
        inner = next(
            n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name == "inner"
        )
        assert ast.get_docstring(inner)


async def test_docstring_command_applies_edit_through_the_client(
    tmp_path: Path, tiny_args: list[str], server_env: dict[str, str]
) -> None:
    async with start_session(tmp_path, tiny_args, server_env) as s:
        applied: list[types.ApplyWorkspaceEditParams] = []

        @s.client.feature(types.WORKSPACE_APPLY_EDIT)
        def apply_edit(params: types.ApplyWorkspaceEditParams) -> types.ApplyWorkspaceEditResult:
            applied.append(params)
            return types.ApplyWorkspaceEditResult(applied=True)

        uri = s.open("shapes.py", SOURCE)
        result = plain(
            await s.client.workspace_execute_command_async(
                types.ExecuteCommandParams(
                    command="lspLlm.generateDocstring",
                    arguments=[uri, {"line": 4, "character": 8}],
                )
            )
        )
        assert result["applied"] is True
        assert len(applied) == 1


async def test_explain_command_shows_a_markdown_document(
    tmp_path: Path, tiny_args: list[str], server_env: dict[str, str]
) -> None:
    async with start_session(tmp_path, tiny_args, server_env) as s:
        uri = s.open("shapes.py", SOURCE)
        result = plain(
            await s.client.workspace_execute_command_async(
                types.ExecuteCommandParams(
                    command="lspLlm.explain",
                    arguments=[
                        uri,
                        {"start": {"line": 9, "character": 0}, "end": {"line": 13, "character": 0}},
                    ],
                )
            )
        )
        assert result["text"].strip()
        await wait_until(lambda: s.client.shown_documents, timeout=10)
        shown = s.client.shown_documents[-1].uri
        assert shown.endswith(".md")
        assert Path(shown.removeprefix("file://")).read_text().count(result["text"].strip()[:20])
