"""Attentive: "Synchronize Users", update only (see the package docstring for the why)."""
from __future__ import annotations

import re
import urllib.parse
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal, Mapping, Sequence

import orjson
from pydantic import ConfigDict, Field, SecretStr

from ... import redaction
from ..base import (
    Destination,
    EndpointLimit,
    FieldIssue,
    KeySpec,
    Outcome,
    Preflight,
    Prepared,
    RecordResult,
    Rejection,
    Request,
    ServiceSpec,
    SyncSpec,
    TransportOptions,
    body_excerpt,
    is_html_page,
    reject_oversized,
)
from ..settings import Settings
from .fields import FIELD_SPECS, IDENTIFIER_FIELDS

if TYPE_CHECKING:
    import polars as pl

BULK_MAX_USERS = 256  # documented: "up to 256 payloads per request"
BULK_MAX_BYTES = 4 * 1024 * 1024  # our cap per bulk request (no documented body limit)
WRITE_BATCH_ROWS = 1024  # rows per unit of work handed to the transport (several bulk requests)
MESSAGE_CHARS = 300  # of Attentive's error message quoted in a reason
CONFIRM = "confirm-existence"  # pending token of a lookup answer that does not tell (an empty attribute list)
V2_SINGLE = "user_attributes"  # the endpoint of a single v2 write (its 202 carries a JSON object)

# Scopes each endpoint needs (OAuth scopes in the specs; private-app keys carry the same permissions).
SCOPES = {
    "get_custom_attributes": "attributes:write",
    "custom_attributes": "attributes:write",
    "get_subscriptions": "subscriptions:write (read and write subscriptions; or subscriptions:read)",
    "user_attributes": "attributes:write and subscriptions:write",
    "bulk_user_attributes": "attributes:write and subscriptions:write",
    "bulk_job": "none",
    "me": "none",
    "probe": "attributes:write",
}

NOT_FOUND = "Attentive: no subscriber with this {field} (update mode never creates one)"

_ENDED_BADLY = re.compile(r"FAIL|ERROR|CANCEL|ABORT|REJECT|UNKNOWN", re.I)


class AttentiveSettings(Settings):
    """Attentive-specific keys of a destination in dinsync.yml."""

    model_config = ConfigDict(extra="forbid")
    api_key: SecretStr
    lookup: Literal["every_write", "new_rows"] = "every_write"
    existence_check: Literal["custom_attributes", "subscriptions"] = "custom_attributes"
    standard_fields_via: Literal["bulk", "single"] = "bulk"
    custom_attributes_via: Literal["v1", "v2"] = "v1"
    bulk_max_users: int = Field(BULK_MAX_USERS, ge=1, le=BULK_MAX_USERS)
    send_nulls: bool = False
    job_poll_seconds: float = Field(0.25, gt=0, le=60)  # first poll of a bulk job; then x1.5 up to 10 s
    job_retries: int = Field(1, ge=0, le=5)  # a FAILED bulk job is submitted again this many times


USERS = ServiceSpec(
    name="users",
    key_fields={"phone": KeySpec("phone"), "email": KeySpec("email")},
    modes=("update",),
    mode_notes={
        "upsert": "Attentive syncs update existing subscribers only: dinsync never creates one (a subscriber "
                  "exists through an opt-in; Attentive's v2 write would create a profile for an unknown "
                  "person). Use `mode: update`; unknown people are reported as not_found",
        "insert": "Attentive syncs update existing subscribers only (dinsync never creates one); use `mode: update`",
    },
    fields=FIELD_SPECS,
    open_fields=False,  # the standard fields, or `custom: true` for custom attributes
    custom_fields=True,
    update_needs_lookup=True,
    lookup_rows="all",
)


@dataclass
class Lookup:
    """Request.context of an existence check."""

    kind: Literal["custom_attributes", "subscriptions", "probe"]
    field: str  # "phone" | "email"


@dataclass
class BulkPart:
    """Request.context shared by a bulk request and the halves it is split into: the jobs created."""

    key_field: str
    sent_ids: dict[str, str]  # plan key -> identifier as sent
    jobs: list[tuple[str, list[str], list[bytes]]] = field(default_factory=list)  # (job id, keys, records)


