"""Request bodies and query parameters checked against the spec's schemas, answered the way Attio
reports validation failures (400 `validation_type` with zod-style `validation_errors`).

Record writes: `{"data": {"values": {...}}}`; the spec sets `additionalProperties: false` on `data` for
assert, PATCH and PUT (not for POST). Query: `{"filter"?, "sorts"?, "limit"?, "offset"?}`.
`strict` (option `reject_unknown_body_keys`) also refuses unknown keys where the spec is silent.
"""
from __future__ import annotations

from typing import Any, Mapping

import orjson

from .errors import MISSING, body_error, query_error, zod_type_issue


def parse_json(raw: bytes) -> Any:
    try:
        return orjson.loads(raw) if raw else MISSING
    except orjson.JSONDecodeError as exc:
        raise body_error([{"code": "invalid_json", "path": [], "message": f"Malformed JSON: {exc}"}]) from None


def json_body(raw: bytes, content_type: str) -> Any:
    """The request's JSON document. The spec lists `application/json` as the only media type of
    request bodies: a body sent as another (or without Content-Type) is not read, as if absent."""
    return parse_json(raw) if content_type == "application/json" else MISSING


def _unrecognized(path: list, keys: list[str]) -> dict:
    quoted = ", ".join(f"'{k}'" for k in keys)
    return {"code": "unrecognized_keys", "keys": keys, "path": path,
            "message": f"Unrecognized key(s) in object: {quoted}"}


def _object(value: Any, path: list, issues: list[dict]) -> dict | None:
    if isinstance(value, dict):
        return value
    issues.append(zod_type_issue(path, "object", value))
    return None


def record_values(doc: Any, strict_data: bool, strict: bool) -> dict:
    """The `values` object of a record write, or raise 400 validation_type."""
    issues: list[dict] = []
    root = _object(doc, [], issues)
    values = None
    if root is not None:
        data = _object(root.get("data", MISSING), ["data"], issues)
        if strict:
            extra = sorted(set(root) - {"data"})
            if extra:
                issues.append(_unrecognized([], extra))
        if data is not None:
            values = _object(data.get("values", MISSING), ["data", "values"], issues)
            extra = sorted(set(data) - {"values"})
            if extra and (strict_data or strict):
                issues.append(_unrecognized(["data"], extra))
    if issues:
        raise body_error(issues)
    return values  # type: ignore[return-value]


def query_body(doc: Any, strict: bool) -> dict:
    """filter, sorts, limit, offset of a records query (the spec requires a body: `{}` at least)."""
    issues: list[dict] = []
    root = _object(doc, [], issues)
    if root is None:
        raise body_error(issues)
    if "filter" in root:
        _object(root["filter"], ["filter"], issues)
    for key in ("limit", "offset"):
        if key in root and (isinstance(root[key], bool) or not isinstance(root[key], (int, float))):
            issues.append(zod_type_issue([key], "number", root[key]))
        elif key in root and (root[key] < 0 or root[key] != int(root[key])):
            issues.append({"code": "invalid_number", "path": [key], "message": f"{key} must be a whole number >= 0"})
    sorts = root.get("sorts", [])
    if not isinstance(sorts, list):
        issues.append(zod_type_issue(["sorts"], "array", sorts))
        sorts = []
    for i, sort in enumerate(sorts):
        if not isinstance(sort, dict):
            issues.append(zod_type_issue(["sorts", i], "object", sort))
            continue
        if sort.get("direction") not in ("asc", "desc"):
            issues.append({"code": "invalid_enum_value", "path": ["sorts", i, "direction"], "options": ["asc", "desc"],
                           "message": "Invalid enum value. Expected 'asc' | 'desc'"})
        allowed = {"direction", "field"} | ({"path"} if "path" in sort else {"attribute"})
        key = "path" if "path" in sort else "attribute"
        expected = "array" if key == "path" else "string"
        if not isinstance(sort.get(key, MISSING), list if key == "path" else str):
            issues.append(zod_type_issue(["sorts", i, key], expected, sort.get(key, MISSING)))
        if "field" in sort and not isinstance(sort["field"], str):
            issues.append(zod_type_issue(["sorts", i, "field"], "string", sort["field"]))
        extra = sorted(set(sort) - allowed)
        if extra and strict:
            issues.append(_unrecognized(["sorts", i], extra))
    extra = sorted(set(root) - {"filter", "sorts", "limit", "offset"})
    if extra and strict:
        issues.append(_unrecognized([], extra))
    if issues:
        raise body_error(issues)
    return root


def query_params(query: Mapping[str, str], spec: dict[str, str], required: tuple[str, ...] = ()) -> dict:
    """Typed query parameters (`spec`: name -> "string" | "integer" | "boolean"); unknown ones ignored.
    A parameter given twice (`?matching_attribute=a&matching_attribute=b`) reaches the validation as an
    array, which none of these types is: refused, where reading its first value let such a client pass."""
    issues: list[dict] = []
    out: dict[str, Any] = {}
    for name in required:
        if name not in query:
            issues.append(zod_type_issue([name], spec[name], MISSING))
    for name, kind in spec.items():
        if name not in query:
            continue
        getall = getattr(query, "getall", None)
        if getall is not None and len(getall(name)) > 1:
            issues.append({"code": "invalid_type", "path": [name], "message": f"Expected {kind}, received array",
                           "expected": kind, "received": "array"})
            continue
        raw = query[name]
        if kind == "integer":
            if raw.isdigit():
                out[name] = int(raw)
            else:
                issues.append({"code": "invalid_type", "path": [name], "message": "Expected integer, received string",
                               "expected": "integer", "received": "string"})
        elif kind == "boolean":
            if raw in ("true", "false"):
                out[name] = raw == "true"
            else:
                issues.append({"code": "invalid_type", "path": [name], "message": "Expected boolean, received string",
                               "expected": "boolean", "received": "string"})
        else:
            out[name] = raw
    if issues:
        raise query_error(issues)
    return out
