"""FIM typing session on a real FIM code-model layout: how much of each prompt is recomputed.

The model is the Qwen2.5-Coder stand-in of ``tests/fim_models.py`` (the real Qwen tokenizer,
random weights of a small Qwen2 config; ``chain=False``: a plain random model whose greedy
output depends on the whole prompt), as an HF directory for the transformers backend and as a
GGUF for llama.cpp (--quick: hidden 64, 2 layers; full: hidden 256, 8 layers, so that
computing a 2k-token prompt costs more than the fixed per-request work, as with a real model).
A simulated person types a new function (the ``typing`` suite's) into a
copy of httpx's ``_client.py`` (read from site-packages; ~15k tokens, so longer than the
2048-token context window) at two places: near the top (short prefix, long suffix) and in the
middle. Every keystroke is one incremental ``didChange`` and one automatic inline completion,
answered before the next keystroke (closed loop).

Per backend, servers run side by side and get every keystroke one after the other:

* ``off``: ``prefixCache: false``, ``cacheReuse: 0`` (every prompt computed in full);
* ``on``: ``prefixCache: true`` and the default ``cacheReuse`` (chunk reuse by KV shifting);
* llama.cpp only, ``prefix``: ``prefixCache: true``, ``cacheReuse: 0`` (common prefix only), to
  tell what the chunk reuse itself adds and what it changes in the output.

A second part measures idle warm-up (``idleWarmup``): one server at a time (nothing else
running), per backend and position, with ``idleWarmup`` on and off: open the file, send a
``textDocument/codeAction`` at the cursor (what VS Code sends on every cursor move), pause 1 s,
request a completion there (the first suggestion), then type ``WARM_KEYS`` characters with a
completion after each (warm keystrokes). Reported: first ÷ median warm keystroke (goal <= 1.5x
with warm-up on), and the first request's prefill tokens.

Reported per backend and position: mean ``prefill_tokens / prompt_tokens`` per keystroke (from
``lspLlm/status`` ``lastRequest``), typing p50 latency of each configuration and off/on, and how
often the first suggestion of ``on`` (and ``prefix``) equals ``off``'s (the quality impact of
reusing K/V that were computed against older text).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
from pathlib import Path
from typing import Any

from lsprotocol import types

from benchmarks.client import start_client
from benchmarks.common import BenchContext, goal, ratio, server_args, summary
from benchmarks.typing_session import FUNCTION, Typist, keystrokes

NAME = "fim"
CONTEXT_WINDOW = 2048


def httpx_client_source() -> tuple[Path, str]:
    """httpx's ``_client.py``, read by path from the installed package."""
    spec = importlib.util.find_spec("httpx")
    if spec is None or spec.origin is None:
        raise RuntimeError("httpx is not installed")
    path = Path(spec.origin).parent / "_client.py"
    return path, path.read_text(encoding="utf-8")


