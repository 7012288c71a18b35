"""What every command shares: model and logging flags, settings from the command line,
``FILE:LINE[:COL]`` locations, the document snapshot and the wait for the engine."""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lsp_llm.config import Settings
    from lsp_llm.engine.worker import Engine
    from lsp_llm.features.completion import DocumentSnapshot

ENGINE_TIMEOUT_S = 900.0
"""How long a one-shot command waits for the model to load."""


def model_args(p: argparse.ArgumentParser) -> None:
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


def common_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("-v", "--verbose", action="count", default=0, help="-v info, -vv debug")
    p.add_argument("--log-file", help="write logs to this file instead of stderr")


def overrides_from(args: argparse.Namespace) -> dict[str, Any]:
    """The settings layer of the command line: the model flags and every ``--set``."""
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


def load_cli_settings(
    args: argparse.Namespace, root: Path, report: Callable[[str], None] | None = None
) -> Settings:
    """Settings for a command run in ``root``; each warning goes to ``report`` (default:
    ``lsp-llm: WARNING`` on stderr)."""
    from lsp_llm.config import load_settings

    settings, warnings = load_settings(
        config_file=getattr(args, "config", None),
        workspace_roots=[root],
        overrides=overrides_from(args),
    )
    for warning in warnings:
        if report is not None:
            report(warning)
        else:
            print(f"lsp-llm: {warning}", file=sys.stderr)
    return settings


# -- locations ------------------------------------------------------------------------------------


def split_location(location: str, parts: int) -> tuple[Path, list[int]]:
    """``FILE:LINE[:COL]`` -> (path, numbers). Windows drive letters survive."""
    pieces = location.rsplit(":", parts)
    numbers: list[int] = []
    while len(pieces) > 1 and pieces[-1].isdigit() and len(numbers) < parts:
        numbers.insert(0, int(pieces.pop()))
    return Path(":".join(pieces)), numbers


_LINE_BREAK = re.compile(r"\r\n?|\n")


def line_count(text: str) -> int:
    """Lines as LSP counts them (breaks are ``\\n``, ``\\r\\n``, ``\\r``; the text after the
    last break is a line, even when empty)."""
    return len(_LINE_BREAK.findall(text)) + 1


def offset_of(text: str, line: int, column: int = 1) -> int:
    """Offset of a 1-based line and column as a user types them (columns count characters).
    A column past the end of its line is its end; a line past the last one is the end of the
    text. The one converter is the server's: :func:`lsp_llm.server.documents.position_offset`."""
    from lsp_llm.server.documents import position_offset

    return position_offset(text, max(line - 1, 0), max(column - 1, 0), "utf-32")


def line_end_offset(text: str, line: int) -> int:
    """Offset of the end of 1-based ``line``'s content (before its line break)."""
    return offset_of(text, line, sys.maxsize)


def read_source(path: Path, command: str) -> str | None:
    """The file's text, or None after saying on stderr why it cannot be read."""
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        print(f"lsp-llm {command}: cannot read {path}: {exc}", file=sys.stderr)
        return None


def document_snapshot(path: Path, text: str, root: Path | None = None) -> DocumentSnapshot:
    """The file as the server would see it opened in an editor whose workspace is ``root``
    (default: the current directory): labelled by its path relative to it, else by its name."""
    from lsp_llm.features.completion import DocumentSnapshot
    from lsp_llm.prompts.completion import language_from_path

    resolved = path.resolve()
    try:
        label = resolved.relative_to((root or Path.cwd()).resolve()).as_posix()
    except ValueError:
        label = path.name
    return DocumentSnapshot(
        uri=resolved.as_uri(),
        path=label,
        language=language_from_path(str(path)),
        version=0,
        text=text,
    )


# -- the engine -----------------------------------------------------------------------------------


def _progress_on_terminal(message: str) -> None:
    if message and sys.stderr.isatty():
        print(f"lsp-llm: {message}", file=sys.stderr)


def wait_ready(engine: Engine | Any, timeout: float = ENGINE_TIMEOUT_S) -> bool:
    """Start the engine and wait for it, load progress on stderr (a terminal only)."""
    engine.start()
    from lsp_llm.engine.worker import wait_for_engine

    ready, message = wait_for_engine(engine, timeout, _progress_on_terminal)
    if not ready:
        print(f"lsp-llm: model failed to load: {message}", file=sys.stderr)
    return ready


def start_engine(settings: Settings) -> Engine | None:
    """A ready engine for a one-shot command, or None (the reason is on stderr; the process
    is about to exit, and the model thread is a daemon)."""
    from lsp_llm.engine.worker import Engine

    engine = Engine(settings)
    return engine if wait_ready(engine) else None
