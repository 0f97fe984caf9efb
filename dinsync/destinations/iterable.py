"""Iterable: "Synchronize user attributes" through the bulk user update endpoint.

Built from Iterable's Swagger file (tests/specs/iterable-swagger.json) and the documented limits:
- `POST /api/users/bulkUpdate`: 5 requests/s per project, 4 MB body; the number of users per request
  is not documented: we send at most 1,000 (what RudderStack uses), configurable.
- `GET /api/users/getByEmail` / `byUserId`: 100 requests/s; an unknown user answers 200 without `user`.
- Unknown fields are created by Iterable when the request says `"createNewFields": true` (the
  default here; with false, the flag is left out and the project's setting decides: dropped fields
  come back in `filteredOutFields`, the users that carried them fail, and are sent again by the next run).
- Update-only: Iterable has no update-only write. Rows the snapshot already holds were acknowledged
  before, so they are known to exist; rows new to the sync are first looked up (GET, 100/s) and
  only the users found are updated. Unknown ones are reported as "not found", never created.
"""
from __future__ import annotations

import urllib.parse
from typing import TYPE_CHECKING, Literal, Mapping, Sequence

import orjson
from pydantic import ConfigDict, Field, SecretStr

from .base import (
    Destination,
    EndpointLimit,
    FieldSpec,
    Fragments,
    KeySpec,
    Outcome,
    Prepared,
    RecordResult,
    Request,
    ServiceSpec,
    SyncSpec,
    body_excerpt,
    reject_oversized,
)
from .settings import Settings

if TYPE_CHECKING:  # imported where used: the config layer reads this module's declarations only
    import polars as pl

# documented body cap of bulkUpdate, "4MB": read as the smaller of 4,000,000 and 4 MiB, so that
# a server counting in decimal megabytes does not refuse a full batch (413)
BULK_MAX_BYTES = 4_000_000
# its answers list some of the users a request sent (a bulk request is at most BULK_MAX_BYTES; a user
# lookup returns one profile): 16 MiB is far above any
MAX_ANSWER_BYTES = 16 * 2**20
USERS_PREFIX = b'{"users":['  # a bulkUpdate body's start, its users after it
LOOKUP = "lookup"  # Request.context of update-mode lookups
# Longest userId sent: escaped (up to 12 bytes a character) it fits a lookup URL under the 8 KB a
# server reads of a request line; Iterable documents 52 at most, and answers the longer ones itself.
USER_ID_MAX = 512

# failedUpdates list -> (record status, reason, the identifier it refuses: the rejection's field).
# Iterable identifies failures by email or userId.
FAILED_LISTS: dict[str, tuple[str, str, str | None]] = {
    "invalidEmails": ("rejected", "Iterable: invalid email address", "email"),
    "invalidUserIds": ("rejected", "Iterable: invalid userId (empty, too long, non-ASCII or trailing space)", "userId"),
    "conflictEmails": ("rejected", "Iterable: email conflicts with an existing user", "email"),
    "conflictUserIds": ("rejected", "Iterable: userId conflicts with an existing user", "userId"),
    "forgottenEmails": ("rejected", "Iterable: user is GDPR-forgotten", None),
    "forgottenUserIds": ("rejected", "Iterable: user is GDPR-forgotten", None),
    "invalidDataEmails": ("rejected", "Iterable: invalid dataFields for this user", None),
    "invalidDataUserIds": ("rejected", "Iterable: invalid dataFields for this user", None),
    "notFoundEmails": ("not_found", "Iterable: user not found", None),
    "notFoundUserIds": ("not_found", "Iterable: user not found", None),
}
# A list of another name (e.g. `validEmailFailures`, "not updated due to internal error" in
# Iterable's bulk subscription answer): its users were not updated, for no reason we can read as
# their data's fault: failed, sent again next run, never parked.
UNKNOWN_LIST_REASON = "Iterable: not updated (listed in failedUpdates.{})"

