"""Mapped rows -> the text Splio stores for each value, then CSV chunks (file imports) or JSON bodies (API).

Both transports write every value as text: CSV cells, and JSON strings in the API (Splio's Swagger
types every contact field and custom field `value` as a string). Built column-wise in Polars from
the `_t{n}` columns of `map_batch(..., keep_field_text=True)`:

* a NULL value becomes "" (an empty cell / empty string: Splio clears the field; a bulk create,
  with nothing to clear, leaves it out);
* JSON strings are decoded, numbers (every digit), booleans, objects and arrays keep their JSON
  text;
* date and datetime values become Splio's date format `YYYY-MM-DD HH:MM:SS` (dates at midnight,
  fractions of a second dropped, UTC values converted to `timezone` when one is configured);
  values of `auto` custom fields that are ISO dates or datetimes as the mapping writes them
  (`YYYY-MM-DD`, `YYYY-MM-DDTHH:MM:SS[.f][Z]`) are converted the same way (the model's column
  type is not known here: a text field fed such strings gets them converted too; `type: string`
  on the field sends them as they are);
* cellphones arrive in E.164 (`+33612345678`); with `cellphone_format: "00"` (the default of
  file imports, whose columns Splio documents so) they are written as Splio shows them,
  `0033612345678`; with "e164" (the default of the API, whose request examples write
  `+331122334455`) as they arrive;
* numbers the JSON encoder writes in exponent form (`1.5e-7`, `1e+16`) are written out digit for
  digit (`0.00000015`, `10000000000000000`): Splio's number fields take decimal text, and would
  refuse a double written `1.5e-7` ("must be of type double"), parking a valid row.
"""
from __future__ import annotations

import io
import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Mapping, Sequence

import orjson
import polars as pl

from ...mapping.json import batches_by_size
from ..base import Rejection, SyncSpec

ISO_DATETIME = r"^(\d{4}-\d{2}-\d{2})T(\d{2}:\d{2}:\d{2})(?:\.\d+)?(Z)?$"
ISO_DATE = r"^\d{4}-\d{2}-\d{2}$"
# What a line-based reader may split a line on: CR and LF, and what Python's str.splitlines and
# Unicode also count as line ends (vertical tab, form feed, file/group/record separators, NEL,
# LINE SEPARATOR, PARAGRAPH SEPARATOR): a cell holding one would be a multi-line value to them.
LINE_BREAKS = "\r\n\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"
LINE_BREAK = f"[{LINE_BREAKS}]"
_LINE_BREAK = re.compile(LINE_BREAK)
# A NUL byte is written raw into the CSV by Polars: C-string readers end the value (or the line)
# there, many importers refuse the file. JSON escapes it (\u0000), so only files refuse it.
UNWRITABLE = f"[{LINE_BREAKS}\x00]"
EXPONENT = r"^-?\d+(?:\.\d+)?[eE][+-]?\d+$"  # a JSON number in exponent form
_NULL = pl.lit(None, pl.String)


@dataclass(frozen=True)
class Column:
    """One mapped field as Splio names it."""

    index: int  # n of `_t{n}` / `_c{n}`
    name: str  # CSV header / JSON key (standard field) or custom field name
    custom: bool
    kind: str


def columns_of(sync: SyncSpec) -> list[Column]:
    """The mapped fields Splio receives, in mapping order (a standard field named like the matching
    key is the key itself and is not sent twice)."""
    out = []
    for n, name in enumerate(sync.fields):
        custom = bool(sync.custom[n]) if n < len(sync.custom) else False
        if not custom and name == sync.key_field:
            continue
        out.append(Column(n, name, custom, sync.kinds.get(name, "auto")))
    return out


def _splio_datetime(text: pl.Expr, kind: str, timezone: str | None) -> pl.Expr:
    as_space = text.str.replace(ISO_DATETIME, "${1} ${2}")
    if timezone:
        utc = text.str.slice(0, 19).str.to_datetime("%Y-%m-%dT%H:%M:%S", time_zone="UTC", strict=False)
        local = utc.dt.convert_time_zone(timezone).dt.strftime("%Y-%m-%d %H:%M:%S")
        as_space = pl.when(text.str.contains(ISO_DATETIME) & text.str.ends_with("Z")).then(local).otherwise(as_space)
    # a date at midnight, also for `auto` custom fields (a model DATE column): Splio's date fields
    # refuse a bare `YYYY-MM-DD` ("must be of type date")
    midnight = pl.concat_str([text, pl.lit(" 00:00:00")])
    return pl.when(text.str.contains(ISO_DATE)).then(midnight).otherwise(as_space)


