"""Map a batch of plan rows to validated JSON objects, column-wise in Polars.

Input columns: ``_key`` (matching key, normalised in SQL), ``_op`` ('added' | 'changed') and per
mapped field i: ``v{i}`` (value) and ``x{i}`` (bool: send this field for this row).

Output (`MappedBatch.frame`): ``_key`` (unchanged: the plan's identity, used to commit),
``_op``, ``_id`` (the identifier to send: email trimmed and lowercased, phone in E.164, string
key as is), ``_json`` (a JSON object of the flagged fields in mapping order, without the key:
destinations add it in their own shape) and ``_bytes`` (UTF-8 size of ``_json``).

Every problem becomes a row of `MappedBatch.rejections` (``_key``, ``field``, ``reason``) and
takes the row out of the frame. Values of fields that are not sent for a row are not checked.
Only phone parsing and ``json``-kind validation call Python, once per distinct value.

Kind coercions (strict: a value that does not convert is a rejection naming field and value):
  - ``string``: numbers, booleans, dates (ISO) as text; lists/structs as their JSON text.
  - ``integer``: integers; booleans as 0/1; integral floats/decimals; strings of digits
    (optional sign, surrounding spaces allowed) within 128-bit range.
  - ``number``: integers, floats, decimals; booleans as 0/1; numeric strings (a string already
    in JSON number syntax is sent digit for digit, an integral one with a fraction, ``100.0``:
    others through a float).
  Decimals read as text (``numeric_text``: PostgreSQL's numeric, whatever its precision) are
  coerced as decimals, from their exact digits; a NaN or an infinity among them is rejected.
  - ``boolean``: booleans; 0/1; strings true/false, t/f, yes/no, y/n, 1/0 (any case).
  - ``date``: dates; datetimes (tz-aware ones in UTC) truncated; strings ``YYYY-MM-DD``.
  - ``datetime``: datetimes; dates at midnight; ISO strings ``YYYY-MM-DD[(T| )HH:MM[:SS[.f]]]``
    with optional ``Z`` / ``±HH[:MM]`` (those are converted to UTC and written with ``Z``; an
    offset of 24 hours or more, or of 60 minutes or more, is no offset: the value is rejected).
  - ``email``: trimmed, lowercased, validated (see dinsync.mapping.normalize); blank → NULL.
  - ``phone``: E.164 via phonenumbers with `phone_region` as default region; blank → NULL.
  - ``json``: a string column is embedded as raw JSON after checking it parses; other types
    are encoded as for ``auto``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Collection, Mapping

import orjson
import polars as pl

from dinsync.mapping.arrow_frames import DIMS_COLUMN, frame_from_arrow, utc_labelled  # noqa: F401 (re-exported)
from dinsync.mapping.field_kinds import (
    _COERCE,
    _NULL,
    _as_email,
    _as_json,
    _as_kind_numeric_text,
    _as_phone,
    _is_text,
    _normalised_email,
    _phone_note,
    _why,
    _with_dimensions,
    _wrong_type,
)
from dinsync.mapping.json import Encoded, json_value_problems
from dinsync.mapping.normalize import (
    email_is_valid,
    email_problem,
    normalize_email,
    normalize_phones,
    phone_key_unreadable,
)

FIELD_KINDS = ("auto", "string", "integer", "number", "boolean", "date", "datetime", "email", "phone", "json")
KEY_KINDS = ("email", "phone", "string")

FRAME_SCHEMA = {"_key": pl.String, "_op": pl.String, "_id": pl.String, "_json": pl.String, "_bytes": pl.Int64}
REJECTION_SCHEMA = {"_key": pl.String, "field": pl.String, "reason": pl.String}

@dataclass(frozen=True)
class FieldMapping:
    index: int  # i of v{i} / x{i}
    field: str  # destination field name (JSON key)
    kind: str = "auto"


@dataclass(frozen=True)
class KeyMapping:
    field: str  # destination identifier name, e.g. "email" or "userId"
    kind: str  # "email" | "phone" | "string"
    max_length: int | None = None
    # `_key` is the plan's key, which the diff's SQL normalised (dinsync.diff.keys): an email key
    # is then sent as it is. Normalised again here, two plan keys could become one identifier
    # (Polars strips every whitespace character where the SQL trims spaces, and lowercases some
    # letters of newer Unicode versions the SQL leaves alone), and one user would take the values
    # of two rows. A plan key with a tab or a newline is rejected by the email check instead.
    planned: bool = False


@dataclass
class MappedBatch:
    frame: pl.DataFrame  # _key, _op, _id, _json, _bytes
    rejections: pl.DataFrame  # _key, field, reason


# --- key ------------------------------------------------------------------------------------

def _key_ident(key: KeyMapping) -> pl.Expr:
    """The identifier to send (materialised as `_id` before it is checked)."""
    raw = pl.col("_key").cast(pl.String)
    if key.kind == "email":
        return raw if key.planned else normalize_email(raw)
    if key.kind == "phone":
        return pl.col("_key_e164")
    return raw


_PHONE_KEY_UNREADABLE = ("is not read as a phone key: it holds characters other than ASCII digits, a leading '+' "
                         "and the separators (spaces, - . ( ) / and dashes), and its ASCII digits alone could be "
                         "another number")


def _key_checks(key: KeyMapping, region: str | None) -> tuple[pl.Expr, pl.Expr]:
    """Whether the key is bad, and why (evaluated on bad rows only)."""
    raw, ident = pl.col("_key"), pl.col("_id")
    if key.kind == "email":
        checks = [(~email_is_valid(ident), pl.concat_str([pl.lit("is not a valid email: "), email_problem(ident)]))]
    elif key.kind == "phone":
        # a key holding more than digits and separators arrives as written (dinsync.diff.keys):
        # phonenumbers would read +1201200000\uff18 or +1 800 FLOWERS, but under a key of its own,
        # not the one its number has
        checks = [(phone_key_unreadable(raw), pl.lit(_PHONE_KEY_UNREADABLE)),
                  (ident.is_null(), pl.concat_str([pl.lit("is not a valid phone number"), _phone_note(raw, region)]))]
    else:
        checks = [(raw == "", pl.lit("is empty")), (raw.str.strip_chars() == "", pl.lit("is blank"))]
    if key.max_length is not None:
        checks.append((ident.str.len_chars() > key.max_length, pl.lit(f"is longer than {key.max_length} characters")))
    label = f'key "{key.field}"'
    bad = raw.is_null() | pl.any_horizontal([c for c, _ in checks]).fill_null(True)
    reason = pl.when(raw.is_null()).then(pl.lit(f"{label}: value is null"))
    for cond, phrase in checks:
        reason = reason.when(cond).then(pl.concat_str([_why(raw, f"{label}: ", " "), phrase]))
    return bad, reason.otherwise(_NULL)


# --- the batch ------------------------------------------------------------------------------

def _check(frame: pl.DataFrame, key: KeyMapping, fields: list[FieldMapping]) -> None:
    if key.kind not in KEY_KINDS:
        raise ValueError(f"unknown key kind {key.kind!r} (expected one of {', '.join(KEY_KINDS)})")
    missing = [c for c in ("_key", "_op") if c not in frame.columns]
    seen: set[str] = set()
    for f in fields:
        if f.kind not in FIELD_KINDS:
            raise ValueError(f"field {f.field!r}: unknown kind {f.kind!r} (expected one of {', '.join(FIELD_KINDS)})")
        if f.field in seen:
            raise ValueError(f"field {f.field!r} is mapped twice")
        seen.add(f.field)
        missing += [c for c in (f"v{f.index}", f"x{f.index}") if c not in frame.columns]
    if missing:
        raise ValueError(f"plan batch lacks columns: {', '.join(missing)}")


def _largest_field(fields: list[FieldMapping]) -> tuple[pl.Expr | None, pl.Expr | None]:
    """The field of a row that takes the most bytes among those it sends, and ` (largest field
    "f": N bytes)`, for a row over the size cap (evaluated on such rows only): which of its values
    to shorten, where the reason gave the row's size alone and named no field (a 1 MB text among
    ten columns). (None, None) without fields."""
    if not fields:
        return None, None
    sizes = [pl.when(pl.col(f"x{f.index}").cast(pl.Boolean).fill_null(False))
             .then(pl.col(f"_text_{n}").str.len_bytes().fill_null(4)).otherwise(0) for n, f in enumerate(fields)]
    top = pl.max_horizontal(sizes)
    name = pl.when(sizes[0] == top).then(pl.lit(fields[0].field))
    for f, size in zip(fields[1:], sizes[1:]):
        name = name.when(size == top).then(pl.lit(f.field))
    name = name.otherwise(_NULL)
    return name, pl.concat_str([pl.lit(' (largest field "'), name, pl.lit('": '), top.cast(pl.String),
                                pl.lit(" bytes)")])


def map_batch(
    frame: pl.DataFrame,
    key: KeyMapping,
    fields: list[FieldMapping],
    *,
    phone_region: str | None = None,
    max_value_bytes: int | None = None,
    max_row_bytes: int | None = None,
    keep_field_text: bool = False,
    numeric_text: Collection[str] | Mapping[str, bool] = (),
) -> MappedBatch:
    """Validate and encode one batch of plan rows (see module docstring).

    `numeric_text`: the string columns that hold decimal numbers as text (see `frame_from_arrow`),
    coerced as decimals are (their digits sent exactly; NaN / ±Infinity rejected); as a mapping,
    with whether each declares no scale (then each number is written with a fraction).

    With `keep_field_text`, the output also has per mapped field n (position in `fields`) a
    column `_t{n}`: the JSON text of the value when the field is sent for the row (``null`` for a
    NULL value), NULL when it is not sent; destinations with their own payload shape build from it.
    """
    _check(frame, key, fields)
    schema = frame.schema
    # The stages below are one lazy query, collected once into `work`: each stage's columns are
    # materialised before the next stage reads them (expressions are not deduplicated), without a
    # query per stage (~0.5 ms each, per batch).
    lazy = frame.lazy().with_columns(pl.col("_key").cast(pl.String), pl.col("_op").cast(pl.String))
    # Stage 1: intermediate columns. Phones and JSON validity call Python once per distinct value.
    extra: list[pl.Series | pl.Expr] = []
    if key.kind == "phone":
        extra.append(normalize_phones(frame.get_column("_key").cast(pl.String), phone_region).alias("_key_e164"))
    for f in fields:
        col = frame.get_column(f"v{f.index}")
        if col.name in numeric_text:
            continue
        if f.kind == "phone" and (_is_text(col.dtype) or col.dtype.is_integer()):
            extra.append(normalize_phones(col, phone_region).alias(f"_e164_{f.index}"))
        elif f.kind == "json" and _is_text(col.dtype):
            extra.append(json_value_problems(col).alias(f"_jsonwhy_{f.index}"))
        elif f.kind == "email" and _is_text(col.dtype):
            extra.append(_normalised_email(pl.col(f"v{f.index}")).alias(f"_email_{f.index}"))
    if extra:
        lazy = lazy.with_columns(extra)
    added = {e.name if isinstance(e, pl.Series) else e.meta.output_name() for e in extra}
    lazy = lazy.with_columns(_key_ident(key).cast(pl.String).alias("_id"))

    # Stage 2: the JSON text of every field.
    encoded: list[Encoded] = []
    for f in fields:
        label = f'field "{f.field}"'
        v, dtype = pl.col(f"v{f.index}"), schema[f"v{f.index}"]
        if f"v{f.index}" in numeric_text:
            free = bool(numeric_text.get(f"v{f.index}")) if isinstance(numeric_text, Mapping) else False
            enc = _as_kind_numeric_text(v, dtype, f.kind, label, free)
        elif f.kind == "phone":
            if f"_e164_{f.index}" in added:
                enc = _as_phone(v, pl.col(f"_e164_{f.index}"), label, phone_region)
            else:
                enc = Encoded(v.cast(pl.String)) if dtype == pl.Null else _wrong_type(v, dtype, label, "phone")
        elif f.kind == "json":
            why = pl.col(f"_jsonwhy_{f.index}") if f"_jsonwhy_{f.index}" in added else None
            enc = _as_json(v, dtype, why, label)
        elif f.kind == "email":
            enc = _as_email(v, pl.col(f"_email_{f.index}"), dtype, label)
        else:
            enc = _COERCE[f.kind](v, dtype, label)
        dims = DIMS_COLUMN.format(name=f"v{f.index}")
        if dims in schema:  # arrays of more than one dimension among the lists (frame_from_arrow)
            enc = _with_dimensions(enc, v, dtype, f, label, f"v{f.index}" in numeric_text, pl.col(dims))
        encoded.append(enc)
    lazy = lazy.with_columns([enc.text.cast(pl.String).alias(f"_text_{n}") for n, enc in enumerate(encoded)])

    # Stage 3: problems, fragments, the row object.
    key_bad, key_reason = _key_checks(key, phone_region)
    checks = {"_bad_key": (key.field, key_bad, key_reason)}  # column -> (field, bad, reason)
    fragments = []
    field_text: list[pl.Expr] = []
    for n, (f, enc) in enumerate(zip(fields, encoded)):
        label = f'field "{f.field}"'
        text = pl.col(f"_text_{n}")
        problems = list(enc.problems)
        size = text.str.len_bytes() if enc.size_of_text else enc.size
        if max_value_bytes is not None and size is not None:
            size_reason = pl.concat_str([pl.lit(f"{label}: value is "), size.cast(pl.String),
                                         pl.lit(f" bytes, over the limit of {max_value_bytes} bytes")])
            problems.append((size > max_value_bytes, size_reason))
        sent = pl.col(f"x{f.index}").cast(pl.Boolean).fill_null(False)
        # `,"field":` then the value; NULL (dropped by concat_str) when the field is not sent.
        fragments.append(pl.when(sent).then(pl.lit("," + orjson.dumps(f.field).decode() + ":")))
        fragments.append(pl.when(sent).then(text.fill_null("null")))
        if keep_field_text:
            field_text.append(pl.when(sent).then(text.fill_null("null")).alias(f"_t{n}"))
        if problems:
            bad = sent & pl.any_horizontal([b for b, _ in problems]).fill_null(False)
            reason = pl.when(problems[0][0]).then(problems[0][1])
            for b, r in problems[1:]:
                reason = reason.when(b).then(r)
            checks[f"_bad_{n}"] = (f.field, bad, reason.otherwise(_NULL))

    # One concatenation per row; the comma before the first sent field is then dropped.
    obj = pl.concat_str([pl.lit("{"), *fragments, pl.lit("}")], ignore_nulls=True).str.replace("{,", "{", literal=True)
    lazy = lazy.with_columns(
        obj.alias("_json"),
        *field_text,
        *[bad.alias(name) for name, (_, bad, _) in checks.items()],
    ).with_columns(pl.col("_json").str.len_bytes().cast(pl.Int64).alias("_bytes"))
    if max_row_bytes is not None:
        row_reason = pl.concat_str([pl.lit("row is "), pl.col("_bytes").cast(pl.String),
                                    pl.lit(f" bytes of JSON, over the limit of {max_row_bytes} bytes")])
        largest, largest_reason = _largest_field(fields)
        checks["_bad_row"] = (largest, pl.col("_bytes") > max_row_bytes,
                              row_reason if largest_reason is None else pl.concat_str([row_reason, largest_reason]))
        lazy = lazy.with_columns((pl.col("_bytes") > max_row_bytes).alias("_bad_row"))
    work = lazy.collect()

    any_bad = pl.any_horizontal([pl.col(name) for name in checks])
    out_columns = list(FRAME_SCHEMA) + [f"_t{n}" for n in range(len(fields)) if keep_field_text]
    valid = work.lazy().filter(~any_bad).select(out_columns).collect()
    bad_rows = work.filter(any_bad)  # usually few: reasons are only computed here
    if bad_rows.height == 0:  # the common batch: no query per check (~0.5 ms each, per batch)
        return MappedBatch(valid, pl.DataFrame(schema=REJECTION_SCHEMA))
    rejections = pl.concat([  # one query for all checks
        bad_rows.lazy().filter(pl.col(name)).select(
            "_key", (field_name if isinstance(field_name, pl.Expr) else pl.lit(field_name, pl.String)).alias("field"),
            reason.cast(pl.String).alias("reason"))
        for name, (field_name, _, reason) in checks.items()
    ]).collect()
    return MappedBatch(valid, rejections)
