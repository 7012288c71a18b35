"""Memory soak: server RSS under a mixed editing load (completions, cancels, edits).

One real server (full size: the default embedded Gemma 3 270M on the llamacpp backend, the path
``lsp-llm`` takes when no model is set; ``--quick``: the tiny random-weight model on
transformers; ``--model``/``--backend`` replace either) gets a seeded, open-loop editing mix on
a real-size module (httpx's ``_client.py`` when installed, else standard-library code):

* inline completions at random positions (``COMPLETION_SHARE`` of the operations), about half
  of them cancelled with ``$/cancelRequest`` after a random 0-200 ms, the rest answered (a
  newer completion supersedes an older one, like an editor that keeps typing);
* ``didChange`` edits at random positions: small inserts and deletions, so the file keeps its
  size while every version differs.

The server's ``VmRSS`` (``/proc/<pid>/status``) is read after every operation. The figures:
RSS after a warm-up (start: whole completions at a few far-apart positions, which fill
llama.cpp's bounded prompt cache, then a short mixed run), the peak, at the end (after the
worker is idle), and after an idle period; the goal is end - start <= 50 MiB and the idle
level back there too. Every request id must be answered exactly once (counted at the client's
JSON-RPC layer).
"""

from __future__ import annotations

import asyncio
import random
import sysconfig
import time
from collections import Counter
from pathlib import Path
from typing import Any

from lsprotocol import types

from benchmarks.cancel import _count_responses
from benchmarks.client import BenchClient, start_client
from benchmarks.common import (
    BenchContext,
    client_server_pid,
    goal,
    proc_status_kib,
    python_source,
    server_args,
    summary,
    tiny_model,
)

NAME = "soak"

COMPLETION_SHARE = 1274 / 2000
"""The reported mix: 1,274 completions and 726 edits."""
CANCEL_SHARE = 0.5
CANCEL_MAX_S = 0.2
GOAL_MIB = 50.0
SNIPPETS = (
    "x = 1\n",
    "    value = compute(value)\n",
    "# note\n",
    "result",
    "self.",
    "if not ok:\n        return None\n",
    "(",
    ", timeout=None",
    "\n",
    "return response\n",
)


def source_text() -> tuple[str, str]:
    """(a real-size Python module, where it came from)."""
    purelib = Path(sysconfig.get_paths()["purelib"])
    path = purelib / "httpx" / "_client.py"
    try:
        return path.read_text(encoding="utf-8"), "httpx/_client.py"
    except OSError:
        return python_source(60_000), "standard-library modules"


class Editor:
    """The document as the client has it, and the edits and completions it sends."""

    def __init__(self, client: BenchClient, uri: str, text: str, rng: random.Random) -> None:
        self.client = client
        self.uri = uri
        self.text = text
        self.size = len(text)
        self.rng = rng
        self.version = 1
        self.ids = 0

    def position(self, offset: int) -> types.Position:
        line = self.text.count("\n", 0, offset)
        return types.Position(line=line, character=offset - (self.text.rfind("\n", 0, offset) + 1))

    def line_col(self, offset: int) -> tuple[int, int]:
        pos = self.position(offset)
        return pos.line, pos.character

    def random_offset(self) -> int:
        """A random position, mostly at the end of a line (where completions are asked for)."""
        offset = self.rng.randrange(len(self.text))
        if self.rng.random() < 0.7:
            end = self.text.find("\n", offset)
            offset = end if end >= 0 else len(self.text)
        return offset

    def edit(self) -> None:
        """One ``didChange``: insert a snippet or delete a few characters at a random spot;
        deletions win while the file is larger than it started."""
        start = self.random_offset()
        if len(self.text) > self.size or self.rng.random() < 0.4:
            end = min(len(self.text), start + self.rng.randint(1, 24))
            new = ""
        else:
            end, new = start, self.rng.choice(SNIPPETS)
        change = types.TextDocumentContentChangePartial(
            range=types.Range(start=self.position(start), end=self.position(end)), text=new
        )
        self.text = self.text[:start] + new + self.text[end:]
        self.version += 1
        self.client.client.text_document_did_change(
            types.DidChangeTextDocumentParams(
                text_document=types.VersionedTextDocumentIdentifier(
                    uri=self.uri, version=self.version
                ),
                content_changes=[change],
            )
        )

    def complete(self) -> tuple[str, asyncio.Future[Any]]:
        """Send an inline completion at a random position; (its id, the response future)."""
        self.ids += 1
        msg_id = f"soak-{self.ids}"
        pos = self.position(self.random_offset())
        params = BenchClient.inline_params(self.uri, pos.line, pos.character)
        fut = asyncio.ensure_future(
            self.client.request(types.TEXT_DOCUMENT_INLINE_COMPLETION, params, msg_id)
        )
        return msg_id, fut