# A lookup's refusal of the identifier itself -> the field its rejection names (as failedUpdates'
# invalidEmails / invalidUserIds name theirs).
IDENTIFIER_CODES = {"InvalidEmailAddressError": "email", "InvalidUserIdError": "userId"}

# Iterable's `code` of a whole-request failure (the Swagger file's enum), by what it says:
# - about the users of the request (one user may be the cause): split, and a single user that
#   still fails is rejected for its content (parked until it changes);
SPLIT_CODES = {"RequestFieldsTypesMismatched", "BatchTooLarge", "BadJsonBody", "BadParams", "InvalidEmailAddressError",
               "InvalidUserIdError", "ForgottenUserError", "EmailAlreadyExists", "UserIdAlreadyExists",
               "ExternalKeyConflict"}
# - a moment of Iterable's (send again after backoff; failed, sent next run, if it lasts);
TRANSIENT_CODES = {"DatabaseError", "GenericError", "QueueEmailError", "RateLimitExceeded"}
# - the key or the project (stop the run, whatever the HTTP status).
FATAL_CODES = {"BadApiKey", "BadAuthorizationHeader", "Unauthorized", "Forbidden", "InvalidJwtPayload",
               "JwtUserIdentifiersMismatched"}
# Any other answer (an unknown code, a body that is not Iterable's JSON: a proxy's HTML page, an
# empty 400, a 404 of a wrong base URL) says nothing about the users' data: they are failed, not
# rejected, and sent again by the next run.


class IterableSettings(Settings):
    """Iterable-specific keys of a destination in dinsync.yml."""

    model_config = ConfigDict(extra="forbid")
    api_key: SecretStr
    region: Literal["us", "eu"] = "us"
    # for the user's records only: the requests are the same for each type (Iterable's per-user
    # answers, e.g. an unknown email in a userID-based project, decide)
    project_type: Literal["email", "userid", "hybrid"] = "email"
    create_new_fields: bool = True
    merge_nested_objects: bool = False
    bulk_max_users: int = Field(1000, ge=1, le=10_000)


# Reserved user fields with a documented format (Iterable "user profile fields"). Others are free
# dataFields that Iterable types by their first value.
RESERVED_FIELDS = {
    "phoneNumber": FieldSpec("phoneNumber", kind="phone", description="SMS number, E.164"),
}

USERS = ServiceSpec(
    name="users",
    # Iterable answers malformed identifiers per user (failedUpdates.invalidEmails / invalidUserIds):
    # only a NULL or blank key is refused before sending, or a userId too long for any request to
    # carry it: update mode looks it up in a URL, which servers cap at ~8 KB (a 1 MB userId was
    # answered by a plain 400 and failed again every run). The cap is far over Iterable's own 52.
    key_fields={"email": KeySpec("email"), "userId": KeySpec("string", max_length=USER_ID_MAX)},
    modes=("upsert", "update"),
    fields=RESERVED_FIELDS,
    open_fields=True,  # "createNewFields": unknown dataFields are created by Iterable
    update_needs_lookup=True,
    max_row_bytes=BULK_MAX_BYTES - 1024,
)


