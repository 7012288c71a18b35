"""Subcommands beyond serve/connect/complete: each parser here, its body in its own module."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

ArgAdder = Callable[[argparse.ArgumentParser], None]


def add_subcommands(sub: Any, model_args: ArgAdder, common_args: ArgAdder) -> None:
    p = sub.add_parser("stats", help="show local acceptance statistics (never sent anywhere)")
    p.add_argument("--json", action="store_true")
    p.add_argument("--reset", action="store_true", help="forget all counts")
    common_args(p)


def dispatch(args: argparse.Namespace) -> int:
    if args.command == "stats":
        from lsp_llm.stats import run_stats

        return run_stats(as_json=args.json, reset=args.reset)
    raise SystemExit(f"unknown command {args.command}")
