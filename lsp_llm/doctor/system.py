"""The machine and the installation: Python, packages, device, cache directory, the command."""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import platform
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from lsp_llm.config import Settings, cache_dir, cpu_threads
from lsp_llm.doctor.report import Check


def dist_version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def gib(n_bytes: float) -> str:
    return f"{n_bytes / 2**30:.1f} GiB"


def human_size(n_bytes: float) -> str:
    if n_bytes >= 2**30:
        return gib(n_bytes)
    if n_bytes >= 2**20:
        return f"{n_bytes / 2**20:.0f} MiB"
    return f"{n_bytes / 2**10:.0f} KiB"


def read_meminfo(path: Path = Path("/proc/meminfo")) -> dict[str, int]:
    """MemTotal / MemAvailable (bytes) from /proc/meminfo; {} where there is none."""
    out: dict[str, int] = {}
    try:
        text = path.read_text(encoding="ascii", errors="replace")
    except OSError:
        return out
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        if key in ("MemTotal", "MemAvailable"):
            parts = rest.split()
            if parts and parts[0].isdigit():
                factor = 1024 if len(parts) > 1 and parts[1].lower() == "kb" else 1
                out[key] = int(parts[0]) * factor
    return out


def _total_ram() -> int | None:
    info = read_meminfo()
    if "MemTotal" in info:
        return info["MemTotal"]
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return None


def check_writable(directory: Path) -> str | None:
    """None when a file can be created in ``directory`` (created if needed), else the reason."""
    try:
        directory.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=directory, prefix=".doctor-", suffix=".tmp")
        try:
            os.write(fd, b"lsp-llm doctor\n")
        finally:
            os.close(fd)
            os.unlink(name)
    except OSError as exc:
        return f"{exc.strerror or exc.__class__.__name__}: {exc.filename or directory}"
    return None


def check_python() -> Check:
    version = platform.python_version()
    ok = sys.version_info >= (3, 10)
    return Check(
        name="python",
        ok=ok,
        detail=f"Python {version} ({sys.executable}) on {platform.platform(terse=True)}",
        fix="" if ok else "lsp-llm needs Python 3.10 or newer: create the venv with a newer Python",
        data={"version": version, "executable": sys.executable, "platform": platform.platform()},
    )


REQUIRED_PACKAGES: tuple[tuple[str, str], ...] = (
    ("lsp-llm", "lsp_llm"),
    ("pygls", "pygls"),
    ("lsprotocol", "lsprotocol"),
    ("torch", "torch"),
    ("transformers", "transformers"),
    ("tokenizers", "tokenizers"),
)


OPTIONAL_PACKAGES: tuple[tuple[str, str], ...] = (("xllamacpp", "xllamacpp"),)


def check_packages() -> Check:
    versions: dict[str, str | None] = {}
    problems: list[str] = []
    for dist, module in REQUIRED_PACKAGES:
        versions[dist] = dist_version(dist)
        try:
            importlib.import_module(module)
        except Exception as exc:  # a broken package fails in many ways: a finding, not a crash
            problems.append(f"{dist} does not import ({exc.__class__.__name__}: {exc})")
            continue
        if versions[dist] is None and dist != "lsp-llm":
            problems.append(f"{dist} is not installed")
    for dist, _module in OPTIONAL_PACKAGES:
        versions[dist] = dist_version(dist)
    parts = [f"{dist} {v}" if v else f"{dist} (not installed)" for dist, v in versions.items()]
    fix = ""
    if problems:
        fix = (
            "Reinstall lsp-llm with its dependencies in this environment: "
            f"{sys.executable} -m pip install -e '.[llamacpp]' (from a checkout) or "
            f"{sys.executable} -m pip install 'lsp-llm[llamacpp]'"
        )
    return Check(
        name="packages",
        ok=not problems,
        detail="; ".join(problems) if problems else ", ".join(parts),
        fix=fix,
        data={"versions": versions},
    )


def _nvidia_gpu_present() -> bool:
    return Path("/proc/driver/nvidia/gpus").is_dir() or shutil.which("nvidia-smi") is not None