def with_splio_text(frame: pl.DataFrame, columns: Sequence[Column], *, cellphone_format: str = "00",
                    timezone: str | None = None) -> pl.DataFrame:
    """Adds `_c{n}` per column: the text Splio receives, NULL when the field is not sent."""
    exprs = []
    for col in columns:
        t = pl.col(f"_t{col.index}")
        # only JSON strings are decoded: json_path_match reads numbers as 64-bit floats (a DECIMAL(38,10)
        # or a HUGEINT lost its last digits); numbers, booleans, objects and arrays keep their JSON text
        text = (pl.when(t == "null").then(pl.lit(""))
                .when(t.str.starts_with('"')).then(t.str.json_path_match("$").fill_null(""))
                .otherwise(t))
        if col.kind in ("date", "datetime") or (col.custom and col.kind == "auto"):
            text = _splio_datetime(text, col.kind, timezone)
        if not col.custom and col.name == "language":  # Splio takes its 2-letter codes in lowercase only:
            text = text.str.strip_chars().str.to_lowercase()  # `FR` was refused, its row parked
        if not col.custom and col.name == "cellphone" and cellphone_format == "00":
            text = pl.when(text.str.starts_with("+")).then(pl.concat_str([pl.lit("00"), text.str.slice(1)])) \
                .otherwise(text)
        exprs.append(pl.when(t.is_null()).then(_NULL).otherwise(text).alias(f"_c{col.index}"))
    return _positional_numbers(frame.with_columns(exprs), columns) if exprs else frame


def _positional_numbers(frame: pl.DataFrame, columns: Sequence[Column]) -> pl.DataFrame:
    """Numbers in exponent form (JSON numbers only, never strings) written out digit for digit.
    Such values are rare: Python formats the distinct ones of a batch, the rest stays in Polars."""
    fixes = []
    for col in columns:
        name = f"_c{col.index}"
        number = (~pl.col(f"_t{col.index}").str.starts_with('"') & pl.col(name).str.contains(EXPONENT)).fill_null(False)
        found = frame.filter(number).get_column(name).unique().to_list()
        if found:
            plain = {v: format(Decimal(v), "f") for v in found}
            fixes.append(pl.when(number).then(pl.col(name).replace(plain)).otherwise(pl.col(name)).alias(name))
    return frame.with_columns(fixes) if fixes else frame


# --- file imports ------------------------------------------------------------------------------

SPLIO_DATETIME = r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$"


def zone_rejections(frame: pl.DataFrame, columns: Sequence[Column],
                    timezone: str | None) -> tuple[pl.DataFrame, list[Rejection]]:
    """Rows holding a UTC datetime that the universe's `timezone` moves beyond the years 1 to 9999
    (9999-12-31 23:00Z is 10000-01-01 in Tokyo, 0001-01-01 00:00Z is year 0 in New York): its text
    would be `+10000-01-01 08:00:00` or `0000-12-31 19:03:58`, no date Splio reads. Rejected here
    with a reason naming the field (the mapping rejects such values in UTC already); the others
    are sent."""
    if not timezone or not columns or frame.height == 0:
        return frame, []
    flags = {c: (pl.col(f"_t{c.index}").str.contains('^"' + ISO_DATETIME[1:-1] + '"$')
                 & pl.col(f"_t{c.index}").str.ends_with('Z"')
                 & (~pl.col(f"_c{c.index}").str.contains(SPLIO_DATETIME)
                    | pl.col(f"_c{c.index}").str.starts_with("0000-"))).fill_null(False)
             for c in columns if c.kind in ("date", "datetime") or (c.custom and c.kind == "auto")}
    if not flags:
        return frame, []
    bad = frame.select(pl.any_horizontal(list(flags.values())).alias("bad"))["bad"]
    if not bad.any():
        return frame, []
    rejections = []
    for c, flag in flags.items():
        for key, value in frame.filter(bad & flag).select("_key", f"_t{c.index}").iter_rows():
            if key not in {r.key for r in rejections}:
                rejections.append(Rejection(key, f'field "{c.name}": {value} is outside the years 1 to 9999 in '
                                                 f"{timezone} (the destination's timezone), which Splio cannot "
                                                 "store", c.name))
    return frame.filter(~bad), rejections


