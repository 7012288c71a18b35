"""Cancellation: ``$/cancelRequest`` at random points of a long generation.

A long inline completion (``maxNewTokens`` large, at a cursor where post-processing does not cut
the random-weight model's output) is sent with a known id and cancelled after a random delay.

Two measurements of "cancel -> worker idle" per cancel:

* server side (the goal's figure): the engine records, for the cancelled generation, the time
  from its cancel token being set (the moment the server handles ``$/cancelRequest``) to the
  worker being done, and that request's own mean decode step (``lspLlm/status`` ``lastCancel``);
* client side: ``lspLlm/status`` polled every ``POLL_S`` until the worker is idle, the first idle
  poll placed at its midpoint (adds transport and up to half a poll interval; polling back to
  back would itself slow the model thread down on a 2-core machine).

Every request id must get exactly one response: responses are counted at the JSON-RPC layer of
the client.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from typing import Any

from lsprotocol import types

from benchmarks.client import BenchClient, start_client
from benchmarks.common import BenchContext, goal, percentile, ratio, server_args, summary

NAME = "cancel"

DOC = """import os
import sys


def main(argv):
    for name in argv:
        print(name)
    return 0


VALUES = [1, 2, 3]
"""
CANDIDATES = [(5, 4), (10, 0), (6, 8), (3, 0)]
"""Cursor positions tried for the longest uncut generation (line, column)."""


def _count_responses(bench: BenchClient) -> Counter[Any]:
    """Count responses per request id as the client's JSON-RPC layer receives them."""
    counts: Counter[Any] = Counter()
    proto = bench.client.protocol
    original = proto._handle_response

    def counting(msg_id: Any, result: Any = None, error: Any = None) -> Any:
        counts[msg_id] += 1
        return original(msg_id, result, error)

    proto._handle_response = counting  # type: ignore[method-assign]
    return counts


POLL_S = 0.002


async def _idle_after(
    c: BenchClient, t_cancel: float, timeout: float = 60.0
) -> tuple[float, dict[str, Any]]:
    """Seconds from ``t_cancel`` to the worker going idle (client side), and that idle status.

    The server reads its state somewhere between sending and receiving a poll, so the first
    idle poll is placed at its midpoint.
    """
    while True:
        sent = time.perf_counter()
        st = await c.status()
        received = time.perf_counter()
        if st["worker"] == "idle" and not st.get("queueDepth"):
            return max(0.0, (sent + received) / 2 - t_cancel), st
        if received - t_cancel > timeout:
            raise TimeoutError("worker still busy after the cancel")
        await asyncio.sleep(POLL_S)


def run(ctx: BenchContext) -> dict[str, Any]:
    return asyncio.run(_run(ctx))


