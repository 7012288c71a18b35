"""Local acceptance statistics: shown / displayed / accepted / retained, per language and trigger.

Kept in memory and in a small JSON file under the user cache dir. Never sent anywhere.

What is counted where (the field names on the wire are in :meth:`Bucket.to_wire`):

- ``shown`` (unchanged since schema 1): the server answered a completion request with at least
  one suggestion (counted in the completion handler); ``meanLatencyMs`` is over these answers.
  It counts what was *offered*, so it over-counts what the user saw: an answer can arrive after
  the user typed on, or a client can keep it hidden.
- ``displayed``: answers of which the client reported a suggestion on screen, with the
  ``lspLlm/didShow`` notification (``{"id": ...}``; the bundled VS Code and Neovim integrations
  send it). Counted once per answer, however many of its suggestions are cycled through.
  ``displayedAcceptanceRate`` is full accepts of displayed answers over ``displayed``; for
  clients that never send ``didShow`` it stays 0 and ``acceptanceRate`` (accepted / shown) is
  the rate to read.
- ``accepted`` / ``partiallyAccepted``: the accept command (``lspLlm.didAccept``) with kind
  ``full`` (or no kind: old clients), or ``word`` / ``line`` (a partial accept, which keeps the
  suggestion pending so a later full accept of the rest still counts).
- ``acceptedChars`` / ``retainedChars`` / ``retentionRate``: for every accept (full or partial)
  whose text and place are known, how many of its characters are still in the document a while
  later (30 s by default; :func:`retained_chars`). That is Copilot's retention metric, kept
  local. An accept whose document was closed before the check (or whose text or place the
  server does not know) is counted in ``retentionUnknown`` and not in the character counts,
  so the rate is over measured accepts only.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import logging
import os
import sys
import tempfile
import time
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from lsp_llm.config import cache_dir

log = logging.getLogger(__name__)
SCHEMA = 1
"""Fields added since (displayed, retention) load as 0 from an older file, and older versions
ignore them, so the schema number stays."""

AcceptKind = Literal["full", "word", "line", "partial"]
"""``partial``: an old client's ``{"partial": true}`` (a partial accept of unknown extent)."""

MAX_PENDING = 5000
"""Suggestions remembered for a later didShow / accept (oldest forgotten first)."""

RETENTION_MIN_BLOCK = 3
"""Matching runs shorter than this do not count as retained (a lone space or bracket matches
anywhere); a whole accepted text shorter than this counts when it is found intact."""
RETENTION_CONTEXT = 32
"""Characters of the document remembered either side of an accepted text, to find its place
again after edits elsewhere."""
RETENTION_SHORT_CONTEXT = 8
"""...and the part of it next to the text that is tried when the whole context was edited."""
RETENTION_SLACK = 200
"""Characters either side of the accepted text's place that the retention check searches."""
RETENTION_MAX_SHIFT = 4000
"""At most this much more is searched when the document grew or shrank meanwhile (edits above
the insertion point move it by up to that many characters)."""


@dataclasses.dataclass
class Bucket:
    shown: int = 0
    accepted: int = 0
    partially_accepted: int = 0
    latency_ms_total: float = 0.0
    displayed: int = 0
    accepted_displayed: int = 0
    accepted_chars: int = 0
    retained_chars: int = 0
    retention_unknown: int = 0

    def add(self, other: Bucket) -> None:
        for field in dataclasses.fields(self):
            setattr(self, field.name, getattr(self, field.name) + getattr(other, field.name))

    def to_wire(self) -> dict[str, Any]:
        return {
            "shown": self.shown,
            "accepted": self.accepted,
            "partiallyAccepted": self.partially_accepted,
            "acceptanceRate": round(self.accepted / self.shown, 4) if self.shown else 0.0,
            "meanLatencyMs": round(self.latency_ms_total / self.shown, 1) if self.shown else 0.0,
            "displayed": self.displayed,
            "displayedAcceptanceRate": (
                round(self.accepted_displayed / self.displayed, 4) if self.displayed else 0.0
            ),
            "acceptedChars": self.accepted_chars,
            "retainedChars": self.retained_chars,
            "retentionRate": (
                round(self.retained_chars / self.accepted_chars, 4) if self.accepted_chars else 0.0
            ),
            "retentionUnknown": self.retention_unknown,
        }


@dataclasses.dataclass
class _Answer:
    """One completion answer (its suggestions share it): displayed at most once."""

    displayed: bool = False


@dataclasses.dataclass
class _Offer:
    """A suggestion the server handed out, remembered until it is fully accepted."""

    key: str
    answer: _Answer
    uri: str | None = None
    position: tuple[int, int] | None = None
    """(line, character) in the client's position encoding, where the text goes."""
    text: str | None = None
    accepted_prefix: str = ""
    """What partial accepts have taken of ``text`` so far."""


