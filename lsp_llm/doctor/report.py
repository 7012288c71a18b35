"""What a check says, and how it is printed: plain text, colours on a terminal, or JSON."""

from __future__ import annotations

import dataclasses
import sys
from typing import Any, Literal, TextIO

Status = Literal["ok", "warn", "fail", "info", "skipped"]


@dataclasses.dataclass(kw_only=True)
class Check:
    """The result of one check."""

    name: str
    ok: bool
    detail: str
    fix: str = ""
    data: dict[str, Any] = dataclasses.field(default_factory=dict)
    required: bool = True
    """A failure of a required check makes ``lsp-llm doctor`` exit with 1."""
    skipped: bool = False
    informational: bool = False

    @property
    def status(self) -> Status:
        if self.skipped:
            return "skipped"
        if self.informational:
            return "info"
        if self.ok:
            return "ok"
        return "fail" if self.required else "warn"

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "ok": self.ok,
            "status": self.status,
            "required": self.required,
            "detail": self.detail,
            "fix": self.fix,
            "data": self.data,
        }


LABELS: dict[Status, tuple[str, str]] = {
    "ok": ("OK", "bold green"),
    "warn": ("WARN", "bold yellow"),
    "fail": ("FAIL", "bold red"),
    "info": ("INFO", "bold cyan"),
    "skipped": ("SKIP", "dim"),
}


class Printer:
    """Plain text when stdout is not a terminal; colours (rich) when it is."""

    def __init__(self, out: TextIO, *, as_json: bool) -> None:
        self.out = out
        self.as_json = as_json
        self.console: Any = None
        if not as_json and out.isatty():
            try:
                from rich.console import Console

                self.console = Console(file=out, highlight=False)
            except Exception:  # pragma: no cover - rich is a dependency
                self.console = None

    def header(self, text: str) -> None:
        if self.as_json:
            return
        if self.console is not None:
            self.console.print(text, style="bold", markup=False)
        else:
            print(text, file=self.out, flush=True)

    def check(self, check: Check) -> None:
        if self.as_json:
            return
        label, style = LABELS[check.status]
        if self.console is not None:
            from rich.table import Table
            from rich.text import Text

            body = Text()
            body.append(check.name, style="bold")
            body.append(f": {check.detail}")
            if check.fix:
                body.append(f"\n{self._fix_word(check)}: ", style="bold")
                body.append(check.fix)
            grid = Table.grid(padding=(0, 1))
            grid.add_column(width=4, no_wrap=True)
            grid.add_column(overflow="fold")
            grid.add_row(Text(label, style=style), body)
            self.console.print(grid)
            return
        print(f"{label:<5} {check.name}: {check.detail}", file=self.out)
        if check.fix:
            print(f"      {self._fix_word(check)}: {check.fix}", file=self.out)
        self.out.flush()

    @staticmethod
    def _fix_word(check: Check) -> str:
        return "fix" if check.status in ("fail", "warn") else "hint"

    def progress(self, message: str) -> None:
        """Model loading progress (terminal only, on stderr)."""
        if not self.as_json and sys.stderr.isatty() and message:
            print(f"      ... {message}", file=sys.stderr, flush=True)
