"""FrameParser (pure): resynchronisation after every kind of bad frame, and a fuzzer."""

from __future__ import annotations

import json
import os

from hypothesis import given, settings
from hypothesis import strategies as st

from lsp_llm.server.protocol import FrameError, FrameParser


def frame(obj: object, length: int | None = None) -> bytes:
    body = json.dumps(obj).encode()
    return b"Content-Length: %d\r\n\r\n" % (len(body) if length is None else length) + body


def bodies(items: list[bytes | FrameError]) -> list[object]:
    return [json.loads(i) for i in items if not isinstance(i, FrameError)]


GOOD = {"jsonrpc": "2.0", "id": 1, "method": "lspLlm/status"}


def test_frames_split_at_every_byte() -> None:
    data = frame(GOOD) + frame({"jsonrpc": "2.0", "method": "x", "params": {"t": "é😀"}})
    parser = FrameParser()
    out: list[bytes | FrameError] = []
    for i in range(len(data)):
        out += parser.feed(data[i : i + 1])
    assert not [x for x in out if isinstance(x, FrameError)]
    assert bodies(out) == [GOOD, {"jsonrpc": "2.0", "method": "x", "params": {"t": "é😀"}}]
    assert parser.pending == 0


def test_other_headers_and_case() -> None:
    body = json.dumps(GOOD).encode()
    data = (
        b"Content-Type: application/vscode-jsonrpc; charset=utf-8\r\n"
        b"content-length: %d\r\n\r\n" % len(body) + body
    )
    out = FrameParser().feed(data)
    assert out == [body]


def test_missing_and_bad_content_length() -> None:
    for bad in (
        b"Content-Type: x\r\n\r\n{}",
        b"Content-Length: abc\r\n\r\n{}",
        b"Content-Length: -5\r\n\r\n{}",
        b"\r\n\r\n",
        b"garbage without any header at all",
    ):
        out = FrameParser().feed(bad + frame(GOOD))
        assert bodies(out) == [GOOD], bad
        assert any(isinstance(x, FrameError) for x in out), bad


def test_bad_frame_alone_then_good_frame_later() -> None:
    # The bad frame arrives in its own read: no endless loop, nothing lost afterwards.
    parser = FrameParser()
    first = parser.feed(b"Content-Type: x\r\n\r\n{}")
    assert all(isinstance(x, FrameError) for x in first)
    assert bodies(parser.feed(frame(GOOD))) == [GOOD]


def test_length_too_long_resyncs_at_next_header() -> None:
    parser = FrameParser()
    out = parser.feed(frame({"jsonrpc": "2.0", "method": "lost"}, length=500))
    assert out == []  # waiting for the rest of the body
    out = parser.feed(frame(GOOD))
    assert bodies(out) == [GOOD]
    assert any(isinstance(x, FrameError) for x in out)


def test_length_too_long_inside_one_read() -> None:
    data = frame({"jsonrpc": "2.0", "method": "lost"}, length=60) + frame(GOOD) + frame(GOOD)
    assert bodies(FrameParser().feed(data)) == [GOOD, GOOD] or bodies(FrameParser().feed(data)) == [
        GOOD
    ]


def test_length_too_short_loses_one_message() -> None:
    data = frame({"jsonrpc": "2.0", "id": 7, "method": "lost"}, length=10) + frame(GOOD)
    out = FrameParser().feed(data)
    good = [x for x in out if not isinstance(x, FrameError)]
    # The 10-byte prefix comes out as a body (the protocol answers it -32700), then the rest
    # of the frame is skipped and the next one is intact.
    assert good[-1] == json.dumps(GOOD).encode()
    assert len(good) == 2


def test_huge_declared_length_is_refused() -> None:
    out = FrameParser().feed(b"Content-Length: 99999999999\r\n\r\n" + frame(GOOD))
    assert isinstance(out[0], FrameError)
    assert bodies(out) == [GOOD]


def test_header_never_ending_is_bounded() -> None:
    parser = FrameParser()
    parser.feed(b"Content-Length: 5" + b" " * 20000)
    assert parser.pending < 16384
    assert bodies(parser.feed(b"\r\n\r\n" + frame(GOOD))) == [GOOD]


def test_body_containing_header_text_is_kept() -> None:
    msg = {"jsonrpc": "2.0", "method": "x", "params": {"text": "Content-Length: 3\r\n\r\nabc"}}
    assert bodies(FrameParser().feed(frame(msg) + frame(GOOD))) == [msg, GOOD]


def test_large_body_in_chunks_is_linear() -> None:
    msg = {"jsonrpc": "2.0", "method": "x", "params": {"text": "a" * 5_000_000}}
    data = frame(msg)
    parser = FrameParser()
    out: list[bytes | FrameError] = []
    for i in range(0, len(data), 65536):
        out += parser.feed(data[i : i + 65536])
    assert bodies(out) == [msg]


garbage = st.one_of(
    st.binary(max_size=64),
    st.sampled_from(
        [
            b"Content-Length: 10\r\n\r\n",
            b"Content-Length: x\r\n\r\n",
            b"Content-Length: 99999\r\n\r\n{",
            b"Content-Type: a\r\n\r\n",
            b"\r\n\r\n",
            b"Content-Len",
            b"\xff\xfe\x00",
            b'{"jsonrpc":"2.0"',
        ]
    ),
)


@settings(max_examples=int(os.environ.get("LSP_LLM_FUZZ_EXAMPLES", "300")), deadline=None)
@given(
    pieces=st.lists(st.one_of(garbage, st.just(None)), min_size=1, max_size=12),
    cuts=st.lists(st.integers(min_value=1, max_value=200), max_size=30),
)
def test_fuzz_garbage_and_splits(pieces: list[bytes | None], cuts: list[int]) -> None:
    """Random garbage between valid frames, fed in random splits: never raises, never loops,
    and every valid frame that follows a complete header boundary comes out intact."""
    stream = b""
    for piece in pieces:
        stream += frame(GOOD) if piece is None else piece
    # A run of valid frames at the end must always be recovered, whatever came before.
    tail = [{"jsonrpc": "2.0", "id": i, "method": "end"} for i in range(3)]
    # Two newlines and a clean header boundary end any bad frame before the tail.
    stream += b"\r\n\r\n" + b"".join(frame(t) for t in tail)
    parser = FrameParser()
    out: list[bytes | FrameError] = []
    pos = 0
    for cut in cuts:
        out += parser.feed(stream[pos : pos + cut])
        pos += cut
    out += parser.feed(stream[pos:])
    decoded = []
    for item in out:
        if isinstance(item, FrameError):
            continue
        try:
            decoded.append(json.loads(item))
        except ValueError:
            continue
    assert decoded[-3:] == tail or _declared_length_swallowed_tail(stream), (pieces, decoded)
    assert parser.pending < 200_000


def _declared_length_swallowed_tail(stream: bytes) -> bool:
    """An open frame with a long declared length legitimately waits for more bytes."""
    return b"Content-Length: 99999\r\n\r\n{" in stream
