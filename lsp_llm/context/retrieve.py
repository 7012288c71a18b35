"""Snippets of other files for a cursor: definitions, similar windows, recent edits.

Everything here is pure: :class:`IndexSnapshot` is an immutable value (its maps are never
mutated after construction; :meth:`IndexSnapshot.apply` returns a new snapshot that shares the
untouched parts), and :func:`retrieve` reads one snapshot and nothing else.

Ranking, for a cursor at ``offset`` in ``text`` (the current file, ``rel``):

(a) **definitions**: identifiers in the lines around the cursor (nearest weigh most) that are
    not defined in the current file are looked up by name in the symbol table. Names imported by
    the current file, and definitions in files whose path matches an import, score higher;
    a name with many unrelated definitions is used only when an import disambiguates it.
(b) **similar windows**: BM25 over identifier tokens, the ~30 lines before the cursor being
    the query and the ~30-line chunks of the other files the documents (Copilot's
    neighbouring-tab idea, over the whole workspace). Files are first ranked through an
    inverted index (token -> files; document frequencies per file), then the chunks of the
    best :data:`MAX_CANDIDATE_FILES` are scored; their token counts are computed on first use
    and cached for recent files only, so memory does not grow with per-chunk statistics.
(c) **recent edits**: windows of recently edited files get a boost that decays over
    :data:`RECENT_HALF_LIFE_S`, and are labelled ``"recent"``.

Packing: definitions first (up to :data:`DEFINITION_SHARE` of the budget), then windows, then
any definitions left over, each counted with ``count(path + "\\n" + text + "\\n")``. No two
snippets of one file overlap, the current file never contributes, and identical texts appear
once. The result is ordered for prompt stability, not by score: definitions, then the windows,
each group sorted by path and line, so that consecutive prompts share a long prefix.
"""

from __future__ import annotations

import bisect
import dataclasses
import math
import operator
import re
import sys
import threading
import time
from collections import Counter, OrderedDict, defaultdict
from collections.abc import Callable, Iterable, Mapping

from lsp_llm.config import Settings
from lsp_llm.context.parse import Symbol, split_lines
from lsp_llm.context.store import FileEntry
from lsp_llm.context.types import ContextSnippet, SnippetSource

QUERY_LINES = 30
"""Lines before the cursor that form the similarity query."""
NEAR_LINES_BEFORE = 12
NEAR_LINES_AFTER = 3
"""Lines around the cursor whose identifiers are looked up as definitions."""
MAX_DEFINITIONS = 8
MAX_SIMILAR = 4
MAX_DEFS_PER_NAME = 2
AMBIGUOUS_NAME = 4
"""A name defined in more files than this is used only when an import points at one of them."""
DEFINITION_SHARE = 0.6
DEF_FULL_LINES = 25
"""Definitions up to this many lines are shown whole; longer ones as an outline."""
DEF_HEAD_LINES = 10
MIN_SIMILARITY = 0.12
"""Normalised BM25 score below which a window is not worth its tokens."""
MAX_CANDIDATE_FILES = 40
BM25_K1 = 1.2
BM25_B = 0.75
RECENT_BOOST = 0.5
RECENT_HALF_LIFE_S = 600.0

_IDENT_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_IMPORT_LINE_RE = re.compile(
    r"^[ \t]*(?:import|from|use|using|extern[ \t]+crate|#[ \t]*include|export[ \t].*from)\b.*$"
    r"|^.*\brequire[ \t]*\(.*$",
    re.MULTILINE,
)

_STOPWORD_TEXT = """
    abstract and as assert async await auto bool boolean break byte case catch char class const
    constexpr continue crate def default defer del delete do double dyn elif else enum except
    export extends extern false final finally float fn for from func function global go goto if
    impl implements import in inline instanceof int interface is lambda let long loop match mod
    module mut namespace new nil none None nonlocal not null of or override package pass private
    protected pub public raise ref register return self Self short signed sizeof static str
    string struct super switch synchronized template this throw throws trait true True False try
    type typedef typename typeof uint union unsafe unsigned use using var virtual void volatile
    where while with yield u8 u16 u32 u64 i8 i16 i32 i64 f32 f64 usize isize args kwargs
    """
STOPWORDS: frozenset[str] = frozenset(_STOPWORD_TEXT.split())