class IterableDestination(Destination):
    type_name = "iterable"
    hook_seconds = None  # dinsync's own hooks: no thread hop, their waits have limits of their own
    max_answer_bytes = MAX_ANSWER_BYTES
    services = {"users": USERS}
    settings_model = IterableSettings
    base_urls = {"us": "https://api.iterable.com", "eu": "https://api.eu.iterable.com"}
    credential_header = "Api-Key"
    limits = {
        "bulk_update": EndpointLimit("bulk_update", rate=5.0, max_concurrency=8),
        "get_user": EndpointLimit("get_user", rate=100.0, max_concurrency=16),
    }
    # Requests in flight must cover rate x latency: 8 bulk requests hold 5/s up to 1.6 s a request
    # (4 held 72% at 1 s), 16 lookups 100/s up to 160 ms (the generic 8 sockets held 51% at 150 ms);
    # beyond, the caps grow with the latency (sender/inflight.py) within the sockets: twice the caps
    # (24 sockets held the lookups at 79% at 300 ms). The request queue stays bounded
    # (EngineOptions.queue_size).
    default_concurrency = 48

    def auth_headers(self) -> dict[str, str]:
        return {"Api-Key": self.credentials["api_key"]}

    # --- writes ----------------------------------------------------------------------
    def prepare(self, frame: pl.DataFrame, sync: SyncSpec) -> Prepared:
        """Turn mapped rows (`_key`, `_json`, `_bytes`) into bulkUpdate requests."""
        import polars as pl

        from ..mapping.json import batches_by_size

        if frame.height == 0:
            return Prepared([])
        prefer_user_id = sync.key_field == "userId" and sync.mode == "upsert"
        tail = ""
        if prefer_user_id:
            tail += ',"preferUserId":true'
        if self.options.get("merge_nested_objects"):
            tail += ',"mergeNestedObjects":true'
        # `_id` is the identifier as sent (normalised by the mapping); `_key` the plan's key.
        key_json = pl.struct(pl.col("_id").alias("k")).struct.json_encode().str.slice(5).str.strip_suffix("}")
        users = frame.select(
            pl.col("_key"),
            pl.col("_id"),
            pl.concat_str(
                [pl.lit('{"' + sync.key_field + '":'), key_json, pl.lit(',"dataFields":'), pl.col("_json"),
                 pl.lit(tail + "}")]
            ).alias("_user"),
        ).with_columns(pl.col("_user").str.len_bytes().alias("_bytes"))
        max_users = int(self.options.get("bulk_max_users", 1000))
        envelope = len(self._envelope(b"")) + 16
        # `max_row_bytes` measured dataFields alone: with its key (a userId of 512 escaped control
        # characters is 3 KB) a user may still not fit a request; sent, it would fail every run.
        room = BULK_MAX_BYTES - envelope
        texts = {f"_t{n}": name for n, name in enumerate(sync.fields) if f"_t{n}" in frame.columns}
        users, rejections = reject_oversized(users, "_bytes", room, lambda n: (
            f"row is {n:,} bytes as a bulkUpdate user, over the {BULK_MAX_BYTES:,}-byte request cap"),
            fields=texts, texts=frame)
        requests = []
        keys_all = users["_key"].to_list()
        items_all = users["_user"].cast(pl.Binary).to_list()  # UTF-8 bytes, without a str.encode a row
        # Iterable reports failures by the identifier it received: map those back to plan keys.
        renamed = users.filter(pl.col("_id") != pl.col("_key"))
        id_to_key = dict(zip(renamed["_id"].to_list(), renamed["_key"].to_list()))
        sizes = users["_bytes"]
        for offset, length in batches_by_size(users, max_users, room, 1):
            keys = keys_all[offset : offset + length]
            items = items_all[offset : offset + length]
            requests.append(self._bulk_request(keys, items, id_to_key, sizes.slice(offset, length)))
        return Prepared(requests, rejections)

    def _envelope(self, users: bytes) -> bytes:
        # `create_new_fields: false` leaves it to the project's setting: the flag is left out (the
        # spec drops unknown fields when it is false, "or not set and the project is configured to")
        create = b',"createNewFields":true' if self.options.get("create_new_fields", True) else b""
        return USERS_PREFIX + users + b"]" + create + b"}"

    def _bulk_request(self, keys: list[str], items: Sequence[bytes], id_to_key: dict[str, str],
                      sizes: Sequence[int] | None = None) -> Request:
        """`sizes`: the items' lengths (prepare's `_bytes`); a request rebuilt from a split measures them."""
        body = self._envelope(b",".join(items))
        return Request(
            endpoint="bulk_update",
            method="POST",
            path="/api/users/bulkUpdate",
            body=body,
            keys=keys,
            items=Fragments(body, [len(i) for i in items] if sizes is None else sizes, len(USERS_PREFIX)),
            rebuild=lambda k, i: self._bulk_request(k, i, id_to_key),
            context=id_to_key,
        )

    # --- update-only lookups ----------------------------------------------------------
    def lookup_requests(self, keys: Sequence[str], ids: Sequence[str], sync: SyncSpec) -> list[Request]:
        if sync.key_field == "email":
            path = "/api/users/getByEmail?email="
        else:
            path = "/api/users/byUserId?userId="
        return [
            Request(endpoint="get_user", method="GET", path=path + urllib.parse.quote(i, safe=""), body=None,
                    keys=[k], context=LOOKUP)
            for k, i in zip(keys, ids)
        ]

    # --- responses -------------------------------------------------------------------
    def parse(self, request: Request, status: int, headers: Mapping[str, str], body: bytes) -> Outcome:
        data = _json_or_none(body)
        code = data.get("code") if isinstance(data, dict) else None
        code = code if isinstance(code, str) else None
        msg = data.get("msg") if isinstance(data, dict) else None
        if status in (401, 403) or code in FATAL_CODES:
            # (a page of a proxy or a WAF before Iterable is quoted: the key may be fine)
            text = "" if code else body_excerpt(body, 1000, chars=120)
            said = f", {code}" if code else f" without Iterable's answer: {text!r}" if text else ""
            return Outcome(
                "fatal",
                reason=f"Iterable refused the API key (HTTP {status}{said}): check that "
                "the key is a server-side key of this project and data centre (region)",
            )
        if status == 429 or status >= 500 or status == 408 or code in TRANSIENT_CODES:
            throttled = status == 429 or code == "RateLimitExceeded"
            return Outcome("retry", reason=_describe(status, code, msg), throttled=throttled)
        if request.context is LOOKUP:
            if status == 200 and isinstance(data, dict) and code in (None, "Success"):
                found = isinstance(data.get("user"), dict)
                return Outcome("done", [RecordResult(request.keys[0], "ok" if found else "not_found",
                                                     None if found else "Iterable: user not found (update mode)")])
            if _refuses(status) and code in SPLIT_CODES:  # e.g. a malformed email
                return Outcome("done", [RecordResult(request.keys[0], "rejected", _describe(status, code, msg),
                                                     IDENTIFIER_CODES.get(code))])
            return self._unread(request, status, code, msg, body)
        if status == 200 and isinstance(data, dict) and "successCount" in data:
            results, unlisted = self._failed_updates(request, data)
            results += _dropped_fields(request, data, {r.key for r in results})
            succeeded = _count(data, "successCount")
            counted = (succeeded or 0) + (_count(data, "failCount") or 0)
            if counted > len(request.keys):
                # more users than the request carried: another request's answer (replayed or cached
                # by something in between), not this one's; it acknowledged every user of it
                return Outcome("retry", reason=f"Iterable counted {succeeded or 0} updated and "
                                               f"{data.get('failCount')} failed of {len(request.keys)} users sent")
            # users the answer counts neither as updated nor as failed (its counts fall short of the
            # request's users): not acknowledged on a guess either
            unaccounted = len(request.keys) - (succeeded or 0) - max(_count(data, "failCount") or 0, len(results))
            if not unlisted and unaccounted <= 0:
                return Outcome("done", results)
            # Iterable counted failures it did not list, or fewer users than it was sent: which
            # users, only smaller requests tell. The listed ones are settled; the others go again
            # (then in halves), and a user that still fails alone is failed (sent again next run):
            # nothing is acknowledged on a guess. Where no user succeeded, parts would fail alike
            # (2n requests): all of them fail.
            if unlisted:
                reason = f"Iterable reported {data.get('failCount')} failures but listed {len(results)}"
            else:
                reason = (f"Iterable counted {succeeded or 0} updated and {data.get('failCount')} failed of "
                          f"{len(request.keys)} users sent")
            settled = {r.key for r in results}
            rest = [k for k in request.keys if k not in settled]
            if len(rest) > 1 and isinstance(succeeded, int) and succeeded > 0:
                return Outcome("split", results, reason=reason)
            return Outcome("done", results + [RecordResult(k, "failed", reason) for k in rest])
        if status == 413 and code is None and len(request.keys) == 1:
            return self._unread(request, status, code, msg, body)  # (a proxy's cap: rows over 4 MB never leave)
        if status == 413 or (_refuses(status) and code in SPLIT_CODES):
            reason = _describe(status, code, msg)
            guilty = [RecordResult(k, "rejected", reason, fields) for k, fields in _offending_users(request, data)]
            return Outcome("split", guilty, reason=reason, field=_offending_fields(request, data))
        return self._unread(request, status, code, msg, body)

    @staticmethod
    def _unread(request: Request, status: int, code: str | None, msg, body: bytes) -> Outcome:
        """An answer that says nothing about the users' data: every user of the request failed. A
        2xx that is not Iterable's answer (a proxy's or a captive portal's page, an empty body) is
        retried first: a glitch of one answer, where the request may never have reached Iterable
        (sending a bulk update or a lookup again changes nothing)."""
        if code is None:
            text = body_excerpt(body, 1000, chars=120)
            why = f"Iterable HTTP {status} without Iterable's answer" + (f": {text!r}" if text else " (empty body)")
        else:
            why = _describe(status, code, msg)
        if 200 <= status < 300:
            return Outcome("retry", reason=why)
        return Outcome("done", [RecordResult(k, "failed", why) for k in request.keys])

    def _failed_updates(self, request: Request, data: dict) -> tuple[list[RecordResult], int]:
        """The users a bulk answer lists as failed, and how many more failures it counted."""
        lists = dict(data.get("failedUpdates") or {})
        for deprecated in ("invalidEmails", "invalidUserIds"):  # top-level copies, deprecated
            if data.get(deprecated):
                lists.setdefault(deprecated, data[deprecated])
        wanted = set(request.keys)
        id_to_key = request.context or {}
        results: dict[str, RecordResult] = {}
        unmatched: list[tuple[str, str, str]] = []  # (member, status, reason)
        for name, members in lists.items():
            status, reason, field = FAILED_LISTS.get(name) or ("failed", UNKNOWN_LIST_REASON.format(name), None)
            for member in members or ():
                if not isinstance(member, str):
                    continue
                key = id_to_key.get(member, member)
                if key not in wanted:
                    key = id_to_key.get(member.lower(), member.lower())
                if key not in wanted:
                    unmatched.append((member, status, reason))
                elif key not in results:
                    results[key] = RecordResult(key, status, reason, field)  # type: ignore[arg-type]
        if unmatched:  # e.g. a malformed email "found ... in dataFields" (the spec's invalidEmails)
            for key, result in _users_holding(request, unmatched).items():
                results.setdefault(key, result)
        fail_count = data.get("failCount")
        fail_count = fail_count if isinstance(fail_count, int) and not isinstance(fail_count, bool) else 0
        return list(results.values()), max(0, fail_count - len(results))


