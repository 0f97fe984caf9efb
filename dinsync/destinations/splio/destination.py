"""Splio: "Synchronize contacts", matched by email, over SFTP file imports or over the contacts API.

Data: one service `contacts`, key `email` (at most 100 characters, Splio's limit), modes `update`
(existing contacts only) and `insert` (new rows become contacts too), the standard fields
firstname, lastname, language and cellphone, and any custom field (`custom: true`, by name).
Delivery is chosen by `transport`: `sftp` (the documented path: CSV files dropped for Splio's
automatic imports, outcomes read from import reports; see sftp.py) or `api` (bulk create + PATCH,
see api.py). Over SFTP, creating contacts is a property of the account's import configuration,
not of the file: `mode` must match what Splio configured (a report that shows a creation in update
mode fails the run with that explanation).
"""
from __future__ import annotations

import difflib
from typing import TYPE_CHECKING, Any, Mapping
from urllib.parse import quote

from ...errors import DinsyncError
from ..base import (
    Destination,
    EndpointLimit,
    FieldIssue,
    FieldSpec,
    KeySpec,
    Outcome,
    Preflight,
    Prepared,
    Rejection,
    Request,
    ServiceSpec,
    SyncSpec,
    TransportOptions,
    url_address,
)
from .settings import SplioSettings

if TYPE_CHECKING:  # polars is loaded only when rows are sent
    import polars as pl

    from .api import SplioApiSender
    from .sftp import SftpTransport

BULK_MAX_BYTES = 16 * 1024 * 1024  # our cap per bulk request (Splio documents none)
MAX_ROW_BYTES = 8 * 1024 * 1024  # a contact larger than this is refused before sending (our cap)
EMAIL_MAX = 100  # Splio: email max 100 characters
NAME_MAX = 255  # Splio: firstname, lastname max 255 (Datahub contacts)
CELLPHONE_MAX = 30  # Splio: cellphone max 30
MAX_FIELD_PAGES = 20  # field list pages read at most (Splio allows 180 custom contact fields)
# Splio's custom field types (GET /data/fields/contacts `data_type`, when given) -> mapping kinds.
DATA_TYPE_KINDS = {"text": "string", "string": "string", "int": "integer", "double": "number", "date": "datetime"}

STANDARD_FIELDS = {
    "firstname": FieldSpec("firstname", "string", description="max 255 characters", max_length=NAME_MAX),
    "lastname": FieldSpec("lastname", "string", description="max 255 characters", max_length=NAME_MAX),
    "language": FieldSpec("language", "string", description="2-letter lowercase code (en, fr, de, ...)"),
    "cellphone": FieldSpec("cellphone", "phone", description="max 30; E.164 from the model, written as 0033... "
                                                             "in files, +33... over the API (cellphone_format)",
                           max_length=CELLPHONE_MAX),
}
# the standard fields' sizes, checked on the text Splio receives (values.length_rejections)
MAX_LENGTHS = {name: spec.max_length for name, spec in STANDARD_FIELDS.items() if spec.max_length}

CONTACTS = ServiceSpec(
    name="contacts",
    key_fields={"email": KeySpec("email", max_length=EMAIL_MAX)},
    modes=("update", "insert"),
    mode_notes={"upsert": "Splio syncs use `insert` (new rows become contacts and existing ones are updated; over "
                          "SFTP only if the account's import configuration allows inserts) or `update` (existing "
                          "contacts only): over SFTP, creating contacts is decided by Splio's import "
                          "configuration, not by the file, so the mode says which configuration the sync expects"},
    model_types=("user", "custom"),
    fields=STANDARD_FIELDS,
    open_fields=False,  # other Splio attributes are custom fields: `{field: name, custom: true}`
    custom_fields=True,
    max_row_bytes=MAX_ROW_BYTES,
)


