"""The model and backend: does the setting resolve, which backend runs it, does it load
and generate through the real :class:`~lsp_llm.engine.worker.Engine`."""

from __future__ import annotations

import asyncio
import dataclasses
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from lsp_llm.config import Settings
from lsp_llm.doctor.report import Check
from lsp_llm.doctor.system import gib, human_size, read_meminfo
from lsp_llm.engine.worker import wait_for_engine

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


@dataclasses.dataclass
class ModelInfo:
    spec: Any = None
    """A resolved ModelSpec, or None."""
    backend: str = ""
    reason: str = ""


def check_model(settings: Settings, config_path: Path, info: ModelInfo) -> Check:
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
        detail += f" ({human_size(size)})"
    if spec.embedded:
        detail += " (the embedded default; set `model` for a real code model)"
    ram = read_meminfo().get("MemAvailable")
    if size and ram and size > ram:
        return Check(
            name="model",
            ok=False,
            required=False,
            detail=detail + f"; only {gib(ram)} of memory is available",
            fix="The model may not fit in memory: use a smaller or quantized (.gguf) model.",
            data=data,
        )
    return Check(name="model", ok=True, detail=detail, data=data)


def check_backend(settings: Settings, info: ModelInfo) -> Check:
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


def load_fix(message: str, settings: Settings, config_path: Path) -> str:
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
        loaded, message = wait_for_engine(engine, LOAD_TIMEOUT_S, on_progress)
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
                fix=load_fix(message, settings, config_path),
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
                fix=load_fix(error, settings, config_path),
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