def _refuses(status: int) -> bool:
    """Whether an answer of this status naming a code of SPLIT_CODES is Iterable refusing the users:
    a 4xx, or a 2xx, since Iterable's answers carry their `code` on 200s too and the status of some
    (a type mismatch: "presumably 400") is not documented. Read as anything else, such a 200 was
    retried, then every user of the batch failed, good ones included, every run."""
    return 200 <= status < 300 or 400 <= status < 500


def _count(data: dict, name: str) -> int | None:
    """An integer count of a bulk answer (`successCount`, `failCount`), None when it is not one."""
    value = data.get(name)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _json_or_none(body: bytes):
    try:
        return orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        return None


def _users_holding(request: Request, unmatched: list[tuple[str, str, str]]) -> dict[str, RecordResult]:
    """Iterable lists a malformed email or userId found in a user's dataFields under that value,
    not under the user's identifier: the users of the request whose dataFields hold it."""
    wanted = {member: (status, reason) for member, status, reason in reversed(unmatched)}
    found: dict[str, RecordResult] = {}
    for key, item in zip(request.keys, request.items or ()):
        fields = orjson.loads(item).get("dataFields") or {}
        for name, value in fields.items():
            hit = wanted.get(value) if isinstance(value, str) else None
            if hit is not None and key not in found:
                found[key] = RecordResult(key, hit[0], f"{hit[1]} in dataFields.{name}: {value[:100]!r}",  # type: ignore[arg-type]
                                          name)
    return found


