"""Keeping long-lived objects out of the cyclic garbage collector's way.

A warm server holds hundreds of thousands of long-lived objects (torch, transformers, the
tokenizer and model; a workspace index's symbols and chunks). Every full collection walks all
of them: 100-300 ms on two busy cores, and the one that lands during a completion or an index
update is that request's latency. :func:`settle` collects once and moves what survives to the
permanent generation (``gc.freeze``), so later collections only look at objects created since.
Called after a model load and after an index is built; each call first unfreezes, so what a
replaced model or index left behind is still freed.
"""

from __future__ import annotations

import gc
import logging
import threading
import time

log = logging.getLogger(__name__)

_lock = threading.Lock()


def settle(reason: str) -> None:
    """Collect, then freeze the survivors (blocking: ~0.1-0.3 s in a loaded process)."""
    with _lock:
        t0 = time.perf_counter()
        gc.unfreeze()
        gc.collect()
        gc.freeze()
        log.info(
            "after %s: froze %d long-lived objects in %.0f ms",
            reason,
            gc.get_freeze_count(),
            (time.perf_counter() - t0) * 1000,
        )