def length_rejections(frame: pl.DataFrame, columns: Sequence[Column],
                      limits: Mapping[str, int]) -> tuple[pl.DataFrame, list[Rejection]]:
    """Rows sending a standard field longer than Splio stores (`limits`: field -> characters, e.g.
    firstname 255), counted on the text Splio receives in code points (an emoji is one): the
    smallest count of a text's length, so a value over it is over in whatever unit Splio counts.
    Rejected here with a reason naming the field and its length: Splio's answer
    said so too, but a bulk create refuses its whole batch for one such contact (each bad row cost
    a bisection of its batch) and a file import a line. The others are sent."""
    checked = [(c, limits[c.name]) for c in columns if not c.custom and c.name in limits]
    if not checked or frame.height == 0:
        return frame, []
    flags = [(pl.col(f"_c{c.index}").str.len_chars() > n).fill_null(False) for c, n in checked]
    bad = frame.select(pl.any_horizontal(flags).alias("bad"))["bad"]
    if not bad.any():
        return frame, []
    rejections = []
    for row in frame.filter(bad).select("_key", *[f"_c{c.index}" for c, _ in checked]).iter_rows():
        key, texts = row[0], row[1:]
        (col, n), text = next((cn, t) for cn, t in zip(checked, texts) if t is not None and len(t) > cn[1])
        rejections.append(Rejection(key, f'field "{col.name}": {len(text):,} characters, over the {n} Splio accepts '
                                         "(shorten it in the model)", col.name))
    return frame.filter(~bad), rejections


def file_rejections(frame: pl.DataFrame, columns: Sequence[Column]) -> tuple[pl.DataFrame, list[Rejection]]:
    """Rows holding, in a value they send, what an import file cannot carry: a line break (Splio's
    imports refuse multi-line values, and a quoted line break would make Splio skip the whole file)
    or a NUL character (written raw, it ends the value for C-string readers). Such rows are rejected
    here with a reason naming the field, and wait until the value changes; the others are sent."""
    if not columns or frame.height == 0:
        return frame, []
    flags = [pl.col(f"_c{c.index}").str.contains(UNWRITABLE).fill_null(False) for c in columns]
    bad = frame.select(pl.any_horizontal(flags).alias("bad"))["bad"]
    if not bad.any():
        return frame, []
    rejected = frame.filter(bad)
    rejections = []
    for row in rejected.select("_key", *[f"_c{c.index}" for c in columns]).iter_rows():
        key, values = row[0], row[1:]
        field, why = next((c.name, why) for c, v in zip(columns, values) if (why := _unwritable(v)))
        rejections.append(Rejection(key, f'field "{field}": {why}', field))
    return frame.filter(~bad), rejections


def _unwritable(value: str | None) -> str | None:
    """Why `value` cannot go in an import file (its first line break, named `U+2028`, or a NUL
    character), or None."""
    if value is None:
        return None
    found = _LINE_BREAK.search(value)
    if found is not None:
        return (f"the value contains a line break (U+{ord(found.group()):04X}); Splio's file imports do not accept "
                "multi-line values (replace line breaks in the model, or use transport: api)")
    if "\x00" in value:
        return ("the value contains a NUL character (U+0000), which an import file cannot carry (remove it in the "
                "model, or use transport: api)")
    return None


@dataclass
class CsvChunk:
    """Rows of one CSV file layout (Request.context of a file-import request)."""

    header: tuple[str, ...]  # column names, email first
    ids: list[str]  # the email written on each line, in order