_LOCAL_RE = re.compile(
    r"(?<![\w.])([A-Za-z_]\w*)[ \t]*:?=(?!=)"  # x = ..., key=value, x := ...
    r"|\b(?:let|const|var|mut|auto|for)[ \t]+([A-Za-z_]\w*)"
    r"|\b(?:def|class|function|fn|func|struct|interface|enum|trait|type)[ \t]+([A-Za-z_]\w*)"
)
"""Names the current file defines or assigns (locals, keyword arguments): not looked up."""
_QUALIFIER_RE = re.compile(r"(?:\.|::|->)$")
_QUOTED_RE = re.compile(r"(\"|'|`)[^\n]*?\1")
_FROM_MODULE_RE = re.compile(r"^[ \t]*from[ \t]+[\w.]+", re.MULTILINE)


def tokens(text: str) -> list[str]:
    """Identifier tokens of a text (stopwords and one-letter names dropped)."""
    return [t for t in _IDENT_RE.findall(text) if len(t) > 1 and t not in STOPWORDS]


def default_token_count(text: str) -> int:
    """A tokenizer-free estimate (about four characters per token)."""
    return (len(text) + 3) // 4


def retrieval_budget(settings: Settings) -> int:
    """Tokens the prompt gives to retrieved snippets."""
    return int(settings.context_window * settings.retrieval_share) if settings.retrieval else 0


_MODULE_RE = re.compile(r"[A-Za-z_][\w-]*(?:(?:\.|::|/)[A-Za-z_][\w-]*)*")
_PACKAGE_FILES = frozenset({"__init__", "index", "mod", "lib", "main"})
_IMPORT_PREFIXES = frozenset({"crate", "self", "super"})


def module_segments(rel: str) -> tuple[str, ...]:
    """A file's path as module segments: ``pkg/geometry.py`` -> ``("pkg", "geometry")``;
    package files (``__init__.py``, ``index.ts``, ``mod.rs``) stand for their directory."""
    parts = rel.split("/")
    parts[-1] = parts[-1].split(".", 1)[0]
    if len(parts) > 1 and parts[-1] in _PACKAGE_FILES:
        parts.pop()
    return tuple(p for p in parts if p)


def import_paths(import_text: str) -> list[tuple[str, ...]]:
    """Module paths named by import statements, as segment tuples (``a.b``, ``a::b``, ``a/b``)."""
    out = []
    for match in _MODULE_RE.finditer(import_text):
        parts = [p for p in re.split(r"\.|::|/", match.group()) if p]
        while parts and parts[0] in _IMPORT_PREFIXES:
            parts.pop(0)
        if parts and not (len(parts) == 1 and parts[0] in STOPWORDS):
            out.append(tuple(parts))
    return out


def _common_suffix(a: tuple[str, ...], b: tuple[str, ...]) -> int:
    n = 0
    while n < len(a) and n < len(b) and a[-1 - n] == b[-1 - n]:
        n += 1
    return n


def module_match(segments: tuple[str, ...], imports: list[tuple[str, ...]]) -> int:
    """How many trailing module segments of a file an import names (0: none). The last segment
    of an import may be a name inside the module (``from a.b import c``), and a file may stand
    for its directory (Go packages)."""
    best = 0
    for path in imports:
        for candidate in (path, path[:-1]):
            if candidate:
                best = max(best, _common_suffix(segments, candidate))
                if len(segments) > 1:
                    best = max(best, _common_suffix(segments[:-1], candidate))
    return best


# -- per-file derived data and the snapshot -----------------------------------------------------


_ONE_LETTER: frozenset[str] = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_")


def vocabulary(text: str, *, intern: bool = True) -> frozenset[str]:
    """The distinct identifier tokens of a text, as :func:`tokens` finds them (interned unless
    ``intern`` is false: interning is per process, so worker processes skip it)."""
    words = set(_IDENT_RE.findall(text))
    words -= STOPWORDS
    words -= _ONE_LETTER
    return frozenset(map(sys.intern, words)) if intern else frozenset(words)


