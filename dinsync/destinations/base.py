"""What a destination declares (data) and the few hooks it implements.

A destination says, as data: its services (what each can match on, with which key kind, which
modes and model types it accepts, which fields it knows and their kinds), its endpoints' limits
and its base URLs. As hooks: how to turn a Polars frame of mapped rows into requests, how to read
a response into per-record results, and optionally a pre-flight check of the mapping against the
platform's schema and run-level begin / finish steps.

Delivery is chosen by the destination (`make_transport`): HTTP requests through the shared sender
(`dinsync.sender.HttpSender`, the default), or anything else that implements `Transport`, such as
files uploaded over SFTP whose outcome arrives later. An outcome may be *pending*: the records are
neither acknowledged nor rejected yet, under a token (a file name, a job id); the transport settles
them later in the run (`settle`) or, from the token alone, in a later run (`resolve`).

The engine never branches on a platform's name: everything it needs is declared here.
"""
from __future__ import annotations

import html
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Literal, Mapping, Protocol, Sequence

if TYPE_CHECKING:  # polars is imported only when rows are mapped
    import polars as pl

    from ..errors import DinsyncError
    from ..sender.retry import RetryPolicy

RecordStatus = Literal["ok", "rejected", "not_found", "failed"]
KeyKind = Literal["email", "phone", "string"]
Mode = Literal["upsert", "update", "insert"]


@dataclass(frozen=True)
class EndpointLimit:
    """Documented limit of one endpoint (overridable from dinsync.yml)."""

    name: str
    rate: float | None  # requests per second; None = no limit
    burst: int = 1  # how many requests may start back to back
    max_concurrency: int = 8
    documented: bool = True  # False: a default we chose, not a documented number
    headroom: float | None = None  # share of `rate` aimed at (None: the sender's default, 98.5%)
    # the platform's counter this endpoint draws on, when it shares one with another endpoint (None:
    # its own, `name`); endpoints of one bucket share one pace (the stats stay per endpoint)
    bucket: str | None = None


@dataclass(frozen=True)
class KeySpec:
    """How a matching field's values are normalised, in the warehouse diff and in the mapping alike.

    kind: `email` (trimmed, lowercased), `phone` (E.164, with the destination's default region for
    national numbers) or `string` (as is). Only what no platform can accept is rejected before
    sending (NULL or blank keys, over `max_length`); the platform's per-record answer decides the rest.
    `normalization`: the diff's key normalization (dinsync.diff.keys) when not the kind's, for keys
    the platform compares in a normal form of their own (e.g. Attio's domains, lowercased): two
    spellings of one key are then duplicates across the whole model, not two records' keys.
    """

    kind: KeyKind = "string"
    max_length: int | None = None
    normalization: str | None = None


class OpenKeyFields(Mapping[str, KeySpec]):
    """Matching fields of a service that may match on attributes only the platform's schema knows
    (e.g. any unique Attio attribute; the pre-flight check verifies the choice).

    The named fields keep their key specs; any other name is accepted with `default`. Iteration
    lists the named fields only (they are the ones suggested in hints).
    """

    def __init__(self, named: Mapping[str, KeySpec], default: KeySpec):
        self.named = dict(named)
        self.default = default

    def __getitem__(self, name: str) -> KeySpec:
        if not isinstance(name, str):
            raise KeyError(name)
        return self.named.get(name, self.default)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and bool(name)

    def __iter__(self):
        return iter(self.named)

    def __len__(self) -> int:
        return len(self.named)

    def __repr__(self) -> str:
        return f"OpenKeyFields({self.named!r}, default={self.default!r})"


@dataclass(frozen=True)
class FieldSpec:
    """A destination field the platform documents, with the mapping kind its values take."""

    name: str
    kind: str = "auto"  # a mapping kind: auto, string, integer, number, boolean, date, datetime, email, phone, json
    writable: bool = True
    description: str = ""
    # characters the platform stores at most, for every account (its documented field size): a
    # longer value rejects its row before sending, naming the field, rather than by the platform's
    # answer (for a batch, one refused whole and bisected down to the row). Destinations apply it.
    max_length: int | None = None


