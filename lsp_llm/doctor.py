"""``lsp-llm doctor``: check an installation and say, in plain words, how to fix what is wrong.

Every check produces one :class:`Check` (name, ok, detail, fix, data). A check is *required*
when the server cannot work without it (the model, the cache directory, the Python packages);
a failed required check makes the exit code 1. Other checks only warn (a missing tree-sitter
grammar, a settings warning) or inform (index state, editor configs) and never fail the run.

The model check goes through the real :class:`~lsp_llm.engine.worker.Engine`: the same backend
selection, loading and generation the server uses, so a passing doctor means a working server.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import importlib
import importlib.metadata
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Literal, TextIO

from lsp_llm.config import WORKSPACE_CONFIG_NAME, Settings, cache_dir, load_settings
from lsp_llm.config import user_config_path as default_user_config_path

Status = Literal["ok", "warn", "fail", "info", "skipped"]

LOAD_TIMEOUT_S = 1800.0
"""First use of the embedded model on a machine without llama.cpp converts it (a minute or two)."""
GENERATE_TIMEOUT_S = 300.0
PROBE_PROMPT = 'def fibonacci(n: int) -> int:\n    """Return the n-th Fibonacci number."""\n'
PROBE_TOKENS = 16

MODEL_FIX = (
    "Point the `model` setting at a Hugging Face model directory, a .gguf file or a hub id "
    "like 'Qwen/Qwen2.5-Coder-1.5B' (`--model PATH`, or `model = \"...\"` in {config}), "
    "or leave it empty for the embedded default model."
)


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


# -- command line ---------------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The doctor's own flags (model overrides come from the shared model arguments)."""
    parser.add_argument(
        "--json", action="store_true", help="print one JSON object with every check (scripts)"
    )
    parser.add_argument(
        "--skip-model",
        action="store_true",
        dest="skip_model",
        help="check that the model setting resolves, but do not load or run the model",
    )


# -- small helpers --------------------------------------------------------------------------------


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def _gib(n_bytes: float) -> str:
    return f"{n_bytes / 2**30:.1f} GiB"


def _size(n_bytes: float) -> str:
    if n_bytes >= 2**30:
        return _gib(n_bytes)
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


def _config_home() -> Path:
    env = os.environ.get("XDG_CONFIG_HOME", "")
    return Path(env) if env else Path.home() / ".config"


def _model_bytes(spec_format: str, path: str) -> int | None:
    p = Path(path)
    try:
        if spec_format == "gguf":
            return p.stat().st_size
        if spec_format == "hf-dir":
            total = 0
            for pattern in ("*.safetensors", "*.bin", "*.pt"):
                total += sum(f.stat().st_size for f in p.glob(pattern))
            return total or None
    except OSError:
        return None
    return None


# -- the checks -----------------------------------------------------------------------------------


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
        versions[dist] = _version(dist)
        try:
            importlib.import_module(module)
        except Exception as exc:
            problems.append(f"{dist} does not import ({exc.__class__.__name__}: {exc})")
            continue
        if versions[dist] is None and dist != "lsp-llm":
            problems.append(f"{dist} is not installed")
    for dist, _module in OPTIONAL_PACKAGES:
        versions[dist] = _version(dist)
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


GRAMMARS: tuple[tuple[str, str, str], ...] = (
    ("python", "tree_sitter_python", "language"),
    ("javascript", "tree_sitter_javascript", "language"),
    ("typescript", "tree_sitter_typescript", "language_typescript"),
    ("tsx", "tree_sitter_typescript", "language_tsx"),
    ("go", "tree_sitter_go", "language"),
    ("rust", "tree_sitter_rust", "language"),
    ("java", "tree_sitter_java", "language"),
    ("c", "tree_sitter_c", "language"),
    ("cpp", "tree_sitter_cpp", "language"),
)


