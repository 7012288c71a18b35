"""The parser and the entry point: ``lsp-llm COMMAND ...``."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from lsp_llm import __version__
from lsp_llm.cli import oneshot, serve, tools

DESCRIPTION = """\
lsp-llm: a language server that keeps a code model warm and answers inline completions,
explanations and docstrings over LSP. With no model configured it runs the embedded
Gemma 3 270M. Logs go to stderr (or --log-file), never to stdout.
"""


def setup_logging(verbosity: int, log_file: str | None) -> None:
    level = logging.WARNING if verbosity <= 0 else logging.INFO if verbosity == 1 else logging.DEBUG
    handler: logging.Handler
    if log_file:
        Path(log_file).expanduser().parent.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(Path(log_file).expanduser(), encoding="utf-8")
    else:
        handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # pygls logs whole message bodies (workspace text) at INFO: only show them at -vvv.
    logging.getLogger("pygls").setLevel(logging.DEBUG if verbosity >= 3 else logging.WARNING)
    for noisy in ("httpx", "httpcore", "urllib3", "filelock", "watchfiles"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    logging.captureWarnings(True)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lsp-llm",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"lsp-llm {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    serve.add_parsers(sub)
    oneshot.add_parsers(sub)
    tools.add_parsers(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    raw = list(sys.argv[1:] if argv is None else argv)
    if raw and raw[0] in tools.PASSTHROUGH:
        # argparse's REMAINDER stops at the first option it knows nothing about, so
        # `lsp-llm eval --suite x` would fail in our parser: hand everything over untouched.
        return tools.run_tool(raw[0], raw[1:])
    parser = build_parser()
    args = parser.parse_args(raw)
    if not args.command:
        parser.print_help()
        return 2
    setup_logging(getattr(args, "verbose", 0), getattr(args, "log_file", None))
    return int(args.handler(args))