@dataclass
class JobStatus:
    """Request.context of `GET /v2/bulk/job/{id}`: parse() fills in the answer."""

    job_id: str
    status: str | None = None  # PENDING | IN_PROGRESS | COMPLETED | FAILED | UNKNOWN (404)
    url: str | None = None
    answer: dict | None = None

    @property
    def phase(self) -> str | None:
        """`done` (results to read), `failed`, `running`, or None (no status read). The spec lists
        only "common values" (IN_PROGRESS, COMPLETED): any status that comes with a results `url`
        counts as done (the file says what became of each record; a record without a readable
        line fails), one without that says it ended badly (FAILED, ERROR, CANCELLED, ABORTED,
        REJECTED, UNKNOWN) as failed, and any other as still running."""
        if not self.status:  # (no status in the answer: unreadable)
            return None
        if self.status.upper() == "COMPLETED" or self.url:  # (any spelling: the spec fixes none)
            return "done"
        return "failed" if _ENDED_BADLY.search(self.status) else "running"


@dataclass
class WriteBatch:
    """Request.context of one unit of writes (handled by the Attentive transport, not sent as is)."""

    key_field: str
    v1: dict[str, bytes]  # key -> POST /v1/attributes/custom body
    v2: list[Request]  # bulk requests (BulkPart) or single requests, of the rows with standard changes
    noop: list[str]  # rows with nothing left to send (only NULLs changed): acknowledged as they are


ME = "me"


