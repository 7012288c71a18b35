"""Faults: models that cannot load, out of memory mid-generation, broken index files, and a
process killed while it writes the index."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lsp_llm.context.store import IndexStore
from tests.robustness.conftest import make_workspace
from tests.robustness.raw import RawServer

INLINE = "textDocument/inlineCompletion"


def _error_messages(s: RawServer) -> list[str]:
    return [
        m["params"]["message"]
        for m in s.received
        if m.get("method") == "window/showMessage" and m["params"]["type"] == 1
    ]


def _model_fault_cases(tmp: Path, tiny_model_dir: Path) -> dict[str, tuple[list[str], str]]:
    garbage = tmp / "garbage.gguf"
    garbage.write_bytes(b"GGUF" + b"\x00\xff" * 100)
    empty_dir = tmp / "not-a-model"
    empty_dir.mkdir()
    return {
        "missing file": (["--model", str(tmp / "nope" / "model.gguf")], "not found"),
        "wrong path (a directory without a model)": (["--model", str(empty_dir)], ""),
        "bad config: llamacpp backend for a HF directory": (
            ["--model", str(tiny_model_dir), "--backend", "llamacpp"],
            "gguf",
        ),
        "corrupt .gguf file": (["--model", str(garbage), "--backend", "transformers"], ""),
    }


@pytest.mark.parametrize(
    "case",
    [
        "missing file",
        "wrong path (a directory without a model)",
        "bad config: llamacpp backend for a HF directory",
        "corrupt .gguf file",
    ],
)
def test_model_that_cannot_load(
    tmp_path: Path, tiny_model_dir: Path, server_env: dict[str, str], case: str
) -> None:
    args, expected = _model_fault_cases(tmp_path, tiny_model_dir)[case]
    s = RawServer([*args, "--no-index"], server_env, tmp_path, stderr_path=tmp_path / "e.log")
    try:
        s.initialize(tmp_path)
        st = s.wait_state(timeout=120)
        assert st["state"] == "error", st
        assert st["message"] and expected in st["message"].lower(), st["message"]
        uri = (tmp_path / "a.py").as_uri()
        s.did_open(uri, "x = 1\n")
        t0 = time.monotonic()
        reply = s.request(INLINE, s.inline_params(uri, 1, 0), timeout=10)
        assert reply.get("result", {}).get("items", []) == [], reply
        assert time.monotonic() - t0 < 5
        s.wait_for(lambda m: m.get("method") == "window/showMessage", timeout=10)
        assert "result" in s.request("lspLlm/status", {})
        assert len(_error_messages(s)) == 1, _error_messages(s)  # one message, not a storm
        assert s.proc.poll() is None
    finally:
        assert s.shutdown_and_exit() == 0


def test_bad_config_values_warn_and_fall_back(tmp_path: Path, server_env: dict[str, str]) -> None:
    s = RawServer(
        [
            "--model",
            str(tmp_path / "missing"),
            "--no-index",
            "--set",
            "contextWindow=-5",
            "--set",
            "temperature=hot",
        ],
        server_env,
        tmp_path,
        stderr_path=tmp_path / "e.log",
    )
    try:
        s.initialize(tmp_path, {"maxNewTokens": "lots", "device": "tpu"})
        st = s.status()
        assert st["settings"]["contextWindow"] == 2048
        assert st["settings"]["maxNewTokens"] == 64
        assert st["settings"]["device"] == "auto"
        warnings = " ".join(
            m["params"]["message"] for m in s.received if m.get("method") == "window/showMessage"
        )
        for key in ("maxNewTokens", "device"):
            assert key in warnings, warnings
    finally:
        s.close()


def test_out_of_memory_fails_that_request_and_the_next_works(srv: RawServer) -> None:
    """A real allocation failure inside the forward pass (armed by the debug request
    ``lspLlm/debugFault {kind: "oom"}``: a 1 PiB ``torch.empty`` that the allocator refuses)."""
    uri = (srv.root / "oom.py").as_uri()
    srv.did_open(uri, "def f():\n    ")
    srv.wait_idle(30)  # the open's idle warm-up must not be the forward pass that fails
    assert srv.request("lspLlm/debugFault", {"kind": "oom"})["result"]["armed"] is True
    reply = srv.request(INLINE, srv.inline_params(uri, 1, 4), timeout=60)
    assert reply["error"]["code"] == -32803, reply
    assert "out of memory" in reply["error"]["message"]
    st = srv.wait_idle(5)
    assert st["state"] == "ready"
    reply = srv.request(INLINE, srv.inline_params(uri, 1, 4), timeout=60)
    assert "result" in reply, reply
    srv.did_close(uri)


# -- the index ----------------------------------------------------------------------------------


def _index_status(s: RawServer, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        index = s.status().get("index")
        assert index is not None, "this server has no index wiring"
        busy = {r["state"] for r in index.get("roots", [])} & {"indexing", "queued"}
        if index.get("roots") and not busy and index["state"] != "indexing":
            return dict(index)
        if time.monotonic() > deadline:
            return dict(index)
        time.sleep(0.2)


def _serve_index(root: Path, env: dict[str, str], log: Path) -> RawServer:
    s = RawServer(["--model", str(root / "missing-model")], env, root, stderr_path=log)
    s.initialize(root)
    return s


@pytest.mark.parametrize("damage", ["corrupt", "truncated", "empty"])
def test_damaged_index_file_is_rebuilt(
    tmp_path: Path, server_env: dict[str, str], damage: str
) -> None:
    root = make_workspace(tmp_path / "ws")
    env = {**server_env, "XDG_CACHE_HOME": str(tmp_path / "cache")}
    s = _serve_index(root, env, tmp_path / "first.log")
    try:
        index = _index_status(s)
        assert index["state"] == "ready", index
        path = Path(index["roots"][0]["indexPath"])
        files = index["files"]
    finally:
        s.close()
    data = path.read_bytes()
    path.write_bytes(
        {
            "corrupt": data[:20] + b"\x00garbage" * 50,
            "truncated": data[: len(data) // 2],
            "empty": b"",
        }[damage]
    )
    s = _serve_index(root, env, tmp_path / "second.log")
    try:
        index = _index_status(s)
        assert index["state"] == "ready", index
        assert index["files"] == files
        assert index["roots"][0]["store"] != "loaded"  # it noticed; it did not trust the file
    finally:
        s.close()
    assert "rebuilding" in (tmp_path / "second.log").read_text()
    store = IndexStore(root, tmp_path / "cache" / "lsp-llm")
    assert store.path == path
    assert len(store.load()) >= files and store.status == "loaded"


def test_unwritable_cache_dir_keeps_the_index_in_memory(
    tmp_path: Path, server_env: dict[str, str]
) -> None:
    root = make_workspace(tmp_path / "ws")
    blocker = tmp_path / "cache-is-a-file"
    blocker.write_text("not a directory")  # unwritable even for root
    env = {**server_env, "XDG_CACHE_HOME": str(blocker)}
    s = _serve_index(root, env, tmp_path / "e.log")
    try:
        index = _index_status(s)
        assert index["state"] == "ready", index
        assert index["files"] > 0
        assert index["roots"][0]["store"] == "memory"
        assert s.proc.poll() is None
    finally:
        s.close()
    assert "memory" in (tmp_path / "e.log").read_text()


_INDEX_SCRIPT = """
import sys
from pathlib import Path
from lsp_llm.config import Settings
from lsp_llm.cli.workspace import run_index
sys.exit(run_index(Path(sys.argv[1]), watch=False, as_json=True, settings=Settings(),
                   cache_dir=Path(sys.argv[2])))
