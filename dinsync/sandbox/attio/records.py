"""Records in memory and the write rules: create, update (append or overwrite multiselect values),
assert (match on a unique attribute, then update or create), uniqueness, required values, and the
relationship pairs (person `company` <-> company `team`) kept in step.

A record is `{"id", "object", "created_at", "values": {slug: [value, ...]}}`; each stored value is
already in the shape Attio returns (`active_from`, `active_until`, `created_by_actor`, properties,
`attribute_type`), so reads are copies.
"""
from __future__ import annotations

import time
import uuid
from typing import Any, Iterator

import orjson

from .errors import AttioError
from .schema import Attribute, ObjectDef
from .values import normalise_domain, root_domain, value_key

Prepared = dict[str, tuple[Attribute, list[dict]]]  # slug -> (attribute, parsed values)
_KEY_PROPS = {"email-address": "email_address", "domain": "domain", "phone-number": "phone_number",
              "currency": "currency_value"}


def now_timestamp() -> str:
    ns = time.time_ns()
    secs, nanos = divmod(ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + f".{nanos:09d}Z"


class RecordStore:
    def __init__(self, objects: dict[str, ObjectDef]):
        self.objects = objects
        self.by_object: dict[str, dict[str, dict]] = {slug: {} for slug in objects}
        self._unique: dict[tuple[str, str], dict[Any, str]] = {}

    # ---------------------------------------------------------------- lookups
    def has_record(self, object_slug: str, record_id: str) -> bool:
        return record_id in self.by_object.get(object_slug, {})

    def get(self, object_slug: str, record_id: str) -> dict | None:
        return self.by_object[object_slug].get(record_id)

    def all(self, object_slug: str) -> Iterator[dict]:
        return iter(self.by_object[object_slug].values())

    def find_unique(self, object_slug: str, attribute: Attribute, key: Any) -> str | None:
        return self._unique.get((object_slug, attribute.slug), {}).get(key)

    def clear(self) -> None:
        for records in self.by_object.values():
            records.clear()
        self._unique.clear()

    # ---------------------------------------------------------------- writes
    def create(self, obj: ObjectDef, prepared: Prepared, actor: dict) -> dict:
        for attr in obj.attributes.values():
            if attr.is_required and not prepared.get(attr.slug, (None, []))[1]:
                raise _missing(attr)
        self._check_unique(obj, prepared, None)
        ts = now_timestamp()
        rid = str(uuid.uuid4())
        record = {"id": rid, "object": obj.slug, "created_at": ts, "values": {}}
        system = {"record_id": {"value": rid, "attribute_type": "text"},
                  "created_at": {"value": ts, "attribute_type": "timestamp"},
                  "created_by": {"referenced_actor_type": actor["type"], "referenced_actor_id": actor["id"],
                                 "attribute_type": "actor-reference"}}
        for slug, props in system.items():
            if slug in obj.attributes:
                record["values"][slug] = [self._stored(props, actor, ts)]
        self.by_object[obj.slug][rid] = record
        self._apply(obj, record, prepared, "overwrite", frozenset(), actor, ts)
        return record

    def update(self, obj: ObjectDef, record: dict, prepared: Prepared, multiselect: str, actor: dict,
               append: frozenset[str] = frozenset()) -> None:
        """`multiselect`: "append" (PATCH: new values prepended) or "overwrite" (PUT); slugs in `append`
        are appended whatever the mode (assert's matching attribute)."""
        for slug, (attr, values) in prepared.items():
            if attr.is_required and not values:
                raise _missing(attr)
        self._check_unique(obj, prepared, record["id"])
        self._apply(obj, record, prepared, multiselect, append, actor, now_timestamp())

    def assert_record(self, obj: ObjectDef, matching: Attribute, prepared: Prepared, actor: dict
                      ) -> tuple[dict, bool]:
        """(record, created?): match on `matching`, update the one record found or create one."""
        _, values = prepared.get(matching.slug, (matching, []))
        if not values:
            raise AttioError(400, "missing_value", f'Required value for matching attribute with slug '
                             f'"{matching.slug}" was not provided.')
        index = self._unique.get((obj.slug, matching.slug), {})
        found = {index[k] for k in (value_key(matching.type, v) for v in values) if k in index}
        if len(found) > 1:
            raise AttioError(400, "multiple_match_results", "Multiple records were found for the values provided "
                             f'for matching attribute with slug "{matching.slug}". Please remove duplicates or use '
                             "the update or create record endpoints instead.")
        if found:
            record = self.by_object[obj.slug][found.pop()]
            self.update(obj, record, prepared, "overwrite", actor, append=frozenset({matching.slug}))
            return record, False
        return self.create(obj, prepared, actor), True

    def link_company_by_email_domain(self, person: dict, companies: ObjectDef, free_domains: frozenset[str],
                                     actor: dict) -> bool:
        """Attio: "When creating a person, a related company record will automatically be generated or
        matched based on the domain of the person's email address". True when a company was created."""
        emails = person["values"].get("email_addresses") or []
        if person["values"].get("company") or not emails:
            return False
        domain = normalise_domain(emails[0]["email_domain"])
        if domain is None or domain in free_domains:
            return False
        domains_attr = companies.attributes["domains"]
        created = False
        cid = self.find_unique("companies", domains_attr, domain)
        if cid is None:
            props = {"domain": domain, "root_domain": root_domain(domain), "attribute_type": "domain"}
            cid = self.create(companies, {"domains": (domains_attr, [props])}, actor)["id"]
            created = True
        people = self.objects["people"]
        ref = {"target_object": "companies", "target_record_id": cid, "attribute_type": "record-reference"}
        self._apply(people, person, {"company": (people.attributes["company"], [ref])}, "overwrite", frozenset(),
                    actor, now_timestamp())
        return created

    # ---------------------------------------------------------------- internals
    @staticmethod
    def _stored(props: dict, actor: dict, ts: str) -> dict:
        return {"active_from": ts, "active_until": None, "created_by_actor": dict(actor), **props}

    def _check_unique(self, obj: ObjectDef, prepared: Prepared, record_id: str | None) -> None:
        for slug, (attr, values) in prepared.items():
            if not attr.is_unique:
                continue
            index = self._unique.get((obj.slug, slug), {})
            for props in values:
                owner = index.get(value_key(attr.type, props))
                if owner is not None and owner != record_id:
                    raise UniquenessConflict(attr, props)

    def _apply(self, obj: ObjectDef, record: dict, prepared: Prepared, multiselect: str, append: frozenset[str],
               actor: dict, ts: str) -> None:
        for slug, (attr, incoming) in prepared.items():
            current = record["values"].get(slug, [])
            by_key = {value_key(attr.type, v): v for v in current}
            if attr.is_multiselect and (multiselect == "append" or slug in append):
                fresh = [self._stored(p, actor, ts) for p in incoming if value_key(attr.type, p) not in by_key]
                result = fresh + current
            else:
                result = [by_key.get(value_key(attr.type, p)) or self._stored(p, actor, ts) for p in incoming]
            record["values"][slug] = result
            if attr.is_unique:
                self._reindex(obj, attr, record["id"], current, result)
            if attr.inverse is not None:
                self._sync_inverse(attr, record["id"], current, result, actor, ts)

    def _reindex(self, obj: ObjectDef, attr: Attribute, rid: str, before: list[dict], after: list[dict]) -> None:
        index = self._unique.setdefault((obj.slug, attr.slug), {})
        for v in before:
            key = value_key(attr.type, v)
            if index.get(key) == rid:
                del index[key]
        for v in after:
            index[value_key(attr.type, v)] = rid

    def _sync_inverse(self, attr: Attribute, rid: str, before: list[dict], after: list[dict], actor: dict,
                      ts: str) -> None:
        """Updating one side of a relationship updates the other ("you don't need to update both")."""
        inverse = self.objects[attr.target].attributes[attr.inverse]  # type: ignore[index]
        old = {v["target_record_id"] for v in before}
        new = {v["target_record_id"] for v in after}
        for tid in old - new:
            target = self.get(attr.target, tid)  # type: ignore[arg-type]
            if target is not None:
                self._unlink(target, inverse, rid)
        for tid in new - old:
            target = self.get(attr.target, tid)  # type: ignore[arg-type]
            if target is not None:
                self._link(target, inverse, attr.object, rid, actor, ts)

    def _link(self, record: dict, attr: Attribute, target_object: str, target_id: str, actor: dict,
              ts: str) -> None:
        values = record["values"].get(attr.slug, [])
        if any(v["target_record_id"] == target_id for v in values):
            return
        ref = self._stored({"target_object": target_object, "target_record_id": target_id,
                            "attribute_type": "record-reference"}, actor, ts)
        if attr.is_multiselect:
            record["values"][attr.slug] = [ref] + values
            return
        inverse = self.objects[attr.target].attributes[attr.inverse]  # type: ignore[index]
        for old in values:  # a "one" side moving: the old partner loses this record
            partner = self.get(attr.target, old["target_record_id"])  # type: ignore[arg-type]
            if partner is not None:
                self._unlink(partner, inverse, record["id"])
        record["values"][attr.slug] = [ref]

    @staticmethod
    def _unlink(record: dict, attr: Attribute, target_id: str) -> None:
        values = record["values"].get(attr.slug, [])
        record["values"][attr.slug] = [v for v in values if v["target_record_id"] != target_id]


class UniquenessConflict(AttioError):
    """Raised with status 400; the sandbox may re-status it (`uniqueness_conflict_status`)."""

    def __init__(self, attr: Attribute, props: dict):
        prop = _KEY_PROPS.get(attr.type, "value")
        shown = orjson.dumps({prop: props.get(prop)}).decode()
        super().__init__(400, "uniqueness_conflict", f'The value "{shown}" provided for attribute with ID '
                         f'"{attr.id}" conflicts with one already in the system.')


def _missing(attr: Attribute) -> AttioError:
    return AttioError(400, "missing_value", f'Required value for attribute with ID "{attr.id}" was not provided.')
