"""Attio: "Synchronize People" and "Synchronize Companies" over REST v2 (tests/specs/attio-openapi.json).

- Upsert: one assert per row, `PUT /v2/objects/{object}/records?matching_attribute=<slug>`, with the
  matching value and the attributes to send (every mapped one for an added row, the changed ones
  for a changed row). Attio has no public batch write.
- Update never creates: rows are first looked up with batched records queries filtered on the
  matching attribute (`POST .../records/query`, reads); keys without a record are `not_found`; the
  others are written by record id with `PUT /v2/objects/{object}/records/{record_id}`, which
  answers 404 for a record that does not exist (e.g. deleted since the lookup), never creates one,
  and overwrites multiselect values like the assert does. The matching attribute is not written
  in update mode (a PUT would replace the record's other emails or domains). A query Attio refuses
  is split to isolate a key; a single key still refused is failed (a read's refusal is no verdict on
  the row), not parked. Keys resolved to one record are withheld (`_same_record`), never written
  over each other.
- Limits for the whole token: 25 writes/s and 100 reads/s (documented): every write uses the
  endpoint name "write", every read "read", so the sender paces each kind together.
- Writes are idempotent (assert / PUT by id with the same values), so a retry after a reset whose
  write was applied, or aiohttp's own silent re-send of a PUT on a reused connection, changes nothing.
- A 2xx acknowledges a write only if its body is Attio's record (`data.id.record_id`); any other 2xx
  (a captive portal's HTML page) is retried, then failed: sent again by the next run.
- Per-record answers: 400 / 404 / 409 / 413 of Attio's JSON reject the row with Attio's message; 401 / 403 stop the run
  naming the scopes the token needs; 429 (Retry-After as an HTTP date), 5xx and resets are retried.
"""
from __future__ import annotations

import dataclasses
import urllib.parse
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

import orjson
from pydantic import ConfigDict, Field, SecretStr

from ...errors import DestinationUnreachableError, DinsyncError
from ..base import (
    Destination,
    EndpointLimit,
    FieldIssue,
    FieldSpec,
    KeySpec,
    OpenKeyFields,
    Outcome,
    Preflight,
    Prepared,
    RecordResult,
    Rejection,
    Request,
    ServiceSpec,
    SyncSpec,
    Transport,
)
from ..settings import Settings
from .answers import (attio_answer, auth_reason, describe, missing_reference, named_fields, read_json, record_missing,
                      written_record)
from .keys import e164_keys, inexact_numbers, same_domain, same_email, same_instant, same_number, same_phone
from .schema import NUMERIC_TYPES, AttributeInfo, Schema, check_mapping
from .values import (ValueShaper, is_json_number, key_filter_value, key_value_json, match_form, shape_values,
                     stored_match_forms)

if TYPE_CHECKING:
    import polars as pl

WRITE, READ = "write", "read"  # endpoint names: Attio's two token-wide rate classes
ATTRIBUTES_PAGE = 100


class AttioSettings(Settings):
    """Attio-specific keys of a destination in dinsync.yml."""

    model_config = ConfigDict(extra="forbid")
    api_key: SecretStr  # an access token (API key or OAuth), sent as `Authorization: Bearer`
    lookup_batch_size: int = Field(50, ge=1, le=500)  # update mode: keys per records query


def _service(name: str, key: str, key_spec: KeySpec, model_types: tuple[str, ...],
             read_only: tuple[str, ...]) -> ServiceSpec:
    return ServiceSpec(
        name=name,
        # Any unique attribute may match (the pre-flight check verifies it is unique); the standard
        # one is named with its key kind, others are matched on their value as written.
        key_fields=OpenKeyFields({key: key_spec}, default=KeySpec("string")),
        modes=("upsert", "update"),
        mode_notes={"insert": "Attio's assert creates or updates; use upsert (or update to never create)"},
        model_types=model_types,
        # Documented as never writable through the API; everything else is checked in pre-flight.
        fields={f: FieldSpec(f, writable=False) for f in read_only},
        open_fields=True,  # any writable attribute of the workspace (custom ones included)
        update_needs_lookup=True,
        lookup_rows="all",  # every write in update mode needs the record id the lookup found
    )


PEOPLE = _service("people", "email_addresses", KeySpec("email"), ("user",),
                  ("record_id", "created_at", "created_by", "avatar_url"))
