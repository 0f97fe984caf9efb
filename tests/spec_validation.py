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


def request_json(body: bytes | str):
    """A request body parsed as the platforms' JSON parsers read it (RFC 8259): UTF-8, no NaN or
    Infinity (Python's json module takes them, and a client sending one would pass unseen), no
    object repeating a key (which parsers resolve differently: first, last, or an error)."""
    raw = body.encode() if isinstance(body, str) else bytes(body)
    text = raw.decode("utf-8")

    def constant(name):
        raise AssertionError(f"{name} is not JSON")

    def pairs(items):
        names = [k for k, _ in items]
        repeated = sorted({n for n in names if names.count(n) > 1})
        assert not repeated, f"an object repeats a key: {repeated}"
        return dict(items)

    return json.loads(text, parse_constant=constant, object_pairs_hook=pairs)


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
    query = urllib.parse.parse_qs(parsed.query, keep_blank_values=True)
    allowed = {p["name"] for p in params if p.get("in") == "query"}
    assert set(query) <= allowed, f"unknown query parameters {set(query) - allowed} for {path}"
    assert all(len(v) == 1 for v in query.values()), f"repeated query parameters for {path}"
    if validator is None:
        assert not body, f"{method} {path} takes no body"
        return
    document = request_json(body)
    errors = sorted(validator.iter_errors(document), key=lambda e: list(e.path))
    assert not errors, f"{path}: " + "; ".join(f"{list(e.path)}: {e.message}" for e in errors[:5])
    for user in document.get("users", [document]):
        assert ("email" in user) != ("userId" in user), "provide an email or a userId (but not both)"


# ---------------------------------------------------------------------------------------------- Attio
ATTIO_SPEC_PATH = Path(__file__).parent / "specs" / "attio-openapi.json"
_ATTIO_URI = "urn:dinsync:attio-openapi"


@lru_cache(maxsize=1)
def attio_spec() -> dict:
    return json.loads(ATTIO_SPEC_PATH.read_text())


def _relax_single_values(node):
    """Record `values` say `additionalProperties: {"type": "array"}`, yet the same schema's example, the
    attribute type pages and the assert examples write single values unwrapped (`"description": "x"`).
    Follow the documentation: any JSON value per attribute (the sandbox checks the shapes per type)."""
    if isinstance(node, dict):
        if node.get("additionalProperties") == {"type": "array"} and "single value" in node.get("description", ""):
            node["additionalProperties"] = {}
        for value in node.values():
            _relax_single_values(value)
    elif isinstance(node, list):
        for value in node:
            _relax_single_values(value)
    return node


@lru_cache(maxsize=2)
def _attio_registry(values_must_be_arrays: bool):
    from referencing import Registry, Resource
    from referencing.jsonschema import DRAFT202012

    spec = _strict(copy.deepcopy(attio_spec()))
    if not values_must_be_arrays:
        _relax_single_values(spec)
    return spec, Registry().with_resource(_ATTIO_URI, Resource.from_contents(spec, default_specification=DRAFT202012))


@lru_cache(maxsize=1)
def _attio_templates() -> list[tuple[re.Pattern, str, int]]:
    """(regex, spec path, number of parameters), literal-heavy templates first."""
    out = []
    for path in attio_spec()["paths"]:
        pattern = re.sub(r"\\{(\w+)\\}", r"(?P<\1>[^/]+)", re.escape(path))
        out.append((re.compile(pattern + "$"), path, path.count("{")))
    return sorted(out, key=lambda t: t[2])


def _pointer(*parts: str) -> str:
    return "#/" + "/".join(p.replace("~", "~0").replace("/", "~1") for p in parts)


def _attio_validator(pointer: str, values_must_be_arrays: bool):
    spec, registry = _attio_registry(values_must_be_arrays)
    return jsonschema.Draft202012Validator({"$ref": _ATTIO_URI + pointer}, registry=registry,
                                           format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)


def _coerce(raw: str, schema: dict):
    kind = schema.get("type")
    if kind == "integer" and re.fullmatch(r"-?\d+", raw):
        return int(raw)
    if kind == "number":
        try:
            return float(raw)
        except ValueError:
            return raw
    if kind == "boolean" and raw in ("true", "false"):
        return raw == "true"
    return raw


def _errors(validator, instance) -> list[str]:
    found = sorted(validator.iter_errors(instance), key=lambda e: list(e.absolute_path))
    return [f"{list(e.absolute_path)}: {e.message}" for e in found[:5]]


