"""Typing session: prefix KV-cache reuse ON vs OFF, and the completion cache.

A simulated person types a function into the middle of a ~2k-token Python file: every keystroke
is one incremental ``didChange`` followed by an automatic ``textDocument/inlineCompletion``,
then a pause of 30-150 ms (seeded). Newline keystrokes insert the newline plus the indentation
(editors auto-indent). The person waits for each suggestion before the next keystroke (closed
loop), so latencies are not queueing artefacts.

Two servers run side by side, one with ``prefixCache: true`` and one with ``false``; each
keystroke goes to both, one after the other, so both see the same machine load.

Every ``ACCEPT_EVERY`` keystrokes the person accepts-by-typing: types the first characters of
the suggestion just shown. Those requests should be answered from the completion cache (the
rest of the suggestion, no model run: ``lastRequest`` in ``lspLlm/status`` does not change).

A last short part types a burst of keystrokes 30 ms apart without waiting (open loop) to check
that superseded requests are all answered and only the newest runs to the end.

**Pauses** (issue 17, the typing engine): a person types a 3-line function into the module open
loop, as an editor sends requests: 120 ms between characters, a 1.5 s pause after spaces, ``(``,
``:``, ``=``, ``,`` and newlines, one automatic request per keystroke. Reported per mode: pause
-> suggestion latency p50/p95 (the request sent as the pause starts, to its answer), the share
of pauses that got a suggestion within the pause, empty answers per 100 keystrokes, and
accept-ahead hits (at the end of every third pause with a suggestion the person accepts it, the
editor asks again at its end, and the text is undone). Two servers run one after the other:
``baseline`` (recycling, accept-ahead, adaptive debounce and the time budget off: ``BASELINE``) and
``engine`` (the defaults). Full runs use the embedded default model (the llama.cpp backend)
unless ``--model`` is given; ``--quick`` the tiny model.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from pathlib import Path
from typing import Any

from benchmarks.client import BenchClient, start_client
from benchmarks.common import BenchContext, goal, python_source, ratio, server_args, summary

NAME = "typing"

FUNCTION = '''def moving_average(values, window):
    """Average of each window of values."""
    out = []
    total = 0.0
    for i, value in enumerate(values):
        total += value
        if i >= window:
            total -= values[i - window]
        out.append(total / min(i + 1, window))
    return out
'''
ACCEPT_EVERY = 12
ACCEPT_CHARS = 3


def keystrokes(text: str) -> list[str]:
    """One string per keystroke; a newline carries the next line's indentation."""
    keys: list[str] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "\n":
            j = i + 1
            while j < len(text) and text[j] == " ":
                j += 1
            keys.append(text[i:j])
            i = j
        else:
            keys.append(ch)
            i += 1
    return keys


def make_document() -> tuple[str, int]:
    """(~2k-token file, offset where the function is typed)."""
    top = python_source(4800)
    bottom = python_source(2400, skip=10)
    head = top.rstrip("\n") + "\n\n\n"
    return head + "\n\n" + bottom, len(head)


def _pos(text: str, offset: int) -> tuple[int, int]:
    line = text.count("\n", 0, offset)
    col = offset - (text.rfind("\n", 0, offset) + 1)
    return line, col


class Typist:
    """One server and the document state it has seen."""

    def __init__(self, name: str, client: BenchClient, uri: str, text: str) -> None:
        self.name = name
        self.client = client
        self.uri = uri
        self.text = text
        self.rows: list[dict[str, Any]] = []
        self.last_request: Any = None

    def type(self, offset: int, chars: str) -> None:
        line, col = _pos(self.text, offset)
        self.client.insert(self.uri, line, col, chars)
        self.text = self.text[:offset] + chars + self.text[offset:]

    async def complete(self, offset: int, kind: str, expect: str | None = None) -> list[str]:
        line, col = _pos(self.text, offset)
        t0 = time.perf_counter()
        items = await self.client.inline(self.uri, line, col)
        latency = time.perf_counter() - t0
        st = await self.client.status()
        last = st.get("lastRequest")
        lc = st.get("lastCompletion") if isinstance(st.get("lastCompletion"), dict) else None
        if lc is not None and lc.get("source") in ("model", "cache", "none"):
            source = str(lc["source"])
        else:
            source = "model" if last != self.last_request else "cache" if items else "none"
        self.last_request = last
        row: dict[str, Any] = {
            "kind": kind,
            "latency_ms": latency * 1000,
            "source": source,
            "items": len(items),
            "first": items[0] if items else "",
        }
        if source == "model" and last:
            row["prompt_tokens"] = int(last.get("prompt_tokens") or 0)
            row["prefill_tokens"] = int(last.get("prefill_tokens") or 0)
            row["new_tokens"] = int(last.get("new_tokens") or 0)
            row["prefill_ms"] = float(last.get("prefill_s") or 0) * 1000
        if expect is not None:
            row["expected_hit"] = bool(items) and items[0] == expect
        self.rows.append(row)
        return items


