"""Splio's "Datahub - automatic imports" of contacts files, and the report written for each file.

A file is read in three steps: `parse_contacts_file` (pure, runs in a worker thread) checks the
file rules and every line; `apply_rows` writes the valid lines into the contact store (on the
event loop, where the REST API also writes); the `Importer` moves the file and writes the report.

Report `<reports_dir>/<file name>.report.json` (UTF-8 JSON, written to a hidden temporary name
then renamed, so a reader never sees half a report):
    {"report_version": 1, "file": name, "universe": ..., "status": "processed" | "rejected",
     "reason": null | {"code", "message"}, "insert_allowed": bool, "separator": ";",
     "columns": [...], "counts": {"lines", "inserted", "updated", "not_found", "rejected"},
     "rows": [{"line", "email", "status", "code", "message"}], "received_at", "processed_at"}
`line` is the physical line number (the header is line 1); `email` is the cell as written in the
file (the contact is stored lowercased). A processed file has one row per data line, in file
order; a rejected file has none (nothing of it was imported).
* row `status` / `code`: inserted / "", updated / "", not_found / "not_found" (insert not allowed),
  rejected / one of wrong_email, wrong_value, wrong_type, is_blank (no email), field_count,
  empty_line, malformed_line (a broken quote that does not run onto another line);
* file `reason.code`: file_name, bom, not_utf8, empty_file, bad_header (empty or repeated column),
  unknown_column, missing_column, multi_line_value, too_many_lines, injected (a fault).
"""
from __future__ import annotations

import asyncio
import codecs
import csv
import fnmatch
import glob
import logging
import os
import re
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from .contacts import (SYSTEM_FIELDS, ContactStore, CustomField, FieldError, normalize_custom, normalize_email,
                       normalize_system)
from .options import SplioOptions

if TYPE_CHECKING:
    from .sftp import SftpFaults

REPORT_VERSION = 1
REPORT_SUFFIX = ".report.json"
# Names an uploader writes before renaming: never picked up, never reported.
TEMPORARY_SUFFIXES = (".part", ".tmp", ".temp", ".filepart", ".partial", ".swp", "~")
_LINE_BREAK = re.compile(r"\r\n|\n|\r")
# Python's csv reader refuses a field over 131,072 characters by default, a limit Splio does not
# document: a quoted 200 KB text cell was rejected as malformed (and an odd number of quotes in it
# rejected the whole file). Raised for the process (the limit is global; nothing else here reads
# CSV); a line is bounded by its file anyway.
csv.field_size_limit(max(csv.field_size_limit(), 2**31 - 1))
_log = logging.getLogger(__name__)


def is_temporary(name: str) -> bool:
    return name.startswith(".") or name.endswith(TEMPORARY_SUFFIXES)


class FileRejected(Exception):
    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code, self.message = code, message


@dataclass(frozen=True)
class ImportRules:
    """What the parser needs, frozen so it can run in a worker thread."""

    separator: str
    max_lines: int
    keep_empty: bool  # empty_cells == "keep": an empty cell leaves the stored value alone
    lowercase_emails: bool
    custom_columns: dict[str, CustomField]

    @classmethod
    def of(cls, options: SplioOptions, fields) -> "ImportRules":
        columns: dict[str, CustomField] = {}
        for f in fields:
            if options.custom_field_columns in ("name", "both"):
                columns[f.name] = f
            if options.custom_field_columns in ("id", "both"):
                columns[f.column] = f
        return cls(options.separator, options.max_lines, options.empty_cells == "keep",
                   options.lowercase_emails, columns)


@dataclass
class ParsedRow:
    line: int
    email: str  # as written in the file
    key: str | None = None  # the stored email; None when the line is rejected
    values: dict[str, str] = field(default_factory=dict)
    custom: dict[int, str] = field(default_factory=dict)
    code: str = ""
    message: str = ""


@dataclass
class ParsedFile:
    columns: list[str]
    rows: list[ParsedRow]


def _cells(line: str, sep: str) -> list[str]:
    if '"' not in line:
        return line.split(sep)
    return next(csv.reader([line], delimiter=sep, quotechar='"', doublequote=True, strict=True))


