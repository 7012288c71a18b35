"""Secret files: never indexed, never put in a prompt, never sent to a backend."""

from __future__ import annotations

import functools

import pathspec


@functools.lru_cache(maxsize=8)
def _spec(patterns: tuple[str, ...]) -> pathspec.GitIgnoreSpec:
    return pathspec.GitIgnoreSpec.from_lines(patterns)


def is_secret_path(path: str, patterns: tuple[str, ...]) -> bool:
    """Whether ``path`` (relative or absolute, any separators) matches a secret pattern.

    Patterns use gitignore syntax and are matched against the file name and the whole path.
    """
    if not patterns or not path:
        return False
    norm = path.replace("\\", "/")
    name = norm.rsplit("/", 1)[-1]
    spec = _spec(patterns)
    return bool(spec.match_file(name) or spec.match_file(norm.lstrip("/")))
