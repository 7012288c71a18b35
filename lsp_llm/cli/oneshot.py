"""``lsp-llm complete | explain | docstring``: one request against a freshly loaded model,
the way the server would answer it for the file opened in an editor."""

from __future__ import annotations

import argparse
import asyncio
import difflib
import json
import sys
from pathlib import Path
from typing import Any

from lsp_llm.cli.common import (
    common_args,
    document_snapshot,
    line_count,
    line_end_offset,
    load_cli_settings,
    model_args,
    offset_of,
    read_source,
    split_location,
    start_engine,
)


def add_parsers(sub: Any) -> None:
    p = sub.add_parser(
        "complete", help="print the completion the server would give at FILE:LINE:COL"
    )
    p.add_argument("location", help="FILE:LINE:COL (1-based, as editors show them)")
    p.add_argument("--invoked", action="store_true", help="explicit request: several suggestions")
    p.add_argument("--show-prompt", action="store_true", help="print the prompt to stderr")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--no-index", action="store_true", help="complete without workspace context")
    model_args(p)
    common_args(p)
    p.set_defaults(handler=cmd_complete)

    p = sub.add_parser("explain", help="explain FILE[:START[-END]] (lines, 1-based); streams")
    p.add_argument("location", help="FILE, FILE:LINE (the definition there) or FILE:START-END")
    model_args(p)
    common_args(p)
    p.set_defaults(handler=cmd_explain)

    p = sub.add_parser("docstring", help="write a docstring for the definition at FILE:LINE")
    p.add_argument("location", help="FILE:LINE (1-based)")
    p.add_argument("--write", action="store_true", help="apply it to the file (default: diff)")
    model_args(p)
    common_args(p)
    p.set_defaults(handler=cmd_docstring)


def cmd_complete(args: argparse.Namespace) -> int:
    from lsp_llm.features.completion import CompletionFailed, CompletionService

    path, nums = split_location(args.location, 2)
    if len(nums) != 2:
        print("lsp-llm complete: expected FILE:LINE:COL", file=sys.stderr)
        return 2
    text = read_source(path, "complete")
    if text is None:
        return 2
    line, col = nums
    lines = line_count(text)
    if line < 1 or line > lines:
        print(f"lsp-llm complete: line {line} is outside {path} (1..{lines})", file=sys.stderr)
        return 2
    offset = offset_of(text, line, col)
    root = Path.cwd()
    settings = load_cli_settings(args, root)
    workspaces: Any = None
    if not args.no_index:
        from lsp_llm.server.indexing import Workspaces

        workspaces = Workspaces(settings)
    engine = start_engine(settings)
    if engine is None:
        return 1
    snap = document_snapshot(path, text, root)
    retriever = None
    if workspaces is not None:
        retriever = workspaces.cli_retriever(root, path.resolve())
    service = CompletionService(engine)
    failed = ""
    try:
        outcome = asyncio.run(
            service.complete(
                snap,
                offset,
                settings=engine.settings,
                trigger="invoked" if args.invoked else "automatic",
                retriever=retriever,
            )
        )
    except CompletionFailed as exc:
        outcome, failed = exc.outcome, str(exc)
    engine.shutdown()
    if args.show_prompt:
        print(f"--- prompt ---\n{outcome.prompt}\n--- end prompt ---", file=sys.stderr)
    if failed:
        print(f"lsp-llm complete: {failed}", file=sys.stderr)
        return 1
    if args.json:
        record = {
            "suggestions": [s.text for s in outcome.suggestions],
            "source": outcome.source,
            "spans": outcome.spans,
            "model": engine.status.model,
            "backend": engine.status.backend,
        }
        print(json.dumps(record))
    else:
        for i, s in enumerate(outcome.suggestions):
            if i:
                print("-" * 40)
            print(s.text)
    return 0


def explain_range(location: str) -> tuple[Path, tuple[int, int] | None, int | None]:
    """``FILE``, ``FILE:LINE`` or ``FILE:START-END`` -> (path, (start, end) lines, line)."""
    head, _, tail = location.rpartition(":")
    if head and "-" in tail and all(p.isdigit() for p in tail.split("-", 1)):
        a, b = (int(x) for x in tail.split("-", 1))
        return Path(head), (a, b), None
    path, nums = split_location(location, 1)
    return path, None, nums[0] if nums else None


def cmd_explain(args: argparse.Namespace) -> int:
    from lsp_llm.errors import InvalidParams, RequestFailed
    from lsp_llm.features import assist

    path, span, line = explain_range(args.location)
    text = read_source(path, "explain")
    if text is None:
        return 2
    last = line_count(text)

    def clamp(n: int) -> int:
        return max(1, min(n, last))

    if span is not None:
        start, end = offset_of(text, clamp(span[0])), line_end_offset(text, clamp(span[1]))
    elif line is not None:
        start = end = offset_of(text, clamp(line))
    else:
        start, end = 0, len(text)
    snap = document_snapshot(path, text)
    engine = start_engine(load_cli_settings(args, Path.cwd()))
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
    from lsp_llm.docstrings import apply_edit
    from lsp_llm.errors import InvalidParams, RequestFailed
    from lsp_llm.features import assist

    path, nums = split_location(args.location, 1)
    if len(nums) != 1:
        print("lsp-llm docstring: expected FILE:LINE", file=sys.stderr)
        return 2
    text = read_source(path, "docstring")
    if text is None:
        return 2
    snap = document_snapshot(path, text)
    engine = start_engine(load_cli_settings(args, Path.cwd()))
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