def parse_contacts_file(data: bytes, rules: ImportRules) -> ParsedFile:
    """Check a file against Splio's rules; raises FileRejected for a whole-file failure."""
    if data.startswith(codecs.BOM_UTF8):
        raise FileRejected("bom", "the file starts with a byte order mark: Splio requires UTF-8 without BOM")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FileRejected("not_utf8", f"the file is not valid UTF-8 (byte {exc.start})") from None
    lines = _LINE_BREAK.split(text)
    if lines and lines[-1] == "":
        lines.pop()
    if not lines or not lines[0].strip():
        raise FileRejected("empty_file", "the file has no header line")
    if len(lines) > rules.max_lines:  # "limit the size of your file to 200K lines": the header counts
        raise FileRejected("too_many_lines", f"{len(lines)} lines (header included); the limit is {rules.max_lines}")
    sep = rules.separator
    try:
        columns = _cells(lines[0], sep)
    except csv.Error:
        raise FileRejected("multi_line_value" if lines[0].count('"') % 2 else "bad_header",
                           "line 1: the header is not valid CSV") from None
    kinds = _column_kinds(columns, rules)
    email_at = columns.index("email")
    rows: list[ParsedRow] = []
    last = len(lines)
    for number, line in enumerate(lines[1:], start=2):
        if line == "":
            rows.append(ParsedRow(number, "", code="empty_line", message="empty line"))
            continue
        try:
            cells = _cells(line, sep)
        except csv.Error as exc:
            if line.count('"') % 2 and number < last:
                raise FileRejected("multi_line_value", f"line {number}: a quoted value runs onto the next line; "
                                   "multi-line values are not allowed") from None
            raw = line.split(sep)
            rows.append(ParsedRow(number, raw[email_at] if email_at < len(raw) else "", code="malformed_line",
                                  message=f"invalid CSV quoting: {exc}"))
            continue
        email = cells[email_at] if email_at < len(cells) else ""
        if len(cells) != len(columns):
            rows.append(ParsedRow(number, email, code="field_count",
                                  message=f"{len(cells)} values for {len(columns)} columns"))
            continue
        rows.append(_check_row(number, email, cells, kinds, rules))
    return ParsedFile(columns, rows)


def _column_kinds(columns: list[str], rules: ImportRules) -> list[Any]:
    """Per column: "email", a system field name, or a CustomField; raises FileRejected."""
    if any(not c for c in columns):
        raise FileRejected("bad_header", "the header has an empty column name")
    kinds: list[Any] = []
    seen: dict[Any, str] = {}
    for name in columns:
        if name == "email" or name in SYSTEM_FIELDS or name == "customer_key":
            kind: Any = name
        elif name in rules.custom_columns:
            kind = rules.custom_columns[name]
        else:
            raise FileRejected("unknown_column", f"unknown column {name!r}")
        if kind in seen:
            raise FileRejected("bad_header", f"column {name!r} repeats column {seen[kind]!r}")
        seen[kind] = name
        kinds.append(kind)
    if "email" not in seen:
        raise FileRejected("missing_column", "the mandatory column 'email' (the universe's unique key) is missing")
    return kinds


def _check_row(number: int, email: str, cells: list[str], kinds: list[Any], rules: ImportRules) -> ParsedRow:
    row = ParsedRow(number, email)
    try:
        for kind, value in zip(kinds, cells):
            if kind == "email":
                row.key = normalize_email(value, lowercase=rules.lowercase_emails)
            elif value == "" and rules.keep_empty:
                continue
            elif isinstance(kind, CustomField):
                row.custom[kind.id] = normalize_custom(kind, value)
            else:
                row.values[kind] = normalize_system(kind, value)
    except FieldError as exc:
        return ParsedRow(number, email, code=exc.error, message=exc.message)
    return row


def apply_rows(parsed: ParsedFile, store: ContactStore, insert_allowed: bool) -> tuple[list[dict], Counter]:
    """Write the valid lines; returns the report rows and the counts by status."""
    counts: Counter = Counter()
    out = []
    for row in parsed.rows:
        if row.key is None:
            status, code, message = "rejected", row.code, row.message
        else:
            rec = store.get(row.key)
            code = message = ""
            if rec is not None:
                store.update(rec, row.values, row.custom, source="sftp")
                status = "updated"
            elif insert_allowed:
                store.create(row.key, row.values, row.custom, source="sftp")
                status = "inserted"
            else:
                status, code = "not_found", "not_found"
                message = "no contact with this email, and the import configuration does not allow inserts"
        counts[status] += 1
        out.append({"line": row.line, "email": row.email, "status": status, "code": code, "message": message})
    return out, counts


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


