"""Shared pieces of the benchmark suites: run context, models, statistics, process probes.

Every suite measures its figures as ratios against a baseline measured in the same run (the
machines are shared and noisy; absolute numbers are reported too, but only ratios compare).
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent


@dataclasses.dataclass(frozen=True)
class ModelSize:
    """A random-weight model of a real architecture, built with ``build_tiny_model``."""

    name: str
    arch: str
    hidden: int
    layers: int
    heads: int


TINY = ModelSize("tiny-llama-h64-l2", "llama", 64, 2, 4)
"""Quick runs and CI: a decode step costs about a millisecond."""
SMALL = ModelSize("small-qwen2-h384-l6", "qwen2", 384, 6, 6)
"""Full runs: steps of several milliseconds, so model time dominates like a real model."""


@dataclasses.dataclass
class BenchContext:
    """What every suite gets: sizes, where to put things, which model to run."""

    quick: bool
    work_dir: Path
    """Scratch space for this run (workspaces, index caches); removed afterwards."""
    cache_dir: Path
    """Persistent cache of built random-weight models (kept between runs)."""
    model: str | None = None
    """``--model``: run the server suites on this model instead of a random-weight one."""
    backend: str | None = None
    device: str = "cpu"
    """``--device``: where the server suites' model runs (``cuda`` on a GPU machine)."""
    seed: int = 1234
    log: Any = None

    def say(self, message: str) -> None:
        print(f"  [{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)

    @property
    def model_size(self) -> ModelSize:
        return TINY if self.quick else SMALL

    def server_model(self) -> tuple[str, str]:
        """(model path, backend) for the LSP-level suites (overhead, typing, cancel)."""
        if self.model:
            return self.model, self.backend or "transformers"
        return str(tiny_model(self.cache_dir, self.model_size)), "transformers"

    def xdg_env(self) -> dict[str, str]:
        """Environment for server processes: an isolated config dir, the shared model cache."""
        env = dict(os.environ)
        env["XDG_CONFIG_HOME"] = str(self.work_dir / "config")
        env["HF_HUB_OFFLINE"] = "1"
        env["TOKENIZERS_PARALLELISM"] = "false"
        env["TRANSFORMERS_VERBOSITY"] = "error"
        env["PYTHONUNBUFFERED"] = "1"
        return env


def tiny_model(cache_dir: Path, size: ModelSize) -> Path:
    """Build (once) and return a random-weight model directory."""
    from benchmarks.tiny_models import build_tiny_model

    return build_tiny_model(
        cache_dir / "models" / size.name,
        arch=size.arch,
        hidden=size.hidden,
        layers=size.layers,
        heads=size.heads,
    )


def server_args(
    model: str, backend: str, device: str = "cpu", settings: dict[str, Any] | None = None
) -> list[str]:
    """Command-line flags for ``lsp-llm serve``.

    ``settings`` go in as ``--set key=value`` flags: settings that must hold from the model's
    first request on (``prefixCache``) are not reliably applied when they only arrive in
    ``initializationOptions`` while the model is still loading.
    """
    args = ["--model", model, "--device", device] if model else ["--device", device]
    if backend:
        args += ["--backend", backend]
    for key, value in (settings or {}).items():
        text = str(value).lower() if isinstance(value, bool) else str(value)
        args += ["--set", f"{key}={text}"]
    return args


# -- statistics ------------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile (q in 0..100); 0.0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    if len(ordered) == 1:
        return float(ordered[0])
    pos = (len(ordered) - 1) * q / 100
    lo = int(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return float(ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo))


def summary(values: Sequence[float], digits: int = 3) -> dict[str, float]:
    """p50 / p95 / mean / min / max / n of a sample."""
    vals = [float(v) for v in values]
    if not vals:
        return {"n": 0, "p50": 0.0, "p95": 0.0, "mean": 0.0, "min": 0.0, "max": 0.0}
    return {
        "n": len(vals),
        "p50": round(percentile(vals, 50), digits),
        "p95": round(percentile(vals, 95), digits),
        "mean": round(statistics.fmean(vals), digits),
        "min": round(min(vals), digits),
        "max": round(max(vals), digits),
    }


def ratio(numerator: float, denominator: float, digits: int = 3) -> float:
    """numerator / denominator, 0.0 when the denominator is 0."""
    return round(numerator / denominator, digits) if denominator > 0 else 0.0


def goal(
    name: str, value: float | None, target: str, met: bool | None, note: str = ""
) -> dict[str, Any]:
    """One line of a suite's goal table. ``met`` is None when it could not be measured."""
    return {"goal": name, "value": value, "target": target, "met": met, "note": note}


# -- processes --------------------------------------------------------------------------------


def proc_status_kib(pid: int | str, field: str) -> int:
    """A ``/proc/<pid>/status`` field in KiB (VmRSS, VmHWM...); 0 where unavailable."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def proc_cpu_seconds(pid: int | str) -> float:
    """utime + stime of a process (and its reaped children are not counted), in seconds."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = raw.rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)
    return ticks / os.sysconf("SC_CLK_TCK")


def client_server_pid(bench: Any) -> int | None:
    """The pid of the server a ``BenchClient`` started (pygls keeps the subprocess)."""
    proc = getattr(bench.client, "_server", None)
    pid = getattr(proc, "pid", None)
    return int(pid) if pid else None


def git_revision() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=10,
        )
        rev = out.stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
        return rev + ("-dirty" if dirty else "") if rev else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def machine_info() -> dict[str, Any]:
    import torch
    import transformers

    info: dict[str, Any] = {
        "cpu_count": os.cpu_count(),
        "cpu_affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "cpu_model": _cpu_model(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "cuda": torch.cuda.is_available(),
        "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu",
        "git_revision": git_revision(),
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }
    try:
        import xllamacpp

        info["xllamacpp"] = xllamacpp.__version__
    except ImportError:
        info["xllamacpp"] = None
    return info


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def run_python(code: str, *args: str, timeout: float = 600.0) -> dict[str, Any]:
    """Run ``code`` in a fresh interpreter (for peak RSS); it prints one JSON object last."""
    out = subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
    )
    if out.returncode != 0:
        raise RuntimeError(f"subprocess failed ({out.returncode}): {out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


# -- workspace text --------------------------------------------------------------------------


def python_source(min_chars: int, skip: int = 0) -> str:
    """Real Python code from the standard library, whole top-level blocks, ~``min_chars``."""
    import sysconfig

    stdlib = Path(sysconfig.get_paths()["stdlib"])
    parts: list[str] = []
    total = 0
    for name in ("textwrap.py", "shlex.py", "fnmatch.py", "glob.py", "bisect.py", "heapq.py"):
        try:
            text = (stdlib / name).read_text(encoding="utf-8")
        except OSError:
            continue
        blocks = text.split("\n\n\n")
        for block in blocks[1 + skip :]:
            if not block.strip() or block.lstrip().startswith(("if __name__", '"""')):
                continue
            parts.append(block.strip("\n") + "\n")
            total += len(block)
            if total >= min_chars:
                return "\n\n".join(parts)
    return "\n\n".join(parts)


def timed_generate(
    model: Any, ids: list[int], n: int, device: str, pad_token_id: int | None, **kwargs: Any
) -> tuple[float, float, list[float]]:
    """Plain ``model.generate``, greedy, exactly ``n`` new tokens (the baseline of several
    suites). Returns (start, end, the time of each new token), from a streamer; on CUDA the
    device is synchronized at both ends."""
    import torch
    from transformers.generation.streamers import BaseStreamer

    stamps: list[float] = []

    class Stamp(BaseStreamer):
        def put(self, value: Any) -> None:
            stamps.append(time.perf_counter())

        def end(self) -> None:
            pass

    def sync() -> None:
        if device == "cuda":
            torch.cuda.synchronize()

    inp = torch.tensor([ids], device=device)
    with torch.inference_mode():
        sync()
        t0 = time.perf_counter()
        model.generate(
            input_ids=inp,
            attention_mask=torch.ones_like(inp),
            max_new_tokens=n,
            min_new_tokens=n,
            do_sample=False,
            streamer=Stamp(),
            pad_token_id=pad_token_id,
            **kwargs,
        )
        sync()
        t1 = time.perf_counter()
    # put() is called once with the prompt, then once per new token.
    return t0, t1, stamps[1:] if len(stamps) > n else stamps
