"""didChange validation: reversed ranges, repeated or backward versions and changes to closed
documents are rejected whole (text and version unchanged, one warning without text); ranges
past the end, in order, are clamped as the spec allows.

The pure function (``lsp_llm.server.documents.apply_content_changes``) is checked against the
reference model in ``textmodel``; the server over stdio is checked through
``lspLlm/debugDocument``. The server's model cannot load (it starts in ~2 s); edits need none.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lsprotocol import types

from lsp_llm.server.documents import InvalidEdit, apply_content_changes, check_version
from tests.robustness import textmodel
from tests.robustness.conftest import broken_model_args
from tests.robustness.raw import RawServer

# No \r here: the reference model splits lines at \n only (\r and \r\n have their own test).
ALPHABET = st.sampled_from(list("ab \n\t(){}é€😀\x0c\u2028"))


def _change(
    start: tuple[int, int], end: tuple[int, int], text: str
) -> types.TextDocumentContentChangePartial:
    return types.TextDocumentContentChangePartial(
        range=types.Range(
            start=types.Position(line=start[0], character=start[1]),
            end=types.Position(line=end[0], character=end[1]),
        ),
        text=text,
    )


def _clamp(text: str, line: int, character: int) -> tuple[int, int]:
    """The spec's clamping, on the reference model: a line past the last one is the end of the
    document, a character past the end of its line is the end of that line."""
    lines = textmodel.lines_of(text)
    if line >= len(lines):
        return textmodel.position_of(text, len(text))
    return line, min(character, textmodel.utf16_len(lines[line]))


def _boundary(text: str, line: int, character: int) -> tuple[int, int]:
    """A clamped position, moved to the end of the character it falls inside (half of a
    surrogate pair), where the reference model can take it."""
    line, character = _clamp(text, line, character)
    units = 0
    for ch in textmodel.lines_of(text)[line]:
        if units >= character:
            break
        units += textmodel.utf16_len(ch)
    return line, units


positions = st.tuples(st.integers(0, 8), st.integers(0, 12))
edits = st.lists(
    st.tuples(positions, positions, st.text(ALPHABET, max_size=6)), min_size=1, max_size=6
)


@settings(max_examples=300, deadline=None)
@given(initial=st.text(ALPHABET, max_size=40), script=edits)
def test_valid_changes_match_the_reference_model(initial: str, script: list) -> None:
    """Ranges in order, anywhere (past the end too): the result is the reference model's."""
    text = initial
    changes = []
    for a, b, new in script:
        start, end = sorted([a, b])
        changes.append(_change(start, end, new))
        text = textmodel.apply(text, _boundary(text, *start), _boundary(text, *end), new)
    assert apply_content_changes(initial, changes) == text


@given(initial=st.text(ALPHABET, max_size=40), script=edits, data=st.data())
def test_a_reversed_range_anywhere_in_a_batch_rejects_the_batch(
    initial: str, script: list, data: st.DataObject
) -> None:
    changes = [_change(*sorted([a, b]), new) for a, b, new in script]
    start, end = data.draw(
        st.tuples(positions, positions).filter(lambda p: p[0] != p[1]).map(sorted)
    )
    changes.insert(data.draw(st.integers(0, len(changes))), _change(end, start, "R"))
    with pytest.raises(InvalidEdit, match="comes after its end"):
        apply_content_changes(initial, changes)


def test_the_reported_reversed_range_is_rejected() -> None:
    with pytest.raises(InvalidEdit) as err:
        apply_content_changes("aZghij\n", [_change((5, 0), (0, 0), "R")])
    assert "aZghij" not in str(err.value)


@pytest.mark.parametrize(
    ("text", "start", "end", "expected"),
    [
        ("a\r\nb\r\nc", (1, 0), (1, 1), "a\r\nR\r\nc"),
        ("a\rb\rc", (2, 0), (2, 9), "a\rb\rR"),
        ("a\r\nb", (0, 9), (1, 0), "aRb"),
        ("a\x0cb\nc", (1, 0), (1, 1), "a\x0cb\nR"),
        ("a\u2028b\nc", (0, 2), (0, 3), "a\u2028R\nc"),
        ("", (3, 3), (4, 0), "R"),
    ],
    ids=["crlf", "cr", "clamp-before-crlf", "form-feed-is-no-break", "u2028-is-no-break", "empty"],
)
def test_lines_end_where_the_spec_says(
    text: str, start: tuple[int, int], end: tuple[int, int], expected: str
) -> None:
    assert apply_content_changes(text, [_change(start, end, "R")]) == expected


@pytest.mark.parametrize(
    ("encoding", "character", "expected"),
    [("utf-16", 3, "é😀R"), ("utf-8", 6, "é😀R"), ("utf-32", 2, "é😀R"), ("utf-8", 1, "éR😀")],
)
def test_characters_count_in_the_negotiated_encoding(
    encoding: str, character: int, expected: str
) -> None:
    change = _change((0, character), (0, character), "R")
    assert apply_content_changes("é😀", [change], encoding) == expected


