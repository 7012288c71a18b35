"""Snippets of other files for a cursor: definitions, similar windows, recent edits.

Everything here is pure: :class:`IndexSnapshot` is an immutable value (its maps are never
mutated after construction; :meth:`IndexSnapshot.apply` returns a new snapshot that shares the
untouched parts), and :func:`retrieve` reads one snapshot and nothing else.

Ranking, for a cursor at ``offset`` in ``text`` (the current file, ``rel``):

(a) **definitions**: the current file's imports are resolved to workspace files
    (:mod:`lsp_llm.context.imports`). Imported names used near the cursor (nearest weigh most)
    come first, then imported names not used nearby (a name about to be typed often is one;
    ranked by how often the file uses them), then, right after ``alias.``, the members of the
    module the alias names; other identifiers near the cursor that the current file does not
    define are looked up by name in the symbol table (a name with many unrelated definitions
    only when an import disambiguates it).
(b) **similar windows**: BM25 over identifier tokens, the ~30 lines before the cursor being
    the query and the ~30-line chunks of the other files the documents (Copilot's
    neighbouring-tab idea, over the whole workspace). Files are first ranked through an
    inverted index (token -> files; document frequencies per file), then the chunks of the
    best :data:`MAX_CANDIDATE_FILES` are scored, up to :data:`MAX_CANDIDATE_CHARS` of their
    text (a cold query's cost is bounded in a workspace of large files); their token counts
    are computed on first use and cached for recent files only, so memory does not grow with
    per-chunk statistics.
(c) **recent edits**: windows of recently edited files get a boost that decays over
    :data:`RECENT_HALF_LIFE_S`, and are labelled ``"recent"``.

Packing: signatures and the first paragraph of their docs first (many fit), best first, up to
:data:`DEFINITION_SHARE` of the budget; then full bodies (outlines when long) of the chosen
definitions, best first, where they fit in that share; then windows; then more full bodies with
what is left. Each is counted with ``count(path + "\\n" + text + "\\n")``; with the defaults
(:func:`retrieval_budget`, :func:`default_token_count`) everything returned fits the prompt, so
the prompt holds exactly what ``lsp-llm context`` shows; with the default count, a cheap lower
bound rules out a candidate that cannot fit before it is counted. No two snippets of one file
overlap, the current file never contributes, and identical texts appear once. The result is
ordered for prompt stability, not by score: definitions, then the windows, each group sorted by
path and line, so that consecutive prompts share a long prefix (:mod:`lsp_llm.context.stable`
keeps the whole choice while the cursor stays in one region).
"""

from __future__ import annotations

import bisect
import dataclasses
import functools
import itertools
import math
import operator
import re
import sys
import threading
import time
from collections import Counter, OrderedDict, defaultdict
from collections.abc import Callable, Iterable, Mapping

from lsp_llm.config import Settings
from lsp_llm.context.imports import ImportRef, ModuleMap, parse_imports, resolve
from lsp_llm.context.parse import Symbol, split_lines
from lsp_llm.context.store import FileEntry
from lsp_llm.context.types import ContextSnippet, SnippetSource
from lsp_llm.engine.backends.approx_tokenizer import ApproxTokenizer