def _dropped_fields(request: Request, data: dict, settled: set[str]) -> list[RecordResult]:
    """Users whose fields Iterable dropped (`filteredOutFields`: create_new_fields false, the flag
    left out, and a project that drops unknown fields; "not added to user profiles", yet the users count as
    successes). Acknowledged, the values would be recorded as delivered and never sent again, even
    once the field exists: such users fail and are sent again by the next run."""
    dropped = data.get("filteredOutFields")
    if not dropped or not isinstance(dropped, list) or not request.items:
        return []
    names = {name for name in dropped if isinstance(name, str)}
    failed = []
    for key, item in zip(request.keys, request.items):
        if key in settled:
            continue
        fields = orjson.loads(item).get("dataFields") or {}
        hit = sorted(f for f in fields if f in names or any(n.startswith(f + ".") for n in names))
        if hit:
            failed.append(RecordResult(key, "failed", f"Iterable dropped field(s) {', '.join(hit)} "
                                       "(filteredOutFields): the project does not create unknown fields; "
                                       "create them in Iterable or set create_new_fields: true", ", ".join(hit)))
    return failed


def _validation_errors(data) -> dict:
    """A type mismatch's `params.validationErrors` (`<project>:::<field>` -> details), or {}."""
    params = data.get("params") if isinstance(data, dict) else None
    errors = params.get("validationErrors") if isinstance(params, dict) else None
    return errors if isinstance(errors, dict) else {}