# Attio lowercases domains (and trims scheme, path and query): keys are compared lowercased and
# trimmed across the model, so `Acme.com` added next to a synced `acme.com` is a duplicate key,
# not a second assert overwriting that company; scheme and path are compared within a batch.
COMPANIES = _service("companies", "domains", KeySpec("string", normalization="lower"), ("user", "custom"),
                     ("record_id", "created_at", "created_by", "logo_url"))


@dataclass
class _Capture:
    """Request.context of a schema read: parse() keeps the body here. `item`: what each of its `data`
    must be to make it Attio's answer (a page of anything else is read again)."""

    what: str
    data: Any = None
    item: Callable[[Any], bool] | None = None


def _identified(item: Any, member: str) -> bool:
    """Whether an item of a list Attio answers is an object identified as Attio identifies it:
    `{"id": {member: ...}, ...}` (an attribute's `attribute_id`, an object's `object_id`)."""
    return isinstance(item, dict) and isinstance(item.get("id"), dict) and isinstance(item["id"].get(member), str)


@dataclass
class _Lookup:
    """Request.context of an update-mode lookup: the matching attribute, and each matching value
    (as Attio compares it) -> plan keys."""

    key: AttributeInfo
    object: str
    by_value: dict[Any, list[str]] = field(default_factory=dict)
    ids: dict[str, str] = field(default_factory=dict)  # plan key -> the key's value in the model


@dataclass
class _Write:
    """Request.context of a write; `by_id`: a PUT by record id (update mode); `references`: the
    sync's fields that are record-reference attributes."""

    by_id: bool
    references: frozenset = frozenset()


@dataclass
class _Plan:
    """What the pre-flight check learned for one sync."""

    key: AttributeInfo
    attributes: dict[str, AttributeInfo]  # mapped field name -> attribute