def validate_attio_request(method: str, path_with_query: str, body: bytes | str | dict | None,
                           values_must_be_arrays: bool = False) -> None:
    """Raise AssertionError when a request does not follow Attio's OpenAPI file.

    Checks the path and method, path parameters, query parameters (unknown or missing required ones
    fail, values against their schemas) and the JSON body against the operation's request schema
    (`$ref`s resolved, JSON Schema 2020-12, strict: no properties beyond those listed).
    `values_must_be_arrays`: hold record `values` to the spec's literal `{"type": "array"}`.
    """
    parsed = urllib.parse.urlsplit(path_with_query)
    spec = attio_spec()
    verb = method.lower()
    matches = [(m, p) for regex, p, _ in _attio_templates() if (m := regex.match(parsed.path))]
    assert matches, f"{parsed.path} is not an Attio API path"
    with_method = [(m, p) for m, p in matches if verb in spec["paths"][p]]
    assert with_method, f"{method} {parsed.path} is not in the spec"
    match, template = with_method[0]
    operation = spec["paths"][template][verb]
    params = operation.get("parameters", [])
    for param in (p for p in params if p["in"] == "path"):
        value = urllib.parse.unquote(match.group(param["name"]))
        validator = jsonschema.Draft202012Validator(param["schema"],
                                                    format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)
        errors = _errors(validator, _coerce(value, param["schema"]))
        assert not errors, f"{method} {template}: path parameter {param['name']}={value!r}: {errors}"
    query = urllib.parse.parse_qs(parsed.query, keep_blank_values=True)
    declared = {p["name"]: p for p in params if p["in"] == "query"}
    assert set(query) <= set(declared), f"unknown query parameters {sorted(set(query) - set(declared))} for {template}"
    for name, param in declared.items():
        if name not in query:
            assert not param.get("required"), f"{method} {template}: query parameter {name} is required"
            continue
        assert len(query[name]) == 1, f"{method} {template}: query parameter {name} given more than once"
        errors = _errors(jsonschema.Draft202012Validator(param["schema"]), _coerce(query[name][0], param["schema"]))
        assert not errors, f"{method} {template}: query parameter {name}: {errors}"
    request_body = operation.get("requestBody")
    absent = body is None or body in (b"", "")
    if request_body is None:
        assert absent, f"{method} {template} takes no body"
        return
    if absent:
        assert not request_body.get("required"), f"{method} {template} needs a body"
        return
    document = body if isinstance(body, dict) else request_json(body)
    pointer = _pointer("paths", template, verb, "requestBody", "content", "application/json", "schema")
    errors = _errors(_attio_validator(pointer, values_must_be_arrays), document)
    assert not errors, f"{method} {template}: " + "; ".join(errors)


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
    document = body if isinstance(body, dict) else request_json(body)
    errors = sorted(validator.iter_errors(document), key=lambda e: list(e.absolute_path))
    messages = [f"{list(e.absolute_path)}: {e.message}" for e in errors[:5]] + _attentive_rules(op_id, document)
    assert not messages, f"{op_id}: " + "; ".join(messages)


# --- Splio (excerpt of its Swagger file, tests/specs/splio-contacts-excerpt.json) -------------------
SPLIO_SPEC_PATH = Path(__file__).parent / "specs" / "splio-contacts-excerpt.json"
SPLIO_QUERY = {"/data/fields/contacts": {"per_page", "page_number"}}  # see tests/specs/README.md


@lru_cache(maxsize=1)
def splio_swagger() -> dict:
    spec = json.loads(SPLIO_SPEC_PATH.read_text())
    auth = spec["paths"]["/authenticate"]["post"]["parameters"][0]["schema"]
    auth["required"] = [r for r in auth["required"] if r in auth["properties"]]  # the spec's `password` bug
    return spec


def _splio_operation(raw_path: str, method: str) -> tuple[str, dict]:
    """The operation a request path names: matched segment by segment on the path as sent, each
    segment decoded on its own (an escaped `/` in a path parameter, `a%2Fb@x.com`, stays in it)."""
    spec = splio_swagger()
    segments = [urllib.parse.unquote(p) for p in raw_path.split("/")]
    for template, item in spec["paths"].items():
        parts = template.split("/")
        if len(parts) == len(segments) and method.lower() in item and all(
                (p.startswith("{") and s != "") or p == s for p, s in zip(parts, segments)):
            return template, item[method.lower()]
    raise AssertionError(f"{method} {raw_path} is not an operation of Splio's spec excerpt")


def validate_splio_request(method: str, url_path: str, body: bytes | None) -> None:
    """Raise AssertionError when a request to Splio does not follow its Swagger file (strictly:
    no body properties beyond those the spec lists)."""
    parsed = urllib.parse.urlsplit(url_path)
    template, operation = _splio_operation(parsed.path, method)
    query = set(urllib.parse.parse_qs(parsed.query))
    assert query <= SPLIO_QUERY.get(template, set()), f"unexpected query parameters {query} for {template}"
    bodies = [p for p in operation.get("parameters", []) if p.get("in") == "body"]
    if not bodies:
        assert not body, f"{method} {template} takes no body"
        return
    assert body, f"{method} {template} needs a body"
    schema = {"definitions": _strict(copy.deepcopy(splio_swagger()["definitions"])),
              **_strict(copy.deepcopy(bodies[0]["schema"]))}
    errors = sorted(jsonschema.Draft4Validator(schema).iter_errors(request_json(body)), key=lambda e: list(e.path))
    assert not errors, f"{template}: " + "; ".join(f"{list(e.path)}: {e.message}" for e in errors[:5])
