"""Typed wire messages of our custom methods, registered with pygls the way it maps lsprotocol's.

pygls structures an incoming message with ``get_message_type(method)`` and its cattrs converter,
and unstructures every attrs object it writes with the same converter (lsprotocol's hooks:
snake_case fields become camelCase keys, fields equal to their default are left out).
``LlmProtocol.get_message_type`` looks our methods up in :data:`MESSAGE_TYPES`, and
:func:`make_converter` (the server's ``converter_factory``) adds the few hooks below, so a
handler gets attrs params and returns attrs results; nothing re-parses dicts.

Leniency kept from the hand parsing these replace, pinned by ``tests/server/golden/``:
positions accept numbers as strings and clamp negative values to 0; a missing, non-object or
incomplete range or position is a -32602 that names the value (:class:`InvalidParams`); a
missing ``textDocument`` reaches the handler as None (answered "document None is not open").

Wire shapes (the Neovim, VS Code and Emacs clients read exactly these):

* ``lspLlm/explain`` ``{textDocument: {uri}, range, partialResultToken?, workDoneToken?}``
  -> ``{text, finishReason, range}`` (whole lines: ``end`` is the start of the next line).
* ``lspLlm/docstring`` ``{textDocument: {uri}, position, partialResultToken?, workDoneToken?}``
  -> ``{text, edit: WorkspaceEdit, target: {name, kind}}``.
* ``lspLlm/status`` (any params) -> the engine's status fields, then ``settings``, ``session``,
  ``sessions`` and, when known, ``lastCompletion``, ``index``, ``acceptance``.
* ``lspLlm/statusChanged`` (notification, server to client): the same object as params.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs
import cattrs
from lsprotocol import types
from pygls.protocol import default_converter

from lsp_llm.errors import InvalidParams

EXPLAIN = "lspLlm/explain"
DOCSTRING = "lspLlm/docstring"
STATUS = "lspLlm/status"
STATUS_CHANGED = "lspLlm/statusChanged"
DEBUG_DOCUMENT = "lspLlm/debugDocument"
DEBUG_FAULT = "lspLlm/debugFault"
DEBUG_LAST_PROMPT = "lspLlm/debugLastPrompt"

MsgId = int | str
ProgressToken = int | str


# -- params --------------------------------------------------------------------------------


@attrs.define(frozen=True)
class ClientPosition:
    """A position as a client sent it, made valid: clamped to >= 0 (see the module doc)."""

    line: int
    character: int

    def lsp(self) -> types.Position:
        return types.Position(line=self.line, character=self.character)


@attrs.define(frozen=True)
class ClientRange:
    start: ClientPosition
    end: ClientPosition


@attrs.define(frozen=True)
class DocumentRef:
    """``textDocument``: only the uri is read."""

    uri: str | None = None


@attrs.define(frozen=True)
class ExplainParams:
    range: ClientRange
    text_document: DocumentRef | None = None
    partial_result_token: ProgressToken | None = None
    work_done_token: ProgressToken | None = None


@attrs.define(frozen=True)
class DocstringParams:
    position: ClientPosition
    text_document: DocumentRef | None = None
    partial_result_token: ProgressToken | None = None
    work_done_token: ProgressToken | None = None


@attrs.define(frozen=True)
class StatusParams:
    """``lspLlm/status`` takes no params; whatever is sent is ignored."""


@attrs.define(frozen=True)
class DebugDocumentParams:
    uri: Any = None
    """Any JSON value; only a string names a document."""


@attrs.define(frozen=True)
class DebugFaultParams:
    kind: Any = None


# -- results -------------------------------------------------------------------------------


@attrs.define(frozen=True)
class ExplainResult:
    text: str
    finish_reason: str
    range: types.Range


@attrs.define(frozen=True)
class DocstringTarget:
    name: str
    kind: str


@attrs.define(frozen=True)
class DocstringResult:
    text: str
    edit: types.WorkspaceEdit
    target: DocstringTarget


@attrs.define(frozen=True)
class ContextEntry:
    """One snippet of another file that the last completion's prompt had."""

    path: str
    source: str
    score: float


@attrs.define(frozen=True)
class LastCompletion:
    source: str
    reason: str
    suggestions: int
    spans_ms: dict[str, float]
    context: list[ContextEntry]


@attrs.define(frozen=True)
class StatusReport:
    """The status object; ``engine`` (``EngineStatus.to_wire()``) is spread at the top level."""

    engine: dict[str, Any]
    settings: dict[str, Any]
    session: int
    sessions: int
    last_completion: LastCompletion | None = None
    index: dict[str, Any] | None = None
    acceptance: dict[str, Any] | None = None


# -- messages (what get_message_type returns) -------------------------------------------------
# No defaults on id/method/jsonrpc: lsprotocol's hooks leave out fields equal to their default.


@attrs.define
class ExplainRequest:
    id: MsgId
    params: ExplainParams
    method: str
    jsonrpc: str


