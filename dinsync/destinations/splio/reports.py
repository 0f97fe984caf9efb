"""Reading Splio's import report of one uploaded file into per-row results.

Splio's public docs say the outcome of an automatic import is e-mailed and that "log files" are
left in the repository, without describing them. We read one JSON report per file at
`<reports_directory>/<file name>.report.json` (the format the project's sandbox writes, described
in `dinsync/sandbox/splio/importer.py`); what a row's status means:

* `inserted`, `updated` -> ok (acknowledged), except `inserted` from a file of changed columns
  only (a changed row whose contact was deleted in Splio: created with those columns alone) ->
  not_found, so that the next run sends the row whole;
* `inserted` while the sync is in update mode -> failed (the account's import creates contacts,
  which the sync says it must not: the transport fails the run, see sftp.update_mode_error; the
  row is sent again by the next run, an update of the contact that exists now);
* `not_found` -> not_found (no such contact and the account's import does not create contacts;
  sent again next run);
* `rejected` -> rejected with Splio's code and message (parked until the row changes);
* a whole file `rejected` (unknown column, bad header, ...) -> every row of it `failed` with the
  reason (nothing of it was imported; sent again next run);
* a row of the file missing from the report -> failed.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Iterable, Mapping

import orjson

from ..base import Delivered, RecordResult

REPORT_SUFFIX = ".report.json"
# Splio's code and message quoted in a reason: a message may quote the refused value (a 1 MB cell).
# Reasons of HTTP answers are cut by the sender; a report file's are cut here.
MESSAGE_CHARS = 300


class ReportError(ValueError):
    """A report we cannot read (not JSON, not the expected shape)."""


@dataclass
class Report:
    file: str
    status: str  # processed | rejected
    reason: str | None  # file rejected: "code: message"
    rows: list[dict] = field(default_factory=list)
    insert_allowed: bool | None = None
    columns: list[str] | None = None  # the file's header, as the report gives it


def parse_report(data: bytes, file_name: str) -> Report:
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise ReportError(f"the report of {file_name} is not JSON: {exc}") from None
    if not isinstance(doc, dict) or doc.get("status") not in ("processed", "rejected"):
        raise ReportError(f"the report of {file_name} has no status processed/rejected")
    if doc.get("file") not in (None, file_name):
        raise ReportError(f"the report of {file_name} describes another file ({doc.get('file')!r})")
    reason = None
    if doc["status"] == "rejected":
        why = doc.get("reason") or {}
        if isinstance(why, dict):
            reason = ": ".join(str(p) for p in (why.get("code"), why.get("message")) if p) or "no reason given"
        else:
            reason = str(why)
        reason = _cut(reason)
    rows = doc.get("rows") or []
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise ReportError(f"the report of {file_name} has malformed rows")
    insert_allowed = doc.get("insert_allowed")
    columns = doc.get("columns")
    columns = columns if isinstance(columns, list) and all(isinstance(c, str) for c in columns) else None
    return Report(file_name, doc["status"], reason, rows, insert_allowed if isinstance(insert_allowed, bool) else None,
                  columns)


def _cut(text: str) -> str:
    return text if len(text) <= MESSAGE_CHARS else text[: MESSAGE_CHARS - 1] + "…"


def refused_column(row: Mapping, columns: Iterable[str] | None) -> str | None:
    """The file's column a rejected row's message names (as the API's answers name the field), or
    None: `email` for a wrong email; else the one column the message names as a word (none, or
    several: None)."""
    if row.get("code") == "wrong_email":
        return "email"
    message = row.get("message")
    if not isinstance(message, str) or not columns:
        return None
    named = [c for c in dict.fromkeys(columns) if c and c != "email"
             and re.search(r"(?<![\w])" + re.escape(c) + r"(?![\w])", message[:MESSAGE_CHARS])]
    return named[0] if len(named) == 1 else None


def row_result(key: str, row: Mapping, file_name: str, mode: str, partial: bool = False,
               columns: Iterable[str] | None = None) -> RecordResult:
    status = row.get("status")
    where = f"{file_name} line {row.get('line')}"
    if status == "inserted" and mode == "update":
        return RecordResult(key, "failed", f"Splio import ({where}): created a contact although the sync is in update "
                            "mode (the account's SFTP import configuration allows inserts); the next run sends the "
                            "row again")
    if status == "inserted" and partial:
        return RecordResult(key, "not_found", f"Splio import ({where}): no contact with this email (deleted in "
                            "Splio?): created with only the columns of this changed row; the next run sends the "
                            "row whole")
    if status in ("inserted", "updated"):
        return RecordResult(key, "ok")
    if status == "not_found":
        why = ("no contact with this email, and the account's SFTP import configuration does not create contacts"
               + (" (mode insert: ask Splio to allow inserts for this import)" if mode == "insert" else ""))
        return RecordResult(key, "not_found", f"Splio import ({where}): {why}")
    if status == "rejected":
        code, message = row.get("code") or "rejected", row.get("message") or ""
        return RecordResult(key, "rejected", f"Splio import ({where}): " + _cut(f"{code}: {message}".rstrip(": ")),
                            refused_column(row, columns))
    return RecordResult(key, "failed", f"Splio import ({where}): unknown row status {status!r}")


def report_results(report: Report, keys: Iterable[str] | None, id_to_key: Mapping[str, str], mode: str,
                   partial: bool = False) -> tuple[Delivered, int]:
    """Outcomes of the rows of one file (acknowledged keys, other results), and how many contacts
    the import created.

    `keys`: the keys written to the file (None when they are not known, e.g. a report read by a
    later run from its token: only rows named by the report get a result then).
    `id_to_key`: email as written -> key, where they differ.
    `partial`: the file leaves out some mapped columns (its rows are changed rows).
    """
    if report.status == "rejected":
        why = f"Splio skipped the whole file {report.file}: {report.reason}"
        return Delivered([], [RecordResult(k, "failed", why) for k in keys or ()]), 0
    # each key as the file holds it: an acknowledged key is the run's own object, not the report's
    # copy of its text (~70 bytes a key, kept with a 1M-row run's outcomes until they are committed)
    wanted = {k: k for k in keys} if keys is not None else None
    results: dict[str, RecordResult | None] = {}  # None: acknowledged (no object a row)
    inserted = 0
    for row in report.rows:
        email = row.get("email")
        if not isinstance(email, str):
            continue
        key = id_to_key.get(email, email)
        if wanted is not None:
            own = wanted.get(key)
            if own is None:
                own = wanted.get(id_to_key.get(email.lower(), email.lower()))
                if own is None:
                    continue
            key = own
        if key in results:
            continue
        result = row_result(key, row, report.file, mode, partial, report.columns)
        results[key] = None if result.status == "ok" else result
        inserted += row.get("status") == "inserted"
    if wanted is not None:
        for key in wanted.keys() - results.keys():
            results[key] = RecordResult(key, "failed", f"Splio's import report of {report.file} does not mention "
                                                       "this row")
    out = Delivered([], [])
    for key, r in results.items():
        if r is None:
            out.ok.append(key)
        else:
            out.problems.append(r)
    return out, inserted