def check_tree_sitter() -> Check:
    try:
        from tree_sitter import Language
    except Exception as exc:
        return Check(
            name="tree-sitter",
            ok=False,
            required=False,
            detail=f"tree-sitter does not import ({exc}); the workspace index has no symbols",
            fix=f"{sys.executable} -m pip install 'tree-sitter>=0.23'",
        )
    working: list[str] = []
    broken: dict[str, str] = {}
    for lang, module, attr in GRAMMARS:
        try:
            Language(getattr(importlib.import_module(module), attr)())
        except Exception as exc:
            broken[lang] = f"{exc.__class__.__name__}: {exc}"
        else:
            working.append(lang)
    version = _version("tree-sitter")
    detail = f"tree-sitter {version}; grammars: {', '.join(working) or 'none'}"
    if broken:
        detail += f"; not working: {', '.join(broken)}"
    wheels = sorted({m.replace("_", "-") for lang, m, _ in GRAMMARS if lang in broken})
    return Check(
        name="tree-sitter",
        ok=not broken,
        required=False,
        detail=detail,
        fix=(
            f"Files in those languages are indexed without symbols. Install the grammars: "
            f"{sys.executable} -m pip install {' '.join(wheels)}"
            if broken
            else ""
        ),
        data={"version": version, "grammars": working, "broken": broken},
    )


def _nvidia_gpu_present() -> bool:
    return Path("/proc/driver/nvidia/gpus").is_dir() or shutil.which("nvidia-smi") is not None


