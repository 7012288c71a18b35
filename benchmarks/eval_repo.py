"""Repository-level line completion, CrossCodeEval-style (Ding et al. 2023).

Samples
-------
From a real Python code base (by default the installed ``httpx`` package, copied into a
temporary workspace so the server indexes it there), a sample is a physical line that uses an
identifier **imported from another module of the same code base** (``from ._models import
Response`` then ``Response(...)``, or ``from . import _utils`` then ``_utils.f(...)``), where
that identifier is defined (top-level ``def``/``class``/assignment) in a file other than the
current one. Import lines themselves are not samples.

The cut
-------
Each line is cut right after its first token (``return``, ``self``, ``response``, ...), and
only lines where the cross-file identifier lies *after* the cut are kept, so the model has to
produce it. The document the server sees is the file up to the cursor: the rest of the line
and the rest of the file are removed (CrossCodeEval's left-context setting). Keeping the rest
of the file would let a FIM model copy later uses of the same identifier, which measures the
suffix, not retrieval. The full, unmodified file stays on disk; the index excludes the
current file from retrieval, so the truth never reaches the prompt through it.

Scoring
-------
Only the first line of the suggestion counts (line-level completion). Exact match compares it
with the rest of the true line, both stripped of surrounding whitespace; edit similarity is
``1 - levenshtein(a, b) / max(len(a), len(b))`` on the same strings (CrossCodeEval's ES).
"""

from __future__ import annotations

import ast
import dataclasses
import importlib.util
import io
import random
import shutil
import tokenize
from collections.abc import Sequence
from pathlib import Path
from typing import Any

IGNORED_DIRS = ("__pycache__", "*.pyc", "*.pyo", "*.so", ".git")
MAX_TARGET_CHARS = 100
MIN_TARGET_CHARS = 4


@dataclasses.dataclass(frozen=True)
class LineSample:
    path: str
    """Workspace-relative path (``httpx/_client.py``)."""
    line: int
    """0-based line of the cursor."""
    column: int
    """Cursor column in characters (ASCII in practice; converted to UTF-16 by the caller)."""
    prefix: str
    """The document the server sees: the file up to the cursor."""
    target: str
    """The rest of the true line (what the model should produce)."""
    identifiers: tuple[str, ...]
    """The cross-file identifiers in the target."""
    defined_in: tuple[str, ...]
    """Where they are defined."""


def resolve_repo(spec: str) -> Path:
    """A directory, or the name of an installed package (its source directory)."""
    path = Path(spec).expanduser()
    if path.is_dir():
        return path.resolve()
    found = importlib.util.find_spec(spec)
    if found is None or not found.submodule_search_locations:
        raise FileNotFoundError(f"no directory or installed package named {spec!r}")
    return Path(next(iter(found.submodule_search_locations))).resolve()


def copy_repo(source: Path, workspace: Path) -> Path:
    """Copy the tree into ``workspace/<name>``; returns that directory."""
    dest = workspace / source.name
    shutil.copytree(source, dest, ignore=shutil.ignore_patterns(*IGNORED_DIRS))
    return dest


def _module_name(rel: Path) -> str:
    parts = list(rel.with_suffix("").parts)
    if parts and parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_package(rel: Path) -> bool:
    return rel.name == "__init__.py"


def _resolve_from(module: str, is_package: bool, level: int, target: str | None) -> str:
    """The absolute module of ``from <level dots><target> import ...`` inside ``module``."""
    if level == 0:
        return target or ""
    parts = module.split(".") if module else []
    base = parts if is_package else parts[:-1]
    if level > 1:
        base = base[: len(base) - (level - 1)]
    return ".".join([*base, *([target] if target else [])])


def _top_level_definitions(tree: ast.Module) -> set[str]:
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            for target in node.targets:
                names.update(n.id for n in ast.walk(target) if isinstance(n, ast.Name))
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
    return names


def _first_tokens(source: str) -> dict[int, int]:
    """For each 1-based line where a token starts first: the end column of that token."""
    out: dict[int, int] = {}
    skip = {tokenize.INDENT, tokenize.DEDENT, tokenize.NL, tokenize.NEWLINE, tokenize.COMMENT}
    try:
        for tok in tokenize.generate_tokens(io.StringIO(source).readline):
            if tok.type in skip or tok.type == tokenize.ENDMARKER:
                continue
            row = tok.start[0]
            if row not in out and tok.start[0] == tok.end[0]:
                out[row] = tok.end[1]
            elif row not in out:
                out[row] = -1  # a multi-line token (string) opens the line: no sample
    except (tokenize.TokenError, SyntaxError):
        return {}
    return out


@dataclasses.dataclass
class _Module:
    rel: str
    name: str
    is_package: bool
    source: str
    tree: ast.Module
    defined: set[str]


def _parse_tree(root: Path, base: Path) -> dict[str, _Module]:
    modules: dict[str, _Module] = {}
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(base)
        try:
            source = path.read_text(encoding="utf-8")
            tree = ast.parse(source)
        except (OSError, UnicodeDecodeError, SyntaxError, ValueError):
            continue
        name = _module_name(rel)
        modules[name] = _Module(
            rel.as_posix(), name, _is_package(rel), source, tree, _top_level_definitions(tree)
        )
    return modules


