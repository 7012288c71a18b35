"""``lsp-llm serve`` (stdio or a TCP daemon) and ``lsp-llm connect`` (stdio to a daemon)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from lsp_llm.cli.common import common_args, load_cli_settings, model_args, overrides_from

log = logging.getLogger("lsp_llm")


def add_parsers(sub: Any) -> None:
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
    model_args(p)
    common_args(p)
    p.set_defaults(handler=cmd_serve)

    p = sub.add_parser("connect", help="bridge stdio to a running `lsp-llm serve --tcp` daemon")
    p.add_argument("address", nargs="?", default="127.0.0.1:2087", help="HOST:PORT")
    common_args(p)
    p.set_defaults(handler=cmd_connect)


def make_shared(args: argparse.Namespace, *, index: bool) -> Any:
    """The process-wide server state: settings, the engine, the index registry, the stats."""
    from lsp_llm.engine.worker import Engine
    from lsp_llm.server.indexing import Workspaces
    from lsp_llm.server.session import Shared
    from lsp_llm.stats import AcceptanceStats

    # Warnings go to the log (the server's stderr, or --log-file): an editor shows them again
    # as window/showMessage when the session starts.
    settings = load_cli_settings(args, Path.cwd(), report=lambda w: log.warning("%s", w))
    shared = Shared(
        engine=Engine(settings),
        base_settings=settings,
        config_file=getattr(args, "config", None),
        cli_overrides=overrides_from(args),
    )
    if index:
        shared.workspaces = Workspaces(settings)
    shared.stats = AcceptanceStats.load_default()
    return shared


def cmd_serve(args: argparse.Namespace) -> int:
    from lsp_llm.server.transport import serve_stdio, serve_tcp

    shared = make_shared(args, index=not args.no_index)
    if args.tcp:
        return serve_tcp(shared, args.host, args.port)
    return serve_stdio(shared)


def cmd_connect(args: argparse.Namespace) -> int:
    from lsp_llm.server.transport import connect

    return connect(args.address)
