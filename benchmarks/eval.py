"""Quality evaluation through the real server: HumanEval infilling and a repository-level
retrieval ablation.

    python -m benchmarks.eval [--suite humaneval-single,humaneval-multi,repo]
                              [--data-dir ../shared/data] [--limit N] [--seed S] [--quick]
                              [--model M] [--backend B] [--device D] [--out FILE.json]

Every suggestion comes from ``python -m lsp_llm serve`` over stdio, requested like an editor
does (``textDocument/inlineCompletion``, automatic trigger: one greedy suggestion), so prompts,
retrieval, templates and post-processing are all measured. Latency is the client-side time of
the inline-completion request.

* ``humaneval-single`` / ``humaneval-multi`` — see :mod:`benchmarks.eval_humaneval`: each
  problem is written to a file in a temporary workspace, completed at the hole, spliced and
  tested in a sandboxed subprocess; pass@1 (greedy). Retrieval is off for these suites: every
  problem is a single file, and other problems' files in the workspace would only add noise
  (or leak: holes of the same problem share code). ``maxNewTokens`` is the server default (64)
  for single-line holes and 128 for multi-line holes. The tests run after the server has
  stopped, so they do not compete with the model for CPU.
* ``repo`` — see :mod:`benchmarks.eval_repo`: lines that use an identifier imported from
  another module of a real code base, cut after their first token; exact match and edit
  similarity of the first suggested line, retrieval on versus off. One server, one warm model:
  each sample is asked twice, with ``retrieval`` switched by ``workspace/didChangeConfiguration``
  in between (alternating which goes first), so both sides see the same machine load.
  ``maxNewTokens`` is 48 (only the first line is scored; targets are at most 100 characters).

The report is JSON (``--out``) plus a Markdown table on stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import datetime
import json
import math
import platform
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lsprotocol import types

from benchmarks import eval_humaneval as he
from benchmarks import eval_repo as repo
from benchmarks.client import BenchClient, start_client
from benchmarks.common import git_revision

SUITES = ("humaneval-single", "humaneval-multi", "repo")
REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA_DIRS = (REPO_ROOT.parent / "shared" / "data", Path("../shared/data"))
QUICK_LIMIT = 10
DEFAULT_LIMITS = {"humaneval-single": 100, "humaneval-multi": 100, "repo": 150}
MAX_NEW_TOKENS = {"humaneval-single": 64, "humaneval-multi": 128, "repo": 48}
QUICK_SETTINGS = {"contextWindow": 512, "maxNewTokens": 16}
"""``--quick`` proves the harness, not the model: short prompts, short suggestions."""


def log(message: str) -> None:
    print(f"[eval {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# -- the server --------------------------------------------------------------------------------


def serve(
    root: Path,
    server_args: Sequence[str],
    init_options: dict[str, Any],
    *,
    env: dict[str, str] | None = None,
    ready_timeout: float = 900.0,
) -> contextlib.AbstractAsyncContextManager[BenchClient]:
    """The real server over stdio, initialized like an editor, model ready."""
    return start_client(
        root, list(server_args), init_options=init_options, env=env, ready_timeout=ready_timeout
    )


async def configure(bench: BenchClient, settings: dict[str, Any]) -> dict[str, Any]:
    """Apply settings like an editor does; returns the server's settings afterwards."""
    bench.client.workspace_did_change_configuration(
        types.DidChangeConfigurationParams(settings={"lspLlm": settings})
    )
    return dict((await bench.status()).get("settings") or {})


async def wait_index(bench: BenchClient, timeout: float) -> dict[str, Any] | None:
    """Wait until ``lspLlm/status`` reports the workspace index ready (None: no index)."""
    deadline = time.monotonic() + timeout
    absent_deadline = time.monotonic() + min(timeout, 30.0)
    while True:
        index = (await bench.status()).get("index")
        if isinstance(index, dict):
            state = index.get("state")
            if state == "ready" and index.get("files", 0) > 0:
                return index
            if state == "error":
                raise RuntimeError(f"workspace index failed: {index}")
        elif time.monotonic() > absent_deadline:
            return None
        if time.monotonic() > deadline:
            raise TimeoutError(f"index not ready after {timeout}s: {index}")
        await asyncio.sleep(0.25)