@dataclasses.dataclass(frozen=True, slots=True)
class FileData:
    """An entry plus what retrieval derives from it (computed once per file version)."""

    entry: FileEntry
    vocabulary: frozenset[str]
    segments: tuple[str, ...]
    """The file's module path (:func:`module_segments`)."""

    @classmethod
    def from_entry(cls, entry: FileEntry, words: frozenset[str] | None = None) -> FileData:
        """``words``: the entry's :func:`vocabulary` when already known (from a worker
        process: interned here)."""
        if entry.binary or not entry.chunks:
            words = frozenset()
        elif words is None:
            words = vocabulary(entry.text)
        else:
            words = frozenset(map(sys.intern, words))
        return cls(entry, words, module_segments(entry.rel))


class _ChunkStats:
    """Per-chunk token counts, computed when a file first becomes a similarity candidate and
    kept for the most recent files only (memory stays flat however large the workspace).
    Thread-safe; keyed by path and content digest, so a stale value is never used."""

    def __init__(self, capacity: int = 512) -> None:
        self.capacity = capacity
        self._cache: OrderedDict[tuple[str, bytes], tuple[tuple[Counter[str], ...], int]] = (
            OrderedDict()
        )
        self._lock = threading.Lock()

    def get(self, entry: FileEntry) -> tuple[tuple[Counter[str], ...], int]:
        """(token counts per chunk, total tokens over the chunks)."""
        key = (entry.rel, entry.digest)
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None:
                self._cache.move_to_end(key)
                return hit
        lines = split_lines(entry.text)
        counts = tuple(
            Counter(tokens("\n".join(lines[c.start_line : c.end_line]))) for c in entry.chunks
        )
        value = (counts, sum(c.total() for c in counts))
        with self._lock:
            self._cache[key] = value
            while len(self._cache) > self.capacity:
                self._cache.popitem(last=False)
        return value


CHUNK_STATS = _ChunkStats()


_symbol_key: Callable[[Symbol], tuple[str, int, str]] = operator.attrgetter(
    "path", "start_line", "name"
)


@dataclasses.dataclass(frozen=True)
class IndexSnapshot:
    """An immutable view of the whole index. Never mutate its maps; use :meth:`apply`."""

    files: Mapping[str, FileData]
    symbols: Mapping[str, tuple[Symbol, ...]]
    postings: Mapping[str, frozenset[str]]
    """token -> files containing it (its document frequency is the set's size)"""
    n_docs: int
    """Files with at least one token."""

    @classmethod
    def empty(cls) -> IndexSnapshot:
        return cls({}, {}, {}, 0)

    def apply(self, upserts: Mapping[str, FileData], removals: Iterable[str] = ()) -> IndexSnapshot:
        """A new snapshot with ``upserts`` added or replaced and ``removals`` gone."""
        gone = {rel for rel in removals if rel in self.files and rel not in upserts}
        replaced = [rel for rel in upserts if rel in self.files]
        if not gone and not upserts:
            return self
        files = dict(self.files)
        n_docs = self.n_docs
        posting_del: defaultdict[str, list[str]] = defaultdict(list)
        posting_add: defaultdict[str, list[str]] = defaultdict(list)
        old_names: set[str] = set()
        for rel in (*gone, *replaced):
            old = files.pop(rel)
            n_docs -= bool(old.vocabulary)
            for token in old.vocabulary:
                posting_del[token].append(rel)
            old_names.update(s.name for s in old.entry.symbols)
        new_symbols: defaultdict[str, list[Symbol]] = defaultdict(list)
        for rel, new in upserts.items():
            files[rel] = new
            n_docs += bool(new.vocabulary)
            for token in new.vocabulary:
                posting_add[token].append(rel)
            for symbol in new.entry.symbols:
                new_symbols[symbol.name].append(symbol)
        postings = dict(self.postings)
        for token, added in posting_add.items():
            current = postings.get(token)
            dropped = posting_del.pop(token, None)
            if current is None:
                postings[token] = frozenset(added)
            else:
                postings[token] = (current.difference(dropped) if dropped else current).union(added)
        for token, dropped in posting_del.items():
            updated = postings[token].difference(dropped)
            if updated:
                postings[token] = updated
            else:
                del postings[token]
        symbols = dict(self.symbols)
        changed = gone | set(upserts)
        for name in old_names | new_symbols.keys():
            kept = [s for s in symbols.get(name, ()) if s.path not in changed]
            kept += new_symbols.get(name, ())
            if kept:
                symbols[name] = tuple(sorted(kept, key=_symbol_key))
            else:
                symbols.pop(name, None)
        return IndexSnapshot(files=files, symbols=symbols, postings=postings, n_docs=n_docs)

    def stats(self) -> tuple[int, int, int, int]:
        """(files, symbols, chunks, bytes) of text files."""
        files = symbols = chunks = size = 0
        for data in self.files.values():
            if data.entry.binary:
                continue
            files += 1
            symbols += len(data.entry.symbols)
            chunks += len(data.entry.chunks)
            size += data.entry.size
        return files, symbols, chunks, size


