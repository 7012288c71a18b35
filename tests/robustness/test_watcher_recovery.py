"""The watcher recovers: a workspace folder that is deleted and re-created (or replaced in one
go) is indexed and followed again, and a dead watcher is visible in ``lspLlm/status``.

Real servers over a raw pipe, real files, the real watcher (``watchfiles``). Every expectation
is polled for with a generous deadline. The server's working directory is the parent of the
workspace, so deleting the workspace does not delete the server's own directory.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.robustness.raw import RawServer

pytestmark = pytest.mark.timeout(300)

INLINE = "textDocument/inlineCompletion"
DEADLINE_S = 60.0
WAITING = "waiting for the folder to reappear"


def _root_status(s: RawServer) -> dict[str, Any]:
    index = s.status().get("index")
    assert index is not None, "this server has no index wiring"
    roots = index.get("roots") or [{}]
    return {**roots[0], "overall": index["state"]}


def _until(s: RawServer, what: str, predicate: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    """Poll the first root's status until ``predicate`` holds."""
    deadline = time.monotonic() + DEADLINE_S
    while True:
        root = _root_status(s)
        if predicate(root):
            return root
        if time.monotonic() > deadline:
            raise AssertionError(f"never saw {what}: {root}")
        time.sleep(0.1)


def _watching(root: dict[str, Any], files: int) -> bool:
    return (
        root.get("state") == "ready"
        and root.get("overall") == "ready"
        and root.get("watcher") == "watching"
        and root.get("files") == files
    )


def _context_paths(s: RawServer, root: Path, name: str, text: str) -> set[str]:
    """Complete at the end of an (unsaved) document and return the retrieved context's paths."""
    uri = (root / name).as_uri()
    s.did_open(uri, text)
    lines = text.split("\n")
    reply = s.request(INLINE, s.inline_params(uri, len(lines) - 1, len(lines[-1])), timeout=120)
    assert "result" in reply, reply
    s.did_close(uri)
    last = s.status()["lastCompletion"]
    return {c["path"] for c in last["context"]}


def _serve(root: Path, args: list[str], env: dict[str, str], log: Path) -> RawServer:
    s = RawServer(args, env, root.parent, stderr_path=log)
    reply = s.initialize(root)
    assert "result" in reply, reply
    return s


def test_deleted_and_recreated_root_is_indexed_and_watched_again(
    tmp_path: Path, tiny_args: list[str], server_env: dict[str, str]
) -> None:
    root = tmp_path / "ws"
    root.mkdir()
    (root / "helpers.py").write_text("def polygon_perimeter(points):\n    return len(points)\n")
    s = _serve(root, tiny_args, server_env, tmp_path / "stderr.log")
    try:
        assert s.wait_state()["state"] == "ready"
        _until(s, "the first build, watched", lambda r: _watching(r, 1))

        shutil.rmtree(root)
        gone = _until(
            s,
            "the deleted folder reported",
            lambda r: r.get("watcher") == WAITING and r.get("files") == 0,
        )
        assert gone["state"] != "ready" and gone["overall"] != "ready", gone

        root.mkdir()
        (root / "shapes.py").write_text("def hexagon_area(side):\n    return side * side\n")
        _until(s, "the re-created folder indexed and watched", lambda r: _watching(r, 1))
        paths = _context_paths(
            s, root, "main.py", "from shapes import hexagon_area\n\n\ndef report(x):\n    return "
        )
        assert "shapes.py" in paths, paths

        # A file added later is picked up by the new watcher.
        (root / "later.py").write_text("def octagon_area(side):\n    return 4.83 * side\n")
        _until(s, "a file added after the folder came back", lambda r: _watching(r, 2))
        paths = _context_paths(
            s, root, "main.py", "from later import octagon_area\n\n\ndef report(x):\n    return "
        )
        assert "later.py" in paths, paths
        assert s.proc.poll() is None
    finally:
        s.close()
    log = (tmp_path / "stderr.log").read_text("utf-8", errors="replace")
    warnings = [line for line in log.splitlines() if " WARNING " in line and str(root) in line]
    assert any("reappear" in line for line in warnings), log


def test_root_replaced_in_one_go_and_reindex_keep_the_index_following_changes(
    tmp_path: Path, server_env: dict[str, str]
) -> None:
    root = tmp_path / "ws"
    root.mkdir()
    (root / "first.py").write_text("def first():\n    pass\n")
    # No model (it cannot load): the index works on its own, and the server starts in seconds.
    args = ["--model", str(tmp_path / "missing-model")]
    s = _serve(root, args, server_env, tmp_path / "stderr.log")
    try:
        _until(s, "the first build, watched", lambda r: _watching(r, 1))

        # `rm -rf ws && mkdir ws` while the server runs: no moment to notice the folder missing.
        shutil.rmtree(root)
        root.mkdir()
        (root / "replaced_a.py").write_text("def replaced_a():\n    pass\n")
        (root / "replaced_b.py").write_text("def replaced_b():\n    pass\n")
        _until(s, "the replaced folder indexed", lambda r: _watching(r, 2))
        (root / "after_replace.py").write_text("def after_replace():\n    pass\n")
        _until(s, "a file added after the folder was replaced", lambda r: _watching(r, 3))

        # lspLlm.reindex rebuilds and watches again: later files are still picked up.
        reply = s.request(
            "workspace/executeCommand", {"command": "lspLlm.reindex", "arguments": []}, 120
        )
        assert "result" in reply, reply
        assert reply["result"]["roots"][0]["files"] == 3, reply
        (root / "after_reindex.py").write_text("def after_reindex():\n    pass\n")
        _until(s, "a file added after a reindex", lambda r: _watching(r, 4))
        assert s.proc.poll() is None
    finally:
        s.close()
