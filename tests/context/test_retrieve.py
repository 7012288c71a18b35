"""Ranking, packing and deduplication of snippets (pure functions over a snapshot)."""

from __future__ import annotations

import itertools

from lsp_llm.context.parse import parse_file
from lsp_llm.context.retrieve import (
    FileData,
    IndexSnapshot,
    default_token_count,
    retrieve,
    tokens,
)
from lsp_llm.context.store import FileEntry, content_digest


def data(rel: str, text: str) -> FileData:
    result = parse_file(rel, text)
    return FileData.from_entry(
        FileEntry(
            rel=rel,
            mtime_ns=1,
            size=len(text),
            digest=content_digest(text.encode()),
            language=result.language,
            text=text,
            symbols=result.symbols,
            imports=result.imports,
            chunks=result.chunks,
        )
    )


def snapshot(files: dict[str, str]) -> IndexSnapshot:
    return IndexSnapshot.empty().apply({rel: data(rel, text) for rel, text in files.items()})


PARSER = "\n".join(
    [
        "def tokenize_line(line):",
        '    """Split a line into tokens."""',
        "    return line.split()",
        "",
        "",
        "def parse_header(stream, strict=False):",
        "    header = stream.readline()",
        "    fields = tokenize_line(header)",
        "    if strict and not fields:",
        "        raise ValueError('empty header')",
        "    return fields",
    ]
    + [f"# filler line {i}" for i in range(60)]
)

NEIGHBOUR = "\n".join(
    [f"# unrelated {i}" for i in range(40)]
    + [
        "def load_rows(stream):",
        "    header = stream.readline()",
        "    fields = tokenize_line(header)",
        "    rows = [tokenize_line(line) for line in stream]",
        "    return fields, rows",
    ]
    + [f"# more unrelated {i}" for i in range(40)]
)

CURRENT = "\n".join(
    [
        "from parser import tokenize_line",
        "",
        "def read_table(stream):",
        "    header = stream.readline()",
        "    fields = tokenize_line(header)",
        "    rows = ",
    ]
)

FILES = {"parser.py": PARSER, "loader.py": NEIGHBOUR, "table.py": CURRENT, "other.txt": "zzz"}


def test_definitions_and_similar_windows() -> None:
    snap = snapshot(FILES)
    out = retrieve(snap, "table.py", CURRENT, len(CURRENT), budget=2000, count=len)
    defs = [s for s in out if s.source == "definition"]
    similar = [s for s in out if s.source == "similar"]
    assert [s.symbol for s in defs] == ["tokenize_line"]
    assert defs[0].path == "parser.py" and defs[0].start_line == 0
    assert defs[0].text.startswith("def tokenize_line(line):")
    assert any(s.path == "loader.py" and "def load_rows(stream):" in s.text for s in similar)
    assert all(s.path != "table.py" for s in out)
    # Stable context first: definitions before windows.
    assert out.index(defs[0]) < min(out.index(s) for s in similar)


def test_budget_is_respected_for_any_budget() -> None:
    snap = snapshot(FILES)
    for budget in (0, 10, 40, 80, 200, 400, 1000, 5000):
        for count in (len, default_token_count):
            out = retrieve(snap, "table.py", CURRENT, len(CURRENT), budget=budget, count=count)
            used = sum(count(f"{s.path}\n{s.text}\n") for s in out)
            assert used <= budget


def test_skipping_candidates_that_cannot_fit_changes_nothing() -> None:
    """With the default count, candidates too big for what is left are ruled out by a bound
    before they are counted: the snippets are the same as when every one is counted."""
    snap = snapshot(FILES)

    def counted(text: str) -> int:  # the same count, but not recognised: nothing skipped
        return default_token_count(text)

    for budget in range(0, 400, 7):
        fast = retrieve(snap, "table.py", CURRENT, len(CURRENT), budget=budget)
        slow = retrieve(snap, "table.py", CURRENT, len(CURRENT), budget=budget, count=counted)
        assert fast == slow


def test_small_budget_uses_compact_definitions() -> None:
    snap = snapshot(
        {
            "big.py": "def enormous(a, b):\n    '''Does a lot.'''\n"
            + "".join(f"    step_{i} = a + b\n" for i in range(40)),
            "cur.py": "",
        }
    )
    text = "from big import enormous\nenormous("
    full = retrieve(snap, "cur.py", text, len(text), budget=100_000, count=len)
    assert "    ..." in full[0].text  # long bodies are outlined, never pasted whole
    assert len(full[0].text.splitlines()) <= 12
    small = retrieve(snap, "cur.py", text, len(text), budget=120, count=len)
    assert [s.text for s in small] == ["def enormous(a, b):\n    Does a lot."]


