"""No tokenizer or chat-template call runs on the server's event loop (issue #16, item 4).

On the llama.cpp backend ``encode`` is an HTTP request to the model server, and on every backend
it is CPU work: on the loop it stalls every other message (cancels, document changes, other
editors on a daemon). A real server over stdio, with a tiny real model, runs under
:mod:`tests.features.loop_probe`, which records the thread of every ``encode`` / ``decode`` /
``render_chat``. Completions (invoked with several suggestions, automatic, typed into a running
generation, followed by accept-ahead), an explanation and a docstring must leave no call on the
loop's thread, and the probe must have seen calls off it (so it is really wrapping them).
Before the change, ``completion_prompt`` counted tokens on the loop and this test failed.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

import tests.lsp_helpers as helpers
from tests.lsp_helpers import start_session

REPO = Path(__file__).resolve().parents[2]
MODULE = "def add(a, b):\n    total = a + b\n    return total\n\n\nprint(add(1, 2))\n"


async def test_no_tokenizer_call_on_the_event_loop(
    tmp_path: Path,
    tiny_args: list[str],
    server_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    record = tmp_path / "calls.txt"
    env = dict(server_env)
    env["LSP_LLM_LOOP_PROBE"] = str(record)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH", "")]))
    monkeypatch.setattr(
        helpers,
        "server_command",
        lambda *args: [sys.executable, "-m", "tests.features.loop_probe", "serve", *args],
    )
    root = tmp_path / "ws"
    root.mkdir()
    async with start_session(
        root, tiny_args, env, init_options={"maxNewTokens": 8, "adaptiveDebounce": "off"}
    ) as s:
        uri = s.open("calc.py", MODULE)
        loaded = record.read_text(encoding="utf-8") if record.exists() else ""
        assert "loop" not in loaded.split(), loaded
        await s.inline(uri, 1, len("    total = a + b"), invoked=True)
        await s.inline(uri, 1, len("    total = "))
        s.change(uri, (1, len("    total = ")), (1, len("    total = ")), "a")
        await s.inline(uri, 1, len("    total = a"))
        await s.client.protocol.send_request_async(
            "lspLlm/explain",
            {
                "textDocument": {"uri": uri},
                "range": {"start": {"line": 0, "character": 0}, "end": {"line": 2, "character": 0}},
            },
        )
        await s.client.protocol.send_request_async(
            "lspLlm/docstring",
            {"textDocument": {"uri": uri}, "position": {"line": 0, "character": 4}},
        )
        await s.status()
    calls = record.read_text(encoding="utf-8").splitlines()
    on_loop = sorted({c for c in calls if c.startswith("loop ")})
    assert not on_loop, f"tokenizer work on the event loop: {on_loop}"
    assert any(c == "off HFTokenizer.encode" for c in calls), calls[:20]