QUERY_LINES = 30
"""Lines before the cursor that form the similarity query."""
NEAR_LINES_BEFORE = 12
NEAR_LINES_AFTER = 3
"""Lines around the cursor whose identifiers are looked up as definitions."""
MAX_DEFINITIONS = 24
MAX_SIMILAR = 4
MAX_DEFS_PER_NAME = 2
AMBIGUOUS_NAME = 4
"""A name defined in more files than this is used only when an import points at one of them."""
DEFINITION_SHARE = 0.85
DEF_FULL_LINES = 25
"""Definitions up to this many lines are shown whole; longer ones as an outline."""
DEF_HEAD_LINES = 10
COMPACT_DOC_CHARS = 160
"""The first paragraph of a docstring shown with a signature, at most this long."""
IMPORT_USE_WEIGHT = 0.25
"""Imported names not used near the cursor are ranked by ``log(uses in the file)`` times this."""
MAX_MODULE_MEMBERS = 40
MIN_SIMILARITY = 0.12
"""Normalised BM25 score below which a window is not worth its tokens."""
MAX_CANDIDATE_FILES = 40
LOCAL_SCAN_BEFORE = 24_000
LOCAL_SCAN_AFTER = 8_000
"""Characters around the cursor searched for local assignments (:data:`_LOCAL_RE`); the parsed
symbols of the file cover the rest."""
RANK_DF_SHARE = 0.1
RANK_MIN_FILES = 200
"""In a workspace of more than RANK_MIN_FILES files, a token in more than RANK_DF_SHARE of
them does not rank files (it still scores their chunks)."""
MAX_CANDIDATE_CHARS = 200_000
MIN_CANDIDATE_FILES = 4
"""The chunks of the best files are scored until their texts reach this many characters
(at least :data:`MIN_CANDIDATE_FILES` files): the cost of a cold query stays bounded in a
workspace of large files."""
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
_IMPORT_LINE_NO_REQUIRE_RE = re.compile(
    r"^[ \t]*(?:import|from|use|using|extern[ \t]+crate|#[ \t]*include|export[ \t].*from)\b.*$",
    re.MULTILINE,
)
""":data:`_IMPORT_LINE_RE` for a text without ``require`` (the same matches; its second branch
backtracks over every line, a third of a 40 kB file's retrieval time)."""


def import_lines_of(text: str) -> list[str]:
    """The import lines of ``text`` (:data:`_IMPORT_LINE_RE`)."""
    regex = _IMPORT_LINE_RE if "require" in text else _IMPORT_LINE_NO_REQUIRE_RE
    return regex.findall(text)


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
_OWNER_RE = re.compile(r"([A-Za-z_]\w*)[ \t]*(?:\.|::)[ \t]*$")
"""The identifier before a qualifier (``ns.`` / ``pkg::``)."""
_OWNER_AT_CURSOR_RE = re.compile(r"([A-Za-z_]\w*)(?:\.|::)\w*$")
_QUOTED_RE = re.compile(r"(\"|'|`)[^\n]*?\1")
_FROM_MODULE_RE = re.compile(r"^[ \t]*from[ \t]+[\w.]+", re.MULTILINE)


def tokens(text: str) -> list[str]:
    """Identifier tokens of a text (stopwords and one-letter names dropped)."""
    return [t for t in _IDENT_RE.findall(text) if len(t) > 1 and t not in STOPWORDS]


_APPROX = ApproxTokenizer()
PROMPT_RESERVE_TOKENS = 48
"""An upper bound on what the prompt template, the current file's label and the repository
name take (the prompt builder's ``reserve``): the retrieval budget leaves it out."""


@functools.lru_cache(maxsize=1024)
def default_token_count(text: str) -> int:
    """Tokens a snippet text (``path + "\\n" + text + "\\n"``) takes in the prompt, counted
    so that it is never less than a real tokenizer counts for its most expensive rendering
    (every line commented out under a ``// Path:`` label): :class:`ApproxTokenizer`'s
    over-count plus a comment marker per line and the label's words."""
    return _APPROX.count(text) + text.count("\n") + 4


def _min_token_count(chars: int, newlines: int) -> int:
    """A lower bound of :func:`default_token_count` for a text of ``chars`` characters with
    ``newlines`` newlines, found without tokenizing: a newline is a pseudo token of its own
    (and one more for its comment marker), and no other is longer than 5 characters."""
    return 2 * newlines + (chars - newlines + 4) // 5 + 4


def retrieval_budget(settings: Settings) -> int:
    """Tokens the prompt gives to retrieved snippets, as the prompt builder computes its room:
    ``retrieval_share`` of the window less the model's new tokens and the template
    (:data:`PROMPT_RESERVE_TOKENS`). Snippets packed into this with :func:`default_token_count`
    all fit in the prompt, so the prompt holds exactly what retrieval returns (and what
    ``lsp-llm context`` shows)."""
    if not settings.retrieval:
        return 0
    total = max(1, settings.context_window - settings.max_new_tokens)
    return int(max(0, total - PROMPT_RESERVE_TOKENS) * settings.retrieval_share)


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
_NOT_TOKENS = STOPWORDS | _ONE_LETTER


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
        counts = chunk_counts(entry)
        value = (counts, sum(c.total() for c in counts))
        with self._lock:
            self._cache[key] = value
            while len(self._cache) > self.capacity:
                self._cache.popitem(last=False)
        return value


