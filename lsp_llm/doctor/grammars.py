"""The tree-sitter grammars the workspace index parses symbols with: every grammar of the
language registry (:data:`lsp_llm.languages.GRAMMARS`), loaded by the server's own loader
(:func:`lsp_llm.treesitter.grammar_status`)."""

from __future__ import annotations

import sys

from lsp_llm.doctor.report import Check
from lsp_llm.doctor.system import dist_version


def check_tree_sitter() -> Check:
    try:
        import tree_sitter  # noqa: F401
    except Exception as exc:  # a broken wheel fails in many ways: a finding, never a crash
        return Check(
            name="tree-sitter",
            ok=False,
            required=False,
            detail=f"tree-sitter does not import ({exc}); the workspace index has no symbols",
            fix=f"{sys.executable} -m pip install 'tree-sitter>=0.23'",
        )
    from lsp_llm.treesitter import grammar_status

    statuses = grammar_status()
    working = [s.grammar.name for s in statuses if s.ok]
    broken = {s.grammar.name: s.error for s in statuses if not s.ok}
    version = dist_version("tree-sitter")
    detail = f"tree-sitter {version}; grammars: {', '.join(working) or 'none'}"
    if broken:
        detail += f"; not working: {', '.join(broken)}"
    wheels = sorted({s.grammar.distribution for s in statuses if not s.ok})
    return Check(
        name="tree-sitter",
        ok=not broken,
        required=False,
        detail=detail,
        fix=(
            f"Files in those languages are indexed without symbols. Install the grammars: "
            f"{sys.executable} -m pip install {' '.join(wheels)}"
            if broken
            else ""
        ),
        data={
            "version": version,
            "grammars": working,
            "broken": broken,
            "languages": {s.grammar.name: list(s.languages) for s in statuses},
        },
    )