def _mib(kib: int) -> float:
    return round(kib / 1024, 1)


async def _mixed(
    ed: Editor, n_ops: int, gap_s: float, pid: int, rss: list[int]
) -> tuple[Counter[str], list[str], list[asyncio.Future[Any]]]:
    """Run ``n_ops`` operations open loop; RSS is sampled after each one."""
    rng = ed.rng
    ops: Counter[str] = Counter()
    ids: list[str] = []
    futures: list[asyncio.Future[Any]] = []
    cancels: list[asyncio.Task[None]] = []

    async def cancel_later(msg_id: str, delay: float) -> None:
        await asyncio.sleep(delay)
        ed.client.cancel(msg_id)

    for _ in range(n_ops):
        if rng.random() < COMPLETION_SHARE:
            msg_id, fut = ed.complete()
            ids.append(msg_id)
            futures.append(fut)
            ops["completion"] += 1
            if rng.random() < CANCEL_SHARE:
                ops["cancelled"] += 1
                cancels.append(
                    asyncio.ensure_future(cancel_later(msg_id, rng.uniform(0, CANCEL_MAX_S)))
                )
        else:
            ed.edit()
            ops["edit"] += 1
        await asyncio.sleep(rng.uniform(0, 2 * gap_s))
        rss.append(proc_status_kib(pid, "VmRSS"))
    await asyncio.gather(*cancels)
    return ops, ids, futures


async def _settle(
    c: BenchClient, futures: list[asyncio.Future[Any]], timeout: float
) -> Counter[str]:
    """Wait for every response and the worker to be idle; outcomes by kind."""
    outcomes: Counter[str] = Counter()
    if futures:
        done, pending = await asyncio.wait(futures, timeout=timeout)
        outcomes["no answer"] += len(pending)
        for fut in done:
            exc = fut.exception()
            if exc is None:
                outcomes["answered"] += 1
            else:
                code = getattr(exc, "code", None)
                outcomes["cancelled (-32800)" if code == -32800 else f"error {code}"] += 1
    await c.wait_idle(timeout)
    return outcomes


def run(ctx: BenchContext) -> dict[str, Any]:
    return asyncio.run(_run(ctx))


