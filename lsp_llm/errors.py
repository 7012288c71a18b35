"""Our exceptions, each mapped to a JSON-RPC error code in one place: :func:`to_response_error`.

Domain code raises these; request handlers let them propagate (or raise them); the protocol
(``LlmProtocol._send_handler_result``) turns whatever a handler raised into the one answer its
request gets, through :func:`to_response_error`. They subclass pygls' ``JsonRpcException``, the
way pygls' own errors carry their code, so pygls' paths that see them answer the same way.
"""

from __future__ import annotations

from lsprotocol import types
from pygls.exceptions import JsonRpcException

INTERNAL_ERROR = -32603


class LlmError(JsonRpcException):
    """Base of our request errors. ``CODE`` is the JSON-RPC error code of the answer."""

    CODE = INTERNAL_ERROR


class RequestFailed(LlmError):
    """The request was valid but could not be served (model error, out of memory): -32803."""

    CODE = -32803


class InvalidParams(LlmError):
    """-32602: the params deserialized but make no sense (unknown document, bad range)."""

    CODE = -32602


class DocumentNotOpen(InvalidParams):
    """The request names a document the client has not opened (-32602)."""


class DocumentChanged(InvalidParams):
    """The document changed while the answer was computed; the result would not apply."""


def to_response_error(exc: BaseException) -> types.ResponseError:
    """The JSON-RPC error answer for ``exc``: our exceptions (and pygls' own) keep their code
    and message; anything else is an internal error (-32603) named by its type."""
    if isinstance(exc, JsonRpcException):
        return types.ResponseError(code=exc.code, message=exc.message, data=exc.data)
    return types.ResponseError(code=INTERNAL_ERROR, message=f"{exc.__class__.__name__}: {exc}")


def invalid_params_in(exc: BaseException | None) -> InvalidParams | None:
    """The first :class:`InvalidParams` inside ``exc``: its causes and, for the exception groups
    cattrs raises when structuring fails, its members. None when there is none."""
    seen: set[int] = set()
    stack: list[BaseException] = [exc] if exc is not None else []
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, InvalidParams):
            return current
        members = getattr(current, "exceptions", None)  # an exception group (3.10: backport)
        if isinstance(members, (list, tuple)):
            stack.extend(m for m in reversed(members) if isinstance(m, BaseException))
        for linked in (current.__cause__, current.__context__):
            if linked is not None:
                stack.append(linked)
    return None
