"""Validate request bodies against Iterable's Swagger file (copy in tests/specs/).

The schemas are made strict (no properties beyond those the spec lists) so that a client that
invents keys fails here, not in production.
"""
from __future__ import annotations

import copy
import json
import urllib.parse
from functools import lru_cache
from pathlib import Path

import jsonschema

SPEC_PATH = Path(__file__).parent / "specs" / "iterable-swagger.json"


def _strict(node):
    if isinstance(node, dict):
        if "properties" in node and "additionalProperties" not in node:
            node["additionalProperties"] = False
        for value in node.values():
            _strict(value)
    elif isinstance(node, list):
        for value in node:
            _strict(value)
    return node


@lru_cache(maxsize=1)
def swagger() -> dict:
    return json.loads(SPEC_PATH.read_text())


@lru_cache(maxsize=None)
def _validator(path: str, method: str):
    spec = swagger()
    operation = spec["paths"][path][method.lower()]
    params = operation.get("parameters", [])
    body = [p for p in params if p.get("in") == "body"]
    if not body:
        return None, params
    schema = {"definitions": _strict(copy.deepcopy(spec["definitions"])), **body[0]["schema"]}
    return jsonschema.Draft4Validator(schema), params


def validate_iterable_request(method: str, url_path: str, body: bytes | None) -> None:
    """Raise AssertionError when a request does not follow the spec."""
    parsed = urllib.parse.urlsplit(url_path)
    path = parsed.path
    spec = swagger()
    assert path in spec["paths"], f"{path} is not an Iterable API path"
    assert method.lower() in spec["paths"][path], f"{method} {path} is not in the spec"
    validator, params = _validator(path, method)
    query = urllib.parse.parse_qs(parsed.query)
    allowed = {p["name"] for p in params if p.get("in") == "query"}
    assert set(query) <= allowed, f"unknown query parameters {set(query) - allowed} for {path}"
    if validator is None:
        assert not body, f"{method} {path} takes no body"
        return
    document = json.loads(body)
    errors = sorted(validator.iter_errors(document), key=lambda e: list(e.path))
    assert not errors, f"{path}: " + "; ".join(f"{list(e.path)}: {e.message}" for e in errors[:5])
    for user in document.get("users", [document]):
        assert ("email" in user) != ("userId" in user), "provide an email or a userId (but not both)"
