"""CI runs the benchmark suite at its quick size: it must run end to end and report every
figure. No timing assertions (shared CI machines are noisy); only shape and sanity."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.__main__ import SUITES

REPO = Path(__file__).resolve().parents[2]


def _finite_positive(value: object) -> bool:
    return isinstance(value, (int, float)) and 0 < float(value) < float("inf")


@pytest.mark.timeout(900)
def test_quick_suite_writes_every_figure(tmp_path: Path, cache_home: Path) -> None:
    out = tmp_path / "bench.json"
    env = dict(os.environ)
    env["XDG_CACHE_HOME"] = str(cache_home)
    env.pop("OMP_WAIT_POLICY", None)
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick", "--out", str(out)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=880,
    )
    assert out.is_file(), proc.stderr[-4000:]
    report = json.loads(out.read_text())
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "suite" in proc.stdout and "overhead" in proc.stdout  # the table

    machine = report["machine"]
    for key in ("cpu_count", "torch", "device", "git_revision"):
        assert key in machine
    assert set(report["suites"]) == set(SUITES)
    for name, suite in report["suites"].items():
        assert "error" not in suite, (name, suite.get("traceback"))
        assert isinstance(suite.get("goals"), list), name

    ov = report["suites"]["overhead"]
    assert ov["requests"] > 0
    assert _finite_positive(ov["ratio_vs_generate"]) and _finite_positive(ov["ratio_vs_raw_loop"])
    assert ov["prompt_token_match"].split("/")[0] == ov["prompt_token_match"].split("/")[1]
    assert {"p50", "p95"} <= set(ov["overhead_vs_generate_ms"])

    ty = report["suites"]["typing"]
    assert ty["keystrokes"] >= 50
    assert 0 < ty["mean_prefill_share_on"] <= 1
    assert ty["reuse_off"]["mean_prefill_share"] > ty["mean_prefill_share_on"]
    assert _finite_positive(ty["p50_speedup_on_vs_off"])
    assert ty["burst"]["answered"] == ty["burst"]["requests"]

    fim = report["suites"]["fim"]
    for backend in ("transformers", "llamacpp"):
        for where in ("top", "middle"):
            rep = fim["runs"][backend][where]
            assert rep["on"]["model_requests"] > 0, (backend, where)
            assert 0 <= rep["on"]["mean_prefill_share"] < rep["off"]["mean_prefill_share"]
            assert 0 <= rep["exact_match_on_vs_off"] <= 1
            assert _finite_positive(rep["p50_ratio_off_vs_on"])
            first = fim["first_after_open"][backend][where]
            # The warm-up prefilled the place: the first request computes less than without it.
            off_prefill = first["off"]["first_prefill_tokens"]
            on_prefill = first["on"]["first_prefill_tokens"]
            if on_prefill is not None and off_prefill is not None:
                assert on_prefill < off_prefill, (backend, where, first)
            assert _finite_positive(first["on"]["first_over_warm"])

    ca = report["suites"]["cancel"]
    assert ca["answered_exactly_once"] == ca["cancels"]
    assert ca["step_ms"] > 0 and ca["cancel_to_idle_steps"]["n"] > 0

    ix = report["suites"]["index"]
    assert ix["indexed_files"] > 0 and ix["symbols"] > 0
    assert _finite_positive(ix["reindex_share_of_cold"])
    assert ix["peak_rss_mib"] > 0
    assert ix["save_to_retrievable_ms"]["update_paths"]["n"] > 0

    th = report["suites"]["throughput"]
    assert _finite_positive(th["transformers"]["ratio"])
    assert th["transformers"]["server_rss_mib"] > 0
    assert th["transformers"]["idle_cpu_percent"] >= 0

    gpu = report["suites"]["gpu"]
    assert "skipped" in gpu or _finite_positive(gpu["fast_path_vs_generate"])


def test_gpu_module_imports_without_cuda() -> None:
    import benchmarks.gpu as gpu

    assert gpu.QWEN25_CODER_1_5B["hidden_size"] == 1536
    result = gpu.run(None)
    import torch

    if not torch.cuda.is_available():
        assert "skipped" in result
