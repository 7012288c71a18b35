"""The typing engine's pure parts: recycling, the shared cancel, accept-ahead, debounce, budget."""

from __future__ import annotations

import dataclasses

import pytest

from lsp_llm.config import Settings
from lsp_llm.engine.requests import CancelToken
from lsp_llm.features.typing import (
    AdaptiveDebounce,
    AheadCache,
    SharedCancel,
    TypingOptions,
    answer_from,
    recycle_typed,
    useful_partial,
)

PREFIX = "def f(values):\n    total = "
SUFFIX = "\n    return total\n"


@pytest.mark.parametrize(
    ("typed", "produced", "suffix", "expected"),
    [
        ("", "", SUFFIX, ""),  # the same cursor again: attach
        ("su", "sum(values)", SUFFIX, "su"),  # typed what the model wrote
        ("sum(values)", "sum(values)", SUFFIX, "sum(values)"),  # all of it so far
        ("sum(values) ", "sum(values)", SUFFIX, None),  # typed past what was produced
        ("max", "sum(values)", SUFFIX, None),  # typed something else
        ("su", "sum(values)", "\n    return 0\n", None),  # the text after the cursor changed
    ],
)
def test_recycle_only_when_the_prefix_grows_by_produced_text(
    typed: str, produced: str, suffix: str, expected: str | None
) -> None:
    got = recycle_typed(
        gen_prefix=PREFIX, gen_suffix=SUFFIX, produced=produced, prefix=PREFIX + typed,
        suffix=suffix,
    )  # fmt: skip
    assert got == expected


def test_recycle_rejects_a_cursor_before_the_generation_start() -> None:
    assert (
        recycle_typed(
            gen_prefix=PREFIX, gen_suffix=SUFFIX, produced="x", prefix=PREFIX[:-1], suffix=SUFFIX
        )
        is None
    )


def test_answer_from_the_stream_is_the_rest_after_the_typed_text() -> None:
    assert answer_from("sum(values)", "su") == "m(values)"
    assert answer_from("sum(values)", "") == "sum(values)"
    assert answer_from("max(values)", "su") is None


def test_shared_cancel_needs_every_member_gone() -> None:
    shared = SharedCancel()
    a, b = CancelToken(), CancelToken()
    assert not shared.cancelled  # no members: only its own cancel counts
    shared.attach(a)
    shared.attach(b)
    a.cancel("cancelled by the client")
    assert not shared.cancelled  # b still waits for the generation
    b.cancel("cancelled by the client")
    assert shared.cancelled
    assert shared.reason == "cancelled by the client"
    assert shared.cancelled_at == b.cancelled_at


def test_shared_cancel_detached_member_does_not_count() -> None:
    shared = SharedCancel()
    a, b = CancelToken(), CancelToken()
    shared.attach(a)
    shared.attach(b)
    shared.detach(b)
    a.cancel()
    assert shared.cancelled
    other = SharedCancel()
    other.attach(a)
    other.cancel("superseded")
    assert other.cancelled and other.reason == "superseded"


def test_ahead_cache_serves_the_continuation_after_an_accept() -> None:
    cache = AheadCache()
    accepted = PREFIX + "sum(values)"
    cache.put("file:///a.py", accepted, SUFFIX, ("\n    total += 1",))
    assert cache.lookup("file:///a.py", accepted, SUFFIX) == ("\n    total += 1",)
    # typing into the cached continuation keeps it
    assert cache.lookup("file:///a.py", accepted + "\n    to", SUFFIX) == ("tal += 1",)
    # elsewhere, another document, another suffix: nothing
    assert cache.lookup("file:///a.py", PREFIX, SUFFIX) == ()
    assert cache.lookup("file:///b.py", accepted, SUFFIX) == ()
    assert cache.lookup("file:///a.py", accepted, "\n") == ()
    cache.drop("file:///a.py")
    assert cache.lookup("file:///a.py", accepted, SUFFIX) == ()


def _typist(gaps_ms: list[float], latency_ms: float | None, **kw: float) -> AdaptiveDebounce:
    d = AdaptiveDebounce(**kw)
    now = 100.0
    d.keystroke(now)
    for gap in gaps_ms:
        now += gap / 1000
        d.keystroke(now)
    if latency_ms is not None:
        d.response(latency_ms)
    return d


def test_debounce_waits_nothing_before_it_has_measured_anything() -> None:
    assert AdaptiveDebounce().delay_ms() == 0
    assert _typist([120, 120], None).delay_ms() == 0  # no response time yet
    assert _typist([], 500).delay_ms() == 0  # no rhythm yet


def test_debounce_is_zero_while_the_model_keeps_up() -> None:
    assert _typist([120] * 5, 80).delay_ms() == 0


def test_debounce_rate_grows_from_1_5_to_3_times_the_gap_with_latency() -> None:
    barely = _typist([100] * 5, 101, max_ms=1000).delay_ms()
    slow = _typist([100] * 5, 400, max_ms=1000).delay_ms()
    assert barely == pytest.approx(150, abs=1)
    assert slow == pytest.approx(300)
    assert _typist([100] * 5, 5000, max_ms=1000).delay_ms() == pytest.approx(300)


def test_debounce_is_clamped_and_ignores_pauses() -> None:
    assert _typist([120] * 5, 2000, max_ms=250).delay_ms() == 250
    assert _typist([120] * 5, 2000, min_ms=400, max_ms=1000).delay_ms() == 400
    with_pause = _typist([100, 100, 1500, 100], 2000, max_ms=1000)
    assert with_pause.gap_ms == pytest.approx(100)


@pytest.mark.parametrize(
    ("partial", "shown"),
    [
        ("sum(values) / len(val", "sum(values) / len("),  # a half-written name is held back
        ("sum(va", "sum("),
        ("su", ""),  # too little to be worth showing
        ("", ""),
        ("x + 1\n    more", "x + 1"),  # a finished line, and one line only
        ("\n    total = compute(", "\n    total = compute("),  # the next line, when shaped so
    ],
)
def test_useful_partial(partial: str, shown: str) -> None:
    assert useful_partial(partial) == shown


def test_options_from_settings_and_off() -> None:
    on = TypingOptions.from_settings(Settings())
    assert on.recycle and on.accept_ahead and on.adaptive_debounce and on.time_budget_ms > 0
    off = TypingOptions.from_settings(
        dataclasses.replace(
            Settings(),
            request_recycling=False,
            accept_ahead=False,
            adaptive_debounce="off",
            time_budget_ms=0,
            debounce_ms=40,
        )
    )
    assert not (off.recycle or off.accept_ahead or off.adaptive_debounce or off.time_budget_ms)
    assert off.debounce_ms == 40
