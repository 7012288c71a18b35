"""What a file imports, resolved to files of the workspace index.

:func:`parse_imports` reads the import statements tree-sitter found (``FileEntry.imports``) and
returns :class:`ImportRef` values: the names an import brings into scope, the local name a
module is bound to, and where to look for it. :func:`resolve` turns a reference into
workspace-relative paths, given the paths the index holds and a :class:`ModuleMap` of them.

Per language (anything else, and imports of third-party packages, resolve to nothing):

* Python: ``from .x import A`` (relative to the file's package), ``from a.b import A`` and
  ``import a.b [as c]`` (absolute: any file whose module path ends with ``a/b``);
* JavaScript / TypeScript: ``import { A, B as C } from "./x"``, ``import * as ns``,
  ``import D from``, ``export { A } from``; relative specifiers only (``.js`` -> ``.ts``, index);
* Go: ``import [alias] "path/to/pkg"``: the files of a directory ending with that path;
* Rust: ``use crate::a::b::{C, D as E}``, ``use super::x::Y``, ``use a::b``;
* Java: ``import a.b.C;``, ``import static a.b.C.m;``, ``import a.b.*;``;
* C / C++: ``#include "x/y.h"`` (next to the file, else any file ending with that path).

Everything here is pure and cheap: strings in, tuples out.
"""

from __future__ import annotations

import dataclasses
import posixpath
import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence

from lsp_llm.context.parse import language_for

_PY_PACKAGE = ("__init__.py", "__init__.pyi")
_JS_EXTENSIONS = (".ts", ".tsx", ".d.ts", ".js", ".jsx", ".mjs", ".cjs")
_JS_INDEX = tuple(f"index{ext}" for ext in _JS_EXTENSIONS)


@dataclasses.dataclass(frozen=True, slots=True)
class ImportRef:
    """One imported module and what the importing file calls its contents."""

    names: tuple[tuple[str, str], ...]
    """(name in the module, local name) pairs: ``from m import A as B`` -> (("A", "B"),)."""
    module_alias: str = ""
    """The local name the module itself is bound to (``import m as x``, a Go package name);
    names used as ``alias.Name`` are looked up in the module's files."""
    all_names: bool = False
    """Every top-level name of the target is in scope (C includes, ``import *``)."""
    paths: tuple[str, ...] = ()
    """Candidate workspace-relative paths, most likely first (any that exist are used)."""
    segments: tuple[str, ...] = ()
    """Else: a module path matched against the ends of the index's module paths."""
    directory: bool = False
    """``segments`` names a directory (Go packages, ``import a.b.*``)."""


class ModuleMap:
    """The index's paths by last module segment and by last directory segment."""

    def __init__(self, rels: Iterable[str]) -> None:
        by_module: defaultdict[str, list[tuple[tuple[str, ...], str]]] = defaultdict(list)
        by_dir: defaultdict[str, list[tuple[tuple[str, ...], str]]] = defaultdict(list)
        for rel in rels:
            segments = module_path(rel)
            if segments:
                by_module[segments[-1]].append((segments, rel))
            directory = tuple(rel.split("/")[:-1])
            if directory:
                by_dir[directory[-1]].append((directory, rel))
        self._by_module = {k: tuple(v) for k, v in by_module.items()}
        self._by_dir = {k: tuple(v) for k, v in by_dir.items()}

    def files(self, segments: tuple[str, ...], *, directory: bool = False) -> list[str]:
        """Paths whose module path (or directory) ends with the most of ``segments``' tail;
        at least the last segment must match."""
        if not segments:
            return []
        table = self._by_dir if directory else self._by_module
        best: list[str] = []
        best_n = 0
        for candidate, rel in table.get(segments[-1], ()):
            n = _common_suffix(candidate, segments)
            if n > best_n:
                best, best_n = [rel], n
            elif n == best_n:
                best.append(rel)
        return sorted(best)


def module_path(rel: str) -> tuple[str, ...]:
    """``a/b/c.py`` -> ("a", "b", "c"); package files (``__init__.py``, ``index.ts``,
    ``mod.rs``, ``lib.rs``) stand for their directory."""
    parts = rel.split("/")
    parts[-1] = parts[-1].split(".", 1)[0]
    if len(parts) > 1 and parts[-1] in ("__init__", "index", "mod", "lib"):
        parts.pop()
    return tuple(p for p in parts if p)


def _common_suffix(a: tuple[str, ...], b: tuple[str, ...]) -> int:
    n = 0
    while n < len(a) and n < len(b) and a[-1 - n] == b[-1 - n]:
        n += 1
    return n


def _names(text: str, separator: str = " as ") -> tuple[tuple[str, str], ...]:
    out = []
    for item in text.replace("(", " ").replace(")", " ").replace("\n", " ").split(","):
        item = item.strip()
        if item.startswith("type "):
            item = item[5:].strip()
        if not item or item == "*":
            continue
        name, _, local = item.partition(separator)
        name, local = name.strip(), (local.strip() or name.strip())
        if name.isidentifier() and local.isidentifier():
            out.append((name, local))
    return tuple(out)