class Importer:
    """Watches the drop folder: one complete file at a time, in name order."""

    def __init__(self, root: Path, work: Path, options: SplioOptions, store: ContactStore, faults: "SftpFaults"):
        self.options = options
        self.store = store
        self.faults = faults
        self.root = Path(os.path.realpath(root))  # as asyncssh's chroot sees it
        self.work = work
        self.drop = self.local(options.drop_dir)
        self.reports_dir = self.local(options.reports_dir)
        self.processed_dir = self.local(options.processed_dir)
        for folder in (self.drop, self.reports_dir, self.processed_dir, work):
            folder.mkdir(parents=True, exist_ok=True)
        self.open_for_write: Counter = Counter()  # local path -> SFTP handles writing it
        self.received: list[str] = []
        self.processed: list[str] = []
        self.rejected: dict[str, dict] = {}  # name -> reason of its last rejection
        self.reports: dict[str, dict] = {}  # name -> its last report
        self.errors = 0  # unexpected failures of the poller
        self._lock = asyncio.Lock()

    def local(self, sftp_path: str) -> Path:
        return self.root / sftp_path.strip("/")

    def name_matches(self, name: str) -> bool:
        pattern = self.options.file_name_pattern.replace("{universe}", glob.escape(self.options.universe))
        return fnmatch.fnmatchcase(name, pattern)

    def pending(self) -> list[str]:
        """Complete files waiting in the drop folder, in name order."""
        names = []
        with os.scandir(self.drop) as entries:
            for entry in entries:
                if (entry.is_file(follow_symlinks=False) and not is_temporary(entry.name)
                        and not self.open_for_write.get(entry.path)):
                    names.append(entry.name)
        return sorted(names)

    async def process_now(self) -> list[dict]:
        """Process every complete file now; returns their reports (also written to the reports folder)."""
        async with self._lock:
            reports = []
            for name in self.pending():
                report = await self._process(name)
                if report is not None:
                    reports.append(report)
            return reports

    async def run_forever(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                await self.process_now()
            except Exception:  # keep polling; the error is logged and counted
                self.errors += 1
                _log.exception("Splio sandbox importer failed")

    async def _process(self, name: str) -> dict | None:
        taken = self.work / name
        try:
            os.replace(self.drop / name, taken)
        except FileNotFoundError:  # renamed or removed meanwhile
            return None
        received_at = time.time()
        self.received.append(name)
        started = time.monotonic()
        while time.monotonic() - started < self.faults.importer_delay:  # re-read: tests may shorten it
            await asyncio.sleep(0.01)
        opts = self.options
        parsed: ParsedFile | None = None
        try:
            injected = self.faults.next_file_rejection()
            if injected is not None:
                raise FileRejected("injected", injected)
            if not self.name_matches(name):
                pattern = opts.file_name_pattern.replace("{universe}", opts.universe)
                raise FileRejected("file_name", f"the file name does not match {pattern!r}")
            data = await asyncio.to_thread(taken.read_bytes)
            parsed = await asyncio.to_thread(parse_contacts_file, data, ImportRules.of(opts, self.store.fields))
        except FileRejected as exc:
            reason: dict | None = {"code": exc.code, "message": exc.message}
            rows: list[dict] = []
            counts: Counter = Counter()
        else:
            reason = None
            rows, counts = apply_rows(parsed, self.store, opts.insert_allowed)
        report = {
            "report_version": REPORT_VERSION, "file": name, "universe": opts.universe,
            "status": "processed" if reason is None else "rejected", "reason": reason,
            "insert_allowed": opts.insert_allowed, "separator": opts.separator,
            "columns": parsed.columns if parsed is not None else [],
            "counts": {"lines": len(rows), **{s: counts[s] for s in ("inserted", "updated", "not_found", "rejected")}},
            "rows": rows, "received_at": _iso(received_at), "processed_at": _iso(time.time()),
        }
        await asyncio.to_thread(self._finish, name, taken, report)
        self.reports[name] = report
        if reason is None:
            self.processed.append(name)
        else:
            self.rejected[name] = reason
        return report

    def _finish(self, name: str, taken: Path, report: dict) -> None:
        """Write the report atomically, then move the file to the processed folder."""
        final = self.reports_dir / f"{name}{REPORT_SUFFIX}"
        tmp = self.reports_dir / f".{name}{REPORT_SUFFIX}.tmp"
        tmp.write_bytes(orjson.dumps(report) + b"\n")
        os.replace(tmp, final)
        os.replace(taken, self.processed_dir / name)

    def clear(self) -> None:
        """Forget history (files already on disk stay)."""
        self.received.clear()
        self.processed.clear()
        self.rejected.clear()
        self.reports.clear()
        self.errors = 0