class AttentiveDestination(Destination):
    type_name = "attentive"
    hook_seconds = None  # dinsync's own hooks: no thread hop, their waits have limits of their own
    # its JSON answers are a lookup's attributes, a job's id or status, a write's `success`: small
    # (a bulk job's results file, downloaded apart, has a cap of its own: RESULTS_FILE_MAX)
    max_answer_bytes = 16 * 2**20
    services = {"users": USERS}
    settings_model = AttentiveSettings
    base_urls = {"us": "https://api.attentivemobile.com"}
    credential_header = "Authorization"  # a bearer token
    # sockets (dinsync.yml's `concurrency`): room for every endpoint a run uses at once to grow to its
    # ceiling (4x its cap, see sender/inflight.py) when answers are slow; a smaller number caps them all
    default_concurrency = 256
    handles_statuses = frozenset({429})  # read x-ratelimit-* ourselves (no Retry-After is documented)
    # Documented rates; `burst` lets the pacer catch up after a stall of our own process without ever
    # starting more than `rate` requests in any `rate` consecutive intervals (see RateLimiter).
    limits = {
        "get_custom_attributes": EndpointLimit("get_custom_attributes", rate=150.0, burst=4, max_concurrency=32),
        "get_subscriptions": EndpointLimit("get_subscriptions", rate=10.0, max_concurrency=4),
        "custom_attributes": EndpointLimit("custom_attributes", rate=150.0, burst=4, max_concurrency=32),
        "user_attributes": EndpointLimit("user_attributes", rate=150.0, burst=4, max_concurrency=32),
        "bulk_user_attributes": EndpointLimit("bulk_user_attributes", rate=100.0, burst=4, max_concurrency=16),
        "bulk_job": EndpointLimit("bulk_job", rate=100.0, burst=4, max_concurrency=8),
        "me": EndpointLimit("me", rate=150.0, max_concurrency=1),
        # one request per run, on the lookups' server bucket (GET /v1/attributes/custom): their pace, stats
        # of its own (so that the lookups' achieved rate is theirs alone)
        "probe": EndpointLimit("probe", rate=150.0, burst=4, max_concurrency=1, bucket="get_custom_attributes"),
    }

    def __init__(self, base_url: str, credentials: Mapping[str, str], options: Mapping[str, Any] | None = None):
        super().__init__(base_url, credentials, options)
        # (identifier field, its JSON text) -> the key of the first row of this run that sent it
        self._identifier_owners: dict[tuple[str, str], str] = {}

    def service(self, name: str) -> ServiceSpec:
        """`lookup: new_rows` trusts the snapshot for rows acknowledged before (faster, see README)."""
        spec = self.services[name]
        if self.options.get("lookup") == "new_rows":
            spec = replace(spec, lookup_rows="added")
        return spec

    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": "Bearer " + self.credentials["api_key"]}

    def make_transport(self, options: TransportOptions):
        from .transport import AttentiveTransport

        return AttentiveTransport(self, options)

    # --- checks before sending -------------------------------------------------------------
    async def preflight(self, transport, sync: SyncSpec) -> Preflight:
        from .payloads import custom_name_problems

        via = self.options.get("custom_attributes_via", "v1")
        issues = [FieldIssue(name, message) for name, message in custom_name_problems(sync, via)]
        for name, is_custom in zip(sync.fields, sync.custom or [False] * len(sync.fields)):
            if not is_custom and name == sync.key_field:
                issues.append(FieldIssue(name, f"{name} is the matching field: its value comes from match.column",
                                         "remove it from fields"))
        return Preflight(issues)

    async def begin_run(self, transport, sync: SyncSpec) -> None:
        await transport.start(sync)

    def value_forms(self, sync: SyncSpec) -> dict[str, tuple[str, list[str]]]:
        """`send_nulls` turned on writes the NULLs and empty strings the requests left out before
        (the subscriber kept its old value, the snapshot the model's): the fields it shapes, all but
        the identifiers, go for every row, once. Turned off, nothing: what was sent stays."""
        on = bool(self.options.get("send_nulls"))
        custom = sync.custom or [False] * len(sync.fields)
        shaped = [name for name, is_custom in zip(sync.fields, custom) if is_custom or name not in IDENTIFIER_FIELDS]
        return {"send_nulls": ("true" if on else "false", shaped if on else [])}

    # --- existence checks ------------------------------------------------------------------
    def lookup_requests(self, keys: Sequence[str], ids: Sequence[str], sync: SyncSpec) -> list[Request]:
        kind = self.options.get("existence_check", "custom_attributes")
        return [self.lookup_request(kind, sync.key_field, k, i) for k, i in zip(keys, ids)]

    def lookup_request(self, kind: str, key_field: str, key: str, ident: str) -> Request:
        path = "/v1/subscriptions" if kind == "subscriptions" else "/v1/attributes/custom"
        endpoint = {"subscriptions": "get_subscriptions", "probe": "probe"}.get(kind, "get_custom_attributes")
        query = key_field + "=" + urllib.parse.quote(ident, safe="")  # '+' as %2B, as the spec asks
        return Request(endpoint, "GET", f"{path}?{query}", None, [key], context=Lookup(kind, key_field))

    # --- writes ------------------------------------------------------------------------------
    def preview(self, frame: pl.DataFrame, sync: SyncSpec) -> tuple[pl.DataFrame, list[Rejection]]:
        """The values of the standard fields as their checks send them, less the rows those checks
        (and a custom attribute's array or object) refuse."""
        import polars as pl

        from .payloads import build_rows, sent_values

        built = build_rows(frame, sync, send_nulls=bool(self.options.get("send_nulls")),
                           custom_via=self.options.get("custom_attributes_via", "v1"))
        kept = frame.filter(pl.col("_key").is_in(built.frame.get_column("_key").implode()))
        values = sent_values(sync, bool(self.options.get("send_nulls")))
        return (kept.with_columns(values) if values else kept), built.rejections

    def prepare(self, frame: pl.DataFrame, sync: SyncSpec) -> Prepared:
        import polars as pl

        from ...mapping.json import batches_by_size
        from .payloads import build_rows

        built = build_rows(frame, sync, send_nulls=bool(self.options.get("send_nulls")),
                           custom_via=self.options.get("custom_attributes_via", "v1"))
        rows, bridging = self._withhold_bridging(frame, built.frame, sync)
        requests = []
        max_users = int(self.options.get("bulk_max_users", BULK_MAX_USERS))
        single = self.options.get("standard_fields_via") == "single"
        room = BULK_MAX_BYTES - len(b'{"users":[]}')  # what a bulk request's records may take
        oversized: list[Rejection] = []
        if not single:  # a record over the bulk cap alone was sent as a request over it (6 MB for 4)
            custom_via = self.options.get("custom_attributes_via", "v1")
            custom = sync.custom or [False] * len(sync.fields)
            in_bulk = {f"_t{n}": name for n, (name, is_custom) in enumerate(zip(sync.fields, custom))
                       if not is_custom or custom_via == "v2"}  # the values of the bulk record
            rows, oversized = reject_oversized(rows, "_v2_bytes", room, lambda n: (
                f"row is {n:,} bytes as a bulk user attributes record, over the {BULK_MAX_BYTES:,}-byte request cap"),
                fields=in_bulk, texts=frame)
        for start in range(0, rows.height, WRITE_BATCH_ROWS):
            chunk = rows.slice(start, WRITE_BATCH_ROWS)
            keys, ids = chunk["_key"].to_list(), chunk["_id"].to_list()
            v1 = {k: b.encode() for k, b in zip(keys, chunk["_v1"].to_list()) if b is not None}
            with_v2 = chunk.filter(pl.col("_v2").is_not_null())
            v2_keys, v2_items = with_v2["_key"].to_list(), [s.encode() for s in with_v2["_v2"].to_list()]
            sent = dict(zip(keys, ids))
            if single:
                v2 = [self.single_request(k, item) for k, item in zip(v2_keys, v2_items)]
            else:
                part = BulkPart(sync.key_field, {k: sent[k] for k in v2_keys})
                v2 = [self.bulk_request(v2_keys[o:o + n], v2_items[o:o + n], part)
                      for o, n in batches_by_size(with_v2["_v2_bytes"], max_users, room, 1)] if v2_keys else []
            in_v2 = set(v2_keys)
            noop = [k for k in keys if k not in v1 and k not in in_v2]
            requests.append(Request("write", "WRITE", "", None, keys,
                                    context=WriteBatch(sync.key_field, v1, v2, noop)))
        return Prepared(requests, built.rejections + bridging + oversized)

    def _withhold_bridging(self, frame: pl.DataFrame, rows: pl.DataFrame,
                           sync: SyncSpec) -> tuple[pl.DataFrame, list[Rejection]]:
        """Rows that would send another row's identifier (a mapped `phone` on an email sync, or
        `email` on a phone sync): withheld and parked. "Sending duplicate values could lead to
        unintentionally bridging users together" (the v2 spec's `identifiers`): two subscribers
        sharing a phone in the model would become one. The first row of the run to send a value
        keeps it (its subscriber may own it); the others are parked until their values change. Not
        only withheld: only this run's rows are compared (the model's other rows are not at hand), so
        a later run in which the first row sends nothing for that field (unchanged) would send a
        merely withheld row, and Attentive would bridge the two."""
        import polars as pl

        fields = [(n, name) for n, name in enumerate(sync.fields) if name != sync.key_field
                  and not (sync.custom and sync.custom[n]) and name in IDENTIFIER_FIELDS]
        if not fields or rows.height == 0:
            return rows, []
        kept = frame.filter(pl.col("_key").is_in(rows["_key"].implode()))
        withheld: dict[str, Rejection] = {}
        for n, name in fields:
            for key, text in kept.select("_key", f"_t{n}").iter_rows():
                if text is None or text in ("null", '""') or key in withheld:
                    continue
                owner = self._identifier_owners.setdefault((name, text), key)
                if owner != key:
                    withheld[key] = Rejection(key, f'field "{name}": {text} is also sent for {owner!r} in this run; '
                                                   "Attentive would bridge the two subscribers into one (make "
                                                   f"the model's {name} values unique)", name)
        if not withheld:
            return rows, []
        return rows.filter(~pl.col("_key").is_in(list(withheld))), list(withheld.values())

    def custom_attributes_request(self, key: str, body: bytes) -> Request:
        return Request("custom_attributes", "POST", "/v1/attributes/custom", body, [key])

    def single_request(self, key: str, item: bytes) -> Request:
        return Request(V2_SINGLE, "POST", "/v2/user/attributes", item, [key])

    def bulk_request(self, keys: list[str], items: list[bytes], part: BulkPart) -> Request:
        return Request("bulk_user_attributes", "POST", "/v2/bulk/user/attributes",
                       b'{"users":[' + b",".join(items) + b"]}", keys, items=items,
                       rebuild=lambda k, i: self.bulk_request(k, i, part), context=part)

    def job_request(self, job_id: str) -> Request:
        return Request("bulk_job", "GET", "/v2/bulk/job/" + urllib.parse.quote(job_id, safe=""), None,
                       ["job:" + job_id], context=JobStatus(job_id))

    def me_request(self) -> Request:
        return Request("me", "GET", "/v1/me", None, [ME], context=ME)

    # --- responses -------------------------------------------------------------------------
    def parse(self, request: Request, status: int, headers: Mapping[str, str], body: bytes) -> Outcome:
        data = _json_or_none(body)
        message = error_message(data, body)
        ctx = request.context
        if status in (401, 403):
            return Outcome("fatal", reason=_auth_reason(status, request.endpoint, message))
        if status == 429:
            return Outcome("retry", reason=f"Attentive HTTP 429 ({request.endpoint}): {message}",
                           retry_after=throttle_wait(headers), throttled=True)
        if status == 408 or status >= 500:
            return Outcome("retry", reason=f"Attentive HTTP {status}: {message}")
        if 200 <= status < 300 and (is_html_page(body) or (data is None and ctx is not None)
                                    or (request.endpoint == V2_SINGLE and not _v2_answer(data))
                                    or (_custom_lookup(ctx) and status == 200 and not isinstance(data, list))
                                    or (_lookup_of(ctx, "subscriptions") and status == 200
                                        and not isinstance(data, dict))
                                    or (request.endpoint == "custom_attributes" and body.strip()
                                        and not isinstance(data, dict))
                                    or (ctx == ME and not isinstance(data, dict))):
            # a proxy's or a captive portal's page (or no JSON where Attentive answers with it: a
            # lookup, a bulk submission, a job's status, a single v2 write's `{"success", "message"}`):
            # a glitch of one answer, where the request may never have reached Attentive, sent again
            # (also `GET /v1/me`'s: an empty 200 failed the run before anything was sent);
            # a subscriptions lookup took any 200 for a known subscriber, and a v2 write's empty 202
            # committed values Attentive never got (v1's answer to a write has no body: any 200); a
            # custom attributes lookup answers a list: a gateway's `{}` failed the row at once; a
            # subscriptions lookup an object: a gateway's `[]` was a known subscriber; a v1 write
            # answers no body (or, at most, an object): a proxy's plain "OK" acknowledged its row;
            # `GET /v1/me` an object: a gateway's `[]` failed the run before anything was sent
            return Outcome("retry", reason=f"Attentive HTTP {status} without Attentive's answer: {message}")
        if 400 <= status < 500 and is_html_page(body) and isinstance(ctx, (Lookup, BulkPart, type(None))):
            # a proxy's or gateway's page says nothing about the users: failed (sent again next run),
            # never a rejection parked until the row changes, nor `not_found`; but its 413 is about
            # the body's size: a bulk request is halved (one large record failed 255 others, every run)
            if status == 413 and isinstance(ctx, BulkPart) and request.splittable:
                return Outcome("split", reason=_describe(status, message))
            return Outcome("done", [RecordResult(k, "failed", _describe(status, message)) for k in request.keys])
        if isinstance(ctx, Lookup):
            if status == 200 and ctx.kind != "subscriptions" and data == []:
                return Outcome("done", pending=CONFIRM)  # tells nothing by itself: the transport decides
            return Outcome("done", [_lookup_result(request.keys[0], ctx, status, data, message)])
        if isinstance(ctx, BulkPart):
            return _bulk_outcome(request, ctx, status, data, message)
        if isinstance(ctx, JobStatus):
            if status == 200 and isinstance(data, dict):
                ctx.answer, ctx.status, ctx.url = data, str(data.get("status") or ""), data.get("url")
                return Outcome("done")
            if status == 404:
                ctx.status = "UNKNOWN"
                return Outcome("done")
            return Outcome("done", [RecordResult(request.keys[0], "failed", _describe(status, message))])
        if ctx == ME:
            if 200 <= status < 300 and isinstance(data, dict):
                return Outcome("done")
            # an answer, but not Attentive's (a 404 of another server): rejected; `failed` is left
            # to the sender's retries used up without one (an outage, see AttentiveTransport.start)
            return Outcome("done", [RecordResult(ME, "rejected", _describe(status, message))])
        # single writes: POST /v1/attributes/custom, POST /v2/user/attributes
        result = write_result(request.keys[0], status, data, message)
        if result.status == "rejected" and request.endpoint == "custom_attributes":
            result = replace(result, field=named_properties(request.body, message))
        return Outcome("done", [result])