async def _run(ctx: BenchContext) -> dict[str, Any]:
    if ctx.model:
        model, backend = ctx.model, ctx.backend or ""
    elif ctx.quick:
        model, backend = str(tiny_model(ctx.cache_dir, ctx.model_size)), "transformers"
    else:
        model, backend = "", ctx.backend or ""  # the embedded default, backend "auto"
    n_ops = 300 if ctx.quick else 2000
    n_warm = 40 if ctx.quick else 100
    n_fill = 2 if ctx.quick else 6
    gap_s = 0.02 if ctx.quick else 0.1
    idle_s = 3.0 if ctx.quick else 15.0
    rng = random.Random(ctx.seed + 14)
    text, origin = source_text()
    root = ctx.work_dir / "soak-ws"
    root.mkdir(parents=True, exist_ok=True)
    path = root / "client.py"
    path.write_text(text)
    env = ctx.xdg_env()
    env["XDG_CACHE_HOME"] = str(ctx.work_dir / "xdg-cache")
    settings: dict[str, Any] = {"maxNewTokens": 16 if ctx.quick else 32}
    args = server_args(model, backend, ctx.device, settings=settings)
    ctx.say(f"soak: {n_ops} mixed operations on {origin} ({len(text)} chars)")
    async with start_client(root, args, init_options=settings, env=env) as c:
        counts = _count_responses(c)
        pid = client_server_pid(c)
        if pid is None:
            raise RuntimeError("no server pid")
        uri = c.open(path, text)
        ed = Editor(c, uri, text, rng)
        # Warm-up: whole completions at far-apart positions (like visiting a few files) fill
        # llama.cpp's bounded prompt cache (promptCacheMib), then a short mixed run.
        for i in range(n_fill):
            await c.inline(uri, *ed.line_col(len(text) * (2 * i + 1) // (2 * n_fill)))
        warm: list[int] = []
        _, warm_ids, warm_futs = await _mixed(ed, n_warm, gap_s, pid, warm)
        await _settle(c, warm_futs, 120)
        await asyncio.sleep(1.0)
        start_kib = proc_status_kib(pid, "VmRSS")
        rss: list[int] = []
        t0 = time.perf_counter()
        ops, ids, futures = await _mixed(ed, n_ops, gap_s, pid, rss)
        mixed_s = time.perf_counter() - t0
        outcomes = await _settle(c, futures, 300)
        end_kib = proc_status_kib(pid, "VmRSS")
        await asyncio.sleep(idle_s)
        idle_kib = proc_status_kib(pid, "VmRSS")
        st = await c.status()
        hwm_kib = proc_status_kib(pid, "VmHWM")
        await asyncio.sleep(0.3)  # late duplicates would arrive now
    all_ids = warm_ids + ids
    once = sum(1 for i in all_ids if counts[i] == 1)
    start, peak = _mib(start_kib), _mib(max([start_kib, end_kib, *rss]))
    end, idle = _mib(end_kib), _mib(idle_kib)
    growth = round(end - start, 1)
    after_idle = round(idle - start, 1)
    step = max(1, len(rss) // 100)
    result: dict[str, Any] = {
        "source": origin,
        "document_chars": len(text),
        "backend": st.get("backend"),
        "model": st.get("model"),
        "operations": n_ops,
        "warmup_operations": n_warm,
        "warmup_whole_completions": n_fill,
        "ops": dict(ops),
        "outcomes": dict(outcomes),
        "mixed_seconds": round(mixed_s, 1),
        "idle_seconds": idle_s,
        "rss_mib": {"start": start, "peak": peak, "end": end, "after_idle": idle},
        "rss_warmup_mib": {"first": _mib(warm[0]) if warm else 0.0, "start": start},
        "vm_hwm_mib": _mib(hwm_kib),
        "growth_mib": growth,
        "after_idle_vs_start_mib": after_idle,
        "rss_timeline_mib": [_mib(v) for v in rss[::step]],
        "timeline_every_ops": step,
        "per_op_rss": summary([v / 1024 for v in rss], 1),
        "answered_exactly_once": once,
        "requests": len(all_ids),
        "method": "server VmRSS after every operation of a seeded open-loop mix "
        f"({COMPLETION_SHARE:.0%} inline completions, {CANCEL_SHARE:.0%} of them cancelled at "
        f"0-{CANCEL_MAX_S * 1000:.0f} ms; the rest didChange edits at random positions); start "
        f"after {n_warm} warm-up operations and the worker idle, end after every answer, "
        f"then {idle_s:.0f} s idle",
    }
    met = growth <= GOAL_MIB and after_idle <= GOAL_MIB
    result["goals"] = [
        goal(
            "RSS end - start after warm-up (MiB)",
            growth,
            f"<= {GOAL_MIB:.0f}",
            met,
            f"end - start <= {GOAL_MIB:.0f} MiB after warm-up, and back to that level after "
            f"idle ({after_idle} MiB after {idle_s:.0f} s)",
        ),
        goal(
            "requests answered exactly once",
            round(once / len(all_ids), 3) if all_ids else None,
            "1.0",
            once == len(all_ids) if all_ids else None,
        ),
    ]
    result["table"] = [
        ("RSS MiB start/peak/end/idle", f"{start}/{peak}/{end}/{idle}"),
        (
            "ops completion/cancelled/edit",
            "{}/{}/{}".format(*(ops[k] for k in ("completion", "cancelled", "edit"))),
        ),
    ]
    return result