async def complete(bench: BenchClient, path: Path, text: str, offset: int) -> dict[str, Any]:
    """Open ``text`` as ``path``, ask for a completion at ``offset``, close it."""
    uri = bench.open(path, text)
    line, character = he.position_at(text, offset)
    t0 = time.perf_counter()
    items = await bench.inline(uri, line, character)
    latency = time.perf_counter() - t0
    last = (await bench.status()).get("lastRequest") or {}
    bench.close(uri)
    return {
        "completion": items[0] if items else "",
        "latencyMs": round(latency * 1000, 1),
        "promptTokens": last.get("prompt_tokens"),
        "newTokens": last.get("new_tokens"),
    }


def model_info(status: dict[str, Any]) -> dict[str, Any]:
    """The model, the backend (and why ``auto`` chose it) and the server's settings."""
    keys = ("model", "backend", "backendReason", "device", "dtype")
    settings = status.get("settings") or {}
    skip = ("secretPatterns", "extraIgnore", "apiKeyEnv", "endpoint")
    return {
        **{k: status.get(k) for k in keys},
        "settings": {k: v for k, v in settings.items() if k not in skip},
    }


def forget_indexes(index: dict[str, Any] | None) -> None:
    """Delete the persisted indexes of temporary workspaces (they live in the user cache)."""
    for root in (index or {}).get("roots") or []:
        path = root.get("indexPath")
        if path and str(root.get("root", "")).startswith(tempfile.gettempdir()):
            with contextlib.suppress(OSError):
                Path(path).unlink()