def _v2_answer(data: Any) -> bool:
    """Whether a single v2 write's 2xx body is Attentive's answer, `{"success": true|false, "message"}`:
    a JSON object without `success` (a gateway's `{}` or `{"message": "ok"}`) says nothing of the write."""
    return isinstance(data, dict) and isinstance(data.get("success"), bool)


def _custom_lookup(ctx: Any) -> bool:
    """Whether `ctx` is a custom attributes lookup (answered with a list: the subscriber's attributes)."""
    return _lookup_of(ctx, "custom_attributes")


def _lookup_of(ctx: Any, kind: str) -> bool:
    return isinstance(ctx, Lookup) and ctx.kind == kind


def _lookup_result(key: str, ctx: Lookup, status: int, data: Any, message: str) -> RecordResult:
    if status == 200:
        if ctx.kind == "subscriptions":
            return RecordResult(key, "ok")
        if isinstance(data, list):  # custom attributes: a non-empty list names a known subscriber
            return RecordResult(key, "ok")
        return RecordResult(key, "failed", f"Attentive: unreadable lookup answer: {message}")
    if status == 404:
        if ctx.kind == "probe" and not isinstance(data, dict):
            # a gateway's 404 (plain text, no body) tells nothing of unknown users: trusted, it made
            # every empty list a known subscriber for the whole run (see AttentiveTransport._probe)
            return RecordResult(key, "failed", _describe(status, message))
        return RecordResult(key, "not_found", NOT_FOUND.format(field=ctx.field))
    if status == 400:  # a lookup's only input is the identifier: its refusal names the key field
        return RecordResult(key, "rejected", f"Attentive HTTP 400: {message}", field=ctx.field)
    return RecordResult(key, "failed", _describe(status, message))


