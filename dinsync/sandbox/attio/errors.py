"""Attio's error envelope: `{"status_code", "type", "code", "message"}` (+ `validation_errors`)."""
from __future__ import annotations

import orjson
from aiohttp import web


class AttioError(Exception):
    """A whole-request failure, answered with Attio's JSON error envelope."""

    def __init__(self, status: int, code: str, message: str, type_: str = "invalid_request_error",
                 validation_errors: list[dict] | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.type = status, code, message, type_
        self.validation_errors = validation_errors

    def body(self) -> dict:
        body = {"status_code": self.status, "type": self.type, "code": self.code, "message": self.message}
        if self.validation_errors is not None:
            body["validation_errors"] = self.validation_errors
        return body

    def response(self, headers: dict[str, str] | None = None) -> web.Response:
        return web.Response(status=self.status, body=orjson.dumps(self.body()), content_type="application/json",
                            headers=headers)


def invalid_value(slug: str, reason: str, index: int | None = None) -> AttioError:
    """A value of the wrong shape for its attribute type (message as Attio words it)."""
    path: list = ["data", "values", slug] + ([index] if index is not None else [])
    return AttioError(400, "validation_type", f'An invalid value was passed to attribute with slug "{slug}".',
                      validation_errors=[{"code": "invalid_value", "path": path, "message": reason}])


def body_error(issues: list[dict]) -> AttioError:
    return AttioError(400, "validation_type", "Body payload validation error.", validation_errors=issues)


def query_error(issues: list[dict]) -> AttioError:
    return AttioError(400, "validation_type", "Query params validation error.", validation_errors=issues)


def zod_type_issue(path: list, expected: str, value: object) -> dict:
    """An issue in the zod style Attio's validation errors use."""
    received = "undefined" if value is _MISSING else _json_type(value)
    message = "Required" if value is _MISSING else f"Expected {expected}, received {received}"
    return {"code": "invalid_type", "path": path, "message": message, "expected": expected, "received": received}


_MISSING = object()
MISSING = _MISSING


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"
