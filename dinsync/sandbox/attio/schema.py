"""The workspace's data model: the People and Companies objects, their attributes and options.

Standard attributes follow Attio's "Standard objects" pages (People, Companies) and the attribute
type pages; custom attributes are declared by a test or on the command line
(`people:plan:select:free,pro,team`). IDs are UUIDv5 of the slugs, so they are stable across runs.
"""
from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from typing import Iterable

NAMESPACE = uuid.UUID("6f1d7c1e-3a51-4c55-9d3e-0a7f1b2c4d5e")
CREATED_AT = "2024-01-01T00:00:00.000000000Z"  # when the sandbox's workspace "was set up"

ATTRIBUTE_TYPES = ("text", "number", "checkbox", "currency", "date", "timestamp", "rating", "status", "select",
                   "record-reference", "actor-reference", "location", "domain", "email-address", "phone-number",
                   "interaction", "personal-name")
# Types users may create ("It isn't currently possible to create your own email address / domain
# attributes"; "Name attributes cannot be created by users"); actor-reference and interaction have
# nothing to refer to in the sandbox.
CUSTOM_TYPES = ("text", "number", "checkbox", "currency", "date", "timestamp", "rating", "status", "select",
                "record-reference", "location", "phone-number")
# "Only single-select ... attributes are supported" (number, checkbox, currency, date, timestamp, rating,
# status, text): multiselect is for select, record references and phone numbers.
MULTISELECT_TYPES = ("select", "record-reference", "phone-number")
# "select attributes cannot be configured to be unique"; the sandbox also refuses it for types whose
# values have no sensible identity.
UNIQUE_TYPES = ("text", "number", "currency", "date", "timestamp", "phone-number")
CURRENCY_CODES = ("AUD BRL BEL CAD CNY COP CZK DKK EUR HKD ISK INR ILS JPY KRW MYR MXN NTD NZD NGN NOK XPF PEN "
                  "PHP PLN GBP SAR SGD ZAR SEK CHF AED USD").split()
# Companies "categories" options: a sample of Attio's list (its full list is not published in the spec).
DEFAULT_CATEGORIES = ("3D Printing", "Aerospace & Defense", "B2B", "B2C", "Biotechnology", "E-commerce", "Education",
                      "Finance", "Health Care", "Marketing", "SaaS", "Software", "Technology")
_SLUG = re.compile(r"[a-z][a-z0-9_]*")


def stable_id(*parts: str) -> str:
    return str(uuid.uuid5(NAMESPACE, "/".join(parts)))


WORKSPACE_ID = stable_id("workspace")


@dataclass
class Option:
    """A select option or a status (same shape; `kind` says which)."""

    id: str
    title: str
    is_archived: bool = False


@dataclass
class Attribute:
    object: str  # object slug
    slug: str
    type: str
    title: str = ""
    is_unique: bool = False
    is_multiselect: bool = False
    is_writable: bool = True
    is_system: bool = False
    is_required: bool = False
    is_archived: bool = False
    options: list[Option] = field(default_factory=list)  # select options or statuses
    target: str | None = None  # record-reference: the allowed object's slug
    inverse: str | None = None  # relationship: slug of the paired attribute on `target`
    currency_code: str = "USD"
    id: str = ""

    def __post_init__(self) -> None:
        self.id = self.id or stable_id(self.object, "attribute", self.slug)
        self.title = self.title or self.slug.replace("_", " ").capitalize()

    def option(self, ref: str, include_archived: bool = False) -> Option | None:
        """An option (or status) by title or id."""
        for opt in self.options:
            if (opt.title == ref or opt.id == ref) and (include_archived or not opt.is_archived):
                return opt
        return None


@dataclass
class ObjectDef:
    slug: str
    singular: str
    plural: str
    attributes: dict[str, Attribute] = field(default_factory=dict)  # slug -> attribute, UI order
    id: str = ""

    def __post_init__(self) -> None:
        self.id = self.id or stable_id("object", self.slug)

    def attribute(self, ref: str) -> Attribute | None:
        """By slug or attribute id (archived ones included)."""
        found = self.attributes.get(ref)
        if found is not None:
            return found
        return next((a for a in self.attributes.values() if a.id == ref), None)

    def add(self, attr: Attribute) -> None:
        if attr.slug in self.attributes:
            raise ValueError(f"attribute {attr.slug!r} already exists on {self.slug}")
        self.attributes[attr.slug] = attr


def _options(obj: str, slug: str, titles: Iterable[str], kind: str = "option") -> list[Option]:
    return [Option(stable_id(obj, slug, kind, t), t) for t in titles]


def _common(obj: str) -> list[Attribute]:
    """Attributes on every object: record_id, created_at, created_by (not writable)."""
    return [Attribute(obj, "record_id", "text", "Record ID", is_writable=False, is_system=True),
            Attribute(obj, "created_at", "timestamp", "Created at", is_writable=False, is_system=True),
            Attribute(obj, "created_by", "actor-reference", "Created by", is_writable=False, is_system=True)]