def write_result(key: str, status: int, data: Any, message: str) -> RecordResult:
    """One record's answer (a single write, or a line of a bulk job's results)."""
    if 200 <= status < 300:
        if isinstance(data, dict) and data.get("success") is False:
            return RecordResult(key, "rejected", f"Attentive: {message}")
        return RecordResult(key, "ok")
    if status == 404:
        return RecordResult(key, "not_found", f"Attentive HTTP 404: {message}")
    if status in (400, 409, 413, 422):
        return RecordResult(key, "rejected", f"Attentive HTTP {status}: {message}")
    return RecordResult(key, "failed", _describe(status, message))


def named_properties(body: bytes | None, message: str) -> str | None:
    """The custom attributes (or the identifier) a refused `POST /v1/attributes/custom` sent that
    Attentive's message names, for the rejection's field: `properties.<name>` or a quoted name, the
    identifier as `user.<id>` or at the start of the message (`email is not a valid email address`).
    Only names the request sent count (the reason keeps the whole message anyway)."""
    try:
        doc = orjson.loads(body or b"")
        properties, user = doc["properties"], doc["user"]
    except (orjson.JSONDecodeError, KeyError, TypeError):
        return None
    if not isinstance(properties, dict) or not isinstance(user, dict):
        return None
    named, text = [], message
    for name in sorted(properties, key=len, reverse=True):  # `properties.Tier` names Tier, not T
        forms = [form for form in (f"properties.{name}", f"'{name}'", f'"{name}"') if form in text]
        for form in forms:
            text = text.replace(form, " ")
        named += [name] if forms else []
    ordered = [n for n in properties if n in named]  # in the request's order
    ordered += [k for k in user if f"user.{k}" in message or message.startswith(f"{k} ")]
    return ", ".join(ordered) or None


