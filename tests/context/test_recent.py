"""Recently edited ranges and recently visited buffers (no index needed)."""

from __future__ import annotations

from lsp_llm.context.recent import (
    EDIT_RING_SIZE,
    EditRing,
    OpenBuffers,
    changed_span,
    dedupe,
    identifiers,
    jaccard,
)
from lsp_llm.context.types import ContextSnippet

LIB = "\n".join(
    [f"# header {i}" for i in range(30)]
    + [
        "def parse_header(stream, strict=False):",
        "    header = stream.readline()",
        "    fields = tokenize_line(header)",
        "    return fields",
    ]
    + [f"# footer {i}" for i in range(30)]
)


def test_jaccard() -> None:
    assert jaccard(frozenset("ab"), frozenset("ab")) == 1.0
    assert jaccard(frozenset(["xx", "yy"]), frozenset(["yy", "zz"])) == 1 / 3
    assert jaccard(frozenset(), frozenset(["a"])) == 0.0
    assert identifiers("a bb cc_1 bb") == frozenset({"bb", "cc_1"})


def test_edit_ring_merges_edits_of_one_range_and_is_bounded() -> None:
    ring = EditRing()
    text = "\n".join(f"line {i}" for i in range(100))
    for i in range(5):  # typing through lines 40..44: one entry
        ring.record("a.py", text, 40 + i, 41 + i, float(i))
    assert len(ring) == 1
    only = ring.ranges()[0]
    assert only.start_line == 38 and only.end_line == 47
    assert "line 42" in only.text and only.at == 4.0
    ring.record("b.py", text, 10, 11, 5.0)
    assert [r.path for r in ring.ranges()] == ["b.py", "a.py"]  # newest first
    for i in range(40):
        ring.record("c.py", text, 2 * i * 10 % 100, 2 * i * 10 % 100 + 1, 6.0 + i)
        ring.record(f"f{i}.py", text, 0, 1, 6.0 + i)
    assert len(ring) == EDIT_RING_SIZE
    snippets = ring.snippets(exclude="c.py", limit=3)
    assert [s.path for s in snippets] == ["f39.py", "f38.py", "f37.py"]
    assert all(s.source == "recent" for s in snippets)


def test_open_buffers_rank_the_window_most_like_the_cursor() -> None:
    buffers = OpenBuffers(capacity=3)
    buffers.visit("lib.py", LIB)
    buffers.visit("other.py", "\n".join(f"value_{i} = compute({i})" for i in range(50)))
    current = "def read_table(stream):\n    header = stream.readline()\n    fields = "
    found = buffers.similar(current, len(current), exclude="current.py")
    assert found and found[0].path == "lib.py"
    assert "def parse_header(stream, strict=False):" in found[0].text
    # The current file never contributes; the LRU is bounded.
    assert buffers.similar(current, len(current), exclude="lib.py") == []
    for i in range(5):
        buffers.visit(f"x{i}.py", "pass")
    assert len(buffers) == 3
    assert buffers.similar(current, len(current)) == []  # lib.py was evicted


def test_dedupe_against_what_the_prompt_holds() -> None:
    def snippet(path: str, text: str) -> ContextSnippet:
        return ContextSnippet(path=path, text=text, score=1.0, source="recent")

    held = [snippet("lib.py", "def f():\n    return 1\n\ndef g():\n    return 2")]
    candidates = [
        snippet("lib.py", "def g():\n    return 2"),  # inside a retrieved snippet
        snippet("main.py", "x = f()"),  # in the prompt's own window
        snippet("util.py", "def h(): ..."),
        snippet("util.py", "def h(): ..."),  # a repeat
    ]
    kept = dedupe(candidates, held, prompt_text="import lib\nx = f()\ny = ")
    assert [(s.path, s.text) for s in kept] == [("util.py", "def h(): ...")]


def test_changed_span_and_record_change_read_only_the_edit() -> None:
    before = "\n".join(f"line {i}" for i in range(200))
    after = before.replace("line 120", "line 120 edited\nline 120b")
    start, end_before, end_after = changed_span(before, after)
    assert before[:start] == after[:start]
    assert before[end_before:] == after[end_after:]
    assert after[start:end_after] in "line 120 edited\nline 120b"
    assert changed_span("abc", "abc") == (3, 3, 3)
    assert changed_span("aaa", "aaaa") == (3, 3, 4)  # the prefix and suffix never overlap
    assert changed_span("", "x") == (0, 0, 1)

    ring = EditRing()
    ring.record_change("a.py", after, start, end_after, 1.0)
    whole = EditRing()
    whole.record("a.py", after, 120, 122, 1.0)  # the same edit, from the whole text
    assert ring.ranges() == whole.ranges()
    only = ring.ranges()[0]
    assert only.start_line == 118 and "line 120 edited\nline 120b" in only.text
    # An edit at the very start and at the very end of a file.
    ring.record_change("b.py", "new\n" + before, 0, 3, 2.0)
    assert ring.ranges()[0].start_line == 0 and ring.ranges()[0].text.startswith("new\nline 0")
    ring.record_change("c.py", before + "\ntail", len(before), len(before) + 5, 3.0)
    assert ring.ranges()[0].text.endswith("line 199\ntail")
