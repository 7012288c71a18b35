"""Our exceptions, each mapped to a JSON-RPC error code."""

from __future__ import annotations

from pygls.exceptions import JsonRpcException


class RequestFailed(JsonRpcException):
    """The request was valid but could not be served (model error, out of memory): -32803."""

    CODE = -32803


class InvalidParams(JsonRpcException):
    """-32602: the params deserialized but make no sense (unknown document, bad range)."""

    CODE = -32602