def csv_chunks(frame: pl.DataFrame, columns: Sequence[Column], key_column: str, separator: str,
               max_rows: int, max_bytes: int) -> list[tuple[list[str], bytes, CsvChunk]]:
    """(keys, CSV lines without header, chunk) per group of rows that send the same fields.

    Changed rows send only their changed fields, and an empty cell clears a value in Splio, so a
    file holds rows that send the same columns: rows are grouped by the set of fields they send.
    """
    if frame.height == 0:
        return []
    sent = [pl.col(f"_c{c.index}").is_not_null().cast(pl.Int8).cast(pl.String) for c in columns]
    frame = frame.with_columns(pl.concat_str(sent or [pl.lit("")]).alias("_sig"))
    out = []
    for part in frame.partition_by("_sig", maintain_order=True):
        signature = part["_sig"][0]
        chosen = [c for c, flag in zip(columns, signature) if flag == "1"]
        header = (key_column,) + tuple(c.name for c in chosen)
        # "" is written as an empty cell (Polars would quote it): NULL and "" both clear the field
        table = part.select(pl.col("_id").alias(key_column),
                            *[pl.col(f"_c{c.index}").replace("", None).alias(c.name) for c in chosen])
        # a cell's bytes as written: quoted where needed (+2, with its separator +3), a quote inside
        # doubled; a file starts with the header (a file of max_bytes held up to twice that before)
        sizes = table.select(pl.sum_horizontal([pl.col(h).str.len_bytes().fill_null(0)
                                                + pl.col(h).str.count_matches('"', literal=True).fill_null(0) + 3
                                                for h in header]).alias("_bytes"))["_bytes"]
        room = max(1, max_bytes - len(csv_header(header, separator)))
        keys_all, ids_all = part["_key"].to_list(), part["_id"].to_list()
        for offset, length in batches_by_size(sizes, max_rows, room):
            buffer = io.BytesIO()
            table.slice(offset, length).write_csv(buffer, separator=separator, quote_style="necessary",
                                                  include_header=False, null_value="", line_terminator="\n")
            out.append((keys_all[offset:offset + length], buffer.getvalue(),
                        CsvChunk(header, ids_all[offset:offset + length])))
    return out


def csv_header(header: Sequence[str], separator: str) -> bytes:
    buffer = io.BytesIO()
    pl.DataFrame({h: [] for h in header}, schema={h: pl.String for h in header}).write_csv(
        buffer, separator=separator, quote_style="necessary", include_header=True, line_terminator="\n")
    return buffer.getvalue()


# --- API bodies --------------------------------------------------------------------------------

def json_string(expr: pl.Expr) -> pl.Expr:
    """The JSON text of a string column (escaping by Polars' JSON encoder)."""
    return pl.struct(expr.alias("v")).struct.json_encode().str.slice(5).str.strip_suffix("}")


def with_contact_json(frame: pl.DataFrame, columns: Sequence[Column], custom_ids: dict[str, int]) -> pl.DataFrame:
    """Adds `_fields` (the contact's fields as JSON members, each preceded by a comma, or ""),
    `_create_fields` (the same without empty values) and `_bytes` (the size). Standard fields are
    members of their own; custom fields go to `custom_fields` as `{"id": N, "value": "..."}` (ids
    from the pre-flight check).

    `_fields` is what a PATCH sends: an empty value clears the field. `_create_fields` is what a
    bulk create sends: a new contact has nothing to clear, and an empty `language`, `cellphone` or
    int / double / date custom field is a value Splio may refuse ("must be of type int"), which
    would refuse the whole batch and park a valid contact."""
    return frame.with_columns(_fields_json(columns, custom_ids, skip_empty=False).alias("_fields"),
                              _fields_json(columns, custom_ids, skip_empty=True).alias("_create_fields")
                              ).with_columns(
        (pl.col("_fields").str.len_bytes() + pl.col("_id").str.len_bytes() + 16).cast(pl.Int64).alias("_bytes"))


def _fields_json(columns: Sequence[Column], custom_ids: dict[str, int], *, skip_empty: bool) -> pl.Expr:
    standard, custom = [], []
    for c in columns:
        value = pl.col(f"_c{c.index}")
        sent = value.is_not_null() & (value != "") if skip_empty else value.is_not_null()
        if c.custom:
            prefix = ',{"id":' + str(int(custom_ids[c.name])) + ',"value":'
            custom.append(pl.when(sent).then(pl.concat_str([pl.lit(prefix), json_string(value), pl.lit("}")])))
        else:
            prefix = "," + orjson.dumps(c.name).decode() + ":"
            standard.append(pl.when(sent).then(pl.concat_str([pl.lit(prefix), json_string(value)])))
    parts: list[pl.Expr] = list(standard)
    if custom:
        items = pl.concat_str(custom, ignore_nulls=True)
        parts.append(pl.when(items != "").then(pl.concat_str([pl.lit(',"custom_fields":['), items.str.slice(1),
                                                               pl.lit("]")])))
    return pl.concat_str(parts, ignore_nulls=True) if parts else pl.lit("")


def patch_body(fields: str) -> bytes:
    """PATCH /data/contacts/{email}: the fields only (the unique key cannot be modified)."""
    return ("{" + fields[1:] + "}").encode() if fields else b"{}"


def bulk_item(email: str, fields: str) -> bytes:
    return b'{"email":' + orjson.dumps(email) + fields.encode() + b"}"