# -- retrieval ----------------------------------------------------------------------------------


class _View:
    """The snapshot with open documents (``overlay``) taking precedence over disk."""

    def __init__(
        self,
        snapshot: IndexSnapshot,
        overlay: Mapping[str, FileData],
        recent: Mapping[str, float],
        now: float,
    ) -> None:
        self.snapshot = snapshot
        self.overlay = overlay
        self.recent = recent
        self.now = now
        self._overlay_symbols: dict[str, list[Symbol]] = {}
        for data in overlay.values():
            for symbol in data.entry.symbols:
                self._overlay_symbols.setdefault(symbol.name, []).append(symbol)

    def file(self, rel: str) -> FileData | None:
        data = self.overlay.get(rel)
        return data if data is not None else self.snapshot.files.get(rel)

    def symbols(self, name: str) -> list[Symbol]:
        found = [s for s in self.snapshot.symbols.get(name, ()) if s.path not in self.overlay]
        found += self._overlay_symbols.get(name, ())
        return sorted(found, key=_symbol_key)

    def recency(self, rel: str) -> float:
        stamp = self.recent.get(rel)
        if stamp is None:
            return 0.0
        return RECENT_BOOST * 0.5 ** (max(0.0, self.now - stamp) / RECENT_HALF_LIFE_S)

    def files_with(self, token: str) -> Iterable[str]:
        for rel in self.snapshot.postings.get(token, ()):
            if rel not in self.overlay:
                yield rel
        for rel, data in self.overlay.items():
            if token in data.vocabulary:
                yield rel


@dataclasses.dataclass(slots=True)
class _Candidate:
    path: str
    start: int
    end: int
    """exclusive"""
    text: str
    score: float
    source: SnippetSource
    symbol: str = ""
    compact: str = ""
    """A shorter text to fall back to (definitions)."""


def _definition_text(symbol: Symbol, lines: list[str], members: list[Symbol]) -> tuple[str, str]:
    """The full text of a definition (an outline when long) and a compact form."""
    start, end = symbol.start_line, min(symbol.end_line, len(lines) - 1)
    compact = symbol.signature + (f"\n{symbol.doc}" if symbol.doc else "")
    if end < start:
        return compact, compact
    if end - start + 1 <= DEF_FULL_LINES:
        full = "\n".join(line.rstrip("\r") for line in lines[start : end + 1])
        return full, compact
    inner = [m for m in members if start < m.start_line <= end]
    head_end = min(start + DEF_HEAD_LINES, inner[0].start_line if inner else end + 1)
    out = [line.rstrip("\r") for line in lines[start:head_end]]
    for member in inner:
        line_no = next(
            (
                i
                for i in range(member.start_line, min(member.end_line, end) + 1)
                if member.name in lines[i]
            ),
            member.start_line,
        )
        line = lines[line_no].rstrip("\r")
        indent = line[: len(line) - len(line.lstrip())]
        out += [line, f"{indent}    ..."]
    if not inner:
        body = lines[head_end] if head_end < len(lines) else ""
        indent = body[: len(body) - len(body.lstrip())] or "    "
        out.append(f"{indent}...")
    return "\n".join(out), compact


