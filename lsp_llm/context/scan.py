"""Which files of a workspace root may be indexed.

Rules, in the order they are applied to a path relative to the root:

1. never leave the root: a path (or symlink target) that resolves outside it is refused, and
   symlinked directories are never descended into (no cycles, no escapes);
2. vendored and generated directories (:data:`SKIP_DIRS`) are skipped wherever they appear;
3. ``settings.extra_ignore`` (gitignore syntax, relative to the root) always wins;
4. ``.gitignore``, ``.ignore`` and ``.lsp-llm-ignore`` files in the root and every directory
   below it, with git's semantics (``pathspec.GitIgnoreSpec``): a deeper file overrides a
   shallower one, the last matching line of a file wins, ``!pattern`` re-includes, and nothing
   below an ignored directory can be re-included;
5. secrets (``settings.secret_patterns``, gitignore syntax, matched case-insensitively against
   the file name and the relative path) are never indexed, whatever the ignore files say;
6. files larger than ``settings.index_max_file_bytes`` are skipped;
7. binaries (a NUL byte in the first 8 KiB, or bytes that are not UTF-8) are skipped.

Rules 1-6 need only the path and ``stat``; rule 7 needs the bytes and is applied by
:func:`read_text` when a file is actually read.
"""

from __future__ import annotations

import codecs
import dataclasses
import logging
import os
import stat as stat_mod
from collections.abc import Iterator
from pathlib import Path

import pathspec

from lsp_llm.config import Settings
from lsp_llm.security import is_secret_path

log = logging.getLogger(__name__)

MAX_REMEMBERED_PATHS = 100_000
"""Answers of :meth:`IgnoreRules.allows` kept per rules instance (then forgotten at once)."""

SKIP_DIRS: frozenset[str] = frozenset(
    {
        ".git",
        ".hg",
        ".svn",
        ".jj",
        "node_modules",
        "bower_components",
        ".venv",
        "venv",
        ".env",
        "build",
        "dist",
        "target",
        "__pycache__",
        ".mypy_cache",
        ".pytest_cache",
        ".ruff_cache",
        ".hypothesis",
        ".tox",
        ".nox",
        ".eggs",
        ".gradle",
        ".idea",
        ".vscode",
        ".next",
        ".nuxt",
        ".cache",
        ".terraform",
        "vendor",
        "third_party",
        "site-packages",
        "htmlcov",
        ".direnv",
        ".zig-cache",
        "zig-out",
        "Pods",
        "DerivedData",
    }
)
"""Directory names that are never indexed (vendored code, build outputs, tool caches)."""

IGNORE_FILES: tuple[str, ...] = (".gitignore", ".ignore", ".lsp-llm-ignore")
"""Per-directory ignore files; in one directory, later files override earlier ones."""

BINARY_SNIFF_BYTES = 8192


@dataclasses.dataclass(frozen=True, slots=True)
class ScannedFile:
    """A candidate file found by :func:`scan` (path rules passed; content not yet read)."""

    path: Path
    """Absolute path inside the (resolved) root."""
    rel: str
    """Root-relative, forward slashes."""
    size: int
    mtime_ns: int


def _spec(lines: list[str]) -> pathspec.GitIgnoreSpec | None:
    lines = [line for line in lines if line.strip() and not line.lstrip().startswith("#")]
    if not lines:
        return None
    try:
        return pathspec.GitIgnoreSpec.from_lines(lines)
    except Exception as exc:  # a malformed pattern must not stop indexing
        log.warning("ignoring unparsable ignore patterns %r: %s", lines, exc)
        return None