def standard_objects(categories: Iterable[str] = DEFAULT_CATEGORIES) -> dict[str, ObjectDef]:
    """People and Companies as Attio's standard-object pages list them (deals/users not activated)."""
    people = ObjectDef("people", "Person", "People")
    P = "people"
    for attr in [
        *_common(P)[:1],
        Attribute(P, "email_addresses", "email-address", "Email addresses", is_unique=True, is_multiselect=True,
                  is_system=True),
        Attribute(P, "name", "personal-name", "Name", is_system=True),
        Attribute(P, "company", "record-reference", "Company", target="companies", inverse="team", is_system=True),
        Attribute(P, "description", "text", "Description", is_system=True),
        Attribute(P, "job_title", "text", "Job title", is_system=True),
        Attribute(P, "phone_numbers", "phone-number", "Phone numbers", is_multiselect=True, is_system=True),
        Attribute(P, "primary_location", "location", "Primary location", is_system=True),
        *(Attribute(P, s, "text", t, is_system=True) for s, t in (
            ("angellist", "AngelList"), ("facebook", "Facebook"), ("instagram", "Instagram"),
            ("linkedin", "LinkedIn"), ("twitter", "Twitter"))),
        # Enriched or system values: readable, never writable through the API.
        Attribute(P, "avatar_url", "text", "Avatar URL", is_writable=False, is_system=True),
        Attribute(P, "twitter_follower_count", "number", "Twitter follower count", is_writable=False,
                  is_system=True),
        Attribute(P, "last_interaction", "interaction", "Last interaction", is_writable=False, is_system=True),
        *_common(P)[1:],
    ]:
        people.add(attr)

    companies = ObjectDef("companies", "Company", "Companies")
    C = "companies"
    for attr in [
        *_common(C)[:1],
        Attribute(C, "domains", "domain", "Domains", is_unique=True, is_multiselect=True, is_system=True),
        Attribute(C, "name", "text", "Name", is_system=True),
        Attribute(C, "description", "text", "Description", is_system=True),
        Attribute(C, "team", "record-reference", "Team", is_multiselect=True, target="people", inverse="company",
                  is_system=True),
        Attribute(C, "categories", "select", "Categories", is_multiselect=True, is_system=True,
                  options=_options(C, "categories", categories)),
        Attribute(C, "primary_location", "location", "Primary location", is_system=True),
        *(Attribute(C, s, "text", t, is_system=True) for s, t in (
            ("angellist", "AngelList"), ("facebook", "Facebook"), ("instagram", "Instagram"),
            ("linkedin", "LinkedIn"), ("twitter", "Twitter"))),
        Attribute(C, "logo_url", "text", "Logo URL", is_writable=False, is_system=True),
        Attribute(C, "twitter_follower_count", "number", "Twitter follower count", is_writable=False,
                  is_system=True),
        Attribute(C, "foundation_date", "date", "Foundation date", is_writable=False, is_system=True),
        Attribute(C, "employee_range", "select", "Employee range", is_writable=False, is_system=True,
                  options=_options(C, "employee_range", ("1-10", "11-50", "51-250", "251-1K", "1K-5K", "5K-10K",
                                                         "10K-50K", "50K-100K", "100K+"))),
        Attribute(C, "funding_raised_usd", "currency", "Funding raised", is_writable=False, is_system=True),
        Attribute(C, "last_interaction", "interaction", "Last interaction", is_writable=False, is_system=True),
        *_common(C)[1:],
    ]:
        companies.add(attr)
    return {"people": people, "companies": companies}


@dataclass(frozen=True)
class CustomAttribute:
    """An attribute a test adds to the workspace (what an admin would create in Attio's settings)."""

    object: str
    slug: str
    type: str
    unique: bool = False
    multiselect: bool = False
    required: bool = False
    archived: bool = False
    options: tuple[str, ...] = ()  # select options / statuses, by title
    target: str | None = None  # record-reference target object
    currency_code: str = "USD"
    title: str | None = None


def parse_custom_attribute(spec: str) -> CustomAttribute:
    """`OBJECT:SLUG:TYPE[:PART...]`; each PART is a flag (`unique`, `multiselect`, `required`,
    `archived`), `target=OBJECT` / `currency=CODE` / `title=TEXT`, or a comma-separated option list.

        people:plan:select:free,pro,team      people:customer_id:text:unique
        companies:tags:select:a,b,c:multiselect   people:employer:record-reference:target=companies
    """
    parts = spec.split(":")
    if len(parts) < 3 or not all(parts[:3]):
        raise ValueError(f"custom attribute {spec!r}: expected OBJECT:SLUG:TYPE[:OPTIONS][:FLAGS]")
    obj, slug, kind = parts[:3]
    flags: dict = {}
    options: tuple[str, ...] = ()
    for part in parts[3:]:
        if part in ("unique", "multiselect", "required", "archived"):
            flags[part] = True
        elif "=" in part and part.split("=", 1)[0] in ("target", "currency", "title"):
            key, value = part.split("=", 1)
            flags[{"currency": "currency_code"}.get(key, key)] = value
        elif part:
            options += tuple(o.strip() for o in part.split(",") if o.strip())
    return CustomAttribute(obj, slug, kind, options=options, **flags)