def _definitions(
    view: _View, rel: str | None, text: str, offset: int, allowed: Callable[[str], bool]
) -> list[_Candidate]:
    line_starts = [0] + [m.end() for m in re.finditer("\n", text)]
    cursor_line = bisect.bisect_right(line_starts, offset) - 1
    lo = line_starts[max(0, cursor_line - NEAR_LINES_BEFORE)]
    hi_line = cursor_line + NEAR_LINES_AFTER + 1
    hi = line_starts[hi_line] if hi_line < len(line_starts) else len(text)

    current = view.file(rel) if rel else None
    local_names = {s.name for s in current.entry.symbols} if current else set()
    local_names.update(next(g for g in m.groups() if g) for m in _LOCAL_RE.finditer(text))
    import_text = "\n".join(_IMPORT_LINE_RE.findall(text))
    if current:
        import_text += "\n" + "\n".join(current.entry.imports)
    # Imported *names*: not the quoted module specifiers, not the module of ``from m import``.
    imported = set(_IDENT_RE.findall(_FROM_MODULE_RE.sub("", _QUOTED_RE.sub("", import_text))))
    modules = import_paths(import_text)
    weights: dict[str, float] = {}
    qualified: set[str] = set()
    """Names used after ``.``, ``::`` or ``->``: methods qualify; bare names must not be."""
    for match in _IDENT_RE.finditer(text, lo, hi):
        name = match.group()
        if len(name) < 2 or name in STOPWORDS or name in local_names:
            continue
        if _QUALIFIER_RE.search(text, max(0, match.start() - 2), match.start()):
            qualified.add(name)
        line = bisect.bisect_right(line_starts, match.start()) - 1
        after = match.start() >= offset
        distance = 2 * (line - cursor_line + 1) if after else cursor_line - line
        weight = 1.0 / (1.0 + distance / 4.0)
        if weight > weights.get(name, 0.0):
            weights[name] = weight

    matches: dict[str, int] = {}

    def matched(symbol: Symbol) -> int:
        if symbol.path not in matches:
            data = view.file(symbol.path)
            matches[symbol.path] = module_match(data.segments, modules) if data else 0
        return matches[symbol.path]

    out: list[_Candidate] = []
    for name, weight in weights.items():
        found = [
            s
            for s in view.symbols(name)
            if s.path != rel and (s.kind != "method" or name in qualified)
        ]
        if not found:
            continue
        best = max(matched(s) for s in found)
        if len({s.path for s in found}) > AMBIGUOUS_NAME:
            found = [s for s in found if best and matched(s) == best]
            if not found:
                continue
        ranked = sorted(
            found,
            key=lambda s: (
                -matched(s),
                s.kind == "method",
                -view.recency(s.path),
                s.path,
                s.start_line,
            ),
        )
        for symbol in ranked[:MAX_DEFS_PER_NAME]:
            data = view.file(symbol.path)
            if data is None or not allowed(symbol.path):
                continue
            members = [
                s for s in data.entry.symbols if s.container == symbol.name and s is not symbol
            ]
            full, compact = _definition_text(symbol, split_lines(data.entry.text), members)
            score = (
                1.0
                + weight
                + (1.0 if name in imported else 0.0)
                + (0.5 if best and matched(symbol) == best else 0.0)
                + view.recency(symbol.path)
            )
            out.append(
                _Candidate(
                    path=symbol.path,
                    start=symbol.start_line,
                    end=symbol.end_line + 1,
                    text=full,
                    score=round(score, 4),
                    source="definition",
                    symbol=symbol.name,
                    compact=compact,
                )
            )
    out.sort(key=lambda c: (-c.score, c.path, c.start, c.symbol))
    return out