@dataclass(frozen=True)
class ServiceSpec:
    """One service of a destination (e.g. Iterable "users", Attio "people")."""

    name: str
    key_fields: Mapping[str, KeySpec]  # destination identifiers a sync may match on
    modes: tuple[str, ...] = ("upsert", "update")
    mode_notes: Mapping[str, str] = field(default_factory=dict)  # unsupported mode -> why (shown to users)
    model_types: tuple[str, ...] = ("user", "custom")  # model types that may feed the service
    fields: Mapping[str, FieldSpec] = field(default_factory=dict)  # documented fields
    open_fields: bool = True  # other field names may be mapped (False: only `fields`, plus custom ones)
    custom_fields: bool = False  # `{field: name, custom: true}` maps to a custom attribute
    update_needs_lookup: bool = False  # update mode: look up records before writing (unknown: not_found)
    lookup_rows: Literal["added", "all"] = "added"  # which rows: new to the sync (the snapshot vouches for
    #   the others), or all (e.g. the write needs the record's id, which the lookup's parse() keeps)
    max_row_bytes: int | None = None  # a row whose JSON is larger can never be accepted

    def field_kind(self, name: str, custom: bool = False) -> str:
        spec = None if custom else self.fields.get(name)
        return spec.kind if spec else "auto"


class Fragments(Sequence[bytes]):
    """The per-record fragments of a batch request read from its body, each when it is read: a
    list beside the body held every record twice (a request's users and its body), and with 1 MB
    values the requests queued and in flight held ~2 x 100 MB. The fragments lie in `body` from
    `start` on, of `sizes` bytes (a Polars Series slice is fine: it is read on first use), each
    followed by a `gap` of bytes (a comma)."""

    __slots__ = ("body", "sizes", "start", "gap", "_bounds")

    def __init__(self, body: bytes, sizes: Sequence[int], start: int, gap: int = 1):
        self.body, self.sizes, self.start, self.gap = body, sizes, start, gap
        self._bounds: list[int] | None = None

    def _starts(self) -> list[int]:
        if self._bounds is None:  # (only a split, or an answer naming records, reads them)
            bounds, at = [], self.start
            for size in self.sizes:
                bounds.append(at)
                at += int(size) + self.gap
            self._bounds = bounds
        return self._bounds

    def _item(self, i: int) -> bytes:
        at = self._starts()[i]
        return self.body[at:at + int(self.sizes[i])]

    def __len__(self) -> int:
        return len(self.sizes)

    def __getitem__(self, index):  # type: ignore[override]
        if isinstance(index, slice):
            return [self._item(i) for i in range(*index.indices(len(self)))]
        return self._item(range(len(self))[index])

    def __iter__(self):
        return (self._item(i) for i in range(len(self)))


@dataclass
class Request:
    """One request (an HTTP exchange, or a unit a non-HTTP transport delivers) carrying records.

    `keys` are the matching keys of the records in this request (unique within a run).
    `items` are the per-record payload fragments of a batch request, so that the request can be
    rebuilt with a subset of its records (split-batch retry) through `rebuild`.
    """

    endpoint: str
    method: str
    path: str  # relative to the destination's base URL, query string already escaped
    body: bytes | None
    keys: list[str]
    items: Sequence[bytes] | None = None  # (a list, or Fragments of the body)
    rebuild: Callable[[list[str], Sequence[bytes]], "Request"] | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    context: Any = None  # destination-private data (e.g. the lookup kind)
    resent: bool = False  # the rest of a batch whose guilty records were told apart (see Outcome)

    @property
    def splittable(self) -> bool:
        return self.rebuild is not None and self.items is not None and len(self.keys) > 1

    def split(self) -> list["Request"]:
        """Two halves of a batch request (used when a batch is rejected as a whole)."""
        assert self.rebuild is not None and self.items is not None
        mid = len(self.keys) // 2
        return [
            self.rebuild(self.keys[:mid], self.items[:mid]),
            self.rebuild(self.keys[mid:], self.items[mid:]),
        ]

    def subset(self, keys: set[str]) -> "Request | None":
        """This batch request with only the records of `keys` (None when none of them is in it)."""
        assert self.rebuild is not None and self.items is not None
        kept = [(k, i) for k, i in zip(self.keys, self.items) if k in keys]
        if not kept:
            return None
        return self.rebuild([k for k, _ in kept], [i for _, i in kept])

    def without(self, keys: set[str]) -> "Request | None":
        """This batch request without the records of `keys` (None when none is left)."""
        assert self.rebuild is not None and self.items is not None
        kept = [(k, i) for k, i in zip(self.keys, self.items) if k not in keys]
        if not kept:
            return None
        return self.rebuild([k for k, _ in kept], [i for _, i in kept])