@dataclasses.dataclass(frozen=True)
class AcceptedChunk:
    """What one accept put into a document, for the retention check.

    ``uri``/``position``/``text`` are None where neither the client nor the offer says.
    ``shift`` is the number of characters (Python str units) to add to the offset of
    ``position``: a full accept after partial ones places the rest after what they took."""

    key: str
    uri: str | None
    position: tuple[int, int] | None
    text: str | None
    shift: int = 0

    @property
    def measurable(self) -> bool:
        return bool(self.uri) and self.position is not None and bool(self.text)


@dataclasses.dataclass(frozen=True)
class Placement:
    """Where an accepted text went into a document: the offset, and the document text just
    before and after it then (its place is found by these again later)."""

    text: str
    anchor: int
    before: str
    after: str
    length: int
    """The document's length with the text in it."""


def place_accepted(text: str, source: str, anchor: int) -> Placement:
    """Remember where ``text`` was inserted at ``anchor`` of ``source``. ``source`` may
    already hold it there (the usual case: the client applied the edit, then sent the accept)
    or not yet (the edit's ``didChange`` is still on its way)."""
    anchor = max(0, min(anchor, len(source)))
    applied = source.startswith(text, anchor)
    end = anchor + len(text) if applied else anchor
    return Placement(
        text=text,
        anchor=anchor,
        before=source[max(0, anchor - RETENTION_CONTEXT) : anchor],
        after=source[end : end + RETENTION_CONTEXT],
        length=len(source) if applied else len(source) + len(text),
    )


def _nearest(source: str, needle: str, target: int, lo: int, hi: int) -> int | None:
    """The start of the occurrence of ``needle`` in ``source[lo:hi]`` nearest ``target``."""
    best: int | None = None
    at = source.find(needle, lo, hi)
    while at != -1:
        if best is None or abs(at - target) < abs(best - target):
            best = at
        at = source.find(needle, at + 1, hi)
    return best


def _contexts(context: str, *, tail: bool) -> list[str]:
    """The remembered context, then its part next to the text (an edit a few characters away
    leaves that part intact)."""
    short = context[-RETENTION_SHORT_CONTEXT:] if tail else context[:RETENTION_SHORT_CONTEXT]
    return [c for c in dict.fromkeys((context, short)) if c]


def retained_chars(placement: Placement, source: str) -> int:
    """How many characters of an accepted text are still in ``source`` at its place.

    Bounded: only ``RETENTION_SLACK`` characters either side of the place are looked at,
    widened by how much the document grew or shrank since (capped at ``RETENTION_MAX_SHIFT``),
    because edits above the insertion point move it. Within that, the text's place is between
    the nearest occurrences of the context remembered before and after it (or of the few
    characters of it next to the text); where the user edited a context away, the place
    extends ``RETENTION_SLACK`` from the other one. Retained = the characters of the accepted
    text in matching runs (difflib's longest-common-substring recursion) of at least
    ``RETENTION_MIN_BLOCK`` characters: an edit inside the text costs what it changed, and a
    deleted text does not score by matching stray spaces nearby."""
    text = placement.text
    if not text:
        return 0
    delta = len(source) - placement.length
    bound = RETENTION_SLACK + min(abs(delta), RETENTION_MAX_SHIFT)
    anchor = placement.anchor
    lo = max(0, anchor - bound)
    hi = min(len(source), anchor + len(text) + bound)
    start: int | None = None
    for before in _contexts(placement.before, tail=True):
        at = _nearest(source, before, anchor - len(before), lo, hi)
        if at is not None:
            start = at + len(before)
            break
    end: int | None = None
    for after in _contexts(placement.after, tail=False):
        from_ = lo if start is None else start
        expected = (anchor if start is None else start) + len(text)
        end = _nearest(source, after, expected, from_, hi + len(after))
        if end is not None:
            break
    if start is not None and end is not None:
        region = source[start:end]
    elif start is not None:
        region = source[start : min(len(source), start + len(text) + RETENTION_SLACK)]
    elif end is not None:
        region = source[max(0, end - len(text) - RETENTION_SLACK) : end]
    else:
        region = source[lo:hi]
    if text in region:
        return len(text)
    matcher = difflib.SequenceMatcher(None, region, text, autojunk=False)
    minimum = min(RETENTION_MIN_BLOCK, len(text))
    kept = sum(m.size for m in matcher.get_matching_blocks() if m.size >= minimum)
    return min(kept, len(text))


