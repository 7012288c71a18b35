"""Throughput and memory: decode tokens/s of each backend vs the raw library call.

* transformers backend (the server over stdio, ``lastRequest`` timings) vs ``model.generate``
  in this process on the same model (same loader, dtype, threads); decode rate is
  (tokens - 1) / (last token - first token) on both sides, medians of alternating runs;
* llamacpp backend (the server) vs raw ``xllamacpp.Server.handle_completions`` in this process
  with the same parameters; both rates are llama.cpp's own ``predicted_per_second``-style
  timings;
* server RSS after load (``/proc/<pid>/status``) and CPU use while idle for 5 s
  (``/proc/<pid>/stat`` utime + stime).

Full runs use the embedded default (Gemma 3 270M; the transformers conversion is cached after
its first ~100 s). ``--quick`` uses the tiny random-weight model and skips llama.cpp unless
``--model`` is given.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from pathlib import Path
from typing import Any

from benchmarks.client import start_client
from benchmarks.common import (
    BenchContext,
    client_server_pid,
    goal,
    proc_cpu_seconds,
    proc_status_kib,
    ratio,
    server_args,
)

NAME = "throughput"

DOC = '''"""Number tables."""

# The first one hundred prime numbers, in order.
PRIMES = [2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, '''
IDLE_S = 5.0


def run(ctx: BenchContext) -> dict[str, Any]:
    return asyncio.run(_run(ctx))


async def _run(ctx: BenchContext) -> dict[str, Any]:
    result: dict[str, Any] = {}
    goals: list[dict[str, Any]] = []
    table: list[tuple[str, Any]] = []
    if ctx.model:
        model, backends = ctx.model, [ctx.backend or "transformers"]
        if ctx.backend is None and ctx.model.endswith(".gguf"):
            backends = ["transformers", "llamacpp"]
    elif ctx.quick:
        model, backends = ctx.server_model()[0], ["transformers"]
        result["llamacpp"] = {"skipped": "--quick without --model (no GGUF of the tiny model)"}
    else:
        model, backends = "", ["transformers", "llamacpp"]  # "" = the embedded default
    result["model"] = model or "embedded default (Gemma 3 270M Q4_K_M GGUF)"
    reps = 2 if ctx.quick else 3
    max_new = 32 if ctx.quick else 64
    for backend in backends:
        ctx.say(f"throughput: {backend} on {result['model']}")
        try:
            if backend == "transformers":
                r = await _transformers(ctx, model, max_new, reps)
            elif backend == "llamacpp":
                r = await _llamacpp(ctx, model, max_new, reps)
            else:
                r = {"skipped": f"no raw baseline for backend {backend}"}
        except Exception as exc:  # report it; the other backend still runs
            r = {"error": f"{exc.__class__.__name__}: {exc}"}
        result[backend] = r
        if "ratio" in r:
            goals.append(
                goal(f"{backend} decode tok/s vs raw", r["ratio"], ">= 0.95", r["ratio"] >= 0.95)
            )
            table.append((f"{backend} tok/s server/raw", f"{r['server_tok_s']}/{r['raw_tok_s']}"))
        if "idle_cpu_percent" in r:
            goals.append(
                goal(
                    f"{backend} server idle CPU % (5 s)",
                    r["idle_cpu_percent"],
                    "~0 (< 1)",
                    r["idle_cpu_percent"] < 1.0,
                )
            )
            table.append((f"{backend} server RSS MiB", r["server_rss_mib"]))
        elif "error" in r or "skipped" in r:
            table.append((f"{backend}", r.get("error") or r.get("skipped")))
    result["goals"] = goals
    result["table"] = table
    return result


def _doc_root(ctx: BenchContext) -> tuple[Path, Path]:
    root = ctx.work_dir / "throughput-ws"
    root.mkdir(parents=True, exist_ok=True)
    path = root / "tables.py"
    path.write_text(DOC)
    return root, path


def _env(ctx: BenchContext, model: str) -> dict[str, str]:
    env = ctx.xdg_env()
    if model and not model.endswith(".gguf"):
        env["XDG_CACHE_HOME"] = str(ctx.work_dir / "xdg-cache")
    # else: the user's cache, where the embedded model and its conversion live
    return env


async def _server_side(
    ctx: BenchContext, model: str, backend: str, max_new: int, reps: int, baseline: Any
) -> dict[str, Any]:
    """Alternate server requests and ``baseline(new_tokens)`` calls; collect both rates."""
    root, path = _doc_root(ctx)
    settings = {"maxNewTokens": max_new, "completionCache": False}
    args = server_args(model, backend, ctx.device, settings=settings)
    lines = DOC.split("\n")
    pos = (len(lines) - 1, len(lines[-1]))
    server_rates: list[float] = []
    raw_rates: list[float] = []
    new_tokens: list[int] = []
    out: dict[str, Any] = {}
    async with start_client(root, args, init_options=settings, env=_env(ctx, model)) as c:
        pid = client_server_pid(c)
        uri = c.open(path, DOC)
        await asyncio.sleep(0.3)
        await c.inline(uri, *pos)  # warm-up
        for _ in range(reps):
            await c.inline(uri, *pos)
            last = (await c.status()).get("lastRequest") or {}
            n = int(last.get("new_tokens") or 0)
            new_tokens.append(n)
            server_rates.append(_server_rate(last))
            raw_rates.append(baseline(max(n, 8)))
        st = await c.status()
        out["server_backend"] = st.get("backend")
        out["server_model"] = st.get("model")
        if pid is not None:
            out["server_rss_mib"] = round(proc_status_kib(pid, "VmRSS") / 1024, 1)
            out["server_peak_rss_mib"] = round(proc_status_kib(pid, "VmHWM") / 1024, 1)
            await c.wait_idle()
            await asyncio.sleep(0.5)
            cpu0, t0 = proc_cpu_seconds(pid), time.perf_counter()
            await asyncio.sleep(IDLE_S)
            cpu1, t1 = proc_cpu_seconds(pid), time.perf_counter()
            out["idle_cpu_percent"] = round((cpu1 - cpu0) / (t1 - t0) * 100, 2)
    s, r = statistics.median(server_rates), statistics.median(raw_rates)
    out.update(
        server_tok_s=round(s, 2),
        raw_tok_s=round(r, 2),
        ratio=ratio(s, r),
        server_tok_s_runs=[round(x, 2) for x in server_rates],
        raw_tok_s_runs=[round(x, 2) for x in raw_rates],
        new_tokens=new_tokens,
    )
    return out


def _server_rate(last: dict[str, Any]) -> float:
    n = int(last.get("new_tokens") or 0)
    span = float(last.get("total_s") or 0) - float(last.get("first_token_s") or 0)
    if n > 1 and span > 0:
        return (n - 1) / span
    return float(last.get("tokensPerSecond") or 0.0)


async def _transformers(ctx: BenchContext, model: str, max_new: int, reps: int) -> dict[str, Any]:
    from benchmarks.reference import Reference
    from lsp_llm.config import Settings

    ref = Reference(Settings(model=model, backend="transformers", device="cpu"))
    prompt = ref.completion_prompt(text=DOC, offset=len(DOC), path="tables.py")
    ids = ref.prompt_ids(prompt)

    def baseline(n: int) -> float:
        t = ref.time_generate(ids, n)
        span = t["last_token_s"] - t["first_token_s"]
        return (n - 1) / span if span > 0 else 0.0

    try:
        out = await _server_side(ctx, model, "transformers", max_new, reps, baseline)
    finally:
        weights = sum(p.numel() * p.element_size() for p in ref.model.parameters())
        ref.close()
    out["baseline"] = "model.generate (greedy, min_new_tokens = n), same loader/dtype/threads"
    out["weights_mib"] = round(weights / 2**20, 1)
    if "server_rss_mib" in out:
        out["server_rss_over_weights"] = ratio(out["server_rss_mib"], out["weights_mib"])
    return out


async def _llamacpp(ctx: BenchContext, model: str, max_new: int, reps: int) -> dict[str, Any]:
    try:
        import xllamacpp
    except ImportError:
        return {"skipped": "xllamacpp is not installed"}
    try:
        from lsp_llm.engine.backends.llamacpp import PREFILL_CHUNK, LlamaCppBackend
    except ImportError as exc:
        return {"skipped": f"lsp_llm.engine.backends.llamacpp is not available: {exc}"}
    from lsp_llm.config import Settings
    from lsp_llm.engine.models import embedded_gguf_path

    gguf = model or str(embedded_gguf_path())
    shadow = LlamaCppBackend(Settings(backend="llamacpp", model=gguf), gguf)
    params = xllamacpp.CommonParams()
    params.model.path = gguf
    params.n_ctx = shadow._context_size()
    params.n_batch = PREFILL_CHUNK
    params.n_ubatch = PREFILL_CHUNK
    params.n_parallel = 1
    params.cpuparams.n_threads = shadow.threads
    params.cpuparams_batch.n_threads = shadow.threads
    params.warmup = True
    params.verbosity = 0
    raw = {"server": xllamacpp.Server(params)}
    prompt = DOC

    def baseline(n: int) -> float:
        body = {
            "prompt": prompt,
            "n_predict": n,
            "ignore_eos": True,
            "temperature": 0.0,
            "top_k": 1,
            "cache_prompt": False,
            "stream": False,
        }
        res = raw["server"].handle_completions(body)
        timings = res.get("timings", {}) if isinstance(res, dict) else {}
        return float(timings.get("predicted_per_second") or 0.0)

    try:
        out = await _server_side(ctx, model, "llamacpp", max_new, reps, baseline)
    finally:
        raw.clear()  # ~Server stops llama.cpp's threads
    out["baseline"] = "xllamacpp.Server.handle_completions in-process, same n_ctx/batch/threads"
    out["weights_mib"] = round(Path(gguf).stat().st_size / 2**20, 1)
    if "server_rss_mib" in out:
        out["server_rss_over_weights"] = ratio(out["server_rss_mib"], out["weights_mib"])
    return out