class IgnoreRules:
    """Path rules for one workspace root. Ignore files are read lazily and cached.

    Instances are effectively immutable after construction except for the per-directory cache
    (idempotent, so concurrent readers at worst read a file twice). When an ignore file changes,
    build a new ``IgnoreRules``.
    """

    def __init__(self, root: Path, settings: Settings) -> None:
        self.root = root.resolve()
        self.settings = settings
        self._extra = _spec(list(settings.extra_ignore))
        self._dir_specs: dict[str, pathspec.GitIgnoreSpec | None] = {}
        self._allowed: dict[str, bool] = {}
        """:meth:`allows` answers (the rules of one instance never change: a change of an
        ignore file makes the index build a new instance)."""

    # -- ignore files -------------------------------------------------------------------------

    def dir_spec(self, rel_dir: str) -> pathspec.GitIgnoreSpec | None:
        """The combined ignore spec of one directory (``""`` is the root)."""
        try:
            return self._dir_specs[rel_dir]
        except KeyError:
            pass
        base = self.root / rel_dir if rel_dir else self.root
        lines: list[str] = []
        for name in IGNORE_FILES:
            try:
                text = (base / name).read_text(encoding="utf-8", errors="replace")
            except OSError:
                continue
            lines.extend(text.splitlines())
        spec = _spec(lines)
        self._dir_specs[rel_dir] = spec
        return spec

    def _ignored_by_files(self, rel: str, is_dir: bool) -> bool:
        """Whether the ignore files of the ancestors of ``rel`` ignore ``rel`` itself."""
        parts = rel.split("/")
        # Deepest directory first: the first file with a matching line decides.
        for depth in range(len(parts) - 1, -1, -1):
            rel_dir = "/".join(parts[:depth])
            spec = self.dir_spec(rel_dir)
            if spec is None:
                continue
            sub = "/".join(parts[depth:]) + ("/" if is_dir else "")
            result = spec.check_file(sub).include
            if result is not None:
                return bool(result)
        return False

    # -- public checks ------------------------------------------------------------------------

    def is_secret(self, rel: str) -> bool:
        """Whether a root-relative path names a secret (by file name or by path, compared as
        :func:`lsp_llm.security.is_secret_path` does: case-insensitively, normalised)."""
        return is_secret_path(rel, self.settings.secret_patterns)

    def is_ignored_entry(self, rel: str, is_dir: bool) -> bool:
        """Rules 2-5 for one entry, assuming its parent directory is not ignored."""
        name = rel.rsplit("/", 1)[-1]
        if is_dir and name in SKIP_DIRS:
            return True
        if self._extra is not None and self._extra.match_file(rel + ("/" if is_dir else "")):
            return True
        if self._ignored_by_files(rel, is_dir):
            return True
        return not is_dir and self.is_secret(rel)

    def is_ignored_path(self, rel: str, is_dir: bool = False) -> bool:
        """Rules 2-5 for a path, including every ancestor directory."""
        if not rel or rel == ".":
            return False
        parts = rel.split("/")
        if any(part in ("", ".", "..") for part in parts):
            return True
        for i in range(1, len(parts)):
            if self.is_ignored_entry("/".join(parts[:i]), is_dir=True):
                return True
        return self.is_ignored_entry(rel, is_dir)

    def allows(self, rel: str) -> bool:
        """``not is_ignored_path(rel)``, remembered (retrieval asks for the same candidate files
        on every keystroke; a dict lookup instead of a walk over gitignore specs)."""
        known = self._allowed.get(rel)
        if known is None:
            if len(self._allowed) >= MAX_REMEMBERED_PATHS:
                self._allowed.clear()
            known = self._allowed[rel] = not self.is_ignored_path(rel)
        return known

    def relative(self, path: Path) -> str | None:
        """The root-relative form of ``path`` (made absolute against the root), or None when
        it, or the target of a symlink it names, lies outside the root."""
        absolute = path if path.is_absolute() else self.root / path
        try:
            resolved = absolute.resolve()
        except (OSError, RuntimeError):
            return None
        try:
            rel = resolved.relative_to(self.root)
        except ValueError:
            return None
        text = rel.as_posix()
        return "" if text == "." else text

    def lexical_relative(self, path: Path) -> str | None:
        """Root-relative form without resolving symlinks (for paths that no longer exist)."""
        absolute = Path(os.path.abspath(path if path.is_absolute() else self.root / path))
        try:
            rel = absolute.relative_to(self.root)
        except ValueError:
            return None
        text = rel.as_posix()
        return None if text == "." else text

    def accepts(self, path: Path) -> str | None:
        """Rules 1-6 for an existing or unsaved file: its relative path, or None if refused.

        The relative path is the one under which the scan finds the file (a symlink's own
        name, not its target's)."""
        rel = self.relative(path)
        if not rel or self.is_ignored_path(rel):
            return None
        lexical = self.lexical_relative(path)
        # Reached through a symlink: its own name must pass too, and no directory on the way
        # may be a symlink (the scan never descends into those).
        if (
            lexical
            and lexical != rel
            and (self.is_ignored_path(lexical) or self._through_linked_dir(lexical))
        ):
            return None
        try:
            st = os.stat(self.root / rel)
        except FileNotFoundError:
            return lexical or rel  # an unsaved document: path rules only
        except OSError:
            return None
        if not stat_mod.S_ISREG(st.st_mode) or st.st_size > self.settings.index_max_file_bytes:
            return None
        return lexical or rel

    def _through_linked_dir(self, rel: str) -> bool:
        parts = rel.split("/")
        return any((self.root / "/".join(parts[:i])).is_symlink() for i in range(1, len(parts)))