class SplioDestination(Destination):
    type_name = "splio"
    hook_seconds = None  # dinsync's own hooks: no thread hop, their waits have limits of their own
    # a bulk answer has an item per contact of a request of at most BULK_MAX_BYTES; the others are
    # one contact, a fields list or a token
    max_answer_bytes = 2 * BULK_MAX_BYTES
    services = {"contacts": CONTACTS}
    settings_model = SplioSettings
    base_urls = {"default": "https://api.splio.com"}
    credential_header = "Authorization"  # a bearer token
    limits = {
        "contacts": EndpointLimit("contacts", rate=20.0, max_concurrency=8),  # data/contacts: 20 RPS per IP
        "other": EndpointLimit("other", rate=10.0, max_concurrency=2),  # every other endpoint: 10 RPS
    }
    limit_scope = "address"  # Splio counts per client IP: every key of this process to one base URL shares them
    # Splio's gateway counts per second and per minute (documented headers; the minute's limit is
    # not documented): a minute limit under 60 x the second's is what holds, paced evenly
    announced_limits = {"x-rateLimit-limit-second": 1.0, "x-rateLimit-limit-minute": 60.0}
    # requests sent at once (API: the contacts' cap grows with the latency, sender/inflight.py): 20/s
    # takes 10 in flight at 500 ms an answer, 20 at 1 s; the generic 8 held 79% at 500 ms
    default_concurrency = 24

    def __init__(self, base_url: str, credentials: Mapping[str, str], options: Mapping[str, Any] | None = None):
        super().__init__(base_url, credentials, options)
        known = set(SplioSettings.model_fields)
        self.settings = SplioSettings.model_validate(
            {**{k: v for k, v in self.options.items() if k in known}, **self.credentials})
        self.custom_ids: dict[str, int] = {}  # custom field name -> Splio id (API; from the pre-flight check)
        self._api: SplioApiSender | None = None

    def account(self) -> str:
        """The universe, whichever transport reaches it (the API's base URL when none is named); over
        the API at another address than Splio's (the sandbox's), the universe at that address: a sync
        moved from the sandbox to Splio under the same universe name sends Splio every row."""
        address = super().account()
        if not self.settings.universe:
            return address
        at = "" if self.settings.transport != "api" or address == url_address(self.base_urls["default"]) \
            else f" at {address}"
        return f"universe {self.settings.universe}{at}"

    # --- secrets and transports ----------------------------------------------------------------
    def secrets(self) -> list[str]:
        found = [v for v in self.credentials.values() if v]
        sftp = self.settings.sftp
        if sftp is not None:
            found += [s.get_secret_value() for s in (sftp.password, sftp.private_key, sftp.private_key_passphrase)
                      if s is not None and s.get_secret_value()]
        return found  # (the API token: registered as a run-time secret when it is fetched, Tokens.store)

    def make_transport(self, options: TransportOptions):
        if self.settings.transport == "sftp":
            from .sftp import SftpTransport

            sftp = self.settings.sftp
            assert sftp is not None and self.settings.universe
            secret = lambda s: s.get_secret_value() if s is not None else None  # noqa: E731
            return SftpTransport(sftp, self.settings.universe, password=secret(sftp.password),
                                 private_key=secret(sftp.private_key), passphrase=secret(sftp.private_key_passphrase),
                                 rows_per_request=min(5000, sftp.max_rows_per_file),
                                 stall_seconds=options.timeout)
        from .api import SplioApiSender, Tokens

        assert self.settings.api_key is not None
        self._api = SplioApiSender(self, self.settings.api_key.get_secret_value(),
                                   Tokens(self.settings.token_max_age_seconds),
                                   rate_overrides=options.rate_overrides, limits_enabled=options.limits_enabled,
                                   timeout=options.timeout, connections=options.concurrency + 4,
                                   retry_policy=options.retry_policy, stop=options.stop)
        return self._api

    async def auth_headers(self) -> dict[str, str]:
        if self._api is None:
            raise RuntimeError("the Splio API transport is not open")
        return await self._api.bearer()

    # --- run hooks -------------------------------------------------------------------------------
    async def begin_run(self, transport, sync: SyncSpec) -> None:
        if self.settings.transport == "sftp":
            from . import values  # (loaded with the SFTP transport already)

            await transport.begin(sync.name, sync.mode, [c.name for c in values.columns_of(sync)])

    async def finish_run(self, transport, sync: SyncSpec) -> None:
        if self.settings.transport == "sftp":
            await transport.close_files()

    async def preflight(self, transport, sync: SyncSpec) -> Preflight:
        """API: custom fields must exist in the universe (their ids are resolved here) and the
        universe's unique key must be the email. Over SFTP there is no schema to ask (a file with
        an unknown column is skipped whole by Splio, and its rows come back failed with that reason):
        the login, host key and folders are checked."""
        if self.settings.transport != "api":
            await transport.check_access()
            return Preflight()
        from .api import field_element

        api: SplioApiSender = transport
        result = Preflight()
        unique = (await api.read("/universes/unique-key", "the universe's unique key")).get("unique_key")
        if unique not in (None, "email"):
            result.issues.append(FieldIssue(None, f"this Splio universe identifies contacts by {unique!r}, not by "
                                                  "email; dinsync matches Splio contacts on email",
                                            "ask Splio which key the universe uses"))
        custom: dict[str, dict] = {}
        names: set = set()
        # Splio's Swagger lists no query parameter on this endpoint: it is first read as documented.
        # Only when the answer counts more fields than it holds (its example answer has `per_page`
        # and `count_element`) are pages asked for, with the sibling field lists' `per_page` and
        # `page_number`, from the first page again (same page size throughout).
        for page in range(0, MAX_FIELD_PAGES + 1):
            query = f"?per_page=1000&page_number={page}" if page else ""
            doc = await api.read("/data/fields/contacts" + query, "the universe's contact fields", needs="elements",
                                 item=field_element)
            elements = [e for e in doc.get("elements") or [] if isinstance(e, dict)]
            new = {(e.get("id"), e.get("name"), e.get("is_system")) for e in elements} - names
            names |= new
            for e in elements:
                if not e.get("is_system") and isinstance(e.get("name"), str):
                    custom[e["name"]] = e
            # stop at the last page, or when a page brings nothing new (paging ignored by the server);
            # the first, unpaged read goes on to the pages whatever it brought
            if (page and not new) or len(names) >= _count(doc.get("count_element")):
                break
        for n, name in enumerate(sync.fields):
            if not (n < len(sync.custom) and sync.custom[n]):
                continue
            found = custom.get(name)
            if found is None:
                close = difflib.get_close_matches(name, list(custom), n=3, cutoff=0.6)
                hint = (f"did you mean {', '.join(repr(c) for c in close)}? " if close else "") + \
                    "create the field in Splio first (its name must match exactly)"
                result.issues.append(FieldIssue(name, f"Splio has no custom contact field {name!r}", hint))
                continue
            self.custom_ids[name] = int(found["id"])
            kind = DATA_TYPE_KINDS.get(str(found.get("data_type") or ""))
            if kind:
                result.kinds[name] = kind
        return result

    # --- requests -----------------------------------------------------------------------------
    def value_forms(self, sync: SyncSpec) -> dict[str, tuple[str, list[str]]]:
        """`timezone` moves the UTC datetimes written to datetime fields (and custom fields without
        `type:`, whose ISO datetimes are converted too): another zone, other values in Splio."""
        zoned = []  # (as values.columns_of and with_splio_text read them; no Polars for a no-op run)
        for n, name in enumerate(sync.fields):
            custom = bool(sync.custom[n]) if n < len(sync.custom) else False
            kind = sync.kinds.get(name, "auto")
            if kind == "datetime" or (custom and kind == "auto"):
                zoned.append(name)
        return {"timezone": (self.settings.timezone or "", zoned)}

    def prepare(self, frame: pl.DataFrame, sync: SyncSpec) -> Prepared:
        from . import values

        if frame.height == 0:
            return Prepared([])
        columns = values.columns_of(sync)
        frame, rejections = self._texts(frame, columns)
        prepared = self._prepare_files(frame, columns) if self.settings.transport == "sftp" else \
            self._prepare_api(frame, columns, sync)
        prepared.rejections = rejections + prepared.rejections
        return prepared

    def _texts(self, frame: pl.DataFrame, columns) -> tuple[pl.DataFrame, list[Rejection]]:
        """The text Splio receives for each value (`_c{n}`), less the rows refused for it."""
        from . import values

        frame = values.with_splio_text(frame, columns, cellphone_format=self.settings.cellphone_text_format,
                                       timezone=self.settings.timezone)
        frame, beyond = values.zone_rejections(frame, columns, self.settings.timezone)
        frame, too_long = values.length_rejections(frame, columns, MAX_LENGTHS)
        return frame, beyond + too_long

    def preview(self, frame: pl.DataFrame, sync: SyncSpec) -> tuple[pl.DataFrame, list[Rejection]]:
        import polars as pl

        from . import values

        if frame.height == 0:
            return frame, []
        columns = values.columns_of(sync)
        frame, rejections = self._texts(frame, columns)
        if self.settings.transport == "sftp":
            frame, refused = values.file_rejections(frame, columns)
            rejections += refused
        return frame.with_columns(pl.when(pl.col(f"_t{c.index}").is_not_null())
                                  .then(values.json_string(pl.col(f"_c{c.index}"))).alias(f"_t{c.index}")
                                  for c in columns), rejections

    def _prepare_files(self, frame: pl.DataFrame, columns) -> Prepared:
        from . import values

        sftp = self.settings.sftp
        assert sftp is not None
        frame, rejections = values.file_rejections(frame, columns)
        requests = [Request("sftp_file", "WRITE", "", body, keys, context=chunk)
                    for keys, body, chunk in values.csv_chunks(frame, columns, "email", sftp.separator,
                                                               min(5000, sftp.max_rows_per_file), sftp.max_file_bytes)]
        return Prepared(requests, rejections)

    def _prepare_api(self, frame: pl.DataFrame, columns, sync: SyncSpec) -> Prepared:
        import polars as pl

        from ...mapping.json import batches_by_size
        from . import values
        from .api import BulkContext

        missing = [c.name for c in columns if c.custom and c.name not in self.custom_ids]
        if missing:
            raise DinsyncError(f"Splio: ids of custom fields {missing} unknown (the pre-flight check did not run)")
        frame = values.with_contact_json(frame, columns, self.custom_ids)
        if sync.mode == "insert":
            # Created by the bulk (and updated by its PATCH fallback where the contact exists): added
            # rows, and changed rows that send every field. Those are rows sent again whole, e.g.
            # after a PATCH found the contact deleted in Splio (404): created again, not `not_found`
            # on every run. Rows sending only their changed fields are PATCHed.
            whole = pl.all_horizontal([pl.col(f"_c{c.index}").is_not_null() for c in columns] or [pl.lit(False)])
            creatable = (pl.col("_op") == "added") | whole
            bulk, single = frame.filter(creatable), frame.filter(~creatable)
        else:
            bulk, single = frame.clear(), frame
        requests = [self.patch_request(k, i, f) for k, i, f in single.select("_key", "_id", "_fields").iter_rows()]
        if bulk.height:
            keys, ids, fields = bulk["_key"].to_list(), bulk["_id"].to_list(), bulk["_fields"].to_list()
            # created without its empty values; the PATCH fallback of an existing contact clears them
            items = [values.bulk_item(i, f) for i, f in zip(ids, bulk["_create_fields"].to_list())]
            max_rows = self.settings.bulk_max_contacts
            for offset, length in batches_by_size(bulk, max_rows, BULK_MAX_BYTES - 64, 1):
                part = slice(offset, offset + length)
                ctx = BulkContext({i: k for i, k in zip(ids[part], keys[part]) if i != k},
                                  {k: (i, f) for k, i, f in zip(keys[part], ids[part], fields[part])})
                requests.append(self._bulk_request(keys[part], items[part], ctx))
        return Prepared(requests)

    def _bulk_request(self, keys: list[str], items: list[bytes], ctx) -> Request:
        return Request("contacts", "POST", "/data/contacts/bulk", b'{"contacts":[' + b",".join(items) + b"]}",
                       keys, items=items, rebuild=lambda k, i: self._bulk_request(k, i, ctx), context=ctx)

    def patch_request(self, key: str, email: str, fields: str) -> Request:
        from . import values
        from .api import PATCH

        # every byte but letters, digits, "-._~" and "@" percent-encoded: "+" too, which a server
        # decoding its paths as form data would read as a space ("a+b@x.com" -> "a b@x.com")
        return Request("contacts", "PATCH", "/data/contacts/" + quote(email, safe="@"), values.patch_body(fields),
                       [key], context=PATCH)

    def parse(self, request: Request, status: int, headers: Mapping[str, str], body: bytes) -> Outcome:
        from .api import parse_answer

        assert self._api is not None
        return parse_answer(request, status, body, self._api.tokens, self.custom_ids)


def _count(value: Any) -> int:
    """`count_element` of a field list answer as a number (0 when absent or unreadable)."""
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0
