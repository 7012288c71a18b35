"""Subcommands beyond serve/connect/complete: parsers here, bodies in their own modules."""

from __future__ import annotations

import argparse
import asyncio
import difflib
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

ArgAdder = Callable[[argparse.ArgumentParser], None]


def add_subcommands(sub: Any, model_args: ArgAdder, common_args: ArgAdder) -> None:
    p = sub.add_parser("explain", help="explain FILE[:START[-END]] (lines, 1-based); streams")
    p.add_argument("location", help="FILE, FILE:LINE (the definition there) or FILE:START-END")
    model_args(p)
    common_args(p)

    p = sub.add_parser("docstring", help="write a docstring for the definition at FILE:LINE")
    p.add_argument("location", help="FILE:LINE (1-based)")
    p.add_argument("--write", action="store_true", help="apply it to the file (default: diff)")
    model_args(p)
    common_args(p)

    p = sub.add_parser("index", help="build or update the workspace index of PATH")
    p.add_argument("path", nargs="?", default=".", type=Path)
    p.add_argument("--watch", action="store_true", help="keep it fresh until interrupted")
    p.add_argument("--json", action="store_true", help="print stats as JSON")
    p.add_argument("--config", type=Path)
    common_args(p)

    p = sub.add_parser(
        "context", help="show the cross-file snippets a prompt at FILE:LINE:COL gets"
    )
    p.add_argument("location", help="FILE:LINE:COL (1-based)")
    p.add_argument("--json", action="store_true")
    p.add_argument("--config", type=Path)
    common_args(p)

    p = sub.add_parser("stats", help="show local acceptance statistics (never sent anywhere)")
    p.add_argument("--json", action="store_true")
    p.add_argument("--reset", action="store_true", help="forget all counts")
    common_args(p)

    p = sub.add_parser("doctor", help="check the installation, device, model and index")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--skip-model", action="store_true", help="do not load the model")
    model_args(p)
    common_args(p)

    # Listed for --help only: lsp_llm.cli.main hands their arguments to run_tool untouched.
    sub.add_parser("bench", help="run the benchmark suite (python -m benchmarks)")
    sub.add_parser("eval", help="run the quality evaluation (python -m benchmarks.eval)")


def _settings(args: argparse.Namespace, root: Path) -> Any:
    from lsp_llm.cli import overrides_from
    from lsp_llm.config import load_settings

    settings, warnings = load_settings(
        config_file=getattr(args, "config", None),
        workspace_roots=[root],
        overrides=overrides_from(args),
    )
    for warning in warnings:
        print(f"lsp-llm: {warning}", file=sys.stderr)
    return settings


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        print(f"lsp-llm: cannot read {path}: {exc}", file=sys.stderr)
        return None


def _snapshot(path: Path, text: str) -> Any:
    from lsp_llm.features.completion import DocumentSnapshot
    from lsp_llm.prompts.completion import language_from_path

    return DocumentSnapshot(
        uri=path.resolve().as_uri(),
        path=path.name,
        language=language_from_path(str(path)),
        version=0,
        text=text,
    )


def _engine(args: argparse.Namespace) -> Any:
    from lsp_llm.cli import wait_ready
    from lsp_llm.engine.worker import Engine

    engine = Engine(_settings(args, Path.cwd()))
    return engine if wait_ready(engine) else None


