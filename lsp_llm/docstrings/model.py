"""The values the docstring code passes around: targets, prose, edits. No logic.

Lines are 0-based, columns are Python ``str`` indices (the server converts them to UTF-16 code
units). Language names are :func:`lsp_llm.languages.docstring_language` names: python,
javascript, typescript, tsx, rust, go, java.
"""

from __future__ import annotations

import dataclasses
from typing import Literal

TargetKind = Literal["function", "method", "class"]


@dataclasses.dataclass(frozen=True)
class Param:
    """One documented parameter of a signature."""

    name: str
    """As documented: Python keeps ``*args``/``**kwargs``; other languages the bare name."""
    type_annotation: str | None = None
    default: str | None = None
    variadic: bool = False
    """``*args``/``**kwargs``, JS/TS ``...rest``, Go ``...T``, Java ``T...``."""
    optional: bool = False
    """TypeScript ``x?: T`` (a default value also makes a parameter optional)."""


@dataclasses.dataclass(frozen=True)
class DocTarget:
    """The function, method or class a docstring is written for."""

    language: str
    """Normalized: python, javascript, typescript, tsx, rust, go or java."""
    kind: TargetKind
    name: str
    params: tuple[Param, ...]
    """Exactly the parameters to document (no ``self``/``cls``/receiver)."""
    returns: str | None
    """The return annotation / type as written, if any."""
    code: str
    """The declaration's source (decorators and body included), dedented."""
    body_indent: str
    """Python: the indentation of the body. Others: the declaration's own indentation."""
    insert_line: int
    """0-based line where a new docstring goes (before this line)."""
    existing: tuple[int, int] | None
    """0-based first and last line of the existing docstring / doc comment."""
    decl_start: tuple[int, int] = (0, 0)
    """(line, column) where the declaration begins, decorators/attributes/export included."""
    end_line: int = 0
    """0-based last line of the declaration."""
    indent: str = ""
    """The declaration line's indentation."""
    returns_value: bool = False
    """Whether a Returns section is warranted."""
    is_generator: bool = False
    is_async: bool = False
    raises: tuple[tuple[str, str], ...] = ()
    """(exception name, hint from the raise message or ``throws``) in order of appearance."""
    attributes: bool = False
    """The params are class fields (dataclass) rather than ``__init__`` arguments."""
    header_end: tuple[int, int] | None = None
    """Python: the position just after the header's ``:``."""
    body_start: tuple[int, int] | None = None
    """Python: the position of the first statement of the body."""
    existing_span: tuple[int, int, int, int] | None = None
    """Exact (line, col, end_line, end_col) of the existing docstring node / doc comment."""

    @property
    def param_names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.params)


@dataclasses.dataclass(frozen=True)
class DocContent:
    """The prose of a docstring. Rendering takes structure from the :class:`DocTarget`."""

    summary: str
    params: dict[str, str] = dataclasses.field(default_factory=dict)
    returns: str = ""
    raises: dict[str, str] = dataclasses.field(default_factory=dict)
    description: str = ""
    """Optional extended description (only when the model gave one explicitly)."""
    fallbacks: tuple[str, ...] = ()
    """Which pieces were not in the model's answer: "summary", "param:x", "returns", ..."""


@dataclasses.dataclass(frozen=True)
class TextEdit:
    """Replace [start, end) with ``new_text``. 0-based lines, ``str`` index columns."""

    start_line: int
    start_col: int
    end_line: int
    end_col: int
    new_text: str
