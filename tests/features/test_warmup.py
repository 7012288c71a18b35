"""Idle warm-up (issue #15, item 4): prefill a cursor's prompt while idle, generate nothing.

A real engine with the tiny transformers model and its prefix cache: after
:meth:`CompletionService.warm` the first completion at that cursor computes only the prompt's
tail, and real work that arrives while a warm-up is queued or running cancels it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from lsp_llm.config import Settings
from lsp_llm.engine.worker import Engine
from lsp_llm.features.completion import CompletionService, DocumentSnapshot

BODY = "".join(
    f"def helper_{i}(value):\n    result = value * {i} + {i * 7}\n    return result\n\n\n"
    for i in range(24)
)
TEXT = BODY + "def main():\n    total = 0\n    for i in range(10):\n        total += \n"
CURSOR = len(TEXT) - 1


@pytest.fixture(scope="module")
def engine(tiny_model_dir: Path) -> Iterator[Engine]:
    eng = Engine(Settings(model=str(tiny_model_dir), backend="transformers", device="cpu"))
    eng.start()
    deadline = time.monotonic() + 120
    while eng.status.state != "ready":
        assert eng.status.state != "error", eng.status.message
        assert time.monotonic() < deadline
        time.sleep(0.05)
    yield eng
    eng.shutdown()


def settings() -> Settings:
    return Settings(
        max_new_tokens=8,
        adaptive_debounce="off",
        time_budget_ms=0,
        accept_ahead=False,
        completion_cache=False,
    )


def snap(name: str, text: str) -> DocumentSnapshot:
    return DocumentSnapshot(
        uri=f"file:///w/{name}", path=name, language="python", version=1, text=text
    )


async def idle(engine: Engine) -> None:
    for _ in range(1200):
        status = engine.status
        if not status.busy and not status.queue_depth:
            return
        await asyncio.sleep(0.05)
    raise TimeoutError("engine not idle")


async def test_first_completion_after_warmup_prefills_only_the_tail(engine: Engine) -> None:
    service = CompletionService(engine, session_key="warm")
    cold = await service.complete(
        snap("cold.py", "x = 1\n" + TEXT), CURSOR + 6, settings=settings()
    )
    assert cold.spans["prefillTokens"] >= cold.spans["promptTokens"] * 0.9, cold.spans

    doc = snap("warm.py", TEXT)
    await idle(engine)
    before = engine.status.last
    assert service.warm(doc, CURSOR, settings=settings())
    await idle(engine)
    assert engine.status.last == before, "a warm-up never shows as the last request"
    outcome = await service.complete(doc, CURSOR, settings=settings())
    assert outcome.source == "model"
    prompt, prefill = outcome.spans["promptTokens"], outcome.spans["prefillTokens"]
    assert prompt > 200 and prefill <= 4, outcome.spans


async def test_real_work_cancels_a_warmup(engine: Engine) -> None:
    service = CompletionService(engine, session_key="cancel")
    other = snap("other.py", TEXT.replace("helper", "tool"))
    await idle(engine)
    assert service.warm(other, CURSOR, settings=settings())
    warming = service._warming
    assert warming is not None
    outcome = await service.complete(snap("real.py", TEXT), CURSOR, settings=settings())
    assert outcome.source == "model"
    assert warming.cancel.cancelled and warming.cancel.reason == "real work arrived"


async def test_no_warmup_while_busy_or_one_shot(engine: Engine) -> None:
    assert not CompletionService(engine).warm(snap("cli.py", TEXT), CURSOR, settings=settings())
    service = CompletionService(engine, session_key="busy")
    task = asyncio.ensure_future(
        service.complete(snap("busy.py", TEXT), CURSOR, settings=settings(), trigger="invoked")
    )
    for _ in range(400):
        if engine.status.busy:
            break
        await asyncio.sleep(0.005)
    assert not service.warm(snap("busy2.py", TEXT), CURSOR, settings=settings())
    await task
