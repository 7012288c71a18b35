"""Command line: ``lsp-llm serve | connect | complete | explain | docstring | index ...``."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

from lsp_llm import __version__

# OpenMP threads that spin while waiting steal the CPU from the editor and from each other on
# small or busy machines (measured: decode steps 4-10x slower on 2 loaded cores). Must be set
# before torch is imported.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

log = logging.getLogger("lsp_llm")

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


def _model_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("model")
    g.add_argument(
        "--model", help="HF model dir, hub id, or .gguf file (default: embedded Gemma 3 270M)"
    )
    g.add_argument(
        "--backend", choices=["auto", "transformers", "llamacpp", "openai"], help="default: auto"
    )
    g.add_argument("--device", choices=["auto", "cpu", "cuda", "mps"], help="default: auto")
    g.add_argument("--dtype", choices=["auto", "float32", "bfloat16", "float16"])
    g.add_argument("--endpoint", help="base URL of an OpenAI-compatible server (openai backend)")
    g.add_argument("--max-new-tokens", type=int, dest="max_new_tokens")
    g.add_argument("--config", type=Path, help="settings file (default: the user config file)")
    g.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="any setting, e.g. --set contextWindow=4096 (repeatable)",
    )


def _common_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("-v", "--verbose", action="count", default=0, help="-v info, -vv debug")
    p.add_argument("--log-file", help="write logs to this file instead of stderr")


def overrides_from(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in ("model", "backend", "device", "dtype", "endpoint", "max_new_tokens"):
        value = getattr(args, key, None)
        if value is not None:
            out[key] = value
    for item in getattr(args, "set", []) or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"--set expects KEY=VALUE, got {item!r}")
        out[key.strip()] = value.strip()
    return out


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lsp-llm",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"lsp-llm {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("serve", help="run the language server (stdio by default)")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument(
        "--stdio", action="store_true", help="serve one client on stdin/stdout (default)"
    )
    mode.add_argument(
        "--tcp", action="store_true", help="run a daemon: many clients share one model"
    )
    p.add_argument(
        "--host",
        default="127.0.0.1",
        help="TCP address (default 127.0.0.1: loopback only)",
    )
    p.add_argument("--port", type=int, default=2087, help="TCP port (default 2087; 0 picks one)")
    p.add_argument("--no-index", action="store_true", help="do not index or watch the workspace")
    _model_args(p)
    _common_args(p)

    p = sub.add_parser("connect", help="bridge stdio to a running `lsp-llm serve --tcp` daemon")
    p.add_argument("address", nargs="?", default="127.0.0.1:2087", help="HOST:PORT")
    _common_args(p)

    p = sub.add_parser(
        "complete", help="print the completion the server would give at FILE:LINE:COL"
    )
    p.add_argument("location", help="FILE:LINE:COL (1-based, as editors show them)")
    p.add_argument("--invoked", action="store_true", help="explicit request: several suggestions")
    p.add_argument("--show-prompt", action="store_true", help="print the prompt to stderr")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--no-index", action="store_true", help="complete without workspace context")
    _model_args(p)
    _common_args(p)

    from lsp_llm import commands

    commands.add_subcommands(sub, _model_args, _common_args)
    return parser


def split_location(location: str, parts: int) -> tuple[Path, list[int]]:
    """``FILE:LINE[:COL]`` -> (path, numbers). Windows drive letters survive."""
    pieces = location.rsplit(":", parts)
    numbers: list[int] = []
    while len(pieces) > 1 and pieces[-1].isdigit() and len(numbers) < parts:
        numbers.insert(0, int(pieces.pop()))
    return Path(":".join(pieces)), numbers


def make_shared(args: argparse.Namespace, *, index: bool) -> Any:
    from lsp_llm.config import load_settings
    from lsp_llm.engine.worker import Engine
    from lsp_llm.server.app import Shared

    overrides = overrides_from(args)
    settings, warnings = load_settings(
        config_file=getattr(args, "config", None),
        workspace_roots=[Path.cwd()],
        overrides=overrides,
    )
    for warning in warnings:
        log.warning("%s", warning)
    shared = Shared(
        engine=Engine(settings),
        base_settings=settings,
        config_file=getattr(args, "config", None),
        cli_overrides=overrides,
    )
    if index:
        try:
            from lsp_llm.server.indexing import Workspaces
        except ImportError:  # pragma: no cover - indexing not built
            pass
        else:
            shared.workspaces = Workspaces(settings)
    from lsp_llm.stats import AcceptanceStats

    shared.stats = AcceptanceStats.load_default()
    return shared


def cmd_serve(args: argparse.Namespace) -> int:
    from lsp_llm.server.transport import serve_stdio, serve_tcp

    shared = make_shared(args, index=not args.no_index)
    if args.tcp:
        return serve_tcp(shared, args.host, args.port)
    return serve_stdio(shared)


def wait_ready(engine: Any, timeout: float = 900.0) -> bool:
    """Block until the engine is ready; report load progress on stderr."""
    engine.start()
    last = ""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = engine.status
        if status.state == "ready":
            return True
        if status.state == "error":
            print(f"lsp-llm: model failed to load: {status.message}", file=sys.stderr)
            return False
        if status.message != last and sys.stderr.isatty():
            print(f"lsp-llm: {status.message}", file=sys.stderr)
        last = status.message
        time.sleep(0.05)
    print("lsp-llm: timed out waiting for the model", file=sys.stderr)
    return False


def cmd_complete(args: argparse.Namespace) -> int:
    from lsp_llm.features.completion import CompletionService, DocumentSnapshot
    from lsp_llm.prompts.completion import language_from_path

    path, nums = split_location(args.location, 2)
    if len(nums) != 2:
        print("lsp-llm complete: expected FILE:LINE:COL", file=sys.stderr)
        return 2
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        print(f"lsp-llm complete: cannot read {path}: {exc}", file=sys.stderr)
        return 2
    line, col = nums
    lines = text.splitlines(keepends=True)
    if line < 1 or line > len(lines) + 1:
        print(f"lsp-llm complete: line {line} is outside {path} (1..{len(lines)})", file=sys.stderr)
        return 2
    offset = sum(len(x) for x in lines[: line - 1])
    current = lines[line - 1].rstrip("\r\n") if line <= len(lines) else ""
    offset += min(max(col - 1, 0), len(current))
    shared = make_shared(args, index=not args.no_index)
    engine = shared.engine
    if not wait_ready(engine):
        return 1
    root = Path.cwd()
    try:
        label = path.resolve().relative_to(root).as_posix()
    except ValueError:
        label = path.name
    snap = DocumentSnapshot(
        uri=path.resolve().as_uri(),
        path=label,
        language=language_from_path(str(path)),
        version=0,
        text=text,
    )
    retriever = None
    if shared.workspaces is not None:
        retriever = shared.workspaces.cli_retriever(root, path.resolve())
    service = CompletionService(engine)
    outcome = asyncio.run(
        service.complete(
            snap,
            offset,
            settings=engine.settings,
            trigger="invoked" if args.invoked else "automatic",
            retriever=retriever,
        )
    )
    engine.shutdown()
    if args.show_prompt:
        print(f"--- prompt ---\n{outcome.prompt}\n--- end prompt ---", file=sys.stderr)
    if outcome.error:
        print(f"lsp-llm complete: {outcome.error}", file=sys.stderr)
        return 1
    if args.json:
        print(
            json.dumps(
                {
                    "suggestions": [s.text for s in outcome.suggestions],
                    "source": outcome.source,
                    "spans": outcome.spans,
                    "model": engine.status.model,
                    "backend": engine.status.backend,
                }
            )
        )
    else:
        for i, s in enumerate(outcome.suggestions):
            if i:
                print("-" * 40)
            print(s.text)
    return 0


PASSTHROUGH = ("bench", "eval")
"""Commands whose arguments, options included, all belong to the tool they run."""


def main(argv: list[str] | None = None) -> int:
    raw = list(sys.argv[1:] if argv is None else argv)
    if raw and raw[0] in PASSTHROUGH:
        # argparse's REMAINDER stops at the first option it knows nothing about, so
        # `lsp-llm eval --suite x` would fail in our parser: hand everything over untouched.
        from lsp_llm import commands

        return commands.run_tool(raw[0], raw[1:])
    parser = build_parser()
    args = parser.parse_args(raw)
    if not args.command:
        parser.print_help()
        return 2
    setup_logging(getattr(args, "verbose", 0), getattr(args, "log_file", None))
    handlers = {"serve": cmd_serve, "complete": cmd_complete}
    if args.command == "connect":
        from lsp_llm.server.transport import connect

        return connect(args.address)
    if args.command in handlers:
        return handlers[args.command](args)
    from lsp_llm import commands

    return commands.dispatch(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