def check_device(settings: Settings) -> Check:
    try:
        import torch
    except Exception as exc:  # OSError, RuntimeError... from native libs: a finding
        return Check(
            name="device",
            ok=False,
            detail=f"torch does not import: {exc.__class__.__name__}: {exc}",
            fix=f"{sys.executable} -m pip install torch (the CUDA build on a machine with a GPU)",
        )
    data: dict[str, Any] = {"torch": torch.__version__, "torch_cuda": torch.version.cuda}
    lines: list[str] = []
    cuda = bool(torch.cuda.is_available())
    if cuda:
        gpus = []
        for i in range(torch.cuda.device_count()):
            name = torch.cuda.get_device_name(i)
            gpu: dict[str, Any] = {"index": i, "name": name}
            try:
                free, total = torch.cuda.mem_get_info(i)
                gpu.update(free_bytes=int(free), total_bytes=int(total))
                lines.append(f"cuda:{i} {name}, {gib(free)} free of {gib(total)}")
            except Exception as exc:  # a GPU that does not answer (any CUDA error): reported
                lines.append(f"cuda:{i} {name} (memory unknown: {exc})")
            gpus.append(gpu)
        data["cuda"] = gpus
    mps_backend = getattr(torch.backends, "mps", None)
    mps = bool(mps_backend is not None and mps_backend.is_available())
    data["mps"] = mps
    if mps:
        line = "mps (Apple GPU)"
        recommended = getattr(getattr(torch, "mps", None), "recommended_max_memory", None)
        if callable(recommended):
            try:
                limit = int(recommended())
                data["mps_recommended_max_bytes"] = limit
                line += f", {gib(limit)} usable"
            except Exception:  # an optional extra: silent, the line is right without it
                pass
        lines.append(line)
    cores = os.cpu_count() or 0
    try:
        usable = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        usable = cores
    mem = read_meminfo()
    total_ram = mem.get("MemTotal") or _total_ram()
    threads = cpu_threads(settings)  # what both local backends run a model on the CPU with
    cpu = f"cpu: {usable} of {cores} cores usable, the model uses {threads} threads"
    if total_ram:
        cpu += f", {gib(total_ram)} RAM"
        if "MemAvailable" in mem:
            cpu += f" ({gib(mem['MemAvailable'])} available)"
    lines.append(cpu)
    data.update(
        cpu_count=cores,
        cpu_usable=usable,
        torch_threads=torch.get_num_threads(),
        model_threads=threads,
        ram_total_bytes=total_ram,
        ram_available_bytes=mem.get("MemAvailable"),
    )
    best = "cuda" if cuda else "mps" if mps else "cpu"
    chosen = best if settings.device == "auto" else settings.device
    data.update(best=best, configured=settings.device, chosen=chosen)
    detail = f"torch {torch.__version__}; " + "; ".join(lines)
    detail += f"; using {chosen}" + (" (device = auto)" if settings.device == "auto" else "")
    ok = True
    required = True
    fix = ""
    if settings.device == "cuda" and not cuda:
        ok = False
        fix = (
            "`device` is set to cuda but torch sees no CUDA GPU. Install the CUDA build of torch "
            "(pip install torch --index-url https://download.pytorch.org/whl/cu126), check the "
            'NVIDIA driver (nvidia-smi), or set `device = "auto"`.'
        )
    elif settings.device == "mps" and not mps:
        ok = False
        fix = '`device` is set to mps but torch sees no Apple GPU: set `device = "auto"`.'
    elif not cuda and torch.version.cuda is None and _nvidia_gpu_present():
        ok, required = False, False
        fix = (
            "An NVIDIA GPU is present but this torch is a CPU-only build: install the CUDA build "
            "(pip install torch --index-url https://download.pytorch.org/whl/cu126) for fast "
            "completions."
        )
    return Check(name="device", ok=ok, required=required, detail=detail, fix=fix, data=data)


def check_cache() -> Check:
    base = cache_dir()
    dirs = {"cache": base, "index": base / "index", "models": base / "models"}
    problems = {label: why for label, d in dirs.items() if (why := check_writable(d)) is not None}
    data = {
        "cache_dir": str(base),
        "dirs": {k: str(v) for k, v in dirs.items()},
        "problems": problems,
    }
    if not problems:
        return Check(
            name="cache",
            ok=True,
            detail=f"{base} is writable (index, models, stats)",
            data=data,
        )
    return Check(
        name="cache",
        ok=False,
        detail="cannot write "
        + "; ".join(f"{label} dir {dirs[label]} ({why})" for label, why in problems.items()),
        fix=(
            f"Make {base} writable by you (mkdir -p / chown / chmod), or point XDG_CACHE_HOME at "
            "a writable directory. Without it the index is kept in memory only and the embedded "
            "model cannot be assembled."
        ),
        data=data,
    )


def check_executable() -> Check:
    exe = shutil.which("lsp-llm")
    data = {"path": exe}
    if exe:
        return Check(
            name="command",
            ok=True,
            detail=f"`lsp-llm` on PATH is {exe} (what editors run)",
            data=data,
        )
    scripts = Path(sys.executable).parent / "lsp-llm"
    return Check(
        name="command",
        ok=False,
        required=False,
        detail="`lsp-llm` is not on PATH, so editors that run `lsp-llm serve` will not find it",
        fix=f"Add {scripts.parent} to PATH, or configure your editor with the full path "
        f"{scripts} (or `{sys.executable} -m lsp_llm serve`).",
        data=data,
    )