def run(ctx: BenchContext) -> dict[str, Any]:
    result = asyncio.run(_run(ctx))
    pauses = asyncio.run(_run_pauses(ctx))
    result["pauses"] = pauses
    result["goals"] = [*result["goals"], *pauses.pop("goals")]
    result["table"] = [*result["table"], *pauses.pop("table")]
    return result


PAUSE_FUNCTION = """def scale(values, factor):
    out = [value * factor for value in values]
    return out
"""
PAUSE_AFTER = frozenset(" (:=,\n")
KEY_GAP_S = 0.12
PAUSE_S = 1.5
BASELINE = {
    "requestRecycling": False,
    "acceptAhead": False,
    "adaptiveDebounce": "off",
    "timeBudgetMs": 0,
}
"""Items 1-3 of issue 17 off: what the server did before the typing engine."""


def _replace(client: BenchClient, uri: str, text: str, start: int, end: int, new: str) -> None:
    from lsprotocol import types

    client.versions[uri] += 1
    (sl, sc), (el, ec) = _pos(text, start), _pos(text, end)
    client.client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(
                uri=uri, version=client.versions[uri]
            ),
            content_changes=[
                types.TextDocumentContentChangePartial(
                    range=types.Range(
                        start=types.Position(line=sl, character=sc),
                        end=types.Position(line=el, character=ec),
                    ),
                    text=new,
                )
            ],
        )
    )


