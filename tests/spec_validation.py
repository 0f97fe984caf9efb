"""Validate request bodies against Iterable's Swagger file (copy in tests/specs/).

The schemas are made strict (no properties beyond those the spec lists) so that a client that
invents keys fails here, not in production.
"""
from __future__ import annotations

import copy
import json
import re
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


# --- Splio (excerpt of its Swagger file, tests/specs/splio-contacts-excerpt.json) -------------------
SPLIO_SPEC_PATH = Path(__file__).parent / "specs" / "splio-contacts-excerpt.json"
SPLIO_QUERY = {"/data/fields/contacts": {"per_page", "page_number"}}  # see tests/specs/README.md


@lru_cache(maxsize=1)
def splio_swagger() -> dict:
    spec = json.loads(SPLIO_SPEC_PATH.read_text())
    auth = spec["paths"]["/authenticate"]["post"]["parameters"][0]["schema"]
    auth["required"] = [r for r in auth["required"] if r in auth["properties"]]  # the spec's `password` bug
    return spec


def _splio_operation(path: str, method: str) -> tuple[str, dict]:
    spec = splio_swagger()
    for template, item in spec["paths"].items():
        pattern = "^" + "/".join("[^/]+" if p.startswith("{") else p for p in template.split("/")) + "$"
        if re.match(pattern, path) and method.lower() in item:
            return template, item[method.lower()]
    raise AssertionError(f"{method} {path} is not an operation of Splio's spec excerpt")


def validate_splio_request(method: str, url_path: str, body: bytes | None) -> None:
    """Raise AssertionError when a request to Splio does not follow its Swagger file (strictly:
    no body properties beyond those the spec lists)."""
    parsed = urllib.parse.urlsplit(url_path)
    template, operation = _splio_operation(urllib.parse.unquote(parsed.path), method)
    query = set(urllib.parse.parse_qs(parsed.query))
    assert query <= SPLIO_QUERY.get(template, set()), f"unexpected query parameters {query} for {template}"
    bodies = [p for p in operation.get("parameters", []) if p.get("in") == "body"]
    if not bodies:
        assert not body, f"{method} {template} takes no body"
        return
    assert body, f"{method} {template} needs a body"
    schema = {"definitions": _strict(copy.deepcopy(splio_swagger()["definitions"])),
              **_strict(copy.deepcopy(bodies[0]["schema"]))}
    errors = sorted(jsonschema.Draft4Validator(schema).iter_errors(json.loads(body)), key=lambda e: list(e.path))
    assert not errors, f"{template}: " + "; ".join(f"{list(e.path)}: {e.message}" for e in errors[:5])
