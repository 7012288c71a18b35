"""``python -m benchmarks`` (and ``lsp-llm bench``): run the suites, write JSON, print a table.

    python -m benchmarks                    # the full suite (~20 min on 2 cores)
    python -m benchmarks --quick            # CI size, tiny random-weight models (~3 min)
    python -m benchmarks --only typing,cancel --out typing.json
    python -m benchmarks --model ~/models/qwen2.5-coder-1.5b --backend transformers

Every figure is a ratio against a baseline measured in the same run; see each suite's module.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import os
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

from benchmarks.common import BenchContext, machine_info

SUITES: dict[str, str] = {
    "overhead": "benchmarks.overhead",
    "typing": "benchmarks.typing_session",
    "cancel": "benchmarks.cancel",
    "index": "benchmarks.indexing",
    "throughput": "benchmarks.throughput",
    "gpu": "benchmarks.gpu",
    "soak": "benchmarks.soak",
    "retrieval": "benchmarks.retrieval",
    "fim": "benchmarks.fim_typing",
}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--quick", action="store_true", help="CI size: tiny models, few samples")
    parser.add_argument(
        "--only", default="", help=f"comma-separated suites to run (of {', '.join(SUITES)})"
    )
    parser.add_argument("--out", type=Path, default=None, help="JSON output file")
    parser.add_argument(
        "--model",
        default=None,
        help="model for the server suites and throughput (default: random-weight models; "
        "throughput: the embedded Gemma 3 270M, skipped by --quick)",
    )
    parser.add_argument("--backend", default=None, help="backend for --model (transformers, ...)")
    parser.add_argument(
        "--device",
        default="cpu",
        choices=["cpu", "cuda", "mps"],
        help="device for the server suites' model (default cpu; cuda on a GPU machine)",
    )
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=None,
        help="where built random-weight models are kept (default: lsp-llm's cache dir /bench)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the scratch directory")
    parser.add_argument(
        "--omp-spin",
        action="store_true",
        help="leave OpenMP's default spin-waiting on (by default the run sets "
        "OMP_WAIT_POLICY=PASSIVE for itself and the servers it starts: on a shared, "
        "oversubscribed machine spinning threads make decode steps 5-15x slower and noisy)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    names = [n.strip() for n in args.only.split(",") if n.strip()] or list(SUITES)
    unknown = [n for n in names if n not in SUITES]
    if unknown:
        print(f"unknown suite(s): {', '.join(unknown)}; choose from {', '.join(SUITES)}")
        return 2
    omp_note = os.environ.get("OMP_WAIT_POLICY", "")
    if not args.omp_spin and not omp_note:
        if "torch" in sys.modules:
            omp_note = "unset (torch was imported before the benchmarks could set it)"
        else:
            os.environ["OMP_WAIT_POLICY"] = "PASSIVE"  # inherited by the servers we start
            omp_note = "PASSIVE (set by the benchmarks for this process and its servers)"
    if args.cache_dir is None:
        from lsp_llm.config import cache_dir

        args.cache_dir = cache_dir() / "bench"
    work = Path(tempfile.mkdtemp(prefix="lsp-llm-bench-"))
    ctx = BenchContext(
        quick=args.quick,
        work_dir=work,
        cache_dir=args.cache_dir,
        model=args.model,
        backend=args.backend,
        device=args.device,
    )
    report: dict[str, Any] = {
        "command": " ".join(
            ["python -m benchmarks", *(argv if argv is not None else sys.argv[1:])]
        ),
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "quick": args.quick,
        "machine": machine_info(),
        "model": args.model or "random-weight models (see each suite)",
        "backend": args.backend or "per suite",
        "omp_wait_policy": omp_note or "default (spin)",
        "suites": {},
    }
    t_all = time.perf_counter()
    failed = 0
    try:
        for name in names:
            ctx.say(f"suite {name}: start")
            t0 = time.perf_counter()
            try:
                module = importlib.import_module(SUITES[name])
                result = module.run(ctx)
            except Exception as exc:
                failed += 1
                result = {
                    "error": f"{exc.__class__.__name__}: {exc}",
                    "traceback": traceback.format_exc(),
                    "goals": [],
                }
                ctx.say(f"suite {name} failed:\n{traceback.format_exc()}")
            result["seconds"] = round(time.perf_counter() - t0, 1)
            report["suites"][name] = result
            ctx.say(f"suite {name}: done in {result['seconds']}s")
            if args.out is not None:  # keep partial results if a later suite dies
                _write(args.out, report)
    finally:
        if not args.keep:
            with contextlib.suppress(OSError):
                shutil.rmtree(work, ignore_errors=True)
    report["seconds"] = round(time.perf_counter() - t_all, 1)
    if args.out is not None:
        _write(args.out, report)
    print(render_table(report))
    if args.out is not None:
        print(f"\nJSON: {args.out}")
    return 1 if failed else 0


def _write(path: Path, report: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(report, indent=2, default=str))
    tmp.replace(path)


def render_table(report: dict[str, Any]) -> str:
    m = report["machine"]
    lines = [
        f"lsp-llm benchmarks ({'quick' if report['quick'] else 'full'}) - "
        f"{m['cpu_count']} CPUs ({m['cpu_model']}), torch {m['torch']}, {m['device']}, "
        f"git {m['git_revision']}, {report['seconds']}s",
        "",
        f"{'suite':<11} {'figure':<44} {'value':>16}  {'goal':<10} met",
    ]
    for name, result in report["suites"].items():
        if "skipped" in result:
            lines.append(f"{name:<11} skipped: {result['skipped']}")
            continue
        if "error" in result and not result.get("goals"):
            lines.append(f"{name:<11} ERROR: {result['error']}")
            continue
        shown = set()
        for g in result.get("goals", []):
            met = {True: "yes", False: "NO", None: "n/a"}[g["met"]]
            value = "-" if g["value"] is None else g["value"]
            lines.append(f"{name:<11} {g['goal'][:44]:<44} {value!s:>16}  {g['target']:<10} {met}")
            shown.add(g["goal"])
        for label, value in result.get("table", []):
            if label not in shown:
                lines.append(f"{name:<11} {label[:44]:<44} {value!s:>16}")
        for key in ("note", "warning"):
            if result.get(key):
                lines.append(f"{name:<11} {key}: {result[key]}")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
