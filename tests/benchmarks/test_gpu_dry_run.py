"""The GPU suite is one prepared script for a machine that CI never has; its ``--dry-run``
runs the same code on the CPU with a tiny model of the same architecture, so the script is
known to work before GPU time is spent on it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(600)
def test_gpu_script_dry_run_reports_every_figure(tmp_path: Path, cache_home: Path) -> None:
    out = tmp_path / "gpu.json"
    env = dict(os.environ)
    env["XDG_CACHE_HOME"] = str(cache_home)
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.gpu", "--dry-run", "--out", str(out)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=580,
    )
    assert proc.returncode == 0 and out.is_file(), proc.stderr[-4000:]
    res = json.loads(out.read_text())
    assert res["fast_path"] == "compile", "the compiled decode step was not used"
    for side in ("generate", "backend_off", "backend_compile"):
        assert res[side]["decode_tok_s"] > 0, side
        assert all(run["tokens"] == res["new_tokens"] for run in res[side]["runs"]), side
    assert set(res["ttft_4k_ms"]) >= {"generate", "backend_off", "backend_compile"}
    assert [g["goal"] for g in res["goals"]] == [
        "fast path (fastPath=compile) decode tok/s vs generate",
        "backend (fastPath=off) decode tok/s vs generate",
    ]