# -- statistics --------------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float | None:
    """Linear-interpolated percentile (q in 0..100); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100.0
    lo, hi = math.floor(pos), math.ceil(pos)
    return round(ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo), 1)


def latency_summary(values_ms: Sequence[float]) -> dict[str, float | None]:
    return {
        "p50Ms": percentile(values_ms, 50),
        "p95Ms": percentile(values_ms, 95),
        "meanMs": round(sum(values_ms) / len(values_ms), 1) if values_ms else None,
    }


def mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else 0.0


# -- suites ------------------------------------------------------------------------------------


@dataclasses.dataclass
class Options:
    suites: tuple[str, ...]
    data_dir: Path | None
    limits: dict[str, int | None]
    seed: int
    quick: bool
    server_args: list[str]
    repo: str
    timeout_s: float
    workers: int
    index_timeout_s: float

    def settings(self, suite: str) -> dict[str, Any]:
        """Server settings for a suite (no completion cache: every request reaches the model)."""
        base: dict[str, Any] = {"completionCache": False, "maxNewTokens": MAX_NEW_TOKENS[suite]}
        return {**base, **QUICK_SETTINGS} if self.quick else base


async def run_humaneval(opts: Options, meta: dict[str, Any]) -> dict[str, Any]:
    suites = [s for s in opts.suites if s.startswith("humaneval")]
    if opts.data_dir is None:
        raise FileNotFoundError("HumanEval data not found; pass --data-dir")
    chosen = {
        s: he.select(he.load_problems(opts.data_dir / he.SUITE_FILES[s]), opts.limits[s], opts.seed)
        for s in suites
    }
    records: dict[str, list[dict[str, Any]]] = {s: [] for s in suites}
    with tempfile.TemporaryDirectory(prefix="lsp-llm-eval-he-") as tmp:
        root = Path(tmp)
        init = {**opts.settings(suites[0]), "retrieval": False}
        async with serve(root, opts.server_args, init) as bench:
            status = await bench.status()
            meta.setdefault("model", model_info(status))
            for suite in suites:
                settings = await configure(bench, opts.settings(suite))
                log(
                    f"{suite}: {len(chosen[suite])} problems, maxNewTokens "
                    f"{settings.get('maxNewTokens')}"
                )
                for i, problem in enumerate(chosen[suite]):
                    text, offset = he.make_document(problem)
                    path = root / problem.file_name
                    path.write_text(text, encoding="utf-8")
                    rec = await complete(bench, path, text, offset)
                    path.unlink()
                    records[suite].append({"taskId": problem.task_id, **rec})
                    if (i + 1) % 10 == 0:
                        log(f"{suite}: {i + 1}/{len(chosen[suite])}")
            forget_indexes((await bench.status()).get("index"))
    out: dict[str, Any] = {}
    limits = he.Limits(timeout_s=opts.timeout_s)
    for suite in suites:
        problems, recs = chosen[suite], records[suite]
        log(f"{suite}: running {len(recs)} test programs")
        runs = he.run_programs(
            [he.build_program(p, r["completion"]) for p, r in zip(problems, recs, strict=True)],
            limits,
            opts.workers,
        )
        for rec, run in zip(recs, runs, strict=True):
            rec.update(status=run.status, passed=run.passed, detail=run.detail[-200:])
        result: dict[str, Any] = {
            "n": len(recs),
            **he.summarize_runs(runs),
            "latency": latency_summary([r["latencyMs"] for r in recs]),
            "meanNewTokens": mean([r["newTokens"] or 0 for r in recs]),
            "emptySuggestions": sum(1 for r in recs if not r["completion"].strip()),
            "settings": {**opts.settings(suite), "retrieval": False},
        }
        if suite == "humaneval-single":
            firsts = he.run_programs(
                [
                    he.build_program(p, he.first_line(r["completion"]))
                    for p, r in zip(problems, recs, strict=True)
                ],
                limits,
                opts.workers,
            )
            result["pass@1FirstLine"] = he.summarize_runs(firsts)["pass@1"]
        empty = he.run_programs([he.build_program(p, "") for p in problems], limits, opts.workers)
        result["pass@1EmptyBaseline"] = he.summarize_runs(empty)["pass@1"]
        result["samples"] = recs
        out[suite] = result
    return out


async def run_repo(opts: Options, meta: dict[str, Any]) -> dict[str, Any]:
    source = repo.resolve_repo(opts.repo)
    with tempfile.TemporaryDirectory(prefix="lsp-llm-eval-repo-") as tmp:
        root = Path(tmp) / "workspace"
        root.mkdir()
        tree = repo.copy_repo(source, root)
        candidates = repo.find_samples(tree, root)
        unique = repo.distinct(candidates)
        samples = repo.select(unique, opts.limits["repo"], opts.seed)
        log(
            f"repo {source.name}: {len(candidates)} candidate lines, {len(unique)} distinct, "
            f"{len(samples)} sampled"
        )
        records: list[dict[str, Any]] = []
        init = {**opts.settings("repo"), "retrieval": True}
        async with serve(root, opts.server_args, init) as bench:
            meta.setdefault("model", model_info(await bench.status()))
            t0 = time.monotonic()
            index = await wait_index(bench, opts.index_timeout_s)
            index_note: dict[str, Any] = (
                {k: index.get(k) for k in ("state", "files", "symbols")}
                if index
                else {"state": "absent from lspLlm/status: retrieval may be inactive"}
            )
            index_note["waitS"] = round(time.monotonic() - t0, 1)
            log(f"index: {index_note}")
            for i, sample in enumerate(samples):
                rec: dict[str, Any] = {
                    "path": sample.path,
                    "line": sample.line + 1,
                    "column": sample.column,
                    "target": sample.target,
                    "identifiers": list(sample.identifiers),
                    "definedIn": list(sample.defined_in),
                }
                order = (True, False) if i % 2 == 0 else (False, True)
                for on in order:
                    settings = await configure(bench, {"retrieval": on})
                    if settings.get("retrieval") is not on:
                        raise RuntimeError(f"the server did not apply retrieval={on}")
                    res = await complete(
                        bench, root / sample.path, sample.prefix, len(sample.prefix)
                    )
                    rec["on" if on else "off"] = {**res, **repo.score(res["completion"], sample)}
                records.append(rec)
                if (i + 1) % 10 == 0:
                    log(f"repo: {i + 1}/{len(samples)}")
            forget_indexes((await bench.status()).get("index"))

    def side(key: str) -> dict[str, Any]:
        recs = [r[key] for r in records]
        return {
            "em": mean([float(r["em"]) for r in recs]),
            "es": mean([r["es"] for r in recs]),
            "identifierMatch": mean([float(r["identifierHit"]) for r in recs]),
            "latency": latency_summary([r["latencyMs"] for r in recs]),
            "meanPromptTokens": mean([r["promptTokens"] or 0 for r in recs]),
            "emptySuggestions": sum(1 for r in recs if not r["completion"].strip()),
        }

    with_ctx, without = side("on"), side("off")
    return {
        "repo": {
            "source": source.name,
            "candidates": len(candidates),
            "distinct": len(unique),
            "n": len(records),
            "index": index_note,
            "settings": opts.settings("repo"),
            "retrievalOn": with_ctx,
            "retrievalOff": without,
            "delta": {k: with_ctx[k] - without[k] for k in ("em", "es", "identifierMatch")},
            "samples": records,
        }
    }


# -- report ------------------------------------------------------------------------------------


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.1f}"


def _ms(value: float | None) -> str:
    return "—" if value is None else f"{value:.0f}"


def format_table(report: dict[str, Any]) -> str:
    meta = report["meta"]
    model = meta.get("model") or {}
    lines = [
        f"model `{model.get('model')}` · backend `{model.get('backend')}` · device "
        f"`{model.get('device')}` · git `{meta['git']}` · seed {meta['seed']}"
        + (" · quick" if meta["quick"] else ""),
        "",
        "| suite | n | metric | retrieval off | retrieval on | Δ (on − off) | p50 ms | p95 ms |",
        "|---|---:|---|---:|---:|---:|---:|---:|",
    ]
    suites = report["suites"]
    for name in ("humaneval-single", "humaneval-multi"):
        if name in suites:
            s = suites[name]
            lat = s["latency"]
            lines.append(
                f"| {name} | {s['n']} | pass@1 | {_pct(s['pass@1'])} | — | — | "
                f"{_ms(lat['p50Ms'])} | {_ms(lat['p95Ms'])} |"
            )
            if "pass@1FirstLine" in s:
                lines.append(
                    f"| {name} | {s['n']} | pass@1 (first line only) | "
                    f"{_pct(s['pass@1FirstLine'])} | — | — | | |"
                )
            lines.append(
                f"| {name} | {s['n']} | pass@1 of an empty hole (baseline) | "
                f"{_pct(s['pass@1EmptyBaseline'])} | — | — | | |"
            )
    if "repo" in suites:
        r = suites["repo"]
        on, off = r["retrievalOn"], r["retrievalOff"]
        name = f"repo ({r['source']})"
        for key, label in (
            ("em", "exact match"),
            ("es", "edit similarity"),
            ("identifierMatch", "identifier match"),
        ):
            lat_on, lat_off = on["latency"], off["latency"]
            lat = (
                f"{_ms(lat_off['p50Ms'])} / {_ms(lat_on['p50Ms'])} | "
                f"{_ms(lat_off['p95Ms'])} / {_ms(lat_on['p95Ms'])}"
                if key == "em"
                else " | "
            )
            lines.append(
                f"| {name} | {r['n']} | {label} | {_pct(off[key])} | {_pct(on[key])} | "
                f"{100 * r['delta'][key]:+.1f} | {lat} |"
            )
    lines.append("")
    lines.append("Scores in percent; repo latency is off / on.")
    return "\n".join(lines)


# -- entry point -------------------------------------------------------------------------------


def find_data_dir(given: str | None) -> Path | None:
    candidates = [Path(given)] if given else list(DEFAULT_DATA_DIRS)
    for path in candidates:
        if (path / he.SUITE_FILES["humaneval-single"]).is_file():
            return path.resolve()
    if given:
        raise FileNotFoundError(f"no HumanEval infilling files in {given}")
    return None


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="lsp-llm eval", description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--suite",
        default=",".join(SUITES),
        help=f"comma-separated: {', '.join(SUITES)} (default: all)",
    )
    p.add_argument(
        "--data-dir",
        help="directory with the HumanEval infilling .jsonl.gz files "
        "(default: ../shared/data next to the repository)",
    )
    p.add_argument(
        "--limit",
        help="samples per suite: N, or SUITE=N,... (default: 100 HumanEval problems, "
        "150 repo lines; 0 = all)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--quick",
        action="store_true",
        help=f"{QUICK_LIMIT} samples per suite, short test timeouts (CI)",
    )
    p.add_argument("--model", help="model for the server (default: the embedded default)")
    p.add_argument("--backend", help="backend for the server (default: auto)")
    p.add_argument("--device", help="device for the server (default: auto)")
    p.add_argument(
        "--repo",
        default="httpx",
        help="repo suite code base: a directory or an installed package name",
    )
    p.add_argument("--timeout", type=float, default=10.0, help="seconds per test program")
    p.add_argument("--workers", type=int, default=2, help="test programs run at once")
    p.add_argument("--index-timeout", type=float, default=300.0)
    p.add_argument("--out", help="write the JSON report here")
    return p.parse_args(argv)


def options(args: argparse.Namespace) -> Options:
    suites = tuple(s.strip() for s in args.suite.split(",") if s.strip())
    unknown = [s for s in suites if s not in SUITES]
    if unknown:
        raise SystemExit(f"unknown suite(s): {', '.join(unknown)}")
    limits: dict[str, int | None] = {
        s: QUICK_LIMIT if args.quick else DEFAULT_LIMITS[s] for s in SUITES
    }
    for part in (args.limit or "").split(","):
        name, _, value = part.strip().rpartition("=")
        if not value:
            continue
        if name and name not in SUITES:
            raise SystemExit(f"unknown suite in --limit: {name}")
        try:
            number = int(value)
        except ValueError:
            raise SystemExit(f"--limit needs N or SUITE=N, not {part!r}") from None
        for s in [name] if name else SUITES:
            limits[s] = number or None
    server_args: list[str] = []
    for flag in ("model", "backend", "device"):
        if getattr(args, flag):
            server_args += [f"--{flag}", getattr(args, flag)]
    needs_data = any(s.startswith("humaneval") for s in suites)
    return Options(
        suites=suites,
        data_dir=find_data_dir(args.data_dir) if needs_data else None,
        limits=limits,
        seed=args.seed,
        quick=args.quick,
        server_args=server_args,
        repo=args.repo,
        timeout_s=min(args.timeout, 5.0) if args.quick else args.timeout,
        workers=args.workers,
        index_timeout_s=args.index_timeout,
    )


async def run(opts: Options, argv: Sequence[str]) -> dict[str, Any]:
    started = time.monotonic()
    meta: dict[str, Any] = {
        "git": git_revision(),
        "started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "argv": list(argv),
        "seed": opts.seed,
        "quick": opts.quick,
        "serverArgs": opts.server_args,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "sandbox": he.sandbox_method()[1],
        "testTimeoutS": opts.timeout_s,
    }
    suites: dict[str, Any] = {}
    if any(s.startswith("humaneval") for s in opts.suites):
        suites.update(await run_humaneval(opts, meta))
    if "repo" in opts.suites:
        suites.update(await run_repo(opts, meta))
    meta["seconds"] = round(time.monotonic() - started, 1)
    return {"meta": meta, "suites": suites}


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        opts = options(args)
    except FileNotFoundError as exc:
        print(f"lsp-llm eval: {exc}", file=sys.stderr)
        return 2
    report = asyncio.run(run(opts, list(sys.argv[1:] if argv is None else argv)))
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        log(f"report written to {args.out}")
    print(format_table(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
