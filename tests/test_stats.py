"""Acceptance statistics: counted per language and trigger, kept in a local file."""

from __future__ import annotations

import json
from pathlib import Path

from lsp_llm.stats import AcceptanceStats


def test_counts_partial_and_full_acceptance_and_survive_reload(tmp_path: Path) -> None:
    path = tmp_path / "stats.json"
    stats = AcceptanceStats(path)
    stats.shown("python", "automatic", ["a", "b"], {"total": 40.0})
    stats.shown("rust", "invoked", ["c"], {"total": 80.0})
    assert stats.accepted("a", partial=True)
    assert stats.accepted("a")
    assert not stats.accepted("a"), "a suggestion is accepted once"
    assert not stats.accepted("unknown")
    stats.save(force=True)
    again = AcceptanceStats(path).summary()
    rows = {(r["language"], r["trigger"]): r for r in again["byLanguageTrigger"]}
    py = rows[("python", "automatic")]
    assert (py["shown"], py["accepted"], py["partiallyAccepted"]) == (1, 1, 1)
    assert py["acceptanceRate"] == 1.0 and py["meanLatencyMs"] == 40.0
    assert rows[("rust", "invoked")]["accepted"] == 0
    assert again["total"]["shown"] == 2


def test_corrupt_stats_file_starts_fresh(tmp_path: Path) -> None:
    path = tmp_path / "stats.json"
    path.write_text("{not json")
    stats = AcceptanceStats(path)
    assert stats.summary()["total"]["shown"] == 0
    stats.shown("python", "automatic", ["x"], {})
    stats.save(force=True)
    assert json.loads(path.read_text())["schema"] == 1