class AcceptanceStats:
    """Counts keyed by ``language/trigger``. Saves at most once every few seconds."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.buckets: dict[str, Bucket] = {}
        self._pending: OrderedDict[str, _Offer] = OrderedDict()  # suggestion id -> offer
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
                    displayed=int(value.get("displayed", 0)),
                    accepted_displayed=int(value.get("accepted_displayed", 0)),
                    accepted_chars=int(value.get("accepted_chars", 0)),
                    retained_chars=int(value.get("retained_chars", 0)),
                    retention_unknown=int(value.get("retention_unknown", 0)),
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

    def shown(
        self,
        language: str,
        trigger: str,
        ids: list[str],
        spans: dict[str, float],
        *,
        uri: str | None = None,
        position: tuple[int, int] | None = None,
        texts: Sequence[str] | None = None,
    ) -> None:
        """An answer with suggestions ``ids`` went to the client. ``uri``, ``position`` (where
        the suggestions would be inserted) and ``texts`` (one per id) let a later accept that
        names only the id be checked for retention."""
        key = f"{language}/{trigger}"
        bucket = self.buckets.setdefault(key, Bucket())
        bucket.shown += 1
        bucket.latency_ms_total += float(spans.get("total", 0.0))
        answer = _Answer()
        for i, sid in enumerate(ids):
            text = texts[i] if texts is not None and i < len(texts) else None
            self._pending[str(sid)] = _Offer(key, answer, uri, position, text)
        while len(self._pending) > MAX_PENDING:
            self._pending.popitem(last=False)
        self.save()

    def did_show(self, suggestion_id: str) -> bool:
        """The client displayed this suggestion. Counts its answer once; False when the id is
        unknown (forgotten, or from another server)."""
        offer = self._pending.get(str(suggestion_id))
        if offer is None:
            return False
        if not offer.answer.displayed:
            offer.answer.displayed = True
            self.buckets.setdefault(offer.key, Bucket()).displayed += 1
            self.save()
        return True

    def accept(
        self,
        suggestion_id: str,
        *,
        kind: AcceptKind = "full",
        text: str | None = None,
        uri: str | None = None,
        position: tuple[int, int] | None = None,
    ) -> AcceptedChunk | None:
        """Count an accept and say what it inserted (for :meth:`retention`), or None when the
        id is unknown. ``text``/``uri``/``position`` are what the client reports; missing ones
        come from the offer. A partial accept (``word``, ``line``, ``partial``) keeps the
        suggestion pending so a later full accept of the rest still counts; that full accept,
        when the client does not say what it inserted, inserted the rest of the text."""
        sid = str(suggestion_id)
        offer = self._pending.get(sid)
        if offer is None:
            return None
        bucket = self.buckets.setdefault(offer.key, Bucket())
        prefix = offer.accepted_prefix
        continues = (
            offer.text is not None
            and offer.text.startswith(prefix)
            and (text is None or offer.text.startswith(prefix + text))
        )
        if kind == "full":
            del self._pending[sid]
            bucket.accepted += 1
            if offer.answer.displayed:
                bucket.accepted_displayed += 1
            if text is None and offer.text is not None:
                text = offer.text[len(prefix) :] if continues else offer.text
        else:
            bucket.partially_accepted += 1
            if continues and text is not None:
                offer.accepted_prefix += text
        # Where the client does not say, the text went in after what earlier partial accepts
        # of this suggestion took (empty for the first accept).
        shift = len(prefix) if position is None and continues and text != offer.text else 0
        self.save(force=True)
        return AcceptedChunk(
            key=offer.key,
            uri=uri or offer.uri,
            position=position if position is not None else offer.position,
            text=text,
            shift=shift,
        )

    def accepted(self, suggestion_id: str, *, partial: bool = False) -> bool:
        """Count an acceptance (see :meth:`accept`); True when the id was known."""
        chunk = self.accept(suggestion_id, kind="partial" if partial else "full")
        return chunk is not None

    def retention(self, key: str, accepted_chars: int, retained: int | None) -> None:
        """Record a retention check: ``retained`` of ``accepted_chars`` characters still there,
        or None when it could not be measured (document closed)."""
        bucket = self.buckets.setdefault(key, Bucket())
        if retained is None:
            bucket.retention_unknown += 1
        else:
            bucket.accepted_chars += accepted_chars
            bucket.retained_chars += min(retained, accepted_chars)
        self.save(force=True)

    def summary(self) -> dict[str, Any]:
        total = Bucket()
        for b in self.buckets.values():
            total.add(b)
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
    print(
        f"{'language/trigger':28} {'shown':>7} {'accepted':>9} {'rate':>7} {'latency':>9} "
        f"{'displayed':>9} {'partial':>7} {'retained':>8}"
    )
    named = [(f"{r['language']}/{r['trigger']}", r) for r in rows]
    for key, row in [*named, ("total", summary["total"])]:
        # retained: share of accepted characters still there after the delay ("-": none measured)
        retained = f"{row['retentionRate'] * 100:7.1f}%" if row["acceptedChars"] else f"{'-':>8}"
        print(
            f"{key:28} {row['shown']:7d} {row['accepted']:9d} "
            f"{row['acceptanceRate'] * 100:6.1f}% {row['meanLatencyMs']:7.0f}ms "
            f"{row['displayed']:9d} {row['partiallyAccepted']:7d} {retained}"
        )
    sys.stdout.flush()
    return 0
