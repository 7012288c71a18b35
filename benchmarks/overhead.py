"""Server overhead: inline-completion latency at an LSP client over stdio vs the bare model.

For every request the server answers, the same prompt (rebuilt in this process with the server's
own prompt builder and retriever, or taken from ``lspLlm/status`` when the server reports it)
is run here on the same model, for the same number of new tokens, three ways:

* ``generate``: ``model.generate`` (greedy, ``min_new_tokens = max_new_tokens = n``), the
  baseline of the goal (ratio <= 1.05, p95 overhead <= 10 ms);
* ``raw``: a bare prefill + greedy decode loop with a ``DynamicCache`` (the floor);
* ``backend``: our ``TransformersBackend.generate`` without the LSP layer (engine cost).

Runs alternate (server request, then the three baselines) so both sides see the same machine
load. Prefix reuse and the completion cache are off here: every request does the same work as
``generate`` (the typing suite measures reuse).
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from benchmarks.client import start_client
from benchmarks.common import BenchContext, goal, python_source, ratio, server_args, summary
from lsp_llm.config import Settings

NAME = "overhead"

MAIN = '''"""Statistics helpers."""

import math


def mean(values):
    total = 0.0
    for value in values:
        total += value
    return total / len(values)


def variance(values):
    m = mean(values)
    acc = 0.0
    for value in values:
        acc += (value - m) ** 2
    return acc / len(values)


def stdev(values):
    return math.sqrt(variance(values))


def zscores(values):
    m = mean(values)
    s = stdev(values)
    out = []
    for value in values:

    return out


class Summary:
    def __init__(self, values):
        self.values = list(values)

    def describe(self):

        return {"mean": mean(self.values)}
'''


def cursor_positions(text: str) -> list[tuple[int, int]]:
    """Blank lines inside a block (the cursor after their indentation): generation runs long."""
    positions = []
    lines = text.split("\n")
    for i, line in enumerate(lines):
        if line.strip() == "" and i > 0 and lines[i - 1].rstrip().endswith(":"):
            indent = len(lines[i - 1]) - len(lines[i - 1].lstrip()) + 4
            positions.append((i, indent))
        elif line.rstrip().endswith("= 0.0") or line.rstrip().endswith("m = mean(values)"):
            positions.append((i, len(line)))
    return positions


def _with_indent(text: str, line: int, indent: int) -> str:
    lines = text.split("\n")
    lines[line] = " " * indent
    return "\n".join(lines)


def run(ctx: BenchContext) -> dict[str, Any]:
    return asyncio.run(_run(ctx))


async def _run(ctx: BenchContext) -> dict[str, Any]:
    from benchmarks.reference import Reference

    model, backend = ctx.server_model()
    if backend != "transformers":
        return {"skipped": f"overhead compares against transformers generate; backend is {backend}"}
    new_tokens = 16 if ctx.quick else 32
    reps = 6 if ctx.quick else 24
    root = ctx.work_dir / "overhead-ws"
    root.mkdir(parents=True, exist_ok=True)
    # Other files for retrieval to find (real code), and the file being edited.
    (root / "helpers.py").write_text(python_source(6000))
    (root / "more_helpers.py").write_text(python_source(6000, skip=8))
    positions = cursor_positions(MAIN)
    text = MAIN
    for line, indent in positions:
        if not text.split("\n")[line]:
            text = _with_indent(text, line, indent)
    main = root / "stats_helpers.py"
    main.write_text(text)

    init = {"maxNewTokens": new_tokens, "prefixCache": False, "completionCache": False}
    settings = Settings(
        model=model,
        backend="transformers",
        device=ctx.device,  # type: ignore[arg-type]
        max_new_tokens=new_tokens,
        prefix_cache=False,
        completion_cache=False,
    )
    ctx.say(f"overhead: loading {Path(model).name} in-process")
    ref = Reference(settings)
    rows: list[dict[str, Any]] = []
    prompt_source = "rebuilt in-process"
    env = ctx.xdg_env()
    env["XDG_CACHE_HOME"] = str(ctx.work_dir / "xdg-cache")
    async with start_client(
        root, server_args(model, backend, ctx.device, settings=init), init_options=init, env=env
    ) as c:
        uri = c.open(main, text)
        await asyncio.sleep(0.5)  # let the index build and the open-document overlay apply
        await c.wait_idle()
        # Warm-up (first call pays lazy imports, allocator growth).
        line, col = positions[0]
        await c.inline(uri, line, col)
        await c.wait_idle()
        for i in range(reps):
            line, col = positions[i % len(positions)]
            t0 = time.perf_counter()
            items = await c.inline(uri, line, col)
            client_s = time.perf_counter() - t0
            st = await c.status()
            last = st.get("lastRequest") or {}
            n = int(last.get("new_tokens") or 0)
            if n <= 0:
                continue
            lc = st.get("lastCompletion") or {}
            prompt = lc.get("prompt") if isinstance(lc, dict) else None
            if prompt:
                prompt_source = "lspLlm/status lastCompletion.prompt"
            else:
                offset = _offset(text, line, col)
                snippets = ref.retrieve(root, main, text, offset, ctx.work_dir / "ref-index")
                prompt = ref.completion_prompt(
                    text=text, offset=offset, path=main.name, snippets=snippets, file=main
                )
            ids = ref.prompt_ids(prompt)
            gen = ref.time_generate(ids, n)
            raw = ref.time_raw_loop(ids, n)
            own, _ = ref.time_backend(prompt, n)
            spans = None
            if isinstance(lc, dict):
                spans = lc.get("spansMs") or lc.get("spans")
            rows.append(
                {
                    "client_ms": client_s * 1000,
                    "generate_ms": gen["total_s"] * 1000,
                    "generate_first_ms": gen["first_token_s"] * 1000,
                    "raw_ms": raw["total_s"] * 1000,
                    "backend_ms": own["total_s"] * 1000,
                    "server_queued_ms": float(last.get("queued_s", 0)) * 1000,
                    "server_first_ms": float(last.get("first_token_s", 0)) * 1000,
                    "server_engine_ms": float(last.get("total_s", 0)) * 1000,
                    "new_tokens": n,
                    "prompt_tokens": int(last.get("prompt_tokens") or 0),
                    "ref_prompt_tokens": len(ids),
                    "suggestions": len(items),
                    "spans": spans,
                }
            )
    ref.close()
    return _report(rows, prompt_source, new_tokens)


def _offset(text: str, line: int, col: int) -> int:
    lines = text.split("\n")
    return sum(len(x) + 1 for x in lines[:line]) + min(col, len(lines[line]))


def _report(rows: list[dict[str, Any]], prompt_source: str, max_new: int) -> dict[str, Any]:
    if not rows:
        return {"error": "no request produced tokens", "goals": []}
    client = [r["client_ms"] for r in rows]
    gen = [r["generate_ms"] for r in rows]
    raw = [r["raw_ms"] for r in rows]
    own = [r["backend_ms"] for r in rows]
    over_gen = [r["client_ms"] - r["generate_ms"] for r in rows]
    over_raw = [r["client_ms"] - r["raw_ms"] for r in rows]
    # Spans at the client: engine (queue + model) vs the rest (prompt, JSON-RPC, loop hops).
    engine = [r["server_queued_ms"] + r["server_engine_ms"] for r in rows]
    outside_engine = [r["client_ms"] - e for r, e in zip(rows, engine, strict=True)]
    matched = sum(1 for r in rows if r["prompt_tokens"] == r["ref_prompt_tokens"])
    spans: dict[str, Any] = {
        "queued_ms": summary([r["server_queued_ms"] for r in rows]),
        "first_token_ms (engine start->first token)": summary([r["server_first_ms"] for r in rows]),
        "engine_total_ms": summary([r["server_engine_ms"] for r in rows]),
        "outside_engine_ms (prompt+retrieval+rpc+postprocess)": summary(outside_engine),
        "client_total_ms": summary(client),
    }
    server_spans = [r["spans"] for r in rows if isinstance(r.get("spans"), dict)]
    if server_spans:
        for key in ("prompt", "firstToken", "lastToken", "total"):
            vals = [float(s[key]) for s in server_spans if key in s]
            if vals:
                spans[f"server.{key}_ms (from received)"] = summary(vals)
        totals = [float(s["total"]) for s in server_spans if "total" in s]
        if len(totals) == len(rows):
            spans["response_written->client_ms"] = summary(
                [r["client_ms"] - t for r, t in zip(rows, totals, strict=True)]
            )
    r_gen = ratio(sum(client), sum(gen))
    p95_over = summary(over_gen)["p95"]
    p95_outside = summary(outside_engine)["p95"]
    result: dict[str, Any] = {
        "requests": len(rows),
        "max_new_tokens": max_new,
        "new_tokens": summary([r["new_tokens"] for r in rows]),
        "prompt_tokens": summary([r["prompt_tokens"] for r in rows]),
        "prompt_source": prompt_source,
        "prompt_token_match": f"{matched}/{len(rows)}",
        "latency_ms": {
            "lsp_client": summary(client),
            "generate": summary(gen),
            "raw_loop": summary(raw),
            "backend_in_process": summary(own),
        },
        "ratio_vs_generate": r_gen,
        "ratio_vs_raw_loop": ratio(sum(client), sum(raw)),
        "ratio_backend_vs_generate": ratio(sum(own), sum(gen)),
        "overhead_vs_generate_ms": summary(over_gen),
        "overhead_vs_raw_loop_ms": summary(over_raw),
        "spans": spans,
    }
    result["goals"] = [
        goal("latency ratio LSP/generate", r_gen, "<= 1.05", r_gen <= 1.05),
        goal(
            "p95 overhead vs generate, paired (ms)",
            p95_over,
            "<= 10",
            p95_over <= 10,
            "client latency minus generate on the same prompt; includes model-time noise",
        ),
        goal(
            "p95 time outside the model loop (ms)",
            p95_outside,
            "<= 10",
            p95_outside <= 10,
            "client latency minus the engine's queued+total (prompt, retrieval, RPC, hops)",
        ),
    ]
    result["table"] = [
        ("ratio LSP/generate", r_gen),
        ("ratio LSP/raw loop", result["ratio_vs_raw_loop"]),
        ("p50/p95 overhead ms", f"{summary(over_gen)['p50']}/{p95_over}"),
        ("p50 LSP / generate ms", f"{summary(client)['p50']}/{summary(gen)['p50']}"),
    ]
    return result
