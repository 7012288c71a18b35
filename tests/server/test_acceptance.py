"""The didShow / accept handlers over a real pygls workspace: what they count, and the
retention check that runs after the delay on the event loop."""

from __future__ import annotations

import asyncio
import types as pytypes
from pathlib import Path

import pytest
from lsprotocol import types
from pygls.workspace import Workspace

from lsp_llm.server.handlers import acceptance
from lsp_llm.stats import AcceptanceStats

BODY = "def total(items):\n    return \n\n\nprint(total([]))\n"
TEXT = "sum(item.price for item in items)"


def _server(tmp_path: Path) -> tuple[pytypes.SimpleNamespace, Workspace]:
    workspace = Workspace(tmp_path.as_uri())
    stats = AcceptanceStats(tmp_path / "stats.json")
    ls = pytypes.SimpleNamespace(
        workspace=workspace, shared=pytypes.SimpleNamespace(stats=stats), loop=None
    )
    return ls, workspace


def _open(workspace: Workspace, uri: str, text: str, version: int = 1) -> None:
    workspace.put_text_document(
        types.TextDocumentItem(uri=uri, language_id="python", version=version, text=text)
    )


def _replace_all(workspace: Workspace, uri: str, text: str, version: int) -> None:
    workspace.update_text_document(
        types.VersionedTextDocumentIdentifier(uri=uri, version=version),
        types.TextDocumentContentChangeWholeDocument(text=text),
    )


def _row(ls: pytypes.SimpleNamespace) -> dict[str, object]:
    summary = ls.shared.stats.summary()
    return dict(summary["total"])


@pytest.fixture(autouse=True)
def short_delay(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(acceptance.RETENTION_DELAY_ENV, "0.05")


async def test_did_show_then_word_and_line_accepts_measure_retention(tmp_path: Path) -> None:
    ls, workspace = _server(tmp_path)
    uri = (tmp_path / "t.py").as_uri()
    _open(workspace, uri, BODY)
    ls.shared.stats.shown(
        "python", "automatic", ["s1"], {}, uri=uri, position=(1, 11), texts=[TEXT]
    )
    acceptance.did_show(ls, pytypes.SimpleNamespace(_asdict=lambda: {"id": "s1"}))
    acceptance.did_show(ls, {"id": "s1"})
    assert _row(ls)["displayed"] == 1
    # The client inserted "sum(" (a word), then the rest of the line, then sent each accept.
    _replace_all(workspace, uri, BODY.replace("return ", "return sum("), 2)
    args = {"id": "s1", "kind": "word", "acceptedText": "sum(", "uri": uri}
    assert acceptance.accept_command(ls, {**args, "position": {"line": 1, "character": 11}}) == {
        "counted": True
    }
    _replace_all(workspace, uri, BODY.replace("return ", "return " + TEXT), 3)
    rest = TEXT[len("sum(") :]
    line = {"id": "s1", "kind": "line", "acceptedText": rest}  # no position: after the word
    assert acceptance.accept_command(ls, line) == {"counted": True}
    # Then the user rewrites part of what was accepted.
    _replace_all(workspace, uri, BODY.replace("return ", "return " + TEXT.replace("price", "x")), 4)
    await asyncio.sleep(0.3)
    row = _row(ls)
    assert (row["partiallyAccepted"], row["accepted"]) == (2, 0)
    assert row["acceptedChars"] == len(TEXT)
    assert row["retainedChars"] == len(TEXT) - len("price")
    assert row["retentionUnknown"] == 0


async def test_old_client_full_accept_and_a_closed_document_is_unknown(tmp_path: Path) -> None:
    ls, workspace = _server(tmp_path)
    uri = (tmp_path / "t.py").as_uri()
    _open(workspace, uri, BODY.replace("return ", "return " + TEXT))
    ls.shared.stats.shown(
        "python", "invoked", ["a", "b"], {}, uri=uri, position=(1, 11), texts=[TEXT, "0"]
    )
    assert acceptance.accept_command(ls, {"id": "a"}) == {"counted": True}
    assert acceptance.accept_command(ls, {"id": "a"}) == {"counted": False}
    assert acceptance.accept_command(ls) == {"counted": False}
    workspace.remove_text_document(uri)  # closed before the check
    await asyncio.sleep(0.3)
    row = _row(ls)
    assert row["accepted"] == 1 and row["displayed"] == 0
    assert (row["acceptedChars"], row["retainedChars"], row["retentionUnknown"]) == (0, 0, 1)


async def test_accept_kept_whole_counts_every_character(tmp_path: Path) -> None:
    ls, workspace = _server(tmp_path)
    uri = (tmp_path / "k.py").as_uri()
    _open(workspace, uri, BODY.replace("return ", "return " + TEXT))
    ls.shared.stats.shown("python", "automatic", ["k"], {})  # the offer says nothing
    info = {"id": "k", "kind": "full", "acceptedText": TEXT, "uri": uri}
    assert acceptance.accept_command(ls, {**info, "position": {"line": 1, "character": 11}})
    # Edits elsewhere: a header above moves it down a line.
    _replace_all(workspace, uri, "import os\n" + BODY.replace("return ", "return " + TEXT), 2)
    await asyncio.sleep(0.3)
    row = _row(ls)
    assert (row["accepted"], row["acceptedChars"], row["retainedChars"]) == (
        1,
        len(TEXT),
        len(TEXT),
    )
    assert row["retentionRate"] == 1.0


def test_the_delay_defaults_to_30_seconds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(acceptance.RETENTION_DELAY_ENV)
    assert acceptance.retention_delay_s() == 30.0
    monkeypatch.setenv(acceptance.RETENTION_DELAY_ENV, "soon")
    assert acceptance.retention_delay_s() == 30.0