@dataclass
class RecordResult:
    key: str
    status: RecordStatus
    reason: str | None = None
    field: str | None = None  # the destination field a rejection names, when it names one


@dataclass
class Outcome:
    """What a destination makes of one HTTP response.

    kind:
      - "done": `results` holds a result for records of the request; records of the request
        without an entry are acknowledged ("ok"), or pending under `pending` when it is set (e.g.
        a bulk job accepted for processing: the job id).
      - "retry": transient (429, 5xx, ...): send again after backoff (`retry_after` seconds if set).
      - "split": the batch was rejected as a whole for a reason that may be one record's fault:
        retry its halves; a single record that still fails is rejected with `reason`. When the
        destination could tell some guilty records from the answer (`results`: rejections), those
        are rejected and the rest is sent again whole rather than halved (halved if it was such a
        rest already: one bad record costs 2 requests, a column of bad values ~1 per value).
        `suspects`: records the answer seems to point at by a convention the platform does not
        document (a position whose base is unknown): each is sent alone (rejected only if refused
        alone), the rest as above.
      - "fatal": the run cannot go on (bad credentials, missing scopes): stop sending.
    """

    kind: Literal["done", "retry", "split", "fatal"]
    results: list[RecordResult] = field(default_factory=list)
    reason: str | None = None
    retry_after: float | None = None
    throttled: bool = False  # this response was a 429
    pending: str | None = None  # done: records without a result await the outcome named by this token
    suspects: list[str] = field(default_factory=list)  # split: keys to send alone (see above)
    field: str | None = None  # split: the field the rejection names, if it names one
    error_answer: bool = False  # set by the sender: the answer was not a 2xx (see sender/breaker.py)


@dataclass
class Delivered:
    """What became of records: acknowledged keys, a result for every record refused or lost, and
    the keys whose outcome arrives later (`pending`: token -> keys; no per-record objects, so a
    large file or job costs one list of keys).

    `error` (from `settle` and `resolve` only): the outcomes are valid, but they show something
    that must fail the run (e.g. Splio created contacts in update mode). The run commits them
    first, then fails with it: raising instead would leave the records pending, and every later
    run would read the same outcome and fail again."""

    ok: list[str]
    problems: list[RecordResult]
    pending: dict[str, list[str]] = field(default_factory=dict)
    error: "DinsyncError | None" = None

    def merge(self, other: "Delivered") -> "Delivered":
        self.ok.extend(other.ok)
        self.problems.extend(other.problems)
        for token, keys in other.pending.items():
            self.pending.setdefault(token, []).extend(keys)
        self.error = other.error or self.error
        return self


@dataclass
class Rejection:
    """A row prepare() refused. `duplicate`: withheld because of another row (two keys the platform
    reads as one record): recorded with status `duplicate` and counted with the run's duplicated
    keys, never parked (planned again by the next run, sent once the model holds one of them);
    otherwise refused for its own content: status `rejected`, parked until its values change."""

    key: str | None
    reason: str
    field: str | None = None
    duplicate: bool = False

    @property
    def park(self) -> bool:
        return not self.duplicate

    @property
    def status(self) -> str:
        return "duplicate" if self.duplicate else "rejected"


