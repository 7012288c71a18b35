"""The one tree-sitter loader: every grammar loads, parsers are per thread, failures log once."""

from __future__ import annotations

import logging
import threading

import pytest

from lsp_llm import treesitter
from lsp_llm.languages import GRAMMARS, Grammar
from lsp_llm.treesitter import grammar_status, parser_for


@pytest.mark.parametrize("grammar", GRAMMARS, ids=[g.name for g in GRAMMARS])
def test_each_grammar_loads_and_parses(grammar: Grammar) -> None:
    parser = parser_for(grammar.name)
    assert parser is not None
    tree = parser.parse(b"x\n")
    assert tree.root_node is not None


def test_grammar_status_reports_every_grammar() -> None:
    status = grammar_status()
    assert [s.grammar for s in status] == list(GRAMMARS)
    assert all(s.ok and s.error == "" for s in status), [s.error for s in status]
    by_name = {s.grammar.name: s for s in status}
    assert by_name["tsx"].languages == ("typescriptreact",)
    assert by_name["javascript"].languages == ("javascript", "javascriptreact")
    assert by_name["tsx"].grammar.distribution == "tree-sitter-typescript"


def test_a_parser_belongs_to_its_thread() -> None:
    mine = parser_for("python")
    assert mine is parser_for("python") is parser_for("py")
    assert parser_for("typescriptreact") is parser_for("tsx")
    assert parser_for("typescript") is not parser_for("tsx")
    theirs: list[object] = []
    thread = threading.Thread(target=lambda: theirs.extend([parser_for("python")] * 2))
    thread.start()
    thread.join()
    assert theirs[0] is not None and theirs[0] is theirs[1]
    assert theirs[0] is not mine


def test_no_grammar_means_none() -> None:
    assert parser_for("kotlin") is None
    assert parser_for("not-a-language") is None


def test_a_missing_grammar_is_none_with_one_log_line(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    missing = Grammar("nothing", "tree_sitter_does_not_exist")
    monkeypatch.setattr(treesitter, "grammar_for", lambda lang: missing)
    monkeypatch.setattr(treesitter, "GRAMMARS", (missing,))
    monkeypatch.setattr(treesitter, "_loaded", {})
    monkeypatch.setattr(treesitter, "_reported", set())
    with caplog.at_level(logging.WARNING, logger="lsp_llm.treesitter"):
        assert parser_for("anything") is None
        assert parser_for("anything") is None
        (status,) = grammar_status()
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "nothing" in warnings[0].getMessage()
    assert not status.ok and status.error.startswith("ModuleNotFoundError")