def positions(text: str) -> dict[str, int]:
    """Offsets (line starts) where the function is typed: near the top, and the middle."""
    top = text.index("\n\n\n", text.index("\nimport ")) + 3  # after the import block
    middle = text.index("\n\n", len(text) // 2) + 2
    return {"top": top, "middle": middle}


def _models(ctx: BenchContext) -> dict[str, str]:
    from tests.fim_models import build_qwen_fim_gguf, build_qwen_fim_model

    root = ctx.cache_dir / "models"
    hidden, layers = (64, 2) if ctx.quick else (256, 8)
    hf_dir = build_qwen_fim_model(root, chain=False, hidden=hidden, layers=layers)
    return {"transformers": str(hf_dir), "llamacpp": str(build_qwen_fim_gguf(hf_dir, root))}


CONFIGS: dict[str, dict[str, dict[str, Any]]] = {
    "transformers": {
        "off": {"prefixCache": False, "cacheReuse": 0},
        "on": {"prefixCache": True},
    },
    "llamacpp": {
        "off": {"prefixCache": False, "cacheReuse": 0},
        "prefix": {"prefixCache": True, "cacheReuse": 0},
        "on": {"prefixCache": True},
    },
}


def run(ctx: BenchContext) -> dict[str, Any]:
    return asyncio.run(_run(ctx))


async def _run(ctx: BenchContext) -> dict[str, Any]:
    models = _models(ctx)
    source_path, source = httpx_client_source()
    n_keys = 24 if ctx.quick else 90
    max_new = 8 if ctx.quick else 16
    keys = keystrokes(FUNCTION)[:n_keys]
    env = ctx.xdg_env()
    env["XDG_CACHE_HOME"] = str(ctx.work_dir / "xdg-cache")
    runs: dict[str, Any] = {}
    for backend, configs in CONFIGS.items():
        root = ctx.work_dir / f"fim-{backend}"
        root.mkdir(parents=True, exist_ok=True)
        ctx.say(f"fim: {backend}, {len(keys)} keystrokes x {len(configs)} servers x 2 positions")
        base = {
            "contextWindow": CONTEXT_WINDOW,
            "maxNewTokens": max_new,
            "retrieval": False,
            "threads": 1,
        }
        async with contextlib.AsyncExitStack() as stack:
            clients = {}
            for name, extra in configs.items():
                settings = {**base, **extra}
                clients[name] = await stack.enter_async_context(
                    start_client(
                        root,
                        server_args(models[backend], backend, ctx.device, settings=settings),
                        init_options=settings,
                        env=env,
                    )
                )
            per_position: dict[str, Any] = {}
            for where, offset in positions(source).items():
                path = root / f"{where}_client.py"
                path.write_text(source, encoding="utf-8")
                typists = {
                    n: Typist(n, c, c.open(path, source), source) for n, c in clients.items()
                }
                await asyncio.sleep(0.3)
                for t in typists.values():  # warm-up at the starting cursor (not counted)
                    await t.complete(offset, "warmup")
                cursor = offset
                for key in keys:
                    for t in typists.values():
                        t.type(cursor, key)
                    cursor += len(key)
                    for t in typists.values():
                        await t.complete(cursor, "type")
                for c, t in zip(clients.values(), typists.values(), strict=True):
                    c.close(t.uri)
                per_position[where] = _position_report(typists)
        runs[backend] = per_position
    first = await _first_after_open(ctx, models, source, keys, max_new, env)
    report = _report(runs, str(source_path), len(keys), max_new, models)
    report["first_after_open"] = first
    for backend, per_position in first.items():
        for where, rep in per_position.items():
            on, off = rep["on"], rep["off"]
            report["goals"].append(
                goal(
                    f"{backend} {where}: first suggestion after open + 1 s pause / warm keystroke",
                    on["first_over_warm"],
                    "<= 1.5",
                    on["first_over_warm"] <= 1.5,
                    f"idleWarmup off: {off['first_over_warm']}",
                )
            )
            report["table"].append(
                (
                    f"{backend} {where} first-after-open / warm, warm-up on/off",
                    f"{on['first_over_warm']}/{off['first_over_warm']}",
                )
            )
    return report


WARM_KEYS = 5
PAUSE_S = 1.0


async def _first_after_open(
    ctx: BenchContext,
    models: dict[str, str],
    source: str,
    keys: list[str],
    max_new: int,
    env: dict[str, str],
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for backend in CONFIGS:
        root = ctx.work_dir / f"fim-open-{backend}"
        root.mkdir(parents=True, exist_ok=True)
        ctx.say(f"fim: {backend}, first suggestion after opening (idleWarmup on / off)")
        per_position: dict[str, Any] = {}
        for where, offset in positions(source).items():
            per_position[where] = {}
            for name, warmup in (("on", True), ("off", False)):
                settings = {
                    "contextWindow": CONTEXT_WINDOW,
                    "maxNewTokens": max_new,
                    "retrieval": False,
                    "threads": 2,
                    "prefixCache": True,
                    "idleWarmup": warmup,
                }
                async with start_client(
                    root,
                    server_args(models[backend], backend, ctx.device, settings=settings),
                    init_options=settings,
                    env=env,
                ) as client:
                    path = root / f"{where}_{name}_client.py"
                    path.write_text(source, encoding="utf-8")
                    t = Typist(name, client, client.open(path, source), source)
                    line, col = _line_col(source, offset)
                    cursor_pos = types.Position(line=line, character=col)
                    await client.client.text_document_code_action_async(
                        types.CodeActionParams(
                            text_document=types.TextDocumentIdentifier(uri=t.uri),
                            range=types.Range(start=cursor_pos, end=cursor_pos),
                            context=types.CodeActionContext(diagnostics=[]),
                        )
                    )
                    await asyncio.sleep(PAUSE_S)
                    await t.complete(offset, "first")
                    cursor = offset
                    for key in keys[:WARM_KEYS]:
                        t.type(cursor, key)
                        cursor += len(key)
                        await t.complete(cursor, "type")
                    client.close(t.uri)
                first = t.rows[0]
                warm = sorted(r["latency_ms"] for r in t.rows[1:])
                median = warm[len(warm) // 2]
                per_position[where][name] = {
                    "first_ms": round(first["latency_ms"], 1),
                    "first_prefill_tokens": first.get("prefill_tokens"),
                    "first_prompt_tokens": first.get("prompt_tokens"),
                    "warm_keystroke_ms_median": round(median, 1),
                    "first_over_warm": ratio(first["latency_ms"], median),
                }
        out[backend] = per_position
    return out


def _line_col(text: str, offset: int) -> tuple[int, int]:
    before = text[:offset]
    return before.count("\n"), offset - (before.rfind("\n") + 1)


def _config_report(t: Typist) -> dict[str, Any]:
    typed = [r for r in t.rows if r["kind"] == "type"]
    model = [r for r in typed if r["source"] == "model" and r.get("prompt_tokens")]
    shares = [r["prefill_tokens"] / r["prompt_tokens"] for r in model]
    return {
        "keystroke_requests": len(typed),
        "model_requests": len(model),
        "mean_prefill_share": round(sum(shares) / len(shares), 4) if shares else None,
        "prompt_tokens": summary([r["prompt_tokens"] for r in model]),
        "prefill_tokens": summary([r["prefill_tokens"] for r in model]),
        "latency_ms_model": summary([r["latency_ms"] for r in model]),
    }


def _agreement(a: Typist, b: Typist) -> tuple[int, int]:
    """(keystrokes where both ran the model and showed the same first suggestion, both ran)."""
    same = both = 0
    for ra, rb in zip(a.rows, b.rows, strict=True):
        if ra["kind"] != "type" or ra["source"] != "model" or rb["source"] != "model":
            continue
        both += 1
        same += ra["first"] == rb["first"]
    return same, both


def _position_report(typists: dict[str, Typist]) -> dict[str, Any]:
    out: dict[str, Any] = {name: _config_report(t) for name, t in typists.items()}
    off = typists["off"]
    for name in typists:
        if name == "off":
            continue
        same, both = _agreement(typists[name], off)
        out[f"exact_match_{name}_vs_off"] = ratio(same, both, 4) if both else None
        out[f"compared_{name}_vs_off"] = both
        out[f"p50_ratio_off_vs_{name}"] = ratio(
            out["off"]["latency_ms_model"]["p50"], out[name]["latency_ms_model"]["p50"]
        )
    return out


def _report(
    runs: dict[str, Any], document: str, n_keys: int, max_new: int, models: dict[str, str]
) -> dict[str, Any]:
    goals = []
    table = []
    for backend, per_position in runs.items():
        for where, rep in per_position.items():
            share = rep["on"]["mean_prefill_share"]
            speedup = rep["p50_ratio_off_vs_on"]
            label = f"{backend} {where}"
            goals.append(
                goal(
                    f"{label}: mean prefill / prompt per keystroke (reuse on)",
                    share,
                    "<= 0.10",
                    share <= 0.10 if share is not None else None,
                )
            )
            goals.append(goal(f"{label}: typing p50 off/on", speedup, ">= 3", speedup >= 3))
            goals.append(
                goal(
                    f"{label}: outputs with reuse on = off",
                    rep["exact_match_on_vs_off"],
                    "measured",
                    None,
                    f"{rep['compared_on_vs_off']} keystrokes compared",
                )
            )
            table.append(
                (
                    f"{label} prefill share on/off",
                    f"{share}/{rep['off']['mean_prefill_share']}",
                )
            )
            table.append(
                (
                    f"{label} p50 ms on/off",
                    f"{rep['on']['latency_ms_model']['p50']}/"
                    f"{rep['off']['latency_ms_model']['p50']}",
                )
            )
    return {
        "document": document,
        "context_window": CONTEXT_WINDOW,
        "max_new_tokens": max_new,
        "keystrokes": n_keys,
        "models": models,
        "runs": runs,
        "goals": goals,
        "table": table,
    }