class AttioDestination(Destination):
    type_name = "attio"
    hook_seconds = None  # dinsync's own hooks: no thread hop, their waits have limits of their own
    services = {"people": PEOPLE, "companies": COMPANIES}
    settings_model = AttioSettings
    base_urls = {"default": "https://api.attio.com"}
    credential_header = "Authorization"  # a bearer token
    learns_kinds = True  # each attribute's type maps the values (schema.AttributeInfo.kind)
    # A write takes 100-300 ms at Attio: 25/s needs ~8 in flight; 16 keeps the rate up to ~640 ms.
    limits = {
        WRITE: EndpointLimit(WRITE, rate=25.0, burst=2, max_concurrency=16, headroom=0.975),
        READ: EndpointLimit(READ, rate=100.0, max_concurrency=8),
    }
    # sockets for 16 writes and 8 reads in flight at once, and room for those caps to grow with the
    # latency (sender/inflight.py): at 1 s a write, 24 held 95.7% of 25/s, 40 hold 97.4%
    default_concurrency = 40

    def __init__(self, base_url: str, credentials: Mapping[str, str], options: Mapping[str, Any] | None = None):
        super().__init__(base_url, credentials, options)
        self._plans: dict[tuple[str, str, tuple[str, ...]], _Plan] = {}
        self._record_ids: dict[str, str] = {}  # update mode: plan key -> record id found by the lookup
        # update mode: keys a lookup answer paired with one record (key -> the others), and the key
        # each record id was first prepared for in this run: one record is never written for two keys
        self._shared: dict[str, list[str]] = {}
        self._claimed: dict[str, str] = {}

    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": "Bearer " + self.credentials["api_key"]}

    # --- pre-flight ---------------------------------------------------------------------
    async def read_schema(self, transport: Transport, object_slug: str) -> Schema:
        """Every attribute of the object, archived ones included (paged). The pages end with an
        empty one, or one that adds no attribute (a server ignoring `offset`), not with a page
        shorter than asked: the spec gives `limit` no maximum, and a server holding pages to fewer
        than ATTRIBUTES_PAGE hid the other attributes (the mapping's a configuration error)."""
        attributes: list[AttributeInfo] = []
        seen: set[tuple[str, str]] = set()
        offset = 0
        while True:
            page = await self._read(transport, f"/v2/objects/{_q(object_slug)}/attributes?limit={ATTRIBUTES_PAGE}"
                                    f"&offset={offset}&show_archived=true", f"the attributes of {object_slug}",
                                    lambda a: _identified(a, "attribute_id") and isinstance(a.get("api_slug"), str))
            rows = page.get("data") if isinstance(page, dict) else None
            if not isinstance(rows, list):
                raise DinsyncError(f"attio: unexpected answer listing the attributes of {object_slug}")
            new = [a for a in (AttributeInfo.from_json(r) for r in rows if isinstance(r, dict))
                   if (a.id, a.slug) not in seen]
            if not new:
                return Schema(object_slug, attributes)
            attributes += new
            seen.update((a.id, a.slug) for a in new)
            offset += len(rows)

    async def _read(self, transport: Transport, path: str, what: str,
                    item: Callable[[Any], bool] | None = None) -> Any:
        capture = _Capture(what, item=item)
        delivered = await transport.deliver(Request(READ, "GET", path, None, keys=[what], context=capture))
        if delivered.problems:
            problem = delivered.problems[0]
            # retried to the end without an answer (5xx, resets): nothing is known wrong
            error = DestinationUnreachableError if problem.status == "failed" else DinsyncError
            raise error(f"attio: could not read {what}: {problem.reason}",
                        "check base_url and the object; a transient failure: run again")
        return capture.data

    async def preflight(self, transport: Transport, sync: SyncSpec) -> Preflight:
        schema = await self.read_schema(transport, sync.service)
        issues, found = check_mapping(schema, sync.key_field, sync.fields)
        key = found.get(sync.key_field)
        key_fields = self.services[sync.service].key_fields
        if key is not None and key.slug != sync.key_field and key_fields[key.slug] != key_fields[sync.key_field]:
            # the diff compared the keys by the name written (its KeySpec), before this check:
            # `Case@x.com` and `case@x.com` were two keys, both asserted to one person
            issues.append(FieldIssue(None, f"the matching attribute {sync.key_field!r} is {key.slug!r} given by "
                                     "its ID: its keys would be compared as written, not as Attio compares them",
                                     f"match on it by its slug: `field: {key.slug}`"))
            found.pop(sync.key_field)
        if any(a.type == "record-reference" for a in found.values()):
            objects = await self._read(transport, "/v2/objects", "the workspace's objects",
                                       lambda o: _identified(o, "object_id"))
            slugs = {str((o.get("id") or {}).get("object_id")): str(o.get("api_slug"))
                     for o in (objects or {}).get("data", []) if isinstance(o, dict)}
            for name, attr in found.items():
                if attr.type == "record-reference":
                    targets = tuple(slugs.get(i, i) for i in attr.target_object_ids)
                    found[name] = dataclasses.replace(attr, targets=targets)
        kinds = {name: attr.kind for name, attr in found.items() if name != sync.key_field}
        if not issues:
            key = found[sync.key_field]
            self._plans[_plan_id(sync)] = _Plan(key, {n: a for n, a in found.items() if n != sync.key_field})
        return Preflight(issues, kinds)

    def plan_for(self, sync: SyncSpec) -> _Plan:
        plan = self._plans.get(_plan_id(sync))
        if plan is None:
            raise RuntimeError("attio: the pre-flight check must run before requests are prepared")
        return plan

    # --- writes -------------------------------------------------------------------------
    def _shapers(self, plan: _Plan, sync: SyncSpec) -> list[tuple[int, ValueShaper]]:
        region = self.default_region()
        return [(n, ValueShaper(plan.attributes[name], name, region)) for n, name in enumerate(sync.fields)
                if name != sync.key_field and name in plan.attributes]

    def preview(self, frame: pl.DataFrame, sync: SyncSpec) -> tuple[pl.DataFrame, list[Rejection]]:
        """Each value as the array `values` carries it (`["pro"]`), and the rows whose values cannot be
        written; as mapped when the schema was not read (`plan` says so)."""
        import polars as pl

        plan = self._plans.get(_plan_id(sync))
        if plan is None or frame.height == 0:
            return frame, []
        shapers = self._shapers(plan, sync)
        kept, rejections = shape_values(frame, shapers)
        for n, shaper in shapers:  # one at a time: `_values` holds that member alone, `"name":[...]`
            one, _ = shape_values(kept.select(pl.exclude("_values")), [(n, shaper)])
            prefix = len(orjson.dumps(shaper.name).decode()) + 1
            kept = kept.with_columns(pl.when(pl.col(f"_t{n}").is_not_null())
                                     .then(one.get_column("_values").str.slice(prefix)).alias(f"_t{n}"))
        return kept.select(pl.exclude("_values")), rejections

    def prepare(self, frame: pl.DataFrame, sync: SyncSpec) -> Prepared:
        import polars as pl

        if frame.height == 0:
            return Prepared([])
        plan = self.plan_for(sync)
        update = sync.mode == "update"
        rejections: list[Rejection] = []
        key_json, key_bad = key_value_json(plan.key, pl.col("_id"))
        frame = frame.with_columns(key_json.alias("_kjson"))
        if key_bad is not None:
            bad = frame.filter(key_bad)
            rejections += [Rejection(k, f'key "{sync.key_field}": {i!r} is not a number (the matching attribute is '
                                        f'of type {plan.key.type})', sync.key_field)
                           for k, i in bad.select("_key", "_id").iter_rows()]
            frame = frame.filter(~key_bad)
        region = self.default_region()
        if plan.key.type == "domain":
            frame, dupes = same_domain(frame, sync.key_field)
            rejections += dupes
        elif plan.key.type == "email-address":
            frame, dupes = same_email(frame, sync.key_field)
            rejections += dupes
        elif plan.key.type in NUMERIC_TYPES:
            frame, inexact = inexact_numbers(frame, sync.key_field)
            frame, dupes = same_number(frame, sync.key_field)
            rejections += inexact + dupes
        elif plan.key.type == "phone-number":
            frame, dupes = same_phone(e164_keys(frame, region), sync.key_field, region)
            rejections += dupes
        elif plan.key.type in ("date", "timestamp"):
            frame, dupes = same_instant(frame, sync.key_field, plan.key.type)
            rejections += dupes
        frame, bad_values = shape_values(frame, self._shapers(plan, sync))
        rejections += bad_values
        self._forget(rejections)
        if update:
            frame, same = self._same_record(frame, sync.key_field)
            self._forget(same)
            rejections += same
        obj = _q(sync.service)
        references = frozenset(n for n, a in plan.attributes.items() if a.type == "record-reference")
        requests = []
        if update:
            body = pl.concat_str([pl.lit('{"data":{"values":{'), pl.col("_values"), pl.lit("}}}")])
            for key, text in frame.select("_key", body.alias("_body")).iter_rows():
                record_id = self._record_ids.pop(key, None)
                if record_id is None:  # every row reaching here was found by the lookup
                    raise RuntimeError(f"attio: no record id for key {key!r} (update mode)")
                requests.append(Request(WRITE, "PUT", f"/v2/objects/{obj}/records/{_q(record_id)}", text.encode(),
                                        keys=[key], context=_Write(by_id=True, references=references)))
        else:
            member = pl.concat_str([pl.lit(orjson.dumps(sync.key_field).decode() + ":["), pl.col("_kjson"),
                                    pl.lit("]")])
            values = pl.when(pl.col("_values") == "").then(member).otherwise(
                pl.concat_str([member, pl.lit(","), pl.col("_values")]))
            body = pl.concat_str([pl.lit('{"data":{"values":{'), values, pl.lit("}}}")])
            path = f"/v2/objects/{obj}/records?matching_attribute={_q(sync.key_field)}"
            write = _Write(by_id=False, references=references)
            for key, text in frame.select("_key", body.alias("_body")).iter_rows():
                requests.append(Request(WRITE, "PUT", path, text.encode(), keys=[key], context=write))
        return Prepared(requests, rejections)

    def _forget(self, rejections: list[Rejection]) -> None:
        """Update mode: rows not written need their record ids no more."""
        for rejection in rejections:
            self._record_ids.pop(rejection.key or "", None)
            self._shared.pop(rejection.key or "", None)

    def _same_record(self, frame: pl.DataFrame, key_field: str) -> tuple[pl.DataFrame, list[Rejection]]:
        """Update mode: rows whose keys the lookup resolved to one Attio record (a person holding two
        of the model's emails; `1` and `1.0`) were both written to it, the last write winning, both
        acknowledged. Withheld, not parked: those of one lookup answer or one batch all, and a key
        whose record another key of this run was already prepared for. Once the model holds one
        key per record, the next run sends it."""
        import polars as pl

        keys = frame.get_column("_key").to_list()
        records = [self._record_ids.get(k) for k in keys]
        batch: dict[str | None, list[str]] = {}
        for key, record in zip(keys, records):
            batch.setdefault(record, []).append(key)
        withheld: dict[str, list[str]] = {}
        for key, record in zip(keys, records):
            # keys of its lookup answer still to be written (a key rejected for its content is not)
            shared = [k for k in self._shared.pop(key, []) if k in self._record_ids]
            if record is None:
                continue
            others = list(dict.fromkeys([k for k in batch[record] if k != key] + shared))
            if not others and self._claimed.get(record, key) != key:
                others = [self._claimed[record]]
            if others:
                withheld[key] = others
        for key, record in zip(keys, records):
            if record is not None:
                self._claimed.setdefault(record, key)
        if not withheld:
            return frame, []
        rejected = [Rejection(k, f'key "{key_field}": resolves to the same Attio record as key '
                                 f"{', '.join(repr(o) for o in others[:3])} (record {self._record_ids.get(k)}); "
                                 "make the model hold one key per Attio record", key_field, duplicate=True)
                    for k, others in withheld.items()]
        return frame.filter(~pl.col("_key").is_in(list(withheld))), rejected

    # --- update mode: which keys exist --------------------------------------------------
    def lookup_requests(self, keys: Sequence[str], ids: Sequence[str], sync: SyncSpec) -> list[Request]:
        plan = self.plan_for(sync)
        size = int(self.options.get("lookup_batch_size") or 50)
        slug = plan.key.slug
        requests = []
        for start in range(0, len(keys), size):
            chunk_keys = list(keys[start:start + size])
            items = [orjson.dumps({slug: key_filter_value(plan.key, i, self.default_region())})
                     for i in ids[start:start + size]]
            requests.append(self._lookup(sync.service, plan.key, chunk_keys, items, list(ids[start:start + size])))
        return requests

    def _lookup(self, obj: str, key: AttributeInfo, keys: list[str], items: list[bytes], ids: list[str]) -> Request:
        """One records query for `keys`; `items` are their filter terms (a split rebuilds from halves).
        A key matches at most one record and a record holds at least one key: `limit` = len(keys)
        returns every match in one page."""
        id_of = dict(zip(keys, ids))
        context = _Lookup(key, obj, ids=id_of)
        for k, i in zip(keys, ids):
            context.by_value.setdefault(match_form(key.type, i, self.default_region()), []).append(k)
        body = b'{"filter":{"$or":[' + b",".join(items) + b']},"limit":' + str(len(items)).encode() + b"}"
        return Request(READ, "POST", f"/v2/objects/{_q(obj)}/records/query", body, keys=keys, items=items,
                       context=context, rebuild=lambda k, i: self._lookup(obj, key, k, i, [id_of[x] for x in k]))

    # --- responses ----------------------------------------------------------------------
    def parse(self, request: Request, status: int, headers: Mapping[str, str], body: bytes) -> Outcome:
        data = read_json(body)
        if status in (401, 403):
            return Outcome("fatal", reason=auth_reason(status, data, body))
        ctx = request.context
        if isinstance(ctx, _Lookup):
            return self._parse_lookup(request, ctx, status, data, body)
        if isinstance(ctx, _Capture):
            if status == 200 and isinstance(data, dict) and isinstance(data.get("data"), list) \
                    and (ctx.item is None or all(ctx.item(i) for i in data["data"])):
                ctx.data = data
                return Outcome("done")
            if 200 <= status < 300:  # a proxy's or a portal's page: read again, as a lookup is (it failed the run)
                reason = describe(status, data, body)
                return Outcome("retry", reason=f"{reason} (not Attio's answer listing {ctx.what})")
            return Outcome("done", [RecordResult(request.keys[0], "rejected", describe(status, data, body))])
        if 200 <= status < 300:
            if written_record(data):
                return Outcome("done")
            # a captive portal's or a proxy's 200 page is no acknowledgement: the write may never
            # have reached Attio, so it is sent again (then failed, and sent by the next run)
            return Outcome("retry", reason=describe(status, data, body) + " (not Attio's answer to a write: no "
                                                                          "data.id.record_id)")
        reason = describe(status, data, body)
        if status == 404 and isinstance(ctx, _Write) and ctx.by_id and record_missing(data):
            return Outcome("done", [RecordResult(request.keys[0], "not_found",
                                                 reason + " (deleted since the lookup; update mode never creates)")])
        missing = missing_reference(status, data, request.body, ctx.references) if isinstance(ctx, _Write) else None
        if missing:
            # the record it references does not exist (yet): nothing of this row's values to fix, so
            # not parked until they change; sent again by the next run (the companies' sync may
            # not have run yet: `serve --parallel`, or syncs selected apart)
            return Outcome("done", [RecordResult(k, "not_found", f"{reason} (the record {missing} references does "
                                                 "not exist in Attio: sent again by the next run)", missing)
                                    for k in request.keys])
        # Attio's word on the record (its error JSON) rejects it; another 4xx page (a proxy's or a
        # gateway's, a 413 of a proxy's smaller cap included) says nothing about the record:
        # failed, sent again next run (a proxy's 413 page parked a valid row for good).
        kind = "rejected" if 400 <= status < 500 and attio_answer(data) else "failed"
        named = named_fields(data, request.body) if kind == "rejected" else None
        return Outcome("done", [RecordResult(k, kind, reason, named) for k in request.keys])  # type: ignore[arg-type]

    def _parse_lookup(self, request: Request, ctx: _Lookup, status: int, data: Any, body: bytes = b"") -> Outcome:
        if status != 200 or not isinstance(data, dict) or not isinstance(data.get("data"), list) \
                or not all(_a_record(r, ctx.key.slug) for r in data["data"]):
            reason = describe(status, data, body)
            if 200 <= status < 300:  # a proxy's or a portal's page: the query is sent again (a read)
                return Outcome("retry", reason=reason + " (not Attio's answer to a records query)")
            # e.g. a key Attio cannot filter on: isolate it. A 4xx that is not Attio's JSON (a proxy's
            # or gateway's page) says nothing about the keys: failed, not split down to rejections
            # A 413, whoever sent it (a proxy's cap too), is about the query's size: halves are
            # smaller (one 1 MB key failed the 49 others of its query, every run)
            if 400 <= status < 500 and (attio_answer(data) or status == 413) and request.splittable:
                return Outcome("split", reason=reason)
            # A lookup is a read: Attio refusing it is no verdict on a write of the row, so a key
            # isolated by the splits is failed (looked up again next run), never parked as rejected
            # (it would wait for its row to change, though the API may be healthy by then). Only
            # what dinsync itself knows no run can send is rejected: a key that is not a number.
            return Outcome("done", [_bad_number(ctx, k) or RecordResult(k, "failed", reason) for k in request.keys])
        key_attr = ctx.key
        found: set[str] = set()
        by_record: dict[str, dict[str, None]] = {}
        for record in data["data"]:
            record_id = record["id"]["record_id"]
            values = record["values"].get(key_attr.slug) or []
            for value in values if record_id else ():
                for form in stored_match_forms(key_attr.type, value):
                    for key in ctx.by_value.get(form, ()):
                        self._record_ids[key] = record_id
                        by_record.setdefault(record_id, {})[key] = None
                        found.add(key)
        for keys in by_record.values():  # one record for several keys: prepare() withholds them all
            for key in keys if len(keys) > 1 else ():
                self._shared[key] = [k for k in keys if k != key]
        return Outcome("done", [RecordResult(k, "not_found", f"Attio has no {ctx.object} record with this "
                                             f"{key_attr.slug} (update mode never creates)")
                                for k in request.keys if k not in found])


def _a_record(record: Any, slug: str) -> bool:
    """Whether an item of a records query's answer is an Attio record: `{"id": {"record_id"}, "values":
    {slug: [...]}}` (anything else, from a gateway or a cache, is no answer to the query)."""
    return _identified(record, "record_id") and isinstance(record.get("values"), dict) \
        and isinstance(record["values"].get(slug) or [], list)


def _bad_number(ctx: _Lookup, key: str) -> RecordResult | None:
    """The rejection of a key a numeric matching attribute can never match (as prepare() words it)."""
    ident = ctx.ids.get(key)
    if ctx.key.type not in NUMERIC_TYPES or ident is None or is_json_number(ident):
        return None
    return RecordResult(key, "rejected", f'key "{ctx.key.slug}": {ident!r} is not a number (the matching attribute '
                                         f"is of type {ctx.key.type})", ctx.key.slug)


def _plan_id(sync: SyncSpec) -> tuple[str, str, tuple[str, ...]]:
    return sync.service, sync.key_field, tuple(sync.fields)


def _q(part: str) -> str:
    return urllib.parse.quote(part, safe="")