async def _run(ctx: BenchContext) -> dict[str, Any]:
    model, backend = ctx.server_model()
    n_cancels = 20 if ctx.quick else 100
    max_new = 200 if ctx.quick else 400
    rng = random.Random(ctx.seed + 1)
    root = ctx.work_dir / "cancel-ws"
    root.mkdir(parents=True, exist_ok=True)
    path = root / "cli_main.py"
    path.write_text(DOC)
    env = ctx.xdg_env()
    env["XDG_CACHE_HOME"] = str(ctx.work_dir / "xdg-cache")
    settings = {"maxNewTokens": max_new, "completionCache": False}
    args = server_args(model, backend, ctx.device, settings=settings)
    async with start_client(root, args, init_options=settings, env=env) as c:
        counts = _count_responses(c)
        uri = c.open(path, DOC)
        await asyncio.sleep(0.3)
        # Calibrate: the position with the longest generation, and the decode step time.
        best: tuple[int, tuple[int, int], dict[str, Any]] | None = None
        for pos in CANDIDATES:
            await c.inline(uri, *pos)
            last = (await c.status()).get("lastRequest") or {}
            n = int(last.get("new_tokens") or 0)
            if best is None or n > best[0]:
                best = (n, pos, last)
            if n >= max_new:
                break
        assert best is not None
        n_cal, pos, _ = best
        steps: list[float] = []
        gen_s: list[float] = []
        for _ in range(2 if ctx.quick else 3):
            await c.inline(uri, *pos)
            last = (await c.status()).get("lastRequest") or {}
            n = int(last.get("new_tokens") or 0)
            if n > 1:
                decode = float(last["total_s"]) - float(last["first_token_s"])
                steps.append(decode / (n - 1))
                gen_s.append(float(last["total_s"]))
        step_s = sorted(steps)[len(steps) // 2] if steps else 0.0
        gen_time = sorted(gen_s)[len(gen_s) // 2] if gen_s else 1.0
        rtts = []
        for _ in range(20):
            t0 = time.perf_counter()
            await c.status()
            rtts.append(time.perf_counter() - t0)
        last_record: dict[str, Any] = (await c.status()).get("lastCancel") or {}
        ctx.say(
            f"cancel: {n_cal} tokens at {pos}, step {step_s * 1000:.2f} ms, "
            f"generation {gen_time:.2f}s; {n_cancels} cancels"
        )
        latencies: list[float] = []
        server_ms: list[float] = []
        server_steps: list[float] = []
        outcomes: Counter[str] = Counter()
        ids: list[str] = []
        for i in range(n_cancels):
            msg_id = f"bench-cancel-{i}"
            ids.append(msg_id)
            params = BenchClient.inline_params(uri, *pos)
            fut = asyncio.ensure_future(
                c.request(types.TEXT_DOCUMENT_INLINE_COMPLETION, params, msg_id)
            )
            await asyncio.sleep(rng.uniform(0.0, 0.9) * gen_time)
            t_cancel = time.perf_counter()
            c.cancel(msg_id)
            idle_s, idle_status = await _idle_after(c, t_cancel)
            try:
                await asyncio.wait_for(fut, 30)
                outcomes["finished before the cancel"] += 1
            except asyncio.TimeoutError:
                outcomes["no answer within 30 s"] += 1
            except Exception as exc:  # JsonRpcRequestCancelled (-32800) or another error
                code = getattr(exc, "code", None)
                outcomes["cancelled (-32800)" if code == -32800 else f"error {code}"] += 1
                latencies.append(idle_s)
                record = idle_status.get("lastCancel") or {}
                if record and record != last_record:
                    own_step = float(record.get("stepMs") or 0.0) or step_s * 1000
                    server_ms.append(float(record["ms"]))
                    server_steps.append(float(record["ms"]) / own_step)
                last_record = record
        await asyncio.sleep(0.5)  # late duplicates would arrive now
    answered_once = sum(1 for i in ids if counts[i] == 1)
    duplicates = sum(1 for i in ids if counts[i] > 1)
    missing = sum(1 for i in ids if counts[i] == 0)
    in_steps = [lat / step_s for lat in latencies] if step_s > 0 else []
    client_p95 = round(percentile(in_steps, 95), 2) if in_steps else None
    p95_steps = round(percentile(server_steps, 95), 2) if server_steps else None
    result: dict[str, Any] = {
        "cancels": n_cancels,
        "calibration_new_tokens": n_cal,
        "max_new_tokens": max_new,
        "step_ms": round(step_s * 1000, 3),
        "generation_s": round(gen_time, 3),
        "status_rtt_ms": summary([r * 1000 for r in rtts]),
        "server_cancel_to_idle_ms": summary(server_ms),
        "server_cancel_to_idle_steps": summary(server_steps, 2),
        "cancel_to_idle_ms": summary([lat * 1000 for lat in latencies]),
        "cancel_to_idle_steps": summary(in_steps, 2),
        "method": "server: cancel token set ($/cancelRequest handled) -> worker done, in the "
        "cancelled request's own decode steps; client: status polled every "
        f"{POLL_S * 1000:.0f} ms, idle placed at the midpoint of the first idle poll, in "
        "calibrated steps",
        "outcomes": dict(outcomes),
        "answered_exactly_once": answered_once,
        "duplicate_answers": duplicates,
        "missing_answers": missing,
    }
    result["goals"] = [
        goal(
            "p95 cancel->idle (decode steps)",
            p95_steps,
            "<= 1.5",
            None if p95_steps is None else p95_steps <= 1.5,
            f"server side, own steps; client-observed p95 {client_p95} calibrated steps "
            f"(step {result['step_ms']} ms, status RTT p50 {result['status_rtt_ms']['p50']} ms)",
        ),
        goal(
            "requests answered exactly once",
            ratio(answered_once, n_cancels),
            "1.0",
            answered_once == n_cancels,
            f"{duplicates} duplicated, {missing} missing",
        ),
    ]
    result["table"] = [
        (
            "p50/p95 cancel->idle ms (server)",
            "{p50}/{p95}".format(**result["server_cancel_to_idle_ms"]),
        ),
        ("p50/p95 cancel->idle ms (client)", "{p50}/{p95}".format(**result["cancel_to_idle_ms"])),
        ("step ms", result["step_ms"]),
        ("outcomes", ", ".join(f"{k}: {v}" for k, v in outcomes.items())),
    ]
    return result