# -- per language -------------------------------------------------------------------------------

_PY_FROM_RE = re.compile(r"^from\s+(\.*)([\w.]*)\s+import\s+(.+)$", re.DOTALL)
_PY_IMPORT_RE = re.compile(r"^import\s+(.+)$", re.DOTALL)


def _python(rel: str, statement: str) -> list[ImportRef]:
    directory = rel.split("/")[:-1]
    match = _PY_FROM_RE.match(statement)
    if match is not None:
        dots, module, names_text = match.groups()
        names = _names(names_text)
        parts = [p for p in module.split(".") if p]
        if dots:
            up = len(dots) - 1
            if up > len(directory):
                return []
            base = directory[: len(directory) - up] + parts
            stem = "/".join(base)
            paths = tuple(
                p.lstrip("/")
                for p in (f"{stem}.py", f"{stem}.pyi", *(f"{stem}/{f}" for f in _PY_PACKAGE))
            )
            refs = [ImportRef(names=names, paths=paths)]
            # ``from . import mod``: each name may be a submodule.
            refs += [
                ImportRef(
                    names=(),
                    module_alias=local,
                    paths=(
                        f"{stem}/{name}.py".lstrip("/"),
                        f"{stem}/{name}/__init__.py".lstrip("/"),
                    ),
                )
                for name, local in names
            ]
            return refs
        if not parts:
            return []
        refs = [ImportRef(names=names, segments=tuple(parts))]
        refs += [
            ImportRef(names=(), module_alias=local, segments=(*parts, name))
            for name, local in names
        ]
        return refs
    match = _PY_IMPORT_RE.match(statement)
    if match is None:
        return []
    refs = []
    for item in match.group(1).split(","):
        module, _, alias = item.strip().partition(" as ")
        segments = tuple(p for p in module.strip().split(".") if p)
        if segments:
            refs.append(
                ImportRef(names=(), module_alias=alias.strip() or segments[-1], segments=segments)
            )
    return refs


_JS_FROM_RE = re.compile(r"""^(?:import|export)\b(.*?)\bfrom\s*["']([^"']+)["']""", re.DOTALL)


def _javascript(rel: str, statement: str) -> list[ImportRef]:
    match = _JS_FROM_RE.match(statement.strip())
    if match is None:
        return []
    clause, spec = match.groups()
    if not spec.startswith("."):
        return []
    base = posixpath.normpath(posixpath.join(posixpath.dirname(rel), spec))
    if base.startswith(".."):
        return []
    stem = re.sub(r"\.(?:m|c)?js$|\.jsx$", "", base)
    paths = (
        *(stem + ext for ext in _JS_EXTENSIONS),
        *(f"{stem}/{index}" for index in _JS_INDEX),
        base,
    )
    clause = clause.strip()
    if clause.startswith("type "):
        clause = clause[5:]
    names: tuple[tuple[str, str], ...] = ()
    alias = ""
    braces = re.search(r"\{(.*)\}", clause, re.DOTALL)
    if braces is not None:
        names = _names(braces.group(1))
    star = re.search(r"\*\s+as\s+([A-Za-z_$][\w$]*)", clause)
    if star is not None:
        alias = star.group(1)
    default = re.match(r"([A-Za-z_$][\w$]*)\s*(?:,|$)", clause)
    if default is not None and default.group(1) != "type":
        # A default import: the module's own name for it is unknown; its local name often
        # matches the exported class or function.
        names = (*names, (default.group(1), default.group(1)))
    return [ImportRef(names=names, module_alias=alias, paths=paths)]


_GO_SPEC_RE = re.compile(r"""^(?:([A-Za-z_]\w*|\.)\s+)?"([^"]+)"$""")


def _go(rel: str, statement: str) -> list[ImportRef]:
    match = _GO_SPEC_RE.match(statement.strip())
    if match is None:
        return []
    alias, path = match.groups()
    segments = tuple(p for p in path.split("/") if p)
    if not segments:
        return []
    return [
        ImportRef(
            names=(),
            module_alias="" if alias == "." else (alias or segments[-1].replace("-", "_")),
            all_names=alias == ".",
            segments=segments,
            directory=True,
        )
    ]


_RUST_USE_RE = re.compile(r"^(?:pub(?:\([^)]*\))?\s+)?use\s+(.+?);?$", re.DOTALL)


