"""Acceptance statistics: counted per language and trigger, kept in a local file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lsp_llm.stats import AcceptanceStats, place_accepted, retained_chars, run_stats


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


# -- displayed, partial accepts and retained characters ------------------------------------

SOURCE = "def total(items):\n    return sum(item.price for item in items)\n\n\nprint(total([]))\n"


def test_retained_chars_intact_edited_deleted_and_moved() -> None:
    accepted = "sum(item.price for item in items)"
    anchor = SOURCE.index(accepted)
    placed = place_accepted(accepted, SOURCE, anchor)
    assert retained_chars(placed, SOURCE) == len(accepted)
    edited = SOURCE.replace("item.price", "item.cost")
    assert retained_chars(placed, edited) == len(accepted) - len("price")
    deleted = SOURCE.replace(accepted, "0")
    assert retained_chars(placed, deleted) == 0, "no credit for 'items)' in the line above"
    # 300 characters inserted above and a line typed below: the text is found at its new place.
    moved = "# " + "x" * 297 + "\n" + SOURCE.replace("\n\n\n", "\n\nitems = []\n")
    assert retained_chars(placed, moved) == len(accepted)
    half = ("# " + "x" * 297 + "\n" + SOURCE).replace("for item in items)", "")
    assert retained_chars(placed, half) == len("sum(item.price ")
    # Placed before the client's didChange arrived: the same place once it does.
    before_edit = SOURCE.replace(accepted, "")
    early = place_accepted(accepted, before_edit, anchor)
    assert early.length == len(SOURCE)
    assert retained_chars(early, SOURCE) == len(accepted)
    assert retained_chars(early, before_edit) == 0
    assert retained_chars(place_accepted("", SOURCE, 0), SOURCE) == 0


def test_did_show_counts_each_answer_once_and_rates_accepts_of_displayed(tmp_path: Path) -> None:
    stats = AcceptanceStats(tmp_path / "stats.json")
    stats.shown("python", "automatic", ["a1", "a2"], {"total": 10.0})
    stats.shown("python", "automatic", ["b1"], {"total": 10.0})
    assert stats.did_show("a1") and stats.did_show("a2") and stats.did_show("a1")
    assert not stats.did_show("nope")
    assert stats.accepted("a2")
    assert stats.accepted("b1")  # accepted without a didShow (a client that never sends one)
    row = stats.summary()["byLanguageTrigger"][0]
    assert (row["shown"], row["displayed"], row["accepted"]) == (2, 1, 2)
    assert row["displayedAcceptanceRate"] == 1.0 and row["acceptanceRate"] == 1.0


def test_partial_accepts_then_full_accept_of_the_rest(tmp_path: Path) -> None:
    stats = AcceptanceStats(tmp_path / "stats.json")
    text = "return sum(items)\n    # done"
    stats.shown("python", "invoked", ["s"], {}, uri="file:///t.py", position=(1, 4), texts=[text])
    word = stats.accept("s", kind="word", text="return")
    assert word is not None and (word.text, word.position, word.shift) == ("return", (1, 4), 0)
    line = stats.accept("s", kind="line", text=" sum(items)\n")
    assert line is not None and (line.text, line.shift) == (" sum(items)\n", len("return"))
    rest = stats.accept("s")  # an old client's full accept: {"id"} only
    assert rest is not None and rest.uri == "file:///t.py"
    assert (rest.text, rest.position, rest.shift) == ("    # done", (1, 4), len(text) - 10)
    assert stats.accept("s") is None, "accepted in full once"
    total = stats.summary()["total"]
    assert (total["accepted"], total["partiallyAccepted"]) == (1, 2)
    # Where the client says where the text went, that place is used as is.
    stats.shown("python", "invoked", ["t"], {}, uri="file:///t.py", position=(0, 0), texts=["ab"])
    chunk = stats.accept("t", kind="word", text="a", uri="file:///u.py", position=(3, 2))
    assert chunk is not None and (chunk.uri, chunk.position, chunk.shift) == (
        "file:///u.py",
        (3, 2),
        0,
    )


def test_retention_counts_measured_chars_and_unknown_separately_and_persists(
    tmp_path: Path,
) -> None:
    path = tmp_path / "stats.json"
    stats = AcceptanceStats(path)
    stats.shown("python", "automatic", ["a"], {})
    stats.retention("python/automatic", 40, 30)
    stats.retention("python/automatic", 10, 25)  # never more than was accepted
    stats.retention("python/automatic", 99, None)  # document closed: unknown, not 0
    stats.shown("go", "invoked", ["g"], {})
    assert stats.accepted("g", partial=True)
    stats.save(force=True)
    again = AcceptanceStats(path).summary()
    py = next(r for r in again["byLanguageTrigger"] if r["language"] == "python")
    assert (py["acceptedChars"], py["retainedChars"], py["retentionUnknown"]) == (50, 40, 1)
    assert py["retentionRate"] == 0.8
    assert again["total"]["retentionRate"] == 0.8
    assert again["total"]["partiallyAccepted"] == 1


def test_a_schema_1_file_without_the_new_fields_loads(tmp_path: Path) -> None:
    path = tmp_path / "stats.json"
    old = {"shown": 4, "accepted": 1, "latency_ms_total": 100.0}
    path.write_text(json.dumps({"schema": 1, "buckets": {"python/automatic": old}}))
    row = AcceptanceStats(path).summary()["total"]
    assert (row["shown"], row["accepted"], row["displayed"], row["acceptedChars"]) == (4, 1, 0, 0)
    assert row["meanLatencyMs"] == 25.0 and row["retentionRate"] == 0.0


def test_stats_command_table_shows_displayed_partial_and_retained(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("lsp_llm.stats.cache_dir", lambda: tmp_path)
    stats = AcceptanceStats.load_default()
    stats.shown("python", "automatic", ["a"], {"total": 30.0})
    stats.shown("go", "invoked", ["g"], {"total": 10.0})
    assert stats.did_show("a") and stats.accepted("a", partial=True)
    stats.retention("python/automatic", 8, 6)
    stats.save(force=True)
    assert run_stats(as_json=False, reset=False) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == [
        "language/trigger",
        "shown",
        "accepted",
        "rate",
        "latency",
        "displayed",
        "partial",
        "retained",
    ]
    rows = {line.split()[0]: line.split()[1:] for line in lines[1:]}
    assert rows["python/automatic"] == ["1", "0", "0.0%", "30ms", "1", "1", "75.0%"]
    assert rows["go/invoked"][-1] == "-"
    assert rows["total"][-3:] == ["1", "1", "75.0%"]