async def _pause_session(
    ctx: BenchContext, mode: str, model: str, backend: str, root: Path, doc: str, cursor0: int
) -> dict[str, Any]:
    settings: dict[str, Any] = {"maxNewTokens": 24 if ctx.quick else 48}
    if mode == "baseline":
        settings.update(BASELINE)
    env = ctx.xdg_env()
    if ctx.model or ctx.quick:
        env["XDG_CACHE_HOME"] = str(ctx.work_dir / "xdg-cache")
    path = root / f"pauses_{mode}.py"
    path.write_text(doc)
    keys = keystrokes(PAUSE_FUNCTION)
    pauses: list[dict[str, Any]] = []
    empty = answered = 0
    ahead: list[dict[str, Any]] = []
    t_start = time.perf_counter()
    first_ms: float | None = None
    async with start_client(
        root, server_args(model, backend, ctx.device, settings=settings), init_options=settings,
        env=env,
    ) as c:  # fmt: skip
        uri = c.open(path, doc)
        text, cursor = doc, cursor0
        await asyncio.sleep(0.5)
        line, col = _pos(text, cursor)
        await c.inline(uri, line, col)  # warm-up: the file's first full prefill (not counted)
        tasks: list[asyncio.Future[list[str]]] = []
        shown_pauses = 0
        for key in keys:
            line, col = _pos(text, cursor)
            c.insert(uri, line, col, key)
            text = text[:cursor] + key + text[cursor:]
            cursor += len(key)
            line, col = _pos(text, cursor)
            t0 = time.perf_counter()
            task = asyncio.ensure_future(c.inline(uri, line, col))
            tasks.append(task)
            if key[-1:] not in PAUSE_AFTER and key[:1] != "\n":
                await asyncio.sleep(KEY_GAP_S)
                continue
            try:
                items = await asyncio.wait_for(asyncio.shield(task), PAUSE_S)
                latency = (time.perf_counter() - t0) * 1000
            except asyncio.TimeoutError:
                items, latency = [], None
            if items and first_ms is None:
                first_ms = latency
            pauses.append({"after": key[-1:] or key, "latency_ms": latency, "shown": bool(items)})
            await asyncio.sleep(max(0.0, PAUSE_S - (time.perf_counter() - t0)))
            if items and items[0].strip():
                shown_pauses += 1
                if shown_pauses % 3 == 0:  # at the pause's end: accept, ask again, undo
                    accepted = items[0]
                    _replace(c, uri, text, cursor, cursor, accepted)
                    after = text[:cursor] + accepted + text[cursor:]
                    al, ac = _pos(after, cursor + len(accepted))
                    ta = time.perf_counter()
                    got = await c.inline(uri, al, ac)
                    ms = (time.perf_counter() - ta) * 1000
                    st = await c.status()
                    lc = st.get("lastCompletion") or {}
                    ahead.append({"ms": ms, "hit": lc.get("source") == "ahead", "items": len(got)})
                    _replace(c, uri, after, cursor, cursor + len(accepted), "")
        answers = await asyncio.gather(*tasks, return_exceptions=True)
        for a in answers:
            if isinstance(a, list):
                answered += 1
                empty += not a
    lat = [p["latency_ms"] for p in pauses if p["latency_ms"] is not None and p["shown"]]
    shown = sum(1 for p in pauses if p["shown"])
    hits = [a for a in ahead if a["hit"]]
    return {
        "keystrokes": len(keys),
        "requests": len(tasks),
        "answered": answered,
        "pauses": len(pauses),
        "pauses_with_suggestion": shown,
        "pause_share_with_suggestion": ratio(shown, len(pauses)),
        "pause_to_suggestion_ms": summary(lat),
        "first_suggestion_ms": round(first_ms, 1) if first_ms is not None else None,
        "empty_answers_per_100_keystrokes": round(100 * empty / max(1, len(tasks)), 1),
        "accepts": len(ahead),
        "accept_ahead_hits": len(hits),
        "accept_ahead_ms": summary([a["ms"] for a in hits]),
        "accept_ahead_within_20ms": sum(1 for a in hits if a["ms"] <= 20),
        "session_s": round(time.perf_counter() - t_start, 1),
    }


async def _run_pauses(ctx: BenchContext) -> dict[str, Any]:
    if ctx.model:
        model, backend = ctx.model, ctx.backend or ""
    elif ctx.quick:
        model, backend = ctx.server_model()
    else:
        model, backend = "", ctx.backend or ""  # the embedded default, backend "auto"
    root = ctx.work_dir / "pauses-ws"
    root.mkdir(parents=True, exist_ok=True)
    (root / "util.py").write_text(python_source(3000, skip=4))
    doc, cursor0 = make_document()
    ctx.say("typing pauses: baseline (typing engine off) then engine (on), one after the other")
    modes = {}
    for mode in ("baseline", "engine"):
        modes[mode] = await _pause_session(ctx, mode, model, backend, root, doc, cursor0)
    base, eng = modes["baseline"], modes["engine"]
    p95_ratio = ratio(eng["pause_to_suggestion_ms"]["p95"], base["pause_to_suggestion_ms"]["p95"])
    share = eng["pause_share_with_suggestion"]
    fast = ratio(eng["accept_ahead_within_20ms"], eng["accepts"]) if eng["accepts"] else 0.0
    out: dict[str, Any] = {
        "model": model or "embedded default",
        "backend": backend or "auto",
        "baseline": base,
        "engine": eng,
        "p95_engine_over_baseline": p95_ratio,
    }
    out["goals"] = [
        goal("pauses with a suggestion (engine)", share, ">= 0.95", share >= 0.95),
        goal("pause->suggestion p95 engine/baseline", p95_ratio, "<= 0.6", p95_ratio <= 0.6),
        goal(
            "request after an accept served <= 20 ms",
            fast,
            ">= 0.8",
            fast >= 0.8 if eng["accepts"] else None,
            f"{eng['accept_ahead_within_20ms']}/{eng['accepts']} accepts",
        ),
    ]
    out["table"] = [
        (
            "pauses with suggestion base/engine",
            f"{base['pauses_with_suggestion']}/{eng['pauses_with_suggestion']} of {eng['pauses']}",
        ),
        (
            "pause p95 ms base/engine",
            f"{base['pause_to_suggestion_ms']['p95']}/{eng['pause_to_suggestion_ms']['p95']}",
        ),
    ]
    return out


