"""Local acceptance statistics: shown / accepted / latency per language and trigger.

Kept in memory and in a small JSON file under the user cache dir. Never sent anywhere.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import sys
import tempfile
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any

from lsp_llm.config import cache_dir

log = logging.getLogger(__name__)
SCHEMA = 1


@dataclasses.dataclass
class Bucket:
    shown: int = 0
    accepted: int = 0
    partially_accepted: int = 0
    latency_ms_total: float = 0.0

    def to_wire(self) -> dict[str, Any]:
        return {
            "shown": self.shown,
            "accepted": self.accepted,
            "partiallyAccepted": self.partially_accepted,
            "acceptanceRate": round(self.accepted / self.shown, 4) if self.shown else 0.0,
            "meanLatencyMs": round(self.latency_ms_total / self.shown, 1) if self.shown else 0.0,
        }


class AcceptanceStats:
    """Counts keyed by ``language/trigger``. Saves at most once every few seconds."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.buckets: dict[str, Bucket] = {}
        self._pending: OrderedDict[str, str] = OrderedDict()  # suggestion id -> bucket key
        self._last_save = 0.0
        if path is not None:
            self._load()

    @classmethod
    def load_default(cls) -> AcceptanceStats:
        return cls(cache_dir() / "stats.json")

    def _load(self) -> None:
        assert self.path is not None
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            if data.get("schema") != SCHEMA:
                raise ValueError("old schema")
            for key, value in data.get("buckets", {}).items():
                self.buckets[key] = Bucket(
                    shown=int(value["shown"]),
                    accepted=int(value["accepted"]),
                    partially_accepted=int(value.get("partially_accepted", 0)),
                    latency_ms_total=float(value["latency_ms_total"]),
                )
        except FileNotFoundError:
            pass
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("acceptance stats in %s unreadable (%s); starting fresh", self.path, exc)
            self.buckets = {}

    def save(self, force: bool = False) -> None:
        if self.path is None:
            return
        now = time.monotonic()
        if not force and now - self._last_save < 2.0:
            return
        self._last_save = now
        data = {
            "schema": SCHEMA,
            "buckets": {k: dataclasses.asdict(v) for k, v in self.buckets.items()},
        }
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".stats-")
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(data, fh)
            os.replace(tmp, self.path)
        except OSError as exc:
            log.warning("cannot save acceptance stats to %s: %s", self.path, exc)

    def shown(self, language: str, trigger: str, ids: list[str], spans: dict[str, float]) -> None:
        key = f"{language}/{trigger}"
        bucket = self.buckets.setdefault(key, Bucket())
        bucket.shown += 1
        bucket.latency_ms_total += float(spans.get("total", 0.0))
        for sid in ids:
            self._pending[sid] = key
        while len(self._pending) > 5000:
            self._pending.popitem(last=False)
        self.save()

    def accepted(self, suggestion_id: str, *, partial: bool = False) -> bool:
        """Count an acceptance. A partial one (a word or line of the suggestion, where the
        client reports it) keeps the suggestion pending so a later full accept still counts."""
        key = self._pending.get(str(suggestion_id))
        if key is None:
            return False
        bucket = self.buckets.setdefault(key, Bucket())
        if partial:
            bucket.partially_accepted += 1
        else:
            del self._pending[str(suggestion_id)]
            bucket.accepted += 1
        self.save(force=True)
        return True

    def summary(self) -> dict[str, Any]:
        total = Bucket()
        for b in self.buckets.values():
            total.shown += b.shown
            total.accepted += b.accepted
            total.latency_ms_total += b.latency_ms_total
        return {
            "total": total.to_wire(),
            "byLanguageTrigger": [
                {"language": k.split("/")[0], "trigger": k.split("/")[-1], **v.to_wire()}
                for k, v in sorted(self.buckets.items())
            ],
            "file": str(self.path) if self.path else None,
        }


def run_stats(*, as_json: bool, reset: bool) -> int:
    stats = AcceptanceStats.load_default()
    if reset:
        stats.buckets = {}
        stats.save(force=True)
    summary = stats.summary()
    if as_json:
        print(json.dumps(summary, indent=2))
        return 0
    rows = summary["byLanguageTrigger"]
    if not rows:
        print("no suggestions recorded yet (stats file: {})".format(summary["file"]))
        return 0
    print(f"{'language/trigger':28} {'shown':>7} {'accepted':>9} {'rate':>7} {'latency':>9}")
    named = [(f"{r['language']}/{r['trigger']}", r) for r in rows]
    for key, row in [*named, ("total", summary["total"])]:
        print(
            f"{key:28} {row['shown']:7d} {row['accepted']:9d} "
            f"{row['acceptanceRate'] * 100:6.1f}% {row['meanLatencyMs']:7.0f}ms"
        )
    sys.stdout.flush()
    return 0
