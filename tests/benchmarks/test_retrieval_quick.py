"""The retrieval benchmark at its quick size: it runs end to end through the server's prompt
path and reports every figure (no thresholds on recall or time: those are the full run's)."""

from __future__ import annotations

from pathlib import Path

from benchmarks.retrieval import code_bases, run_bases


def test_quick_retrieval_benchmark_reports_every_figure(tmp_path: Path) -> None:
    bases = [b for b in code_bases() if b.name == "httpx"]
    result = run_bases(bases, True, tmp_path, 1234, lambda message: None)
    httpx = result["code_bases"]["httpx"]
    assert httpx["holes"] >= 20 and httpx["files"] > 10
    for variant in ("honest", "kept"):
        figures = httpx[variant]
        assert 0.0 <= figures["recall"] <= 1.0
        assert figures["retrieve_ms"]["n"] == httpx["holes"]
        assert 0 < figures["context_tokens"]["mean"] <= result["budget_tokens"] * 1.5
        # lsp-llm context shows what retrieval returns; the prompt must hold exactly that.
        assert figures["same_snippets"] == 1.0
    # With the rest of the line still in the file, the name is visible: recall is at least
    # as high as when the user has not typed it yet.
    assert httpx["kept"]["recall"] >= httpx["honest"]["recall"]
    assert next(g["goal"] for g in result["goals"]) == "httpx: context recall (honest)"