@attrs.define
class DocstringRequest:
    id: MsgId
    params: DocstringParams
    method: str
    jsonrpc: str


@attrs.define
class StatusRequest:
    id: MsgId
    params: StatusParams
    method: str
    jsonrpc: str


@attrs.define
class DebugDocumentRequest:
    id: MsgId
    params: DebugDocumentParams
    method: str
    jsonrpc: str


@attrs.define
class DebugFaultRequest:
    id: MsgId
    params: DebugFaultParams
    method: str
    jsonrpc: str


@attrs.define
class StatusChangedNotification:
    params: StatusReport
    method: str
    jsonrpc: str


MESSAGE_TYPES: dict[str, type[Any]] = {
    EXPLAIN: ExplainRequest,
    DOCSTRING: DocstringRequest,
    STATUS: StatusRequest,
    STATUS_CHANGED: StatusChangedNotification,
    DEBUG_DOCUMENT: DebugDocumentRequest,
    DEBUG_FAULT: DebugFaultRequest,
}
"""Method -> message class, for ``LlmProtocol.get_message_type``."""


# -- converter hooks -------------------------------------------------------------------------


def position_from_wire(value: Any) -> ClientPosition:
    """The lenient position rule (also used for command arguments)."""
    try:
        line, character = int(value["line"]), int(value["character"])
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidParams(f"invalid position {value!r}") from exc
    return ClientPosition(line=max(0, line), character=max(0, character))


def range_from_wire(value: Any) -> ClientRange:
    if not isinstance(value, dict):
        raise InvalidParams(f"invalid range {value!r}")
    return ClientRange(
        start=position_from_wire(value.get("start")), end=position_from_wire(value.get("end"))
    )


def _document_ref(value: Any) -> DocumentRef | None:
    if not isinstance(value, dict):
        return None
    uri = value.get("uri")
    return DocumentRef(uri=uri if isinstance(uri, str) else None)


_TOKENS = ("partialResultToken", "workDoneToken")


def _token(value: Any) -> ProgressToken | None:
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        return None
    return value


def _lenient_params(
    converter: cattrs.Converter, cls: type[Any], required: tuple[str, ...]
) -> Callable[[Any, Any], Any]:
    """Structure ``cls`` from any value: a non-object is ``{}``, and a missing field in
    ``required`` reaches its own hook as None (which then names it in its -32602)."""
    base = cattrs.gen.make_dict_structure_fn(
        cls,
        converter,
        **{a.name: cattrs.gen.override(rename=_camel(a.name)) for a in attrs.fields(cls)},  # type: ignore[arg-type]
    )

    def structure(value: Any, _: Any) -> Any:
        data = dict(value) if isinstance(value, dict) else {}
        for name in required:
            data.setdefault(_camel(name), None)
        for key in _TOKENS:
            if key in data and _token(data[key]) is None:
                del data[key]  # as before: a token we cannot echo is no token
        return base(data, cls)

    return structure


def _camel(name: str) -> str:
    first, *rest = name.split("_")
    return first + "".join(p.title() for p in rest)


def _unstructure_status(converter: cattrs.Converter) -> Callable[[StatusReport], dict[str, Any]]:
    def unstructure(report: StatusReport) -> dict[str, Any]:
        out: dict[str, Any] = dict(report.engine)
        out["settings"] = report.settings
        out["session"] = report.session
        out["sessions"] = report.sessions
        if report.last_completion is not None:
            out["lastCompletion"] = converter.unstructure(report.last_completion)
        if report.index is not None:
            out["index"] = report.index
        if report.acceptance is not None:
            out["acceptance"] = report.acceptance
        return out

    return unstructure


def make_converter() -> cattrs.Converter:
    """pygls' default converter (lsprotocol's hooks) plus ours; the server's converter_factory."""
    converter = default_converter()
    converter.register_structure_hook(ClientPosition, lambda v, _: position_from_wire(v))
    converter.register_structure_hook(ClientRange, lambda v, _: range_from_wire(v))
    converter.register_structure_hook(DocumentRef | None, lambda v, _: _document_ref(v))
    converter.register_structure_hook(StatusParams, lambda v, _: StatusParams())
    converter.register_structure_hook(
        ExplainParams, _lenient_params(converter, ExplainParams, ("range",))
    )
    converter.register_structure_hook(
        DocstringParams, _lenient_params(converter, DocstringParams, ("position",))
    )
    for cls in (DebugDocumentParams, DebugFaultParams):
        converter.register_structure_hook(cls, _lenient_params(converter, cls, ()))
    for message in MESSAGE_TYPES.values():
        if message is not StatusChangedNotification:  # a request may leave params out
            converter.register_structure_hook(
                message, _lenient_params(converter, message, ("params",))
            )
    converter.register_unstructure_hook(StatusReport, _unstructure_status(converter))
    return converter