def find_samples(root: Path, base: Path | None = None) -> list[LineSample]:
    """Every candidate line of the Python files under ``root`` (paths relative to ``base``,
    by default ``root``'s parent, so they start with the package name)."""
    base = base or root.parent
    modules = _parse_tree(root, base)
    samples: list[LineSample] = []
    for mod in modules.values():
        # Names imported from other in-repo modules that define them, and in-repo modules
        # imported as names (``from . import _utils``).
        names: dict[str, str] = {}
        module_aliases: dict[str, str] = {}
        import_lines: set[int] = set()
        for node in ast.walk(mod.tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                end = node.end_lineno or node.lineno
                import_lines.update(range(node.lineno, end + 1))
            if isinstance(node, ast.ImportFrom):
                source_mod = _resolve_from(mod.name, mod.is_package, node.level, node.module)
                for alias in node.names:
                    local = alias.asname or alias.name
                    defining = modules.get(source_mod)
                    if (
                        defining is not None
                        and defining.name != mod.name
                        and alias.name in defining.defined
                        and alias.name not in mod.defined
                    ):
                        names[local] = defining.rel
                    sub = modules.get(f"{source_mod}.{alias.name}" if source_mod else alias.name)
                    if sub is not None and sub.name != mod.name:
                        module_aliases[local] = sub.name
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name in modules and alias.name != mod.name:
                        module_aliases[alias.asname or alias.name.split(".")[0]] = alias.name
        uses: dict[int, list[tuple[int, str, str]]] = {}
        for node in ast.walk(mod.tree):
            if isinstance(node, ast.Name) and node.id in names:
                uses.setdefault(node.lineno, []).append((node.col_offset, node.id, names[node.id]))
            elif (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id in module_aliases
            ):
                target_mod = modules[module_aliases[node.value.id]]
                if node.attr in target_mod.defined and node.end_col_offset is not None:
                    col = node.end_col_offset - len(node.attr)
                    if node.lineno == node.end_lineno:
                        uses.setdefault(node.lineno, []).append((col, node.attr, target_mod.rel))
        if not uses:
            continue
        firsts = _first_tokens(mod.source)
        lines = mod.source.splitlines(keepends=True)
        for lineno in sorted(uses):
            if lineno in import_lines or lineno > len(lines):
                continue
            cut = firsts.get(lineno, -1)
            if cut < 0:
                continue
            text = lines[lineno - 1].rstrip("\r\n")
            after = [(col, name, rel) for col, name, rel in uses[lineno] if col >= cut]
            target = text[cut:].rstrip()
            if not after or not text.isascii():
                continue
            if not MIN_TARGET_CHARS <= len(target.strip()) <= MAX_TARGET_CHARS:
                continue
            prefix = "".join(lines[: lineno - 1]) + text[:cut]
            samples.append(
                LineSample(
                    path=mod.rel,
                    line=lineno - 1,
                    column=cut,
                    prefix=prefix,
                    target=target,
                    identifiers=tuple(dict.fromkeys(name for _, name, _ in after)),
                    defined_in=tuple(dict.fromkeys(rel for _, _, rel in after)),
                )
            )
    samples.sort(key=lambda s: (s.path, s.line))
    return samples


def distinct(samples: Sequence[LineSample]) -> list[LineSample]:
    """One sample per distinct completed line (the first): code bases repeat lines such as
    ``params: QueryParamTypes | None = None,`` dozens of times, which would dominate."""
    seen: set[str] = set()
    out = []
    for sample in samples:
        key = sample.prefix[sample.prefix.rfind("\n") + 1 :].strip() + sample.target.strip()
        if key not in seen:
            seen.add(key)
            out.append(sample)
    return out


def select(samples: Sequence[LineSample], limit: int | None, seed: int) -> list[LineSample]:
    """A seeded random subset, ordered by file and line (neighbours share prompt caches)."""
    if limit is None or limit >= len(samples):
        return list(samples)
    chosen = sorted(random.Random(seed).sample(range(len(samples)), limit))
    return [samples[i] for i in chosen]


def levenshtein(a: str, b: str) -> int:
    if len(a) < len(b):
        a, b = b, a
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


def edit_similarity(prediction: str, truth: str) -> float:
    a, b = prediction.strip(), truth.strip()
    if not a and not b:
        return 1.0
    return 1.0 - levenshtein(a, b) / max(len(a), len(b))


def exact_match(prediction: str, truth: str) -> bool:
    return prediction.strip() == truth.strip()


def score(completion: str, sample: LineSample) -> dict[str, Any]:
    """EM and ES of the suggestion's first line against the rest of the true line."""
    predicted = completion.split("\n", 1)[0]
    return {
        "prediction": predicted,
        "em": exact_match(predicted, sample.target),
        "es": edit_similarity(predicted, sample.target),
        "identifierHit": all(name in predicted for name in sample.identifiers),
    }