def reject_oversized(frame: pl.DataFrame, sizes: str, room: int, reason: Callable[[int], str],
                     fields: Mapping[str, str] | None = None,
                     texts: pl.DataFrame | None = None) -> tuple[pl.DataFrame, list[Rejection]]:
    """The rows whose `sizes` column (bytes as the request carries them) is over `room`: alone, such
    a row would be a request over the platform's body cap, refused every run. Taken out, each
    rejected with `reason(its bytes)`; the others are sent.

    `fields`: {column of value texts (`_t{n}`): field name} of the values the size is made of, in
    `texts` (by `_key`; default `frame`): the rejection names the row's largest, as the mapping's
    row cap does: which value to shorten (a 3 MB text among ten fields), where the size alone named
    none."""
    import polars as pl

    too_big = frame.filter(pl.col(sizes) > room)
    if too_big.height == 0:
        return frame, []
    kept = frame.filter(pl.col(sizes) <= room)
    if not fields:
        return kept, [Rejection(k, reason(n)) for k, n in too_big.select("_key", sizes).iter_rows()]
    columns = list(fields)
    source = (texts if texts is not None else frame).select("_key", *columns)
    rows = too_big.select("_key", sizes).join(source, on="_key", how="left", maintain_order="left")
    lengths = rows.select([pl.col(c).str.len_bytes().fill_null(0) for c in columns]).rows()
    out = []
    for (key, n), row in zip(rows.select("_key", sizes).iter_rows(), lengths):
        at = max(range(len(columns)), key=row.__getitem__)
        name = fields[columns[at]]
        out.append(Rejection(key, f'{reason(n)} (largest field "{name}": {row[at]:,} bytes)', field=name))
    return kept, out


@dataclass
class Prepared:
    """A mapped frame turned into requests, plus the rows rejected while doing so."""

    requests: list[Request]
    rejections: list[Rejection] = field(default_factory=list)


@dataclass
class FieldIssue:
    """A problem the pre-flight check found with one mapped field (or the match, field=None)."""

    field: str | None
    message: str
    hint: str | None = None


@dataclass
class Preflight:
    """What the pre-flight check learned: mapping problems, and the mapping kind of fields whose
    type only the platform's schema tells (e.g. an Attio attribute's type)."""

    issues: list[FieldIssue] = field(default_factory=list)
    kinds: dict[str, str] = field(default_factory=dict)


@dataclass
class TransportStats:
    requests: int = 0
    throttled: int = 0
    rates: dict[str, float] = field(default_factory=dict)  # achieved requests/s per endpoint


class Transport(Protocol):
    """How requests reach the platform. `HttpSender` is the HTTP one.

    `deliver` never raises for a transient failure: records that could not be delivered come back
    `failed`. It raises `DestinationAuthError` when credentials are refused. Records whose outcome
    comes later come back in `Delivered.pending` under their token. `settle` waits (at most
    `timeout` seconds) for the outcomes of this run's pending records (`pending`: token -> keys)
    and returns them (keys still waiting in `Delivered.pending`). `resolve` reads the outcomes of
    earlier runs' tokens (results for the keys it can tell about; the others are left out).
    `ready` hands over, without waiting, outcomes of this run's pending records that arrived
    meanwhile (the pipeline commits them at its next checkpoint; a transport that cannot tell
    returns an empty `Delivered`). `ready` and `transport_stats` are optional: without them,
    outcomes arrive through `settle` only and the run counts no request. An outcome that must
    fail the run comes back in `Delivered.error` (committed first, then the run fails).
    """

    async def __aenter__(self) -> "Transport": ...

    async def __aexit__(self, *exc: object) -> None: ...

    async def deliver(self, request: Request) -> Delivered: ...

    async def settle(self, pending: Mapping[str, Sequence[str]], timeout: float) -> Delivered: ...

    def ready(self) -> Delivered: ...

    async def resolve(self, tokens: Sequence[str]) -> Delivered: ...

    def transport_stats(self) -> TransportStats: ...