def check_device(settings: Settings) -> Check:
    try:
        import torch
    except Exception as exc:
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
                lines.append(f"cuda:{i} {name}, {_gib(free)} free of {_gib(total)}")
            except Exception as exc:
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
                line += f", {_gib(limit)} usable"
            except Exception:
                pass
        lines.append(line)
    cores = os.cpu_count() or 0
    try:
        usable = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        usable = cores
    mem = read_meminfo()
    total_ram = mem.get("MemTotal") or _total_ram()
    cpu = f"cpu: {usable} of {cores} cores usable, torch uses {torch.get_num_threads()} threads"
    if total_ram:
        cpu += f", {_gib(total_ram)} RAM"
        if "MemAvailable" in mem:
            cpu += f" ({_gib(mem['MemAvailable'])} available)"
    lines.append(cpu)
    data.update(
        cpu_count=cores,
        cpu_usable=usable,
        torch_threads=torch.get_num_threads(),
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


@dataclasses.dataclass
class _ModelInfo:
    spec: Any = None
    """A resolved ModelSpec, or None."""
    backend: str = ""
    reason: str = ""


def check_model(settings: Settings, config_path: Path, info: _ModelInfo) -> Check:
    from lsp_llm.engine.models import ModelNotFound, resolve_model

    fix = MODEL_FIX.format(config=config_path)
    try:
        spec = resolve_model(settings)
    except ModelNotFound as exc:
        return Check(
            name="model", ok=False, detail=str(exc), fix=fix, data={"model": settings.model}
        )
    except Exception as exc:  # assembling the embedded model can fail (disk full, read-only)
        return Check(
            name="model",
            ok=False,
            detail=f"cannot prepare the model: {exc.__class__.__name__}: {exc}",
            fix="Make the cache directory writable (see the cache check) or "
            + fix[0].lower()
            + fix[1:],
            data={"model": settings.model},
        )
    info.spec = spec
    data: dict[str, Any] = {
        "model": settings.model,
        "name": spec.display_name,
        "format": spec.format,
        "path": spec.path,
        "embedded": spec.embedded,
    }
    size = _model_bytes(spec.format, spec.path)
    detail = {
        "gguf": "GGUF file",
        "hf-dir": "Hugging Face model directory",
        "hub": "hub id (downloaded on first load, then read from the Hugging Face cache)",
        "remote": "served by the OpenAI-compatible endpoint",
    }[spec.format]
    detail = f"{spec.display_name}: {detail}"
    if spec.format in ("gguf", "hf-dir"):
        detail += f" at {spec.path}"
    if size:
        data["bytes"] = size
        detail += f" ({_size(size)})"
    if spec.embedded:
        detail += " (the embedded default; set `model` for a real code model)"
    ram = read_meminfo().get("MemAvailable")
    if size and ram and size > ram:
        return Check(
            name="model",
            ok=False,
            required=False,
            detail=detail + f"; only {_gib(ram)} of memory is available",
            fix="The model may not fit in memory: use a smaller or quantized (.gguf) model.",
            data=data,
        )
    return Check(name="model", ok=True, detail=detail, data=data)


def check_backend(settings: Settings, info: _ModelInfo) -> Check:
    from lsp_llm.engine.models import choose_backend, llamacpp_available

    spec = info.spec
    auto_settings = dataclasses.replace(settings, backend="auto")
    auto, auto_reason = choose_backend(auto_settings, spec)
    name, reason = choose_backend(settings, spec)
    info.backend, info.reason = name, reason
    data: dict[str, Any] = {
        "configured": settings.backend,
        "backend": name,
        "reason": reason,
        "auto": auto,
        "auto_reason": auto_reason,
        "llamacpp_available": llamacpp_available(),
    }
    if settings.backend == "auto":
        detail = f"auto picks {auto}: {auto_reason}"
    else:
        detail = f"{name} ({reason}); auto would pick {auto}: {auto_reason}"
    if spec is None and settings.backend != "openai":
        detail += " (the model did not resolve; the choice may differ once it does)"
    fix = ""
    if name == "llamacpp" and not llamacpp_available():
        fix = (
            f"The llamacpp backend needs xllamacpp: {sys.executable} -m pip install "
            "'lsp-llm[llamacpp]', or set `backend = \"auto\"`."
        )
    elif name == "llamacpp" and spec is not None and spec.format != "gguf":
        fix = (
            "The llamacpp backend needs a .gguf model: point `model` at a .gguf file or set "
            '`backend = "transformers"`.'
        )
    elif name == "openai" and not settings.endpoint:
        fix = (
            "The openai backend needs the server's base URL: set `endpoint` "
            '(e.g. `--endpoint http://127.0.0.1:8000/v1` or `endpoint = "..."`).'
        )
    elif (
        auto == "transformers"
        and spec is not None
        and spec.format == "gguf"
        and not llamacpp_available()
        and settings.backend == "auto"
    ):
        return Check(
            name="backend",
            ok=False,
            required=False,
            detail=detail,
            fix=(
                "GGUF models run much faster on a CPU with llama.cpp: "
                f"{sys.executable} -m pip install 'lsp-llm[llamacpp]'"
            ),
            data=data,
        )
    return Check(name="backend", ok=not fix, detail=detail, fix=fix, data=data)


def _load_fix(message: str, settings: Settings, config_path: Path) -> str:
    low = message.lower()
    if "out of memory" in low or "oom" in low.split():
        return (
            'The model does not fit: use a smaller or quantized model, `dtype = "float16"` / '
            '"bfloat16", or `device = "cpu"`.'
        )
    if settings.model.count("/") == 1 and not Path(settings.model).expanduser().exists():
        return (
            f"Download the model once while online (huggingface-cli download {settings.model}) "
            "or point `model` at a local directory. " + MODEL_FIX.format(config=config_path)
        )
    if "xllamacpp" in low or "llama" in low:
        return (
            "llama.cpp could not load the model: reinstall it "
            f"({sys.executable} -m pip install -U 'lsp-llm[llamacpp]') or set "
            '`backend = "transformers"`.'
        )
    return (
        "Check the `model` and `backend` settings; run `lsp-llm complete FILE:LINE:COL -vv` to "
        "see the full error. " + MODEL_FIX.format(config=config_path)
    )


def _wait_loaded(
    engine: Any, timeout: float, on_progress: Callable[[str], None] | None
) -> tuple[bool, str]:
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        status = engine.status
        if status.state == "ready":
            return True, status.message
        if status.state == "error":
            return False, status.message
        if on_progress is not None and status.message != last:
            on_progress(status.message)
            last = status.message
        time.sleep(0.05)
    return False, f"timed out after {timeout:.0f} s waiting for the model to load"


async def _probe(engine: Any) -> tuple[Any, float | None, float]:
    """Run the probe request; returns (result, wall time to first token, wall total)."""
    from lsp_llm.engine.requests import GenerationRequest, GenerationResult, TokenEvent

    request = GenerationRequest(
        prompt=PROBE_PROMPT, max_new_tokens=PROBE_TOKENS, temperature=0.0, kind="completion"
    )
    start = time.perf_counter()
    first: float | None = None
    result: Any = None

    async def consume() -> None:
        nonlocal first, result
        async for event in engine.stream(request):
            if isinstance(event, TokenEvent) and event.text and first is None:
                first = time.perf_counter() - start
            elif isinstance(event, GenerationResult):
                result = event

    try:
        await asyncio.wait_for(consume(), GENERATE_TIMEOUT_S)
    except asyncio.TimeoutError:
        request.cancel.cancel("doctor timeout")
    return result, first, time.perf_counter() - start


def check_model_runs(
    settings: Settings,
    config_path: Path,
    on_progress: Callable[[str], None] | None = None,
) -> Iterator[Check]:
    """Load the model through the real Engine and generate a few tokens: two checks."""
    from lsp_llm.engine.worker import Engine

    engine = Engine(settings)
    t0 = time.perf_counter()
    engine.start()
    try:
        loaded, message = _wait_loaded(engine, LOAD_TIMEOUT_S, on_progress)
        load_s = time.perf_counter() - t0
        status = engine.status
        data: dict[str, Any] = {
            "load_s": round(load_s, 3),
            "backend": status.backend,
            "backend_reason": status.backend_reason,
            "model": status.model,
            "device": status.device,
            "dtype": status.dtype,
        }
        if not loaded:
            data["error"] = message
            yield Check(
                name="model load",
                ok=False,
                detail=f"{status.model or settings.model or 'the model'} did not load "
                f"({status.backend or 'no backend'}): {message}",
                fix=_load_fix(message, settings, config_path),
                data=data,
            )
            yield Check(
                name="generation",
                ok=False,
                skipped=True,
                required=False,
                detail="not tried: the model did not load",
            )
            return
        yield Check(
            name="model load",
            ok=True,
            detail=f"{status.model} loaded in {load_s:.1f} s with {status.backend} on "
            f"{status.device} ({status.dtype})",
            data=data,
        )
        result, first_wall, total_wall = asyncio.run(_probe(engine))
        if result is None or result.finish_reason in ("error", "cancelled"):
            error = (
                result.error or result.finish_reason
                if result is not None
                else f"no answer within {GENERATE_TIMEOUT_S:.0f} s"
            )
            yield Check(
                name="generation",
                ok=False,
                detail=f"the model loaded but generating failed: {error}",
                fix=_load_fix(error, settings, config_path),
                data={"error": error},
            )
            return
        t = result.timings
        ttft = first_wall if first_wall is not None else t.queued_s + t.first_token_s
        gen: dict[str, Any] = {
            "new_tokens": t.new_tokens,
            "prompt_tokens": t.prompt_tokens,
            "tokens_per_s": round(t.tokens_per_s, 2),
            "time_to_first_token_s": round(ttft, 4),
            "prefill_s": round(t.prefill_s, 4),
            "decode_s": round(t.decode_s, 4),
            "total_s": round(total_wall, 4),
            "finish_reason": result.finish_reason,
            "text": result.text,
        }
        detail = (
            f"{t.new_tokens} tokens (greedy, {t.prompt_tokens}-token prompt): "
            f"{t.tokens_per_s:.1f} tokens/s, first token after {ttft * 1000:.0f} ms, "
            f"{total_wall:.2f} s in all"
        )
        if t.new_tokens == 0:
            yield Check(
                name="generation",
                ok=False,
                required=False,
                detail=detail + " - the model stopped at once",
                fix="The model produced no tokens for a plain code prompt: check that `model` "
                "is a code or base model (not an embedding model).",
                data=gen,
            )
            return
        yield Check(name="generation", ok=True, detail=detail, data=gen)
    finally:
        engine.shutdown(timeout=30.0)


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


def check_index(cwd: Path) -> Check:
    from lsp_llm.context.index import find_root
    from lsp_llm.context.store import IndexStore

    root = find_root(cwd)
    store = IndexStore(root)
    data: dict[str, Any] = {"root": str(root), "index_path": str(store.path)}
    if not store.path.exists():
        data["state"] = "missing"
        return Check(
            name="index",
            ok=True,
            informational=True,
            detail=f"{root} is not indexed yet (no {store.path})",
            fix=f"The server indexes it when an editor opens it; or run `lsp-llm index {root}`.",
            data=data,
        )
    t0 = time.perf_counter()
    entries = store.load()
    load_s = time.perf_counter() - t0
    data["state"] = store.status
    if store.status != "loaded":
        return Check(
            name="index",
            ok=False,
            required=False,
            detail=f"the index of {root} is {store.status} ({store.path})",
            fix="It is rebuilt automatically; to do it now run "
            f"`lsp-llm index {root}` (or delete {store.path}).",
            data=data,
        )
    text = [e for e in entries.values() if not e.binary]
    symbols = sum(len(e.symbols) for e in text)
    size = sum(e.size for e in text)
    try:
        saved = time.strftime("%Y-%m-%d %H:%M", time.localtime(store.path.stat().st_mtime))
    except OSError:
        saved = "?"
    data.update(
        files=len(text),
        skipped=len(entries) - len(text),
        symbols=symbols,
        bytes=size,
        index_bytes=store.path.stat().st_size if store.path.exists() else None,
        saved=saved,
        load_s=round(load_s, 4),
    )
    return Check(
        name="index",
        ok=True,
        informational=True,
        detail=f"{root}: {len(text)} files, {symbols} symbols ({_size(size)} of text), "
        f"saved {saved}, loads in {load_s * 1000:.0f} ms ({store.path})",
        data=data,
    )


def check_config(
    config_file: Path | None, cwd: Path, settings: Settings, warnings: list[str]
) -> Check:
    user = config_file or default_user_config_path()
    workspace = cwd / WORKSPACE_CONFIG_NAME
    found = [str(p) for p in (user, workspace) if p.is_file()]
    data: dict[str, Any] = {
        "user_config": str(user),
        "user_config_exists": user.is_file(),
        "workspace_config": str(workspace),
        "workspace_config_exists": workspace.is_file(),
        "warnings": warnings,
        "non_default": {
            k: v for k, v in settings.to_wire().items() if v != Settings().to_wire().get(k)
        },
    }
    detail = "files: " + (", ".join(found) if found else f"none (user file would be {user})")
    if data["non_default"]:
        detail += "; set: " + ", ".join(f"{k}={v!r}" for k, v in data["non_default"].items())
    problems = list(warnings)
    if config_file is not None and not config_file.is_file():
        problems.insert(0, f"--config {config_file} does not exist")
    if problems:
        return Check(
            name="config",
            ok=False,
            required=False,
            detail=detail + "; warnings: " + "; ".join(problems),
            fix="Fix or remove the settings named above (keys are camelCase or snake_case; see "
            "the README's configuration table). Ignored settings keep their previous value.",
            data=data,
        )
    return Check(name="config", ok=True, detail=detail, data=data)


def _mentions(path: Path, needles: tuple[str, ...]) -> bool:
    try:
        if path.stat().st_size > 2_000_000:
            return False
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    return any(n in text for n in needles)


def _walk_files(top: Path, suffixes: tuple[str, ...], limit: int = 3000) -> Iterator[Path]:
    count = 0
    for dirpath, dirnames, filenames in os.walk(top):
        dirnames[:] = [d for d in dirnames if not d.startswith(".") and d != "node_modules"]
        for name in filenames:
            if name.endswith(suffixes):
                count += 1
                if count > limit:
                    return
                yield Path(dirpath) / name


def find_editor_configs(
    home: Path | None = None, config_home: Path | None = None, cwd: Path | None = None
) -> dict[str, list[str]]:
    """Editor configurations that mention lsp-llm: {editor: [paths]} (only editors found)."""
    home = home or Path.home()
    config_home = config_home or _config_home()
    found: dict[str, list[str]] = {}
    needles = ("lsp_llm", "lsp-llm", "lspLlm")

    nvim = config_home / "nvim"
    if nvim.is_dir():
        hits = [str(p) for p in _walk_files(nvim, (".lua", ".vim")) if _mentions(p, needles)]
        found["neovim"] = hits
    extensions: list[str] = []
    for folder in (".vscode", ".vscode-insiders", ".vscode-oss", ".vscode-server", ".cursor"):
        ext_dir = home / folder / "extensions"
        if ext_dir.is_dir():
            with contextlib.suppress(OSError):
                extensions += [
                    str(p) for p in sorted(ext_dir.iterdir()) if "lsp-llm" in p.name.lower()
                ]
    if extensions:
        found["vscode"] = extensions
    helix = [config_home / "helix" / "languages.toml"]
    if cwd is not None:
        helix.append(cwd / ".helix" / "languages.toml")
    helix_hits = [str(p) for p in helix if p.is_file() and _mentions(p, ("lsp-llm",))]
    if helix_hits:
        found["helix"] = helix_hits
    emacs = [home / ".emacs", home / ".emacs.d" / "init.el", config_home / "emacs" / "init.el"]
    emacs_hits = [str(p) for p in emacs if p.is_file() and _mentions(p, needles)]
    if emacs_hits:
        found["emacs"] = emacs_hits
    sublime = [
        config_home / "sublime-text" / "Packages" / "User" / "LSP.sublime-settings",
        home / "Library/Application Support/Sublime Text/Packages/User/LSP.sublime-settings",
    ]
    sublime_hits = [str(p) for p in sublime if p.is_file() and _mentions(p, needles)]
    if sublime_hits:
        found["sublime"] = sublime_hits
    return found


def check_editors(cwd: Path) -> Check:
    found = find_editor_configs(cwd=cwd)
    parts = []
    for editor, paths in found.items():
        if paths:
            parts.append(f"{editor}: {', '.join(paths)}")
        elif editor == "neovim":
            parts.append(f"neovim: {_config_home() / 'nvim'} does not mention lsp_llm")
    detail = "; ".join(parts) if parts else "no editor configuration mentions lsp-llm"
    return Check(
        name="editors",
        ok=True,
        informational=True,
        detail=detail,
        fix=""
        if any(found.values())
        else "See editor-configs/ in the lsp-llm repository for VS Code, Neovim, Helix, "
        "Emacs and Sublime setups.",
        data={"found": found},
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


# -- output ---------------------------------------------------------------------------------------

LABELS: dict[Status, tuple[str, str]] = {
    "ok": ("OK", "bold green"),
    "warn": ("WARN", "bold yellow"),
    "fail": ("FAIL", "bold red"),
    "info": ("INFO", "bold cyan"),
    "skipped": ("SKIP", "dim"),
}


class _Printer:
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
    printer = _Printer(out, as_json=as_json)
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
    info = _ModelInfo()
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
        except Exception as exc:
            add(
                Check(
                    name="model load",
                    ok=False,
                    detail=f"the check itself failed: {exc.__class__.__name__}: {exc}",
                    fix=_load_fix(str(exc), settings, config_path),
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
