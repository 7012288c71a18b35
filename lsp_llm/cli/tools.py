"""``lsp-llm index | context | stats | doctor | bench | eval``: argument parsing and wiring;
the bodies live with what they are about (:mod:`lsp_llm.cli.workspace`,
:mod:`lsp_llm.stats`, :mod:`lsp_llm.doctor`, the repository's ``benchmarks``)."""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path
from typing import Any

from lsp_llm.cli.common import (
    common_args,
    load_cli_settings,
    model_args,
    overrides_from,
    split_location,
)

PASSTHROUGH = ("bench", "eval")
"""Commands whose arguments, options included, all belong to the tool they run."""
TOOLS = {
    "bench": ("benchmarks.__main__", "python -m benchmarks"),
    "eval": ("benchmarks.eval", "python -m benchmarks.eval"),
}
"""The module each runs, and how to run it from a checkout."""


def add_parsers(sub: Any) -> None:
    p = sub.add_parser("index", help="build or update the workspace index of PATH")
    p.add_argument("path", nargs="?", default=".", type=Path)
    p.add_argument("--watch", action="store_true", help="keep it fresh until interrupted")
    p.add_argument("--json", action="store_true", help="print stats as JSON")
    p.add_argument("--config", type=Path)
    common_args(p)
    p.set_defaults(handler=cmd_index)

    p = sub.add_parser(
        "context", help="show the cross-file snippets a prompt at FILE:LINE:COL gets"
    )
    p.add_argument("location", help="FILE:LINE:COL (1-based)")
    p.add_argument("--json", action="store_true")
    p.add_argument("--config", type=Path)
    common_args(p)
    p.set_defaults(handler=cmd_context)

    p = sub.add_parser("stats", help="show local acceptance statistics (never sent anywhere)")
    p.add_argument("--json", action="store_true")
    p.add_argument("--reset", action="store_true", help="forget all counts")
    common_args(p)
    p.set_defaults(handler=cmd_stats)

    p = sub.add_parser("doctor", help="check the installation, device, model and index")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--skip-model", action="store_true", help="do not load the model")
    model_args(p)
    common_args(p)
    p.set_defaults(handler=cmd_doctor)

    # lsp_llm.cli.main hands `lsp-llm bench|eval ...` to run_tool untouched; these parsers
    # are for --help (and `lsp-llm -v bench`, which reaches them without the tool's options).
    for command, what in (("bench", "the benchmark suite"), ("eval", "the quality evaluation")):
        p = sub.add_parser(command, help=f"run {what} ({TOOLS[command][1]})")
        p.set_defaults(handler=lambda _args, command=command: run_tool(command, []))


def cmd_index(args: argparse.Namespace) -> int:
    from lsp_llm.cli.workspace import run_index

    root = args.path.resolve()
    return run_index(
        root,
        watch=args.watch,
        as_json=args.json,
        settings=load_cli_settings(args, root),
        cache_dir=None,
    )


def cmd_context(args: argparse.Namespace) -> int:
    from lsp_llm.cli.workspace import run_context

    path, nums = split_location(args.location, 2)
    if len(nums) != 2:
        print("lsp-llm context: expected FILE:LINE:COL", file=sys.stderr)
        return 2
    return run_context(
        path,
        nums[0],
        nums[1],
        as_json=args.json,
        settings=load_cli_settings(args, Path.cwd()),
        cache_dir=None,
    )


def cmd_stats(args: argparse.Namespace) -> int:
    from lsp_llm.stats import run_stats

    return run_stats(as_json=args.json, reset=args.reset)


def cmd_doctor(args: argparse.Namespace) -> int:
    from lsp_llm.doctor import run_doctor

    return run_doctor(
        as_json=args.json,
        overrides=overrides_from(args),
        config_file=args.config,
        skip_model=args.skip_model,
        cwd=Path.cwd(),
    )


# -- bench / eval: the repository's benchmarks, not part of the installed package -----------------


def checkout_root() -> Path | None:
    """The source checkout this lsp_llm runs from (an editable install), if it has the
    benchmarks next to the package."""
    import lsp_llm

    root = Path(lsp_llm.__file__).resolve().parent.parent
    return root if (root / "benchmarks" / "__init__.py").is_file() else None


def _import_tool(module: str) -> Any:
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name not in ("benchmarks", module):
            raise
    root = checkout_root()
    if root is None:
        return None
    sys.path.insert(0, str(root))
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name not in ("benchmarks", module):
            raise
        return None


def run_tool(command: str, argv: list[str]) -> int:
    """``lsp-llm bench ...`` / ``lsp-llm eval ...``: the benchmark tools, with every argument.
    They live in the repository (``benchmarks/``), not in the installed package."""
    module, spelled = TOOLS[command]
    tool = _import_tool(module)
    if tool is None:
        run = " ".join([spelled, *argv])
        print(
            f"lsp-llm {command}: the benchmarks are not part of the installed package; run them "
            f"from a source checkout of lsp-llm, in its root directory: {run}",
            file=sys.stderr,
        )
        return 2
    return int(tool.main(argv) or 0)
