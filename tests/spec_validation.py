"""Validate requests against the platforms' specification files (copies in tests/specs/).

Iterable: Swagger 2.0 (`iterable-swagger.json`). Attentive: OpenAPI 3.0 (`attentive-v1-openapi.yaml`,
`attentive-v2-openapi.yaml`; JSON despite the extension, read as YAML or JSON). The schemas are
made strict (no properties beyond those the spec lists) so that a client that invents keys fails
here, not in production.
"""
from __future__ import annotations

import copy
import json
import re
import urllib.parse
from functools import lru_cache
from pathlib import Path

import jsonschema
import yaml

SPECS = Path(__file__).parent / "specs"
SPEC_PATH = SPECS / "iterable-swagger.json"
ATTENTIVE_SPECS = {"v1": SPECS / "attentive-v1-openapi.yaml", "v2": SPECS / "attentive-v2-openapi.yaml"}


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


# ---------------------------------------------------------------------------------------- Attentive
def _strict_schema(schema):
    """Walk an OpenAPI schema by its keywords (not into `example`s) and forbid unlisted properties."""
    if not isinstance(schema, dict):
        return schema
    if "properties" in schema and "additionalProperties" not in schema:
        schema["additionalProperties"] = False
    for sub in (schema.get("properties") or {}).values():
        _strict_schema(sub)
    for key in ("items", "additionalProperties", "not"):
        _strict_schema(schema.get(key))
    for key in ("allOf", "anyOf", "oneOf"):
        for sub in schema.get(key) or ():
            _strict_schema(sub)
    return schema


@lru_cache(maxsize=None)
def attentive_spec(version: str) -> dict:
    """One Attentive spec file, read as JSON, or as YAML when it is not JSON."""
    text = ATTENTIVE_SPECS[version].read_text()
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))


def _attentive_operation(method: str, path: str) -> tuple[str, str, dict]:
    """(version, spec path, operation) for a request path as sent (`/v1/...` or `/v2/...`)."""
    if path.startswith("/v1/"):
        version, spec_path = "v1", path[len("/v1"):]
    elif path.startswith("/v2/"):
        version, spec_path = "v2", path
    else:
        raise AssertionError(f"{path} is not an Attentive API path (/v1/... or /v2/...)")
    for template, ops in attentive_spec(version)["paths"].items():
        pattern = "".join("[^/]+" if part.startswith("{") else re.escape(part)
                          for part in re.split(r"(\{[^}]+\})", template))
        if re.fullmatch(pattern, spec_path):
            assert method.lower() in ops, f"{method} {path} is not in the Attentive {version} spec"
            return version, template, ops[method.lower()]
    raise AssertionError(f"{path} is not in the Attentive {version} spec")


@lru_cache(maxsize=None)
def _attentive_validator(version: str, template: str, method: str):
    spec = attentive_spec(version)
    operation = spec["paths"][template][method]
    content = (operation.get("requestBody") or {}).get("content", {}).get("application/json")
    if content is None:
        return None
    components = copy.deepcopy(spec["components"])
    for schema in components["schemas"].values():
        _strict_schema(schema)
    schema = {"allOf": [_strict_schema(copy.deepcopy(content["schema"]))], "components": components}
    return jsonschema.Draft4Validator(schema, format_checker=jsonschema.FormatChecker())


_E164 = re.compile(r"\+[1-9]\d{1,14}")


def _attentive_rules(operation_id: str, document) -> list[str]:
    """Rules the spec states in prose: E.164 phones, scalar attribute values, names <= 200 chars,
    bulk `users` present (the schema lists it without `required`)."""
    problems = []

    def phone(value, where):
        if isinstance(value, str) and not _E164.fullmatch(value):
            problems.append(f"{where}: phone must be E.164 (e.g. +19148440001)")

    def attributes(values, where):
        for name, value in (values or {}).items() if isinstance(values, dict) else ():
            if len(name) > 200:
                problems.append(f"{where}: attribute name longer than 200 characters")
            if isinstance(value, (list, dict)):
                problems.append(f"{where}.{name}: arrays and objects are not supported")

    def v2_user(user, where):
        if not isinstance(user, dict):
            return
        phone((user.get("identifiers") or {}).get("phone"), f"{where}identifiers.phone")
        attributes((user.get("attributes") or {}).get("custom"), f"{where}attributes.custom")

    if operation_id == "postCustomAttributes" and isinstance(document, dict):
        phone((document.get("user") or {}).get("phone"), "user.phone")
        attributes(document.get("properties"), "properties")
    elif operation_id == "identify" and isinstance(document, dict):
        phone(document.get("phone"), "phone")
    elif operation_id == "postUserAttributes":
        v2_user(document, "")
    elif operation_id == "postBulkUserAttributes" and isinstance(document, dict):
        if "users" not in document:
            problems.append("users is required")
        for i, user in enumerate(document.get("users") or ()):
            v2_user(user, f"users[{i}].")
    return problems


def validate_attentive_request(method: str, path_with_query: str, body: bytes | str | dict | None) -> None:
    """Raise AssertionError when a request does not follow Attentive's specs (strictly).

    `path_with_query` as sent, e.g. `/v1/attributes/custom?email=a%40b.co` or `/v2/user/attributes`.
    Checks the path and method, the query parameters (declared ones only; `phone` / `email`
    lookups take exactly one, and a phone's `+` must be encoded), and the JSON body against the
    request schema with unlisted properties forbidden, plus the rules the spec states in prose.
    """
    parsed = urllib.parse.urlsplit(path_with_query)
    version, template, operation = _attentive_operation(method, parsed.path)
    op_id = operation.get("operationId", template)
    raw_query = urllib.parse.parse_qs(parsed.query, keep_blank_values=True)
    declared = {p["name"] for p in operation.get("parameters", []) if p.get("in") == "query"}
    assert set(raw_query) <= declared, f"unknown query parameters {sorted(set(raw_query) - declared)} for {op_id}"
    assert all(len(v) == 1 for v in raw_query.values()), f"repeated query parameters for {op_id}"
    if declared == {"email", "phone"}:
        assert len(raw_query) == 1, f"{op_id} takes exactly one of email or phone"
        if "phone" in raw_query:
            assert _E164.fullmatch(raw_query["phone"][0]), \
                f"{op_id}: phone must be E.164 with '+' encoded as %2B"
    validator = _attentive_validator(version, template, method.lower())
    if validator is None:
        assert not body, f"{method} {parsed.path} takes no body"
        return
    if body is None or body == b"" or body == "":
        required = operation["requestBody"].get("required", False)
        assert not required, f"{op_id} requires a JSON body"
        return
    document = body if isinstance(body, dict) else json.loads(body)
    errors = sorted(validator.iter_errors(document), key=lambda e: list(e.absolute_path))
    messages = [f"{list(e.absolute_path)}: {e.message}" for e in errors[:5]] + _attentive_rules(op_id, document)
    assert not messages, f"{op_id}: " + "; ".join(messages)