def test_a_whole_document_change_replaces_the_text() -> None:
    whole = types.TextDocumentContentChangeWholeDocument(text="new\n")
    assert apply_content_changes("old", [whole, _change((1, 0), (1, 0), "x")]) == "new\nx"


@pytest.mark.parametrize(("current", "new"), [(3, 3), (3, 2), (3, -1)])
def test_versions_must_go_up(current: int, new: int) -> None:
    with pytest.raises(InvalidEdit):
        check_version(current, new)


def test_versions_may_skip() -> None:
    check_version(3, 10)
    check_version(None, 0)


# -- over stdio ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def raw(debug_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[RawServer]:
    tmp = tmp_path_factory.mktemp("edits")
    server = RawServer(broken_model_args(tmp), debug_env, tmp, stderr_path=tmp / "stderr.log")
    try:
        reply = server.initialize(tmp)
        assert "result" in reply, reply
        yield server
    finally:
        server.close()


_names = iter(range(10**6))


def _open(raw: RawServer, text: str) -> str:
    uri = (raw.root / f"doc_{next(_names)}.py").as_uri()
    raw.did_open(uri, text)
    return uri


def _wait_log(raw: RawServer, needle: str, timeout: float = 10.0) -> str:
    deadline = time.monotonic() + timeout
    while needle not in (log := raw.stderr_text()):
        assert time.monotonic() < deadline, f"{needle!r} not logged:\n{log[-2000:]}"
        time.sleep(0.05)
    return log


def test_server_rejects_the_reported_reversed_range(raw: RawServer) -> None:
    uri = _open(raw, "aZghij\n")
    raw.did_change(uri, 2, (5, 0), (0, 0), "R")
    assert raw.debug_document(uri) == {"text": "aZghij\n", "version": 1}
    log = _wait_log(raw, f"didChange for {uri} (version 2) rejected")
    assert "aZghij" not in log
    # The document goes on with the next valid change.
    raw.did_change(uri, 3, (0, 1), (0, 2), "b")
    assert raw.debug_document(uri) == {"text": "abghij\n", "version": 3}


def test_server_clamps_ranges_past_the_end(raw: RawServer) -> None:
    uri = _open(raw, "aZghij\n")
    raw.did_change(uri, 2, (0, 3), (5, 0), "R")
    assert raw.debug_document(uri) == {"text": "aZgR", "version": 2}
    raw.did_change(uri, 3, (0, 99), (7, 7), "!")
    raw.did_change(uri, 4, (9, 0), (9, 9), "\nend")
    assert raw.debug_document(uri) == {"text": "aZgR!\nend", "version": 4}


def test_server_rejects_repeated_and_backward_versions(raw: RawServer) -> None:
    uri = _open(raw, "x = 1\n")
    raw.did_change(uri, 5, (0, 4), (0, 5), "2")
    raw.did_change(uri, 5, (0, 4), (0, 5), "3")  # same version again
    raw.did_change(uri, 4, (0, 0), (0, 0), "#")  # an older version
    assert raw.debug_document(uri) == {"text": "x = 2\n", "version": 5}
    _wait_log(raw, "version 4 goes back from the current version 5")
    _wait_log(raw, "version 5 repeats the current version")


def test_server_applies_a_batch_whole_or_not_at_all(raw: RawServer) -> None:
    uri = _open(raw, "one\ntwo\n")
    raw.notify(
        "textDocument/didChange",
        {
            "textDocument": {"uri": uri, "version": 2},
            "contentChanges": [
                {"range": _range((0, 0), (0, 3)), "text": "ONE"},
                {"range": _range((1, 3), (1, 0)), "text": "?"},
            ],
        },
    )
    assert raw.debug_document(uri) == {"text": "one\ntwo\n", "version": 1}
    _wait_log(raw, "change 2 of 2: range start (1, 3) comes after its end (1, 0)")


def test_server_counts_lines_as_the_spec_does(raw: RawServer) -> None:
    """A form feed is no line break in LSP (pygls' ``splitlines`` thought it was one)."""
    uri = _open(raw, "a\x0cb\nc\r\nd")
    raw.did_change(uri, 2, (1, 0), (1, 1), "C")
    raw.did_change(uri, 3, (2, 0), (2, 1), "D")
    assert raw.debug_document(uri) == {"text": "a\x0cb\nC\r\nD", "version": 3}


def test_server_ignores_a_change_to_a_closed_document(raw: RawServer) -> None:
    marker = "CLOSED_DOC_TEXT_4e1b"
    uri = (raw.root / "never_opened.py").as_uri()
    raw.did_change(uri, 2, (0, 0), (0, 0), marker)
    assert raw.debug_document(uri) is None
    log = _wait_log(raw, f"didChange for {uri} ignored: the document is not open")
    assert marker not in log
    assert raw.status()["state"] in ("error", "loading", "ready")


def _range(start: tuple[int, int], end: tuple[int, int]) -> dict[str, dict[str, int]]:
    return {
        "start": {"line": start[0], "character": start[1]},
        "end": {"line": end[0], "character": end[1]},
    }