def test_class_outline_lists_members() -> None:
    lines = ["class Big:", '    """A big class."""']
    for i in range(10):
        lines += [f"    def method_{i}(self, x):", f"        y = x + {i}", "        return y", ""]
    snap = snapshot({"big.py": "\n".join(lines), "cur.py": ""})
    text = "from big import Big\nBig("
    out = retrieve(snap, "cur.py", text, len(text), budget=100_000, count=len)
    outline = out[0].text
    assert outline.startswith('class Big:\n    """A big class."""')
    assert all(f"def method_{i}(self, x):" in outline for i in range(10))
    assert "y = x + 3" not in outline


def test_windows_of_one_file_never_overlap() -> None:
    repeated = "\n".join("value = tokenize_line(header) + fields" for _ in range(200))
    snap = snapshot({"dup.py": repeated, "cur.py": ""})
    text = "header = x\nfields = tokenize_line(header)\nvalue = "
    out = retrieve(snap, "cur.py", text, len(text), budget=100_000, count=len)
    ranges = sorted((s.start_line, s.start_line + len(s.text.split("\n"))) for s in out)
    for (_a_start, a_end), (b_start, _) in itertools.pairwise(ranges):
        assert a_end <= b_start, ranges
    assert len({s.text for s in out}) == len(out)


def test_ambiguous_names_need_an_import() -> None:
    files = {f"mod{i}/util.py": f"def run(x):\n    return x + {i}\n" for i in range(8)}
    files["cur.py"] = ""
    snap = snapshot(files)
    text = "result = run("
    assert not [
        s for s in retrieve(snap, "cur.py", text, len(text), budget=5000) if s.symbol == "run"
    ]
    text = "from mod3.util import run\nresult = run("
    defs = [s for s in retrieve(snap, "cur.py", text, len(text), budget=5000) if s.symbol]
    assert [s.path for s in defs] == ["mod3/util.py"]


def test_names_defined_in_the_current_file_are_not_looked_up() -> None:
    snap = snapshot(
        {"a.py": "def helper():\n    return 1\n", "cur.py": "def helper():\n    pass\n"}
    )
    text = "def helper():\n    pass\n\nhelper("
    out = retrieve(snap, "cur.py", text, len(text), budget=5000)
    assert [s for s in out if s.source == "definition"] == []


def test_recent_edits_are_boosted_and_labelled() -> None:
    snap = snapshot(FILES)
    plain = retrieve(snap, "table.py", CURRENT, len(CURRENT), budget=5000, now=1000.0)
    boosted = retrieve(
        snap,
        "table.py",
        CURRENT,
        len(CURRENT),
        budget=5000,
        recent={"loader.py": 999.0},
        now=1000.0,
    )
    before = next(s for s in plain if s.path == "loader.py")
    after = next(s for s in boosted if s.path == "loader.py")
    assert before.source == "similar" and after.source == "recent"
    assert after.score > before.score


def test_overlay_replaces_disk_content() -> None:
    snap = snapshot(FILES)
    overlay = {"parser.py": data("parser.py", "def tokenize_words(line):\n    return []\n")}
    out = retrieve(snap, "table.py", CURRENT, len(CURRENT), budget=5000, overlay=overlay)
    assert not [s for s in out if s.symbol == "tokenize_line"]
    text = "x = tokenize_words("
    out = retrieve(snap, "table.py", text, len(text), budget=5000, overlay=overlay)
    assert [s.symbol for s in out if s.source == "definition"] == ["tokenize_words"]


def test_allowed_filter_is_final() -> None:
    snap = snapshot(FILES)
    out = retrieve(
        snap,
        "table.py",
        CURRENT,
        len(CURRENT),
        budget=5000,
        allowed=lambda rel: rel != "parser.py",
    )
    assert out and all(s.path != "parser.py" for s in out)


def test_snapshot_apply_is_incremental_and_consistent() -> None:
    full = snapshot(FILES)
    step = snapshot({"parser.py": PARSER})
    step = step.apply({rel: data(rel, text) for rel, text in FILES.items() if rel != "parser.py"})
    assert step.n_docs == full.n_docs
    assert step.postings == full.postings and step.symbols == full.symbols
    removed = full.apply({}, ["loader.py"])
    assert "loader.py" not in removed.files
    assert all("loader.py" not in paths for paths in removed.postings.values())
    assert removed.n_docs == full.n_docs - 1
    assert "loader.py" in full.files  # the old snapshot is untouched
    back = removed.apply({"loader.py": data("loader.py", NEIGHBOUR)})
    assert back.n_docs == full.n_docs and back.postings == full.postings
    assert back.symbols == full.symbols


def test_empty_inputs() -> None:
    empty = IndexSnapshot.empty()
    assert retrieve(empty, None, "", 0, budget=100) == []
    assert retrieve(snapshot(FILES), None, "", 0, budget=100) == []
    assert retrieve(snapshot(FILES), "x.py", "tokenize_line(", 10_000, budget=1000)  # clamps


def test_tokens() -> None:
    assert tokens("def foo_bar(self, x): return self.baz") == ["foo_bar", "baz"]