CHUNK_STATS = _ChunkStats()

LINES_CACHE_FILES = 64
_lines_cache: OrderedDict[tuple[str, bytes], list[str]] = OrderedDict()
_lines_lock = threading.Lock()


def lines_of(entry: FileEntry) -> list[str]:
    """``split_lines(entry.text)``, kept for the :data:`LINES_CACHE_FILES` most recently used
    files (the same definition files come back keystroke after keystroke). Never mutate."""
    key = (entry.rel, entry.digest)
    with _lines_lock:
        hit = _lines_cache.get(key)
        if hit is not None:
            _lines_cache.move_to_end(key)
            return hit
    lines = split_lines(entry.text)
    with _lines_lock:
        _lines_cache[key] = lines
        while len(_lines_cache) > LINES_CACHE_FILES:
            _lines_cache.popitem(last=False)
    return lines


def chunk_counts(entry: FileEntry) -> tuple[Counter[str], ...]:
    """:func:`tokens` counted per chunk of ``entry``. Chunks overlap, so the text is counted
    once per segment between chunk boundaries, and each chunk's counts are the sum of its
    segments'."""
    text = entry.text
    # Line n starts at sum(len(line) for the lines before it) + n (their newlines).
    widths = list(itertools.accumulate(map(len, text.split("\n")), initial=0))
    last = len(widths) - 1
    bounds = sorted({min(b, last) for c in entry.chunks for b in (c.start_line, c.end_line)})
    # Per segment: its tokens and their counts (``Counter`` of a list counts in C).
    words_of: dict[int, list[str]] = {}
    segments: dict[int, Counter[str]] = {}
    for start, end in itertools.pairwise(bounds):
        words = _IDENT_RE.findall(text, widths[start] + start, widths[end] + end)
        words = [w for w in words if w not in _NOT_TOKENS]
        words_of[start] = words
        segments[start] = Counter(words)
    out = []
    for chunk in entry.chunks:
        first = bisect.bisect_left(bounds, min(chunk.start_line, last))
        stop = bisect.bisect_left(bounds, min(chunk.end_line, last))
        starts = bounds[first:stop]
        if len(starts) == 1:  # one segment (no other chunk starts or ends inside): shared
            out.append(segments[starts[0]])
        else:
            out.append(Counter(itertools.chain.from_iterable(words_of[s] for s in starts)))
    return tuple(out)


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

    @functools.cached_property
    def modules(self) -> ModuleMap:
        """The files by module path, for resolving imports (built on first use)."""
        return ModuleMap(self.files)

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
        if not self.overlay:
            return self.snapshot.postings.get(token, ())
        return self._files_with(token)

    def _files_with(self, token: str) -> Iterable[str]:
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


def _compact_text(symbol: Symbol, members: list[Symbol]) -> str:
    """A definition's signature and the first paragraph of its documentation (and, for a
    type, its constructor's signature): what a caller needs, in a few tokens."""
    doc = symbol.doc.split("\n\n", 1)[0].strip()
    if len(doc) > COMPACT_DOC_CHARS:
        doc = doc[: COMPACT_DOC_CHARS - 1].rstrip() + "…"
    lines = [symbol.signature]
    if doc:
        lines.append(f"    {doc}")
    if symbol.kind in _TYPE_KINDS:
        ctor = next((m for m in members if m.name in _CONSTRUCTORS), None)
        if ctor is not None:
            lines.append(f"    {ctor.signature}")
    return "\n".join(lines)


_TYPE_KINDS = frozenset({"class", "struct", "interface", "trait", "enum", "type"})
_CONSTRUCTORS = frozenset({"__init__", "constructor", "new"})


def _definition_text(symbol: Symbol, lines: list[str], members: list[Symbol]) -> tuple[str, str]:
    """The full text of a definition (an outline when long) and a compact form."""
    start, end = symbol.start_line, min(symbol.end_line, len(lines) - 1)
    compact = _compact_text(symbol, members)
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


@dataclasses.dataclass(slots=True)
class _Imports:
    """The current file's imports, resolved against the index."""

    names: dict[str, list[tuple[str, str]]]
    """local name -> [(file, name in that file)]"""
    modules: dict[str, list[str]]
    """local module alias -> its files"""
    files: set[str]
    """Every file an import resolved to."""