"""


def _run_index(root: Path, cache: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-c", _INDEX_SCRIPT, str(root), str(cache)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


@pytest.mark.slow
def test_killed_mid_write_leaves_a_valid_index(tmp_path: Path, server_env: dict[str, str]) -> None:
    """SIGKILL ``lsp-llm index`` at fractions of a full build's duration (measured first, so
    the kills land during the build and its final write whatever the machine's speed), with no
    index yet and with a valid older one: the file is always absent, old or new, never torn."""
    root = tmp_path / "tree"
    for i in range(3000):
        d = root / f"p{i // 100:03d}"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"m{i % 100:02d}.py").write_text(f"def f{i}(x):\n    return x * {i}\n" * 5)
    full = tmp_path / "cache-full"
    t0 = time.monotonic()
    assert _run_index(root, full, server_env).wait(300) == 0
    duration = time.monotonic() - t0
    kills = 0
    for attempt, fraction in enumerate((0.3, 0.5, 0.7, 0.8, 0.9, 0.95, 0.98, 1.0)):
        cache = tmp_path / f"cache-{attempt}"
        with_old = attempt % 2 == 1
        if with_old:
            shutil.copytree(full, cache)
            # Touch every file so this run re-reads all of them and writes the index again.
            for path in root.rglob("*.py"):
                os.utime(path, ns=(time.time_ns(), time.time_ns() + attempt))
        proc = _run_index(root, cache, server_env)
        time.sleep(duration * fraction)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait(30)
        store = IndexStore(root, cache)
        entries = store.load()
        assert store.status in ("loaded", "missing"), (fraction, store.status)
        if with_old:
            assert store.status == "loaded" and len(entries) >= 3000, fraction
    assert kills >= 2, f"every build finished before its kill (full build: {duration:.1f}s)"
    # The next run after a kill completes the index.
    assert _run_index(root, tmp_path / "cache-0", server_env).wait(300) == 0
    store = IndexStore(root, tmp_path / "cache-0")
    assert len(store.load()) >= 3000 and store.status == "loaded"