@dataclass
class TransportOptions:
    """Generic delivery settings from dinsync.yml (`DestinationOptions`), plus the caller's
    retry policy: None for a run's sending (the sender's full policy); the health check passes a
    short one (`dinsync.ops.health.check_retry_policy`): it must tell "unreachable" quickly."""

    rate_overrides: dict[str, float | None] = field(default_factory=dict)
    limits_enabled: bool = True
    concurrency: int = 8
    timeout: float = 30.0
    retry_policy: "RetryPolicy | None" = None
    # the run is stopping: a request that has not left yet (waiting for its rate slot, a retry)
    # is not sent (SendingStopped) instead of going out after the signal
    stop: "Callable[[], bool] | None" = None
    # reading earlier runs' outcomes (`Transport.resolve`): how long, in all, it may wait for one
    # still being processed (an asynchronous job), so that its rows are not sent again while it can
    # still apply older values after the newer ones; 0: ask once
    resolve_wait: float = 0.0
    resolve_stop: "Callable[[], bool] | None" = None  # the run is stopping: wait no more


def email_form(text: str) -> str:
    """An email address as a platform compares it with another spelling of it: the local part in
    NFC, the domain read through IDNA (an `xn--` label and its Unicode spelling are one), both
    lowercased. A domain IDNA cannot read (a label over 63 characters) is kept in NFC."""
    import unicodedata

    local, at, domain = text.rpartition("@")
    if not at:
        return text
    try:
        domain = domain.encode("idna").decode("idna")
    except UnicodeError:
        domain = unicodedata.normalize("NFC", domain)
    return f"{unicodedata.normalize('NFC', local).lower()}@{domain.lower()}"


def url_address(base_url: str) -> str:
    """A base URL as Destination.account reads it: without a `user:password@`, a query or the
    scheme's default port, its scheme and host in lower case."""
    import urllib.parse

    url = urllib.parse.urlsplit(base_url)
    host = (url.hostname or "").lower()
    host = f"[{host}]" if ":" in host else host
    scheme = url.scheme.lower()
    try:
        port = f":{url.port}" if url.port and (scheme, url.port) not in (("https", 443), ("http", 80)) else ""
    except ValueError:  # (not a port: the request fails, saying so)
        port = ""
    return f"{scheme}://{host}{port}{url.path.rstrip('/')}"