def _resolve_imports(view: _View, rel: str | None, import_lines: list[str]) -> _Imports:
    """``import_lines``: the current text's import lines (:data:`_IMPORT_LINE_RE`)."""
    out = _Imports({}, {}, set())
    if rel is None:
        return out
    current = view.file(rel)
    statements = [line.strip() for line in import_lines]
    if current is not None:
        statements = [*current.entry.imports, *statements]
    refs: list[ImportRef] = parse_imports(rel, statements)

    def exists(path: str) -> bool:
        return view.file(path) is not None

    modules = view.snapshot.modules
    for ref in refs:
        files = resolve(ref, exists, modules, rel)
        if not files:
            continue
        out.files.update(files)
        for name, local in ref.names:
            targets = out.names.setdefault(local, [])
            targets += [(f, name) for f in files if (f, name) not in targets]
        if ref.module_alias:
            out.modules.setdefault(ref.module_alias, []).extend(files)
        if ref.all_names:
            for f in files:
                data = view.file(f)
                for symbol in data.entry.symbols if data else ():
                    if not symbol.container:
                        out.names.setdefault(symbol.name, []).append((f, symbol.name))
    return out


def _definitions(
    view: _View, rel: str | None, text: str, offset: int, allowed: Callable[[str], bool]
) -> list[_Candidate]:
    # The near window: NEAR_LINES_BEFORE lines above the cursor's line to NEAR_LINES_AFTER
    # below it, found from the cursor outwards (the cost does not grow with the file).
    line_start = text.rfind("\n", 0, offset) + 1
    lo = line_start
    for _ in range(NEAR_LINES_BEFORE):
        if lo == 0:
            break
        lo = text.rfind("\n", 0, lo - 1) + 1
    hi = line_start
    for _ in range(NEAR_LINES_AFTER + 1):
        newline = text.find("\n", hi)
        if newline < 0:
            hi = len(text)
            break
        hi = newline + 1

    current = view.file(rel) if rel else None
    local_names = {s.name for s in current.entry.symbols} if current else set()
    # Names the text assigns or defines: near the cursor from the live text (the cost of the
    # regex grows with what it reads), the rest of the file from its parsed symbols above.
    local_lo = max(0, text.rfind("\n", 0, max(0, offset - LOCAL_SCAN_BEFORE)) + 1)
    local_hi = text.find("\n", min(len(text), offset + LOCAL_SCAN_AFTER))
    local_names.update(
        a or b or c
        for a, b, c in _LOCAL_RE.findall(text, local_lo, len(text) if local_hi < 0 else local_hi)
    )
    import_lines = import_lines_of(text)
    import_text = "\n".join(import_lines)
    if current:
        import_text += "\n" + "\n".join(current.entry.imports)
    # Imported *names*: not the quoted module specifiers, not the module of ``from m import``.
    imported = set(_IDENT_RE.findall(_FROM_MODULE_RE.sub("", _QUOTED_RE.sub("", import_text))))
    modules = import_paths(import_text)
    resolved = _resolve_imports(view, rel, import_lines)
    local_names -= resolved.names.keys()
    weights: dict[str, float] = {}
    qualified: set[str] = set()
    """Names used after ``.``, ``::`` or ``->``: methods qualify; bare names must not be."""
    via_module: dict[str, list[str]] = {}
    """Names used as ``alias.Name`` of an imported module -> the module's files."""
    for match in _IDENT_RE.finditer(text, lo, hi):
        name = match.group()
        if len(name) < 2 or name in STOPWORDS or name in local_names:
            continue
        qualifier = _QUALIFIER_RE.search(text, max(0, match.start() - 2), match.start())
        if qualifier:
            qualified.add(name)
            owner = _OWNER_RE.search(text, max(0, match.start() - 80), match.start())
            if owner and owner.group(1) in resolved.modules:
                via_module.setdefault(name, []).extend(resolved.modules[owner.group(1)])
        after = match.start() >= offset
        distance = (
            2 * (text.count("\n", offset, match.start()) + 1)
            if after
            else text.count("\n", match.start(), offset)
        )
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
    taken: set[tuple[str, int]] = set()
    per_file: dict[str, tuple[list[str], dict[str, list[Symbol]]]] = {}

    def add(symbol: Symbol, score: float) -> None:
        key = (symbol.path, symbol.start_line)
        data = view.file(symbol.path)
        if key in taken or data is None or not allowed(symbol.path):
            return
        taken.add(key)
        if symbol.path not in per_file:  # each defining file is split and grouped once
            by_container: dict[str, list[Symbol]] = {}
            for s in data.entry.symbols:
                by_container.setdefault(s.container, []).append(s)
            per_file[symbol.path] = (lines_of(data.entry), by_container)
        lines, by_container = per_file[symbol.path]
        members = [s for s in by_container.get(symbol.name, ()) if s is not symbol]
        full, compact = _definition_text(symbol, lines, members)
        out.append(
            _Candidate(
                path=symbol.path,
                start=symbol.start_line,
                end=symbol.end_line + 1,
                text=full,
                score=round(score + view.recency(symbol.path), 4),
                source="definition",
                symbol=symbol.name,
                compact=compact,
            )
        )

    def in_files(name: str, targets: Iterable[tuple[str, str]]) -> list[Symbol]:
        """Top-level definitions of the names an import points at (exact files)."""
        found = []
        for path, target_name in targets:
            for symbol in view.symbols(target_name):
                if symbol.path == path and not symbol.container:
                    found.append(symbol)
        return found

    # (1) Names the imports resolve, used near the cursor: the strongest signal.
    for name, weight in weights.items():
        found = in_files(name, resolved.names.get(name, ()))
        if not found and name in via_module:
            found = in_files(name, [(f, name) for f in via_module[name]])
        for symbol in found[:MAX_DEFS_PER_NAME]:
            add(symbol, 3.0 + weight)
    # (2) Imported names not used near the cursor: a name about to be typed often is one.
    #     Ranked by how often the file uses them elsewhere (a unigram prior over its imports).
    unused = [n for n in resolved.names if n not in weights]
    uses = Counter(_IDENT_RE.findall(text)) if unused else Counter()
    for name in unused:
        found = in_files(name, resolved.names[name])
        if found:
            add(found[0], 1.5 + IMPORT_USE_WEIGHT * math.log1p(max(0, uses[name] - 1)))
    # (3) Right after ``alias.``: the members of the module the alias names.
    owner = _OWNER_AT_CURSOR_RE.search(text, max(0, offset - 80), offset)
    if owner and owner.group(1) in resolved.modules:
        for path in resolved.modules[owner.group(1)][:2]:
            data = view.file(path)
            for symbol in data.entry.symbols[:MAX_MODULE_MEMBERS] if data else ():
                if not symbol.container and not symbol.name.startswith("_"):
                    add(symbol, 2.5)
    # (4) Other names near the cursor, looked up in the whole workspace.
    for name, weight in weights.items():
        if name in resolved.names:
            continue
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
                -(s.path in resolved.files),
                -matched(s),
                s.kind == "method",
                -view.recency(s.path),
                s.path,
                s.start_line,
            ),
        )
        for symbol in ranked[:MAX_DEFS_PER_NAME]:
            score = (
                1.0
                + weight
                + (1.0 if name in imported or symbol.path in resolved.files else 0.0)
                + (0.5 if best and matched(symbol) == best else 0.0)
            )
            add(symbol, score)
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
    df_of: dict[str, int] = {}
    for token in query:
        df = len(view.snapshot.postings.get(token, ()))
        if n > 20 and df > n / 2:
            continue  # too common to be worth scanning its postings
        idf[token] = math.log(1.0 + (n - df + 0.5) / (df + 0.5))
        df_of[token] = df
    if not idf:
        return []
    max_score = sum(idf.values()) * (BM25_K1 + 1)

    file_scores: dict[str, float] = {}
    get = file_scores.get
    # Files are ranked by their rarer query tokens (a common one adds little to every file and
    # costs a pass over its postings); the chunks are still scored with all of them.
    common = n * RANK_DF_SHARE if n > RANK_MIN_FILES else n
    for token, weight in idf.items():
        if df_of[token] > common:
            continue
        for path in view.files_with(token):
            file_scores[path] = get(path, 0.0) + weight
    file_scores.pop(rel or "", None)
    ranked_files = sorted(file_scores.items(), key=lambda kv: (-kv[1], kv[0]))
    candidates: list[tuple[FileData, tuple[Counter[str], ...], int]] = []
    chars = 0
    for path, _ in ranked_files[:MAX_CANDIDATE_FILES]:
        if chars >= MAX_CANDIDATE_CHARS and len(candidates) >= MIN_CANDIDATE_FILES:
            break
        data = view.file(path)
        if data is not None and data.entry.chunks and allowed(path):
            candidates.append((data, *CHUNK_STATS.get(data.entry)))
            chars += len(data.entry.text)
    n_chunks = sum(len(counts) for _, counts, _ in candidates)
    if not n_chunks:
        return []
    avgdl = max(1.0, sum(total for _, _, total in candidates) / n_chunks)
    out: list[_Candidate] = []
    for data, counts, _ in candidates:
        boost = view.recency(data.entry.rel)
        lines: list[str] | None = None
        for i, tf in enumerate(counts):
            shared = idf.keys() & tf.keys()
            if not shared:
                continue
            norm = BM25_K1 * (1.0 - BM25_B + BM25_B * tf.total() / avgdl)
            # fsum: exactly rounded, so the score does not depend on the set's order.
            score = math.fsum(idf[t] * tf[t] * (BM25_K1 + 1) / (tf[t] + norm) for t in shared)
            score /= max_score
            if score < MIN_SIMILARITY:
                continue
            if lines is None:
                lines = lines_of(data.entry)
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
    costs: dict[int, int] = {}
    used = 0

    # A cheap lower bound of the default count rules most candidates out once the budget is
    # nearly full, without counting them (the count is the costliest step otherwise).
    bound = _min_token_count if count is default_token_count else None

    def cost(candidate: _Candidate, snippet: str) -> int:
        return count(f"{candidate.path}\n{snippet}\n")

    def too_big(candidate: _Candidate, snippet: str, room: int) -> bool:
        if bound is None:
            return False
        chars = len(candidate.path) + len(snippet) + 2
        return bound(chars, snippet.count("\n") + candidate.path.count("\n") + 2) > room

    def take(candidate: _Candidate, snippet: str, limit: int) -> bool:
        nonlocal used
        taken = ranges.get(candidate.path, ())
        if any(candidate.start < end and start < candidate.end for start, end in taken):
            return False
        if not snippet.strip() or snippet in texts or too_big(candidate, snippet, limit - used):
            return False
        needed = cost(candidate, snippet)
        if used + needed > limit:
            return False
        used += needed
        candidate.text = snippet
        chosen.append(candidate)
        costs[id(candidate)] = needed
        texts.add(snippet)
        ranges.setdefault(candidate.path, []).append((candidate.start, candidate.end))
        return True

    def upgrade(candidate: _Candidate, full: str, limit: int) -> None:
        """Show a chosen definition's full text instead of its signature, if it fits."""
        nonlocal used
        if full == candidate.text or full in texts:
            return
        if too_big(candidate, full, limit - used + costs[id(candidate)]):
            return
        extra = cost(candidate, full) - costs[id(candidate)]
        if used + extra <= limit:
            texts.discard(candidate.text)
            texts.add(full)
            candidate.text = full
            costs[id(candidate)] += extra
            used += extra

    # Signatures and docs first (many fit), best first; then full bodies, best first, within
    # the definitions' share; then similar windows; then more full bodies with what is left.
    def_limit = int(budget * DEFINITION_SHARE)
    fulls: dict[int, str] = {}
    for candidate in definitions:
        if sum(c.source == "definition" for c in chosen) >= MAX_DEFINITIONS:
            break
        full = candidate.text
        if take(candidate, candidate.compact or full, def_limit):
            fulls[id(candidate)] = full
    picked = [c for c in chosen if c.source == "definition"]
    for candidate in picked:
        upgrade(candidate, fulls[id(candidate)], def_limit)
    n_similar = 0
    for candidate in similar:
        if n_similar >= MAX_SIMILAR:
            break
        if take(candidate, candidate.text, budget):
            n_similar += 1
    for candidate in picked:
        upgrade(candidate, fulls[id(candidate)], budget)

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