def _bulk_outcome(request: Request, part: BulkPart, status: int, data: Any, message: str) -> Outcome:
    job_id = data.get("batchJobId") or data.get("bulkJobId") if isinstance(data, dict) else None
    if status in (200, 202) and isinstance(job_id, str) and job_id:
        part.jobs.append((job_id, list(request.keys), list(request.items or ())))
        return Outcome("done", pending=job_token(part.key_field, job_id))
    if 200 <= status < 300:
        # JSON, but not Attentive's acceptance (`{}`, a gateway's `{"message": "ok"}`): a glitch of
        # one answer, sent again as a page is (a job submitted twice applies the same values); it
        # failed every row of the request at once, and the run with them
        return Outcome("retry", reason=f"Attentive HTTP {status} without a job id: {message}")
    # may be one record's fault: halves until it is isolated (422 too, which rejects a single write
    # as 400 does: it failed all 256 users of a bulk request, every run)
    if status in (400, 413, 422):
        return Outcome("split", reason=f"Attentive HTTP {status}: {message}")
    return Outcome("done", [RecordResult(k, "failed", _describe(status, message)) for k in request.keys])


def job_token(key_field: str, job_id: str) -> str:
    """What a pending record carries: enough to read its job's results in a later run."""
    return f"attentive-bulk:{key_field}:{job_id}"