def _similar(
    view: _View, rel: str | None, text: str, offset: int, allowed: Callable[[str], bool]
) -> list[_Candidate]:
    before = text[:offset]
    query_start = len(before)
    for _ in range(QUERY_LINES):
        query_start = before.rfind("\n", 0, query_start)
        if query_start < 0:
            query_start = 0
            break
    query = set(tokens(before[query_start:]))
    n = view.snapshot.n_docs
    if not query or not n:
        return []
    # Document frequencies are per file (cheap to keep current); scores are per chunk.
    idf: dict[str, float] = {}
    for token in query:
        df = len(view.snapshot.postings.get(token, ()))
        if n > 20 and df > n / 2:
            continue  # too common to be worth scanning its postings
        idf[token] = math.log(1.0 + (n - df + 0.5) / (df + 0.5))
    if not idf:
        return []
    max_score = sum(idf.values()) * (BM25_K1 + 1)

    file_scores: dict[str, float] = {}
    for token, weight in idf.items():
        for path in view.files_with(token):
            if path != rel:
                file_scores[path] = file_scores.get(path, 0.0) + weight
    ranked_files = sorted(file_scores.items(), key=lambda kv: (-kv[1], kv[0]))
    candidates = []
    for path, _ in ranked_files[:MAX_CANDIDATE_FILES]:
        data = view.file(path)
        if data is not None and data.entry.chunks and allowed(path):
            candidates.append((data, *CHUNK_STATS.get(data.entry)))
    n_chunks = sum(len(counts) for _, counts, _ in candidates)
    if not n_chunks:
        return []
    avgdl = max(1.0, sum(total for _, _, total in candidates) / n_chunks)
    out: list[_Candidate] = []
    for data, counts, _ in candidates:
        boost = view.recency(data.entry.rel)
        lines: list[str] | None = None
        for i, tf in enumerate(counts):
            norm = BM25_K1 * (1.0 - BM25_B + BM25_B * tf.total() / avgdl)
            score = 0.0
            for token, weight in idf.items():
                f = tf.get(token)
                if f:
                    score += weight * f * (BM25_K1 + 1) / (f + norm)
            score /= max_score
            if score < MIN_SIMILARITY:
                continue
            if lines is None:
                lines = split_lines(data.entry.text)
            chunk = data.entry.chunks[i]
            snippet = "\n".join(
                line.rstrip("\r") for line in lines[chunk.start_line : chunk.end_line]
            ).rstrip()
            out.append(
                _Candidate(
                    path=data.entry.rel,
                    start=chunk.start_line,
                    end=chunk.end_line,
                    text=snippet,
                    score=round(score * (1.0 + boost), 4),
                    source="recent" if boost > 0.05 else "similar",
                )
            )
    out.sort(key=lambda c: (-c.score, c.path, c.start))
    return out


def retrieve(
    snapshot: IndexSnapshot,
    rel: str | None,
    text: str,
    offset: int,
    *,
    budget: int,
    count: Callable[[str], int] = default_token_count,
    allowed: Callable[[str], bool] = lambda rel: True,
    overlay: Mapping[str, FileData] | None = None,
    recent: Mapping[str, float] | None = None,
    now: float | None = None,
) -> list[ContextSnippet]:
    """Snippets of other files for the cursor at ``offset`` (characters) in ``text``.

    ``rel`` is the current file's workspace-relative path (None when it lies outside the
    workspace); ``budget`` is in the units of ``count`` (tokens, or characters with ``len``);
    ``allowed`` is a last check on every path (secrets, ignore rules); ``overlay`` holds open
    documents, which take precedence over ``snapshot``; ``recent`` maps paths to the
    ``time.monotonic()`` of their last edit.
    """
    if budget <= 0:
        return []
    offset = max(0, min(offset, len(text)))
    view = _View(snapshot, overlay or {}, recent or {}, time.monotonic() if now is None else now)
    definitions = _definitions(view, rel, text, offset, allowed)
    similar = _similar(view, rel, text, offset, allowed)

    chosen: list[_Candidate] = []
    ranges: dict[str, list[tuple[int, int]]] = {}
    texts: set[str] = set()
    used = 0

    def take(candidate: _Candidate, limit: int) -> bool:
        nonlocal used
        taken = ranges.get(candidate.path, ())
        if any(candidate.start < end and start < candidate.end for start, end in taken):
            return False
        for snippet in (candidate.text, candidate.compact):
            if not snippet.strip() or snippet in texts:
                continue
            cost = count(f"{candidate.path}\n{snippet}\n")
            if used + cost <= limit:
                used += cost
                candidate.text = snippet
                chosen.append(candidate)
                texts.add(snippet)
                ranges.setdefault(candidate.path, []).append((candidate.start, candidate.end))
                return True
        return False

    remaining: list[_Candidate] = []
    n_defs = 0
    for candidate in definitions:
        if n_defs < MAX_DEFINITIONS and take(candidate, int(budget * DEFINITION_SHARE)):
            n_defs += 1
        else:
            remaining.append(candidate)
    n_similar = 0
    for candidate in similar:
        if n_similar >= MAX_SIMILAR:
            break
        if take(candidate, budget):
            n_similar += 1
    for candidate in remaining:
        if n_defs >= MAX_DEFINITIONS:
            break
        if take(candidate, budget):
            n_defs += 1

    group = {"definition": 0, "recent": 1, "similar": 1}
    chosen.sort(key=lambda c: (group[c.source], c.path, c.start))
    return [
        ContextSnippet(
            path=c.path,
            text=c.text,
            score=c.score,
            source=c.source,
            start_line=c.start,
            symbol=c.symbol,
        )
        for c in chosen
    ]
