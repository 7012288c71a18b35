"""Hypothesis-driven sessions: open / change / complete / cancel / close against one server,
checking the server's text against a reference model and one answer per request."""

from __future__ import annotations

import itertools
import os

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.robustness import textmodel
from tests.robustness.raw import RawServer

ALPHABET = st.sampled_from(list("ab c\n\t(){}:=é€😀\r"))
_docs = itertools.count()

steps = st.lists(
    st.one_of(
        st.tuples(
            st.just("change"), st.floats(0, 1), st.floats(0, 1), st.text(ALPHABET, max_size=8)
        ),
        st.tuples(st.just("complete"), st.floats(0, 1)),
        st.tuples(st.just("cancel")),
        st.tuples(st.just("close")),
    ),
    min_size=1,
    max_size=8,
)


def _position(text: str, frac: float) -> tuple[int, int]:
    """A valid position (code point boundary, never inside a \\r\\n pair)."""
    offset = int(frac * len(text))
    while 0 < offset < len(text) and text[offset - 1] == "\r" and text[offset] == "\n":
        offset -= 1
    return textmodel.position_of(text, offset)


@settings(
    max_examples=int(os.environ.get("LSP_LLM_FUZZ_EXAMPLES", "30")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(initial=st.text(ALPHABET, max_size=40), script=steps)
def test_fuzz_session(srv: RawServer, initial: str, script: list[tuple]) -> None:
    initial = initial.replace("\r", "")  # \r only through edits: keeps positions unambiguous
    uri = (srv.root / f"fuzz_{next(_docs)}.py").as_uri()
    text, version, is_open = initial, 1, True
    srv.did_open(uri, text)
    ids: list[int] = []
    for step in script:
        kind = step[0]
        if kind == "close":
            if is_open:
                srv.did_close(uri)
                is_open = False
            else:
                version = 1
                srv.did_open(uri, text, version=version)
                is_open = True
            continue
        if not is_open:
            continue
        if kind == "change":
            _, a, b, new = step
            new = new.replace("\r", "")
            start, end = sorted([_position(text, a), _position(text, b)])
            version += 1
            srv.did_change(uri, version, start, end, new)
            text = textmodel.apply(text, start, end, new)
        elif kind == "complete":
            line, col = _position(text, step[1])
            ids.append(
                srv.request_nowait(
                    "textDocument/inlineCompletion", srv.inline_params(uri, line, col)
                )
            )
        elif kind == "cancel" and ids:
            srv.cancel(ids[-1])
    for msg_id in ids:
        reply = srv.response(msg_id, timeout=60)
        assert "result" in reply or reply["error"]["code"] == -32800, reply
    if is_open:
        doc = srv.debug_document(uri)
        assert doc == {"text": text, "version": version}
        srv.did_close(uri)
    else:
        assert srv.debug_document(uri) is None
    srv.request("lspLlm/status", {})
    counts = srv.responses_per_id()
    assert all(counts[i] == 1 for i in ids)