def build_custom(decl: CustomAttribute | str, objects: dict[str, ObjectDef], allow_status: bool) -> Attribute:
    """Check a declaration against Attio's rules for user-created attributes and build it."""
    d = parse_custom_attribute(decl) if isinstance(decl, str) else decl
    where = f"custom attribute {d.object}.{d.slug}"
    if d.object not in objects:
        raise ValueError(f"{where}: unknown object (known: {', '.join(objects)})")
    if not _SLUG.fullmatch(d.slug):
        raise ValueError(f"{where}: a slug is lowercase letters, digits and underscores")
    if d.type not in CUSTOM_TYPES:
        raise ValueError(f"{where}: type {d.type!r} cannot be created by users (allowed: {', '.join(CUSTOM_TYPES)})")
    if d.multiselect and d.type not in MULTISELECT_TYPES:
        raise ValueError(f"{where}: {d.type} attributes are single-select only")
    if d.unique and d.type not in UNIQUE_TYPES:
        raise ValueError(f"{where}: {d.type} attributes cannot be unique")
    if d.unique and d.object == "companies":
        raise ValueError(f"{where}: Attio does not allow custom unique attributes on companies")
    if d.type == "status" and not allow_status:
        raise ValueError(f"{where}: Attio says people and companies do not support status attributes "
                         "(set status_attributes_on_standard_objects=True to declare one anyway)")
    if d.type == "record-reference" and d.target not in objects:
        raise ValueError(f"{where}: give target=people or target=companies")
    if d.type != "record-reference" and d.target is not None:
        raise ValueError(f"{where}: target= is only for record-reference attributes")
    if d.type in ("select", "status") and len(set(d.options)) != len(d.options):
        raise ValueError(f"{where}: option titles must be unique")
    if d.options and d.type not in ("select", "status"):
        raise ValueError(f"{where}: options are only for select and status attributes")
    if d.currency_code not in CURRENCY_CODES:
        raise ValueError(f"{where}: unknown currency {d.currency_code!r}")
    kind = "status" if d.type == "status" else "option"
    return Attribute(d.object, d.slug, d.type, d.title or "", is_unique=d.unique, is_multiselect=d.multiselect,
                     is_required=d.required, is_archived=d.archived, target=d.target,
                     options=_options(d.object, d.slug, d.options, kind), currency_code=d.currency_code)


def attribute_json(attr: Attribute, objects: dict[str, ObjectDef]) -> dict:
    """An attribute as `GET /v2/objects/{object}/attributes` returns it (schema `attribute`)."""
    relationship = None
    if attr.inverse is not None and attr.target is not None:
        inverse = objects[attr.target].attributes[attr.inverse]
        relationship = {"id": {"workspace_id": WORKSPACE_ID, "object_id": objects[attr.target].id,
                               "attribute_id": inverse.id}}
    allowed = [objects[attr.target].id] if attr.target is not None else None
    return {
        "id": {"workspace_id": WORKSPACE_ID, "object_id": objects[attr.object].id, "attribute_id": attr.id},
        "title": attr.title, "description": None, "api_slug": attr.slug, "type": attr.type,
        "is_system_attribute": attr.is_system, "is_writable": attr.is_writable, "is_required": attr.is_required,
        "is_unique": attr.is_unique, "is_multiselect": attr.is_multiselect, "is_default_value_enabled": False,
        "is_archived": attr.is_archived, "default_value": None, "relationship": relationship,
        "created_at": CREATED_AT,
        "config": {"currency": {"default_currency_code": attr.currency_code if attr.type == "currency" else None,
                                "display_type": "symbol" if attr.type == "currency" else None},
                   "record_reference": {"allowed_object_ids": allowed}},
    }


def option_json(attr: Attribute, opt: Option, objects: dict[str, ObjectDef]) -> dict:
    """A select option (schema `select-option`) or a status (schema `status`)."""
    ids = {"workspace_id": WORKSPACE_ID, "object_id": objects[attr.object].id, "attribute_id": attr.id}
    if attr.type == "status":
        return {"id": {**ids, "status_id": opt.id}, "title": opt.title, "is_archived": opt.is_archived,
                "celebration_enabled": False, "target_time_in_status": None}
    return {"id": {**ids, "option_id": opt.id}, "title": opt.title, "is_archived": opt.is_archived}


def object_json(obj: ObjectDef) -> dict:
    return {"id": {"workspace_id": WORKSPACE_ID, "object_id": obj.id}, "api_slug": obj.slug,
            "singular_noun": obj.singular, "plural_noun": obj.plural, "created_at": CREATED_AT}
