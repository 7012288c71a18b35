"""``lsp-llm doctor``: every check in order, printed as it finishes, and the exit code."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lsp_llm.config import load_settings
from lsp_llm.config import user_config_path as default_user_config_path
from lsp_llm.doctor.grammars import check_tree_sitter
from lsp_llm.doctor.model import ModelInfo, check_backend, check_model, check_model_runs, load_fix
from lsp_llm.doctor.report import Check, Printer
from lsp_llm.doctor.system import (
    check_cache,
    check_device,
    check_executable,
    check_packages,
    check_python,
)
from lsp_llm.doctor.workspace import check_config, check_editors, check_index


def run_doctor(
    *,
    as_json: bool,
    overrides: dict[str, Any],
    config_file: Path | None,
    skip_model: bool,
    cwd: Path,
) -> int:
    """Run every check, print them (text or one JSON object). 0 when all required checks pass."""
    from lsp_llm import __version__

    out = sys.stdout
    printer = Printer(out, as_json=as_json)
    printer.header(f"lsp-llm {__version__} doctor ({cwd})")
    checks: list[Check] = []

    def add(check: Check) -> None:
        checks.append(check)
        printer.check(check)

    def guarded(name: str, fn: Callable[[], Check], required: bool = True) -> None:
        try:
            add(fn())
        except Exception as exc:  # a broken check is a finding, never a crash
            add(
                Check(
                    name=name,
                    ok=False,
                    required=required,
                    detail=f"the check itself failed: {exc.__class__.__name__}: {exc}",
                    fix="Report this with the output of `lsp-llm doctor --json`.",
                )
            )

    settings, warnings = load_settings(
        config_file=config_file, workspace_roots=[cwd], overrides=overrides
    )
    config_path = config_file or default_user_config_path()
    guarded("python", check_python)
    guarded("packages", check_packages)
    guarded("tree-sitter", check_tree_sitter, required=False)
    guarded("device", lambda: check_device(settings))
    guarded("config", lambda: check_config(config_file, cwd, settings, warnings), required=False)
    guarded("cache", check_cache)
    info = ModelInfo()
    guarded("model", lambda: check_model(settings, config_path, info))
    guarded("backend", lambda: check_backend(settings, info))
    model_ok = info.spec is not None and all(
        c.ok or not c.required for c in checks if c.name in ("model", "backend", "packages")
    )
    if skip_model:
        add(
            Check(
                name="model load",
                ok=False,
                skipped=True,
                required=False,
                detail="skipped (--skip-model)",
            )
        )
    elif not model_ok:
        add(
            Check(
                name="model load",
                ok=False,
                skipped=True,
                required=False,
                detail="not tried: fix the model, backend or package problems above first",
            )
        )
    else:
        try:
            for check in check_model_runs(settings, config_path, printer.progress):
                add(check)
        except Exception as exc:  # a broken check is a finding, never a crash
            add(
                Check(
                    name="model load",
                    ok=False,
                    detail=f"the check itself failed: {exc.__class__.__name__}: {exc}",
                    fix=load_fix(str(exc), settings, config_path),
                )
            )
    guarded("index", lambda: check_index(cwd), required=False)
    guarded("command", check_executable, required=False)
    guarded("editors", lambda: check_editors(cwd), required=False)

    failed = [c for c in checks if c.status == "fail"]
    warned = [c for c in checks if c.status == "warn"]
    ok = not failed
    if as_json:
        report = {
            "ok": ok,
            "version": __version__,
            "cwd": str(cwd),
            "checks": [c.to_json() for c in checks],
        }
        print(json.dumps(report, indent=2, default=str), file=out, flush=True)
    else:
        if ok and not warned:
            summary = "Everything needed works."
        elif ok:
            summary = f"Everything needed works; {len(warned)} warning(s) above (WARN)."
        else:
            names = ", ".join(c.name for c in failed)
            summary = f"{len(failed)} problem(s) need fixing: {names} (see the fix lines above)."
        printer.header("")
        printer.header(summary)
    return 0 if ok else 1