def _rust(rel: str, statement: str) -> list[ImportRef]:
    match = _RUST_USE_RE.match(statement.strip())
    if match is None:
        return []
    tree = match.group(1).replace(" ", "").replace("\n", "")
    refs = []
    for module, leaves in _rust_paths(tree):
        parts = tuple(p for p in module if p not in ("crate", "self", "super"))
        names = tuple(
            (leaf, local)
            for leaf, local in leaves
            if leaf not in ("self", "*") and leaf.isidentifier()
        )
        if parts:
            refs.append(ImportRef(names=names, all_names=("*", "*") in leaves, segments=parts))
            if any(leaf == "self" for leaf, _ in leaves):
                refs.append(ImportRef(names=(), module_alias=parts[-1], segments=parts))
        for leaf, local in names:  # ``use a::b``: b may be a module
            refs.append(ImportRef(names=(), module_alias=local, segments=(*parts, leaf)))
    return refs


def _rust_paths(tree: str) -> list[tuple[tuple[str, ...], list[tuple[str, str]]]]:
    """``a::b::{C,d::E as F}`` -> [(("a","b"), [("C","C")]), (("a","b","d"), [("E","F")])]."""
    brace = tree.find("{")
    if brace < 0:
        parts = tree.split("::")
        leaf, _, local = parts[-1].partition("as")
        if "as" not in parts[-1]:
            local = leaf
        return [(tuple(parts[:-1]), [(leaf, local or leaf)])]
    prefix = tuple(p for p in tree[:brace].split("::") if p)
    inner = tree[brace + 1 : tree.rfind("}")]
    out: list[tuple[tuple[str, ...], list[tuple[str, str]]]] = []
    depth = 0
    start = 0
    items = []
    for i, ch in enumerate(inner):
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
        elif ch == "," and depth == 0:
            items.append(inner[start:i])
            start = i + 1
    items.append(inner[start:])
    for item in filter(None, items):
        for module, leaves in _rust_paths(item):
            out.append(((*prefix, *module), leaves))
    return out


_JAVA_RE = re.compile(r"^import\s+(static\s+)?([\w.]+?)(\.\*)?\s*;?$")


def _java(rel: str, statement: str) -> list[ImportRef]:
    match = _JAVA_RE.match(statement.strip())
    if match is None:
        return []
    static, path, star = match.groups()
    parts = tuple(path.split("."))
    if star:
        return [ImportRef(names=(), all_names=True, segments=parts, directory=True)]
    if static:
        return [ImportRef(names=((parts[-1], parts[-1]),), segments=parts[:-1])]
    return [ImportRef(names=((parts[-1], parts[-1]),), segments=parts)]


_INCLUDE_RE = re.compile(r'^#\s*include\s*"([^"]+)"')


def _c(rel: str, statement: str) -> list[ImportRef]:
    match = _INCLUDE_RE.match(statement.strip())
    if match is None:
        return []
    spec = match.group(1)
    local = posixpath.normpath(posixpath.join(posixpath.dirname(rel), spec))
    paths = (local,) if not local.startswith("..") else ()
    return [ImportRef(names=(), all_names=True, paths=paths, segments=(spec,))]


_PARSERS: dict[str, Callable[[str, str], list[ImportRef]]] = {
    "python": _python,
    "javascript": _javascript,
    "typescript": _javascript,
    "tsx": _javascript,
    "go": _go,
    "rust": _rust,
    "java": _java,
    "c": _c,
    "cpp": _c,
}


def parse_imports(
    rel: str, statements: Iterable[str], language: str | None = None
) -> list[ImportRef]:
    """The imports of the file ``rel`` (its language from the extension unless given)."""
    lang = language or language_for(rel)
    parser = _PARSERS.get(lang or "")
    if parser is None:
        return []
    out: list[ImportRef] = []
    seen: set[str] = set()
    for statement in statements:
        statement = statement.strip()
        if statement in seen:
            continue
        seen.add(statement)
        try:
            out += parser(rel, statement)
        except (ValueError, IndexError):  # a statement half typed
            continue
    return out


def resolve(
    ref: ImportRef, exists: Callable[[str], bool], modules: ModuleMap, rel: str | None = None
) -> list[str]:
    """Workspace-relative files an import names (the importing file ``rel`` excluded)."""
    for path in ref.paths:
        if path != rel and exists(path):
            return [path]
    if not ref.segments:
        return []
    if len(ref.segments) == 1 and "/" in ref.segments[0]:  # a C include path
        spec = ref.segments[0]
        name = spec.rsplit("/", 1)[-1]
        found = [
            r
            for r in modules.files((name.split(".", 1)[0],))
            if r == spec or r.endswith("/" + spec)
        ]
        return [r for r in found if r != rel]
    if len(ref.segments) == 1 and "." in ref.segments[0]:  # "util.h"
        name = ref.segments[0]
        found = [r for r in modules.files((name.split(".", 1)[0],)) if r.rsplit("/", 1)[-1] == name]
        return [r for r in found if r != rel]
    files = modules.files(ref.segments, directory=ref.directory)
    return [r for r in files if r != rel]


def imported_names(refs: Sequence[ImportRef]) -> set[str]:
    """The local names a file's imports bring into scope."""
    return {local for ref in refs for _, local in ref.names} | {
        ref.module_alias for ref in refs if ref.module_alias
    }