class Destination:
    """Base class. Subclasses fill in the class-level data and implement the hooks."""

    type_name: str = ""
    services: Mapping[str, ServiceSpec] = {}
    limits: Mapping[str, EndpointLimit] = {}
    settings_model: type | None = None  # pydantic model of the platform-specific keys in dinsync.yml
    base_urls: Mapping[str, str] = {}  # region -> base URL
    handles_statuses: frozenset[int] = frozenset()  # statuses parse() sees before the sender's defaults
    phone_region: str | None = None  # default region of national phone numbers (settings may override)
    default_concurrency: int | None = None  # requests in flight when dinsync.yml sets no `concurrency`
    # Whom the platform's rate limits count: "credentials" (a token, a project's key: the senders of
    # one process using the same key and base URL share each endpoint's pace, e.g. two syncs running
    # at once under `serve --parallel`) or "address" (the client's IP: every sender to the base URL).
    limit_scope: Literal["credentials", "address"] = "credentials"
    # Headers in which the platform announces a window's limit (header -> the window's seconds): an
    # endpoint is paced at the lowest announced limit per second, never above its documented rate.
    announced_limits: Mapping[str, float] = {}
    # The header the platform's credentials travel in: "Authorization" (a bearer token) cannot be
    # sent with a base_url's `user:password@` (aiohttp sends those as `Authorization: Basic` too)
    credential_header: str | None = None
    # Its pre-flight check learns the mapping kinds of fields from the platform's schema (Preflight.kinds,
    # e.g. Attio's attribute types): `dinsync plan` asks it too, so that its samples are mapped as sent.
    learns_kinds: bool = False
    # Bytes of a 2xx answer read at most (decompressed; None: the sender's MAX_ANSWER_BODY): a
    # platform whose answers are small caps what a hostile proxy's endless 200 costs a request in flight
    max_answer_bytes: int | None = None
    # Seconds a hook may take before the run stops, naming it (see destinations/hooks.py; None: no
    # limit, the built-in destinations'); DINSYNC_HOOK_SECONDS overrides it
    hook_seconds: float | None = 300.0

    def __init__(self, base_url: str, credentials: Mapping[str, str], options: Mapping[str, Any] | None = None):
        self.base_url = base_url.rstrip("/")
        self.credentials = dict(credentials)
        self.options = dict(options or {})

    # --- declared data, resolved for one sync ---------------------------------------------
    def limit_key(self) -> tuple:
        """What identifies the platform's rate-limit counters this destination draws on (see
        `limit_scope`); credentials enter it hashed."""
        who = ""
        if self.limit_scope == "credentials":
            import hashlib

            text = "\n".join(f"{k}={v}" for k, v in sorted(self.credentials.items()))
            who = hashlib.sha256(text.encode()).hexdigest()
        return (self.type_name or type(self).__name__, self.base_url, who)

    def service(self, name: str) -> ServiceSpec:
        return self.services[name]

    def account(self) -> str:
        """Where its writes land, as far as the settings tell without the credentials (a new key is
        often the same project's): a sync whose destination now reaches another sends it every row.
        Default: the base URL (the region's, or `base_url`), without a `user:password@`, a query or
        the scheme's default port, its scheme and host in lower case."""
        return url_address(self.base_url)

    def default_region(self) -> str | None:
        return self.options.get("phone_region") or self.phone_region

    # --- hooks --------------------------------------------------------------------------
    def make_transport(self, options: TransportOptions) -> Transport:
        """The delivery path (default: HTTP through the shared sender)."""
        from ..sender import HttpSender

        return HttpSender(self, rate_overrides=options.rate_overrides, limits_enabled=options.limits_enabled,
                          timeout=options.timeout, connections=options.concurrency,
                          retry_policy=options.retry_policy, stop=options.stop)

    def auth_headers(self) -> dict[str, str]:
        """Headers carrying the credentials on every request (may be awaitable). Default: none."""
        return {}

    def _missing(self, hook: str, what: str) -> NotImplementedError:
        return NotImplementedError(f"destination {self.type_name or '?'} ({type(self).__module__}."
                                   f"{type(self).__qualname__}) does not implement {hook}(), {what}")

    def secrets(self) -> list[str]:
        """Values that must never appear in logs, errors or state tables."""
        return [v for v in self.credentials.values() if v]

    async def preflight(self, transport: Transport, sync: "SyncSpec") -> Preflight:
        """Check the mapping against the platform's schema before anything is sent (and in
        `dinsync validate`). Default: nothing to check."""
        return Preflight()

    async def begin_run(self, transport: Transport, sync: "SyncSpec") -> None:
        """Before the first request of a run (e.g. open a file, create a job)."""

    async def finish_run(self, transport: Transport, sync: "SyncSpec") -> None:
        """After the last request of a run, before pending outcomes are settled (e.g. close and
        upload a file, close a job)."""

    def prepare(self, frame: "pl.DataFrame", sync: "SyncSpec") -> Prepared:
        """Build requests for mapped rows: `_key` (plan key), `_op`, `_id` (identifier as sent),
        `_json` (JSON object of the fields to send for the row), `_bytes` (its size), and per
        mapped field i `_t{i}` (the value's JSON text, NULL when not sent)."""
        raise self._missing("prepare", "which turns mapped rows into requests")

    def preview(self, frame: "pl.DataFrame", sync: "SyncSpec") -> tuple["pl.DataFrame", list[Rejection]]:
        """`dinsync plan`'s samples, without building requests: mapped rows (as `prepare` gets them)
        with each sent field's `_t{i}` as the JSON value the platform receives, less the rows
        `prepare` would reject for their content, and those rejections. Default: as mapped."""
        return frame, []

    def parse(self, request: Request, status: int, headers: Mapping[str, str], body: bytes) -> Outcome:
        """An HTTP answer to `request` read into an Outcome (see it)."""
        raise self._missing("parse", "which reads an HTTP answer into per-record outcomes")

    def lookup_requests(self, keys: Sequence[str], ids: Sequence[str], sync: "SyncSpec") -> list[Request]:
        """Update mode without an update-only write: requests that find which keys exist."""
        return []

    async def settle_pending(self, transport: Transport, pending: Mapping[str, Sequence[str]],
                             timeout: float) -> Delivered:
        """HTTP destinations whose answers may be pending (an asynchronous bulk job): wait at most
        `timeout` seconds for the outcomes (token -> keys) through `transport`."""
        return Delivered([], [], {token: list(keys) for token, keys in pending.items()})

    def value_forms(self, sync: "SyncSpec") -> dict[str, tuple[str, list[str]]]:
        """Settings that shape how values are written, not which records they reach: {setting: (its
        value, the destination fields of `sync` whose sent form it shapes)}. One that changed since a
        sync's last run has its fields sent for every row, once: the snapshot hashes the model's
        values, which did not change. Default: none."""
        return {}

    async def resolve_pending(self, transport: Transport, tokens: Sequence[str]) -> Delivered:
        """The outcomes of earlier runs' tokens, for the keys they can tell about."""
        return Delivered([], [])


