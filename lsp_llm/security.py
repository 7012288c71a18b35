"""Secret files: never indexed, never put in a prompt, never sent to a backend.

A path is compared the way the most lenient file system an editor runs on would compare it,
so a name that opens a secret file anywhere counts as that secret everywhere: case-insensitive
(``.ENV`` is ``.env`` on macOS and Windows), Unicode-normalised (macOS stores NFD), URIs
percent-decoded (``%2Eenv``), backslashes as separators, ``.`` and ``..`` segments resolved,
and the trailing dots and spaces Windows drops (``.env.``) dropped.
"""

from __future__ import annotations

import functools
import logging
import re
import unicodedata
from urllib.parse import unquote, urlsplit

import pathspec

log = logging.getLogger(__name__)

_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]+:")
"""A scheme (two letters at least: ``C:`` is a Windows drive, not a URI)."""


def _fold(text: str) -> str:
    return unicodedata.normalize("NFC", text).casefold()


@functools.lru_cache(maxsize=8)
def _spec(patterns: tuple[str, ...]) -> pathspec.GitIgnoreSpec:
    """The patterns, folded, that compile (one broken pattern must not disable the others)."""
    valid: list[str] = []
    for pattern in patterns:
        try:
            pathspec.GitIgnoreSpec.from_lines([_fold(pattern)])
        except Exception as exc:  # one bad user pattern must not disable the others; logged
            log.warning("ignoring the secret pattern %r: %s", pattern, exc)
            continue
        valid.append(_fold(pattern))
    return pathspec.GitIgnoreSpec.from_lines(valid)


def normalize_path(path: str) -> str:
    """``path`` (a URI, or a relative or absolute path with any separators) as one
    case-folded, ``/``-separated path without empty, ``.`` or ``..`` segments."""
    if _URI.match(path):
        path = unquote(urlsplit(path).path)
    path = _fold(path).replace("\\", "/")
    rooted = path.startswith("/")
    segments: list[str] = []
    for part in path.split("/"):
        # Windows opens "name." and "name " as "name", and "name::$DATA" is its content.
        segment = part.removesuffix("::$data").rstrip(". ") or part
        if segment in ("", "."):
            continue
        if segment != "..":
            segments.append(segment)
        elif segments and segments[-1] != "..":
            segments.pop()
        elif not rooted:
            segments.append(segment)  # a relative path may climb above its start
    return ("/" if rooted else "") + "/".join(segments)


def is_secret_path(path: str, patterns: tuple[str, ...]) -> bool:
    """Whether ``path`` (see :func:`normalize_path`) matches a secret pattern.

    Patterns use gitignore syntax and are matched, case-insensitively, against the file name
    and the whole path.
    """
    if not patterns or not path:
        return False
    norm = normalize_path(path)
    name = norm.rsplit("/", 1)[-1]
    spec = _spec(patterns)
    return bool(spec.match_file(name) or spec.match_file(norm.lstrip("/")))