def cmd_explain(args: argparse.Namespace) -> int:
    from lsp_llm.cli import split_location
    from lsp_llm.errors import InvalidParams, RequestFailed
    from lsp_llm.features import assist

    raw = args.location
    span = None
    head, _, tail = raw.rpartition(":")
    if head and "-" in tail and all(p.isdigit() for p in tail.split("-", 1)):
        a, b = (int(x) for x in tail.split("-", 1))
        path, span = Path(head), (a, b)
        nums: list[int] = []
    else:
        path, nums = split_location(raw, 1)
    text = _read(path)
    if text is None:
        return 2
    snap = _snapshot(path, text)
    lines = text.split("\n")

    def line_offset(n: int) -> int:
        n = max(1, min(n, len(lines)))
        return sum(len(x) + 1 for x in lines[: n - 1])

    if span is not None:
        start, end = (
            line_offset(span[0]),
            line_offset(span[1]) + len(lines[min(span[1], len(lines)) - 1]),
        )
    elif nums:
        start = end = line_offset(nums[0])
    else:
        start, end = 0, len(text)
    engine = _engine(args)
    if engine is None:
        return 1

    def out(chunk: str) -> None:
        sys.stdout.write(chunk)
        sys.stdout.flush()

    try:
        result = asyncio.run(
            assist.explain(engine, snap, start, end, settings=engine.settings, on_chunk=out)
        )
    except (InvalidParams, RequestFailed) as exc:
        print(f"lsp-llm explain: {exc}", file=sys.stderr)
        return 1
    finally:
        engine.shutdown()
    print()
    if result.finish_reason == "length":
        print("(stopped at explainMaxNewTokens)", file=sys.stderr)
    return 0


def cmd_docstring(args: argparse.Namespace) -> int:
    from lsp_llm.cli import split_location
    from lsp_llm.errors import InvalidParams, RequestFailed
    from lsp_llm.features import assist
    from lsp_llm.prompts.docstrings import apply_edit

    path, nums = split_location(args.location, 1)
    if len(nums) != 1:
        print("lsp-llm docstring: expected FILE:LINE", file=sys.stderr)
        return 2
    text = _read(path)
    if text is None:
        return 2
    snap = _snapshot(path, text)
    engine = _engine(args)
    if engine is None:
        return 1
    try:
        result = asyncio.run(assist.docstring(engine, snap, nums[0] - 1, settings=engine.settings))
    except (InvalidParams, RequestFailed) as exc:
        print(f"lsp-llm docstring: {exc}", file=sys.stderr)
        return 1
    finally:
        engine.shutdown()
    if result.edit is None:
        print("lsp-llm docstring: nothing to change", file=sys.stderr)
        return 0
    new_text = apply_edit(text, result.edit)
    if args.write:
        tmp = path.with_name(f".{path.name}.lsp-llm.tmp")
        tmp.write_text(new_text, encoding="utf-8")
        tmp.replace(path)
        print(f"lsp-llm: wrote a docstring for {result.target.name} into {path}", file=sys.stderr)
    else:
        sys.stdout.writelines(
            difflib.unified_diff(
                text.splitlines(keepends=True),
                new_text.splitlines(keepends=True),
                fromfile=f"a/{path}",
                tofile=f"b/{path}",
            )
        )
    return 0


def dispatch(args: argparse.Namespace) -> int:
    command = args.command
    if command == "explain":
        return cmd_explain(args)
    if command == "docstring":
        return cmd_docstring(args)
    if command == "index":
        from lsp_llm.context.commands import run_index

        root = args.path.resolve()
        return run_index(
            root,
            watch=args.watch,
            as_json=args.json,
            settings=_settings(args, root),
            cache_dir=None,
        )
    if command == "context":
        from lsp_llm.cli import split_location
        from lsp_llm.context.commands import run_context

        path, nums = split_location(args.location, 2)
        if len(nums) != 2:
            print("lsp-llm context: expected FILE:LINE:COL", file=sys.stderr)
            return 2
        return run_context(
            path,
            nums[0],
            nums[1],
            as_json=args.json,
            settings=_settings(args, Path.cwd()),
            cache_dir=None,
        )
    if command == "stats":
        from lsp_llm.stats import run_stats

        return run_stats(as_json=args.json, reset=args.reset)
    if command == "doctor":
        from lsp_llm.cli import overrides_from
        from lsp_llm.doctor import run_doctor

        return run_doctor(
            as_json=args.json,
            overrides=overrides_from(args),
            config_file=args.config,
            skip_model=args.skip_model,
            cwd=Path.cwd(),
        )
    raise SystemExit(f"unknown command {command}")


def run_tool(command: str, argv: list[str]) -> int:
    """``lsp-llm bench ...`` / ``lsp-llm eval ...``: the benchmark tools, with every argument."""
    if command == "bench":
        from benchmarks.__main__ import main as bench_main

        return int(bench_main(argv) or 0)
    from benchmarks.eval import main as eval_main

    return int(eval_main(argv) or 0)