def _offending_users(request: Request, data) -> list[tuple[str, str]]:
    """(key, fields) of the users whose value of a mismatched field is the `offendingValue` Iterable
    quotes (of the same JSON type): the same value has the same type for every user, so each of
    them fails the same way. Without such an answer, none (the request is halved instead)."""
    errors = _validation_errors(data)
    if not errors or not request.items:
        return []
    offending = [(str(name).rsplit(":::", 1)[-1], e["offendingValue"]) for name, e in errors.items()
                 if isinstance(e, dict) and "offendingValue" in e]
    if not offending:
        return []
    guilty = []
    for key, item in zip(request.keys, request.items):
        fields = orjson.loads(item).get("dataFields") or {}
        names = sorted({name for name, value in offending
                        if type(held := _value_at(fields, name)) is type(value) and held == value})
        if names:
            guilty.append((key, ", ".join(names)))
    return guilty


def _value_at(fields: dict, name: str):
    """The value a user's dataFields hold at `name`: a field, or a nested one by its dotted path
    (`meta.a`, as Iterable names it in `validationErrors`); `_MISSING` where they hold none."""
    if name in fields:
        return fields[name]
    value = fields
    for part in name.split("."):
        if not isinstance(value, dict) or part not in value:
            return _MISSING
        value = value[part]
    return value


_MISSING = object()


def _offending_fields(request: Request, data) -> str | None:
    """The fields a type mismatch names (`params.validationErrors`, keyed `<project>:::<field>`)
    among those the request sent: a name no user of it sent is not this request's field (and an
    answer's text is not trusted to be one: it may echo anything)."""
    errors = _validation_errors(data)
    if not errors or not request.items:
        return None
    named = {str(name).rsplit(":::", 1)[-1] for name in errors}
    sent: set[str] = set()
    for item in request.items:
        sent.update(orjson.loads(item).get("dataFields") or {})
    return ", ".join(sorted(n for n in named if n.split(".", 1)[0] in sent)) or None  # (nested: `a.b`)


def _describe(status: int, code: str | None, msg: str | None) -> str:
    text = f"Iterable HTTP {status}"
    if code:
        text += f" {code}"
    if msg:
        text += f": {msg}"
    return text