async def _run(ctx: BenchContext) -> dict[str, Any]:
    model, backend = ctx.server_model()
    n_keys = 52 if ctx.quick else 90
    max_new = 12 if ctx.quick else 16
    rng = random.Random(ctx.seed)
    root = ctx.work_dir / "typing-ws"
    root.mkdir(parents=True, exist_ok=True)
    (root / "util.py").write_text(python_source(3000, skip=4))
    doc, cursor0 = make_document()
    path = root / "editing.py"
    path.write_text(doc)
    keys = keystrokes(FUNCTION)[:n_keys]
    env = ctx.xdg_env()
    env["XDG_CACHE_HOME"] = str(ctx.work_dir / "xdg-cache")
    base = {"maxNewTokens": max_new}
    ctx.say(f"typing: {len(keys)} keystrokes into a {len(doc)}-char file, reuse on vs off")
    async with contextlib.AsyncExitStack() as stack:
        on_c = await stack.enter_async_context(
            start_client(
                root,
                server_args(model, backend, ctx.device, settings={**base, "prefixCache": True}),
                init_options={**base, "prefixCache": True},
                env=env,
            )
        )
        off_c = await stack.enter_async_context(
            start_client(
                root,
                server_args(model, backend, ctx.device, settings={**base, "prefixCache": False}),
                init_options={**base, "prefixCache": False},
                env=env,
            )
        )
        typists = [
            Typist("on", on_c, on_c.open(path, doc), doc),
            Typist("off", off_c, off_c.open(path, doc), doc),
        ]
        await asyncio.sleep(0.5)
        for t in typists:  # warm-up request at the starting cursor (not counted)
            await t.complete(cursor0, "warmup")
        cursor = cursor0
        accepts = 0
        for i, key in enumerate(keys):
            suggestions: dict[str, list[str]] = {}
            for t in typists:
                t.type(cursor, key)
            cursor += len(key)
            for t in typists:
                suggestions[t.name] = await t.complete(cursor, "type")
            await asyncio.sleep(rng.uniform(0.03, 0.15))
            if (i + 1) % ACCEPT_EVERY:
                continue
            # Accept-by-typing the first characters of the suggestion each server showed.
            # Both typists type the "on" server's suggestion when they differ, so the two
            # documents stay identical; the "off" server's hits count only when it agreed.
            shown = suggestions["on"][0] if suggestions["on"] else ""
            prefix = shown.split("\n", 1)[0][:ACCEPT_CHARS]
            if not prefix:
                continue
            accepts += 1
            for k in range(1, len(prefix) + 1):
                for t in typists:
                    t.type(cursor, prefix[k - 1])
                cursor += 1
                for t in typists:
                    mine = suggestions[t.name][0] if suggestions[t.name] else ""
                    expect = shown[k:] if mine == shown and len(shown) > k else None
                    await t.complete(cursor, "accept", expect if expect else None)
                await asyncio.sleep(rng.uniform(0.03, 0.15))
        burst = await _burst(typists[0], cursor)
        load = await on_c.status()
    result = _report(typists, accepts, burst, len(keys), len(doc))
    result["index"] = (
        load.get("index", {}).get("state") if isinstance(load.get("index"), dict) else None
    )
    return result