@dataclass
class SyncSpec:
    """What a destination needs to know of a sync (a slice of the validated config)."""

    name: str
    service: str
    mode: str  # upsert | update | insert
    key_field: str  # destination identifier, e.g. "email" or "userId"
    fields: list[str]  # destination field names, in mapping order
    custom: list[bool] = field(default_factory=list)  # per field: a custom attribute
    options: dict[str, Any] = field(default_factory=dict)
    kinds: dict[str, str] = field(default_factory=dict)  # field -> mapping kind, as declared or learned


_HTML_START = re.compile(r"<(!doctype\s+html|html|head|body|title)\b", re.I)
_HTML_TITLE = re.compile(r"<title[^>]*>(.*?)</title>", re.I | re.S)
_HTML_HIDDEN = re.compile(r"<(script|style)\b.*?</\1\s*>", re.I | re.S)
_HTML_TAG = re.compile(r"<[^>]*>")


def is_html_page(body: bytes) -> bool:
    """Whether an answer's body is an HTML page (a proxy's or gateway's), not an API's answer."""
    return _is_html(body[:1000].decode("utf-8", "replace").strip())


def _is_html(text: str) -> bool:
    return text.startswith("<") and _HTML_START.search(text, 0, 200) is not None


def body_excerpt(body: bytes, limit: int = 1000, chars: int | None = None) -> str:
    """The start (`limit` bytes) of an answer's body that is not the platform's own error, for a
    reason, on one line and at most `chars` characters: text as it is, but an HTML page (a proxy's
    or load balancer's 5xx or 429 page) by its title, or else its text without the markup, e.g.
    `502 Bad Gateway (HTML page)`, not the page's source in `dinsync rejections`, a run's error and
    the health check's reasons. "" for an empty body. Secrets are masked before any cut (one
    cut inside a secret would leave its start, which no longer matches it)."""
    from .. import redaction

    text = body[:limit + 4 * redaction.margin()].decode("utf-8", "replace")
    text = redaction.redact(text)[:limit].strip()
    if _is_html(text):
        title = _HTML_TITLE.search(text)
        words = title.group(1) if title else _HTML_TAG.sub(" ", _HTML_HIDDEN.sub(" ", text))
        words = " ".join(redaction.redact(html.unescape(words)).split())
        text = f"{words} (HTML page)" if words else "(an HTML page)"
    else:
        text = " ".join(text.split())
    return text if chars is None else redaction.shorten(text, chars)