def decode_text(data: bytes) -> str | None:
    """The text of a file, or None for binaries (NUL in the first 8 KiB, or not UTF-8)."""
    if b"\x00" in data[:BINARY_SNIFF_BYTES]:
        return None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return text[1:] if text.startswith("\ufeff") else text


def looks_binary(path: Path) -> bool:
    """Cheap check on the first 8 KiB only (used for files that are not read in full)."""
    try:
        with path.open("rb") as fh:
            head = fh.read(BINARY_SNIFF_BYTES)
    except OSError:
        return True
    if b"\x00" in head:
        return True
    try:
        codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
    except UnicodeDecodeError:
        return True
    return False


def read_text(path: Path, max_bytes: int) -> tuple[bytes, str] | None:
    """The bytes and text of a file, or None when unreadable, too large or binary."""
    try:
        with path.open("rb") as fh:
            data = fh.read(max_bytes + 1)
    except OSError:
        return None
    if len(data) > max_bytes:
        return None
    text = decode_text(data)
    return None if text is None else (data, text)


def scan(
    root: Path, settings: Settings, rules: IgnoreRules | None = None, *, subdir: str = ""
) -> Iterator[ScannedFile]:
    """Every candidate file under ``root`` (or under ``subdir`` of it), in sorted order.

    Stops after ``settings.index_max_files`` files (a warning is logged).
    """
    rules = rules or IgnoreRules(root, settings)
    top = rules.root / subdir if subdir else rules.root
    if subdir and rules.is_ignored_path(subdir, is_dir=True):
        return
    count = 0
    limit = settings.index_max_files
    stack = [(top, subdir)]
    while stack:
        directory, rel_dir = stack.pop()
        try:
            with os.scandir(directory) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            log.debug("cannot list %s: %s", directory, exc)
            continue
        subdirs: list[tuple[Path, str]] = []
        for entry in entries:
            rel = f"{rel_dir}/{entry.name}" if rel_dir else entry.name
            try:
                is_link = entry.is_symlink()
                if entry.is_dir(follow_symlinks=False):
                    if not is_link and not rules.is_ignored_entry(rel, is_dir=True):
                        subdirs.append((Path(entry.path), rel))
                    continue
                if rules.is_ignored_entry(rel, is_dir=False):
                    continue
                if is_link:
                    target_rel = rules.relative(Path(entry.path))
                    if not target_rel or rules.is_ignored_path(target_rel):
                        continue  # escapes the root, dangles, or points at an ignored file
                st = entry.stat(follow_symlinks=True)
            except OSError:
                continue
            if not stat_mod.S_ISREG(st.st_mode) or st.st_size > settings.index_max_file_bytes:
                continue
            if count >= limit:
                log.warning("index_max_files=%d reached under %s; rest not indexed", limit, root)
                return
            count += 1
            yield ScannedFile(Path(entry.path), rel, st.st_size, st.st_mtime_ns)
        stack.extend(reversed(subdirs))


def is_indexable(root: Path, path: Path, settings: Settings) -> bool:
    """Whether ``path`` may be indexed or shown to the model as context for workspace ``root``.

    Applies every rule of this module. A file that does not exist on disk (an unsaved buffer)
    is judged by its path alone.
    """
    rules = IgnoreRules(root, settings)
    rel = rules.accepts(path)
    if rel is None:
        return False
    full = rules.root / rel
    return not (full.exists() and looks_binary(full))
