"""Attio's attribute schema, as `GET /v2/objects/{object}/attributes` lists it, and the pre-flight
check of a sync's mapping against it.

Attio decides what can be written: an attribute must exist (new ones are created in Attio first),
be writable (`is_writable`) and not archived; the matching attribute must be unique (`is_unique`).
The attribute's `type` decides how the model's values are coerced (the mapping kind) and then
shaped into Attio's write forms (`values.py`).
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Any, Iterable

from ..base import FieldIssue

# Mapping kind (dinsync.mapping) of single-value attributes per Attio type. Multiselect attributes
# take `auto` (a list column stays a JSON array, a scalar becomes a one-element list).
KIND_BY_TYPE = {
    "text": "string", "number": "number", "checkbox": "boolean", "currency": "number", "date": "date",
    "timestamp": "datetime", "rating": "integer", "status": "string", "select": "string",
    "email-address": "email", "domain": "string", "phone-number": "phone",
    "location": "auto", "personal-name": "auto", "record-reference": "auto",
}
# Types Attio lets an API token write that dinsync has no value form for.
UNWRITABLE_TYPES = {
    "actor-reference": "actor references (workspace members) are not synced by dinsync",
    "interaction": "interaction values are computed by Attio",
}
# Types a matching attribute may have (a unique attribute: Attio refuses unique select, name, ...).
KEY_TYPES = ("email-address", "domain", "text", "number", "currency", "date", "timestamp", "phone-number")
NUMERIC_TYPES = ("number", "currency", "rating")
SCOPES = ("record_permission:read-write", "object_configuration:read")


@dataclass(frozen=True)
class AttributeInfo:
    """What dinsync needs of one Attio attribute."""

    slug: str
    id: str
    type: str
    title: str = ""
    is_unique: bool = False
    is_multiselect: bool = False
    is_writable: bool = True
    is_archived: bool = False
    is_required: bool = False
    target_object_ids: tuple[str, ...] = ()  # record-reference: allowed objects (ids)
    targets: tuple[str, ...] = ()  # the same, as object slugs when known

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "AttributeInfo":
        config = data.get("config") or {}
        ref = (config.get("record_reference") or {}) if isinstance(config, dict) else {}
        allowed = ref.get("allowed_object_ids") if isinstance(ref, dict) else None
        allowed = allowed if isinstance(allowed, list) else ()
        return cls(slug=str(data.get("api_slug") or ""), id=str((data.get("id") or {}).get("attribute_id") or ""),
                   type=str(data.get("type") or ""), title=str(data.get("title") or ""),
                   is_unique=bool(data.get("is_unique")), is_multiselect=bool(data.get("is_multiselect")),
                   is_writable=bool(data.get("is_writable", True)), is_archived=bool(data.get("is_archived")),
                   is_required=bool(data.get("is_required")), target_object_ids=tuple(str(i) for i in allowed))

    @property
    def kind(self) -> str:
        """The mapping kind the model's values are coerced to before they are shaped for Attio."""
        return "auto" if self.is_multiselect else KIND_BY_TYPE.get(self.type, "auto")


@dataclass
class Schema:
    """The attributes of one object (archived ones included)."""

    object: str
    attributes: list[AttributeInfo] = field(default_factory=list)

    def find(self, ref: str) -> AttributeInfo | None:
        """By slug, else by attribute id (Attio accepts both in `values` and `matching_attribute`)."""
        for attr in self.attributes:
            if attr.slug == ref:
                return attr
        return next((a for a in self.attributes if a.id == ref), None)

    def writable(self) -> list[AttributeInfo]:
        return [a for a in self.attributes if a.is_writable and not a.is_archived]

    def closest(self, ref: str, candidates: Iterable[AttributeInfo]) -> list[str]:
        """Up to three slugs like `ref` (a title written instead of the slug counts first)."""
        pool = list(candidates)
        by_title = [a.slug for a in pool if a.title and a.title.lower() == ref.lower()]
        close = difflib.get_close_matches(ref.lower(), [a.slug for a in pool], n=3, cutoff=0.5)
        return list(dict.fromkeys(by_title + close))[:3]


def _slugs(attrs: Iterable[AttributeInfo], limit: int = 8) -> str:
    names = [a.slug for a in attrs]
    return ", ".join(names[:limit]) + (", …" if len(names) > limit else "") if names else "none"


def _suggest(schema: Schema, ref: str, pool: list[AttributeInfo], what: str) -> str:
    close = schema.closest(ref, pool)
    if close:
        return "closest existing: " + ", ".join(close)
    return f"{what} of {schema.object}: {_slugs(pool)}"


def check_mapping(schema: Schema, key_field: str,
                  fields: list[str]) -> tuple[list[FieldIssue], dict[str, AttributeInfo]]:
    """Problems of a mapping (the match is field None), and the attribute of each usable field."""
    issues: list[FieldIssue] = []
    found: dict[str, AttributeInfo] = {}
    obj = schema.object
    unique = [a for a in schema.attributes if a.is_unique and not a.is_archived and a.type in KEY_TYPES]
    key = schema.find(key_field)
    if key is None:
        issues.append(FieldIssue(None, f"Attio {obj} has no attribute {key_field!r} to match on",
                                 _suggest(schema, key_field, unique, "unique attributes")))
    elif key.is_archived:
        issues.append(FieldIssue(None, f"Attio attribute {key_field!r} of {obj} is archived",
                                 f"restore it in Attio, or match on one of: {_slugs(unique)}"))
    elif not key.is_unique:
        issues.append(FieldIssue(None, f"Attio attribute {key_field!r} of {obj} is not unique: records can only be "
                                 "matched on a unique attribute", f"unique attributes of {obj}: {_slugs(unique)}"))
    elif key.type not in KEY_TYPES:
        issues.append(FieldIssue(None, f"Attio attribute {key_field!r} of {obj} has type {key.type}, which dinsync "
                                 "cannot match on", f"match on one of: {_slugs(unique)}"))
    else:
        found[key_field] = key
    seen: dict[str, str] = {}
    for name in fields:
        attr = schema.find(name)
        if attr is None:
            issues.append(FieldIssue(name, f"Attio {obj} has no attribute {name!r}",
                                     _suggest(schema, name, schema.writable(), "writable attributes")
                                     + "; new attributes must first be created in Attio"))
        elif attr.is_archived:
            issues.append(FieldIssue(name, f"Attio attribute {name!r} of {obj} is archived",
                                     "restore it in Attio, or remove it from the mapping"))
        elif not attr.is_writable:
            issues.append(FieldIssue(name, f"Attio attribute {name!r} of {obj} is read-only (is_writable: false)",
                                     _suggest(schema, name, schema.writable(), "writable attributes")
                                     + "; or remove it from the mapping"))
        elif attr.type in UNWRITABLE_TYPES:
            issues.append(FieldIssue(name, f"Attio attribute {name!r} of {obj} has type {attr.type}: "
                                     f"{UNWRITABLE_TYPES[attr.type]}", "remove it from the mapping"))
        elif attr.slug in seen and seen[attr.slug] != name:
            issues.append(FieldIssue(name, f"Attio attribute {attr.slug!r} is mapped twice "
                                     f"(as {seen[attr.slug]!r} and {name!r})", "map each attribute once"))
        elif key is not None and attr.slug == key.slug and name != key_field:
            issues.append(FieldIssue(name, f"{name!r} is the matching attribute {key.slug!r}, also mapped by "
                                     "another name", "map the matching attribute only under `match`"))
        else:
            seen[attr.slug] = name
            found[name] = attr
    return issues, found
