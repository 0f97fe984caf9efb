"""What a destination declares (data) and the few hooks it implements.

The sender (dinsync.sender) does everything generic: rate limits, concurrency, retries with
backoff honouring Retry-After, split-batch retries and turning outcomes into per-record results.
A destination only says what its endpoints and limits are, how to turn a Polars frame of mapped
rows into requests, and how to read a response into per-record results.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Literal, Mapping, Sequence

if TYPE_CHECKING:  # the config layer imports destinations: keep polars out of start-up
    import polars as pl

RecordStatus = Literal["ok", "rejected", "not_found", "failed"]


@dataclass(frozen=True)
class EndpointLimit:
    """Documented limit of one endpoint (overridable from dinsync.yml)."""

    name: str
    rate: float | None  # requests per second; None = no limit
    burst: int = 1  # how many requests may start back to back
    max_concurrency: int = 8
    documented: bool = True  # False: a default we chose, not a documented number


@dataclass
class Request:
    """One HTTP request carrying one or more records.

    `keys` are the matching keys of the records in this request (unique within a run).
    `items` are the per-record payload fragments of a batch request, so that the request can be
    rebuilt with a subset of its records (split-batch retry) through `rebuild`.
    """

    endpoint: str
    method: str
    path: str  # relative to the destination's base URL, query string already escaped
    body: bytes | None
    keys: list[str]
    items: list[bytes] | None = None
    rebuild: Callable[[list[str], list[bytes]], "Request"] | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    context: Any = None  # destination-private data (e.g. the lookup kind)

    @property
    def splittable(self) -> bool:
        return self.rebuild is not None and len(self.keys) > 1

    def split(self) -> list["Request"]:
        """Two halves of a batch request (used when a batch is rejected as a whole)."""
        assert self.rebuild is not None and self.items is not None
        mid = len(self.keys) // 2
        return [
            self.rebuild(self.keys[:mid], self.items[:mid]),
            self.rebuild(self.keys[mid:], self.items[mid:]),
        ]


@dataclass
class RecordResult:
    key: str
    status: RecordStatus
    reason: str | None = None


@dataclass
class Outcome:
    """What a destination makes of one HTTP response.

    kind:
      - "done": `results` holds a result for records of the request; records of the request
        without an entry are acknowledged ("ok").
      - "retry": transient (429, 5xx, ...): send again after backoff (`retry_after` seconds if set).
      - "split": the batch was rejected as a whole for a reason that may be one record's fault:
        retry its halves; a single record that still fails is rejected with `reason`.
      - "fatal": the run cannot go on (bad credentials, missing scopes): stop sending.
    """

    kind: Literal["done", "retry", "split", "fatal"]
    results: list[RecordResult] = field(default_factory=list)
    reason: str | None = None
    retry_after: float | None = None
    throttled: bool = False  # this response was a 429


@dataclass
class Rejection:
    key: str | None
    reason: str
    field: str | None = None


@dataclass
class Prepared:
    """A mapped frame turned into requests, plus the rows rejected while doing so."""

    requests: list[Request]
    rejections: list[Rejection] = field(default_factory=list)


class Destination:
    """Base class. Subclasses fill in the class-level data and implement the hooks."""

    type_name: str = ""
    services: tuple[str, ...] = ()
    modes: tuple[str, ...] = ("upsert", "update")
    key_fields: tuple[str, ...] = ()  # destination identifiers a sync may match on
    limits: Mapping[str, EndpointLimit] = {}
    creates_unknown_fields: bool = False  # True: mapping to a new field is allowed
    settings_model: type | None = None  # pydantic model of the platform-specific keys in dinsync.yml
    base_urls: Mapping[str, str] = {}  # region -> base URL
    update_needs_lookup: bool = False  # update mode: look up rows new to the sync before writing
    handles_statuses: frozenset[int] = frozenset()  # statuses parse() sees before the sender's defaults

    def __init__(self, base_url: str, credentials: Mapping[str, str], options: Mapping[str, Any] | None = None):
        self.base_url = base_url.rstrip("/")
        self.credentials = dict(credentials)
        self.options = dict(options or {})

    # --- hooks --------------------------------------------------------------------------
    def auth_headers(self) -> dict[str, str]:
        raise NotImplementedError

    def secrets(self) -> list[str]:
        """Values that must never appear in logs, errors or state tables."""
        return [v for v in self.credentials.values() if v]

    def prepare(self, frame: pl.DataFrame, sync: "SyncSpec") -> Prepared:
        """Build requests for mapped rows: `_key` (plan key), `_op`, `_id` (identifier as sent),
        `_json` (JSON object of the fields to send for the row), `_bytes` (its size)."""
        raise NotImplementedError

    def parse(self, request: Request, status: int, headers: Mapping[str, str], body: bytes) -> Outcome:
        raise NotImplementedError

    def lookup_requests(self, keys: Sequence[str], ids: Sequence[str], sync: "SyncSpec") -> list[Request]:
        """Update-only destinations without an update-only write: requests that find existing keys."""
        return []


@dataclass
class SyncSpec:
    """What a destination needs to know of a sync (a slice of the validated config)."""

    name: str
    service: str
    mode: str  # upsert | update
    key_field: str  # destination identifier, e.g. "email" or "userId"
    fields: list[str]  # destination field names, in mapping order
    options: dict[str, Any] = field(default_factory=dict)