async def _burst(t: Typist, cursor: int, n: int = 8) -> dict[str, Any]:
    """Open-loop keystrokes 30 ms apart: every request is answered; older ones superseded."""
    tasks = []
    for ch in "# note"[:n] + "s" * max(0, n - 6):
        t.type(cursor, ch)
        cursor += 1
        line, col = _pos(t.text, cursor)
        tasks.append(asyncio.ensure_future(t.client.inline(t.uri, line, col)))
        await asyncio.sleep(0.03)
    answers = await asyncio.gather(*tasks, return_exceptions=True)
    errors = [a for a in answers if isinstance(a, BaseException)]
    non_empty = [a for a in answers if isinstance(a, list) and a]
    return {
        "requests": len(tasks),
        "answered": len(answers),
        "errors": len(errors),
        "with_suggestions": len(non_empty),
        "last_has_suggestion": isinstance(answers[-1], list) and bool(answers[-1]),
    }


def _report(
    typists: list[Typist], accepts: int, burst: dict[str, Any], n_keys: int, doc_chars: int
) -> dict[str, Any]:
    per: dict[str, Any] = {}
    for t in typists:
        typed = [r for r in t.rows if r["kind"] == "type"]
        model = [r for r in typed if r["source"] == "model" and r.get("prompt_tokens")]
        shares = [r["prefill_tokens"] / r["prompt_tokens"] for r in model]
        full = sum(1 for r in model if r["prefill_tokens"] >= 0.9 * r["prompt_tokens"])
        acc = [r for r in t.rows if r["kind"] == "accept"]
        expected = [r for r in acc if "expected_hit" in r]
        per[t.name] = {
            "keystroke_requests": len(typed),
            "model_requests": len(model),
            "cache_answers_while_typing": sum(1 for r in typed if r["source"] == "cache"),
            "latency_ms_model": summary([r["latency_ms"] for r in model]),
            "latency_ms_all_keystrokes": summary([r["latency_ms"] for r in typed]),
            "prompt_tokens": summary([r["prompt_tokens"] for r in model]),
            "prefill_tokens": summary([r["prefill_tokens"] for r in model]),
            "prefill_ms": summary([r["prefill_ms"] for r in model]),
            "mean_prefill_share": round(sum(shares) / len(shares), 4) if shares else 0.0,
            "prefill_share_of_all_prompt_tokens": ratio(
                sum(r["prefill_tokens"] for r in model), sum(r["prompt_tokens"] for r in model), 4
            ),
            "full_prefills": full,  # >= 90 % of the prompt recomputed
            "accept_requests": len(acc),
            "accept_cache_answers": sum(1 for r in acc if r["source"] == "cache"),
            "accept_expected_rest_returned": sum(1 for r in expected if r["expected_hit"]),
            "accept_expected": len(expected),
            "accept_latency_ms": summary([r["latency_ms"] for r in acc]),
        }
    on, off = per["on"], per["off"]
    share = on["mean_prefill_share"]
    speedup = ratio(off["latency_ms_model"]["p50"], on["latency_ms_model"]["p50"])
    hits = on["accept_expected_rest_returned"]
    result: dict[str, Any] = {
        "keystrokes": n_keys,
        "document_chars": doc_chars,
        "accepts_by_typing": accepts,
        "reuse_on": on,
        "reuse_off": off,
        "p50_speedup_on_vs_off": speedup,
        "mean_prefill_share_on": share,
        "cache_hits": hits,
        "cache_hit_rate": ratio(hits, on["accept_expected"]) if on["accept_expected"] else 0.0,
        "burst": burst,
    }
    result["goals"] = [
        goal("mean prefill tokens / prompt (reuse on)", share, "<= 0.10", share <= 0.10),
        goal("p50 latency off/on", speedup, ">= 3", speedup >= 3),
        goal(
            "accept-by-typing served from cache",
            result["cache_hit_rate"],
            "1.0",
            result["cache_hit_rate"] >= 1.0 if on["accept_expected"] else None,
            f"{hits}/{on['accept_expected']} requests",
        ),
    ]
    result["table"] = [
        ("full prefills on/off", f"{on['full_prefills']}/{off['full_prefills']}"),
        (
            "p50 ms on/off (model)",
            f"{on['latency_ms_model']['p50']}/{off['latency_ms_model']['p50']}",
        ),
        ("mean prefill share off", off["mean_prefill_share"]),
        ("burst answered/requests", f"{burst['answered']}/{burst['requests']}"),
    ]
    return result