def parse_job_token(token: str) -> tuple[str, str] | None:
    prefix, _, rest = token.partition(":")
    key_field, _, job_id = rest.partition(":")
    if prefix != "attentive-bulk" or key_field not in ("phone", "email") or not job_id:
        return None
    return key_field, job_id


def throttle_wait(headers: Mapping[str, str]) -> float | None:
    """Seconds to wait after a 429. A documented Retry-After is honoured by the sender (None here);
    without it, the x-ratelimit-* headers count requests per second: the second is spent, so wait
    one second (a new window has begun by then, fixed or sliding)."""
    if headers.get("Retry-After") is not None:
        return None
    if headers.get("x-ratelimit-remaining") is not None or headers.get("x-ratelimit-limit") is not None:
        return 1.0
    return None  # no hint at all: the sender's exponential backoff


def error_message(data: Any, body: bytes) -> str:
    """Attentive's message: `{"error": {"id", "message"}}` (ErrorResponseDto), `{"message"}`, or the text;
    at most MESSAGE_CHARS (a message may quote the refused value: a 1 MB string must not become a
    1 MB rejection reason, and a bulk job's results file does not pass through the sender's cut)."""
    message = ""
    if isinstance(data, dict):
        err = data.get("error")
        if isinstance(err, dict) and err.get("message"):
            message = str(err["message"])
        elif isinstance(err, str) and err:
            message = err
        elif data.get("message"):
            message = str(data["message"])
    if not message:
        message = body_excerpt(body, max(1000, MESSAGE_CHARS * 4)) or "(empty body)"
    return redaction.shorten(message, MESSAGE_CHARS)


def _describe(status: int, message: str) -> str:
    return f"Attentive HTTP {status}: {message}"


def _auth_reason(status: int, endpoint: str, message: str) -> str:
    what = "refused the API key" if status == 401 else "denied access"
    needed = SCOPES.get(endpoint, "see the README")
    scopes = ("this endpoint needs no scope: the key itself was refused (a private-app key of this company?)"
              if needed == "none" else f"this endpoint needs the scope(s) {needed}")
    return (f"Attentive {what} (HTTP {status} on {endpoint}: {message}); {scopes}. A users sync needs "
            "attributes:write and subscriptions:write")


def _json_or_none(body: bytes) -> Any:
    try:
        return orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        return None
