"""Mapped rows -> Attentive request bodies, column-wise in Polars.

From the engine's mapped frame (`_key`, `_id` = the identifier as sent, and per mapped field n
`_t{n}` = the value's JSON text, NULL when the field is not sent for the row) this builds per row:

- `_v2`: one v2 user record `{"identifiers": {...}, "attributes": {...}}` with the standard
  fields that changed (and custom attributes when they go through v2), NULL when none did;
- `_v1`: one `POST /v1/attributes/custom` body `{"properties": {...}, "user": {...}}` with the
  custom attributes that changed, NULL when none did (or when they go through v2).

NULL values (and empty strings) are not sent: Attentive says "Avoid sending null values or empty
strings" and documents no way to clear an attribute; `send_nulls` sends them anyway, as JSON null in
custom attributes ("Object values can be any type") and as "" in standard fields (the v2 schema types
them: null is not a value there, so a NULL is still not sent), never in `identifiers` (the v2 spec:
"If you don't have a valid identifier, you should omit the field").
Values Attentive cannot take (a coordinate out of range, a malformed country code, an array as
custom value...) reject their row with a reason; the other rows go through.
"""
from __future__ import annotations

from dataclasses import dataclass

import orjson
import polars as pl

from ..base import Rejection, SyncSpec
from .fields import CHECKS, SECTIONS, STANDARD_FIELDS

NAME_MAX = 200  # "The maximum length for an attribute name is 200 characters."
V2_CUSTOM_MAX = 100  # v2: "There is a limit of 100 of custom attributes that can be created."


@dataclass
class BuiltRows:
    frame: pl.DataFrame  # _key, _id, _v2 (str | null), _v1 (str | null), _v2_bytes
    rejections: list[Rejection]


def _json_key(name: str) -> str:
    return orjson.dumps(name).decode()


def _object(fragments: list[pl.Expr]) -> pl.Expr:
    """`{...}` of the fragments (each `,"key":value` or NULL), NULL when all are NULL."""
    if not fragments:
        return pl.lit(None, pl.String)
    body = pl.concat_str(fragments, ignore_nulls=True)
    return pl.when(body == "").then(pl.lit(None, pl.String)).otherwise(
        pl.concat_str([pl.lit("{"), body.str.slice(1), pl.lit("}")]))


def _member(name: str, value: pl.Expr) -> pl.Expr:
    """`,"name":value`, NULL when value is NULL."""
    return pl.concat_str([pl.lit("," + _json_key(name) + ":"), value])


def checked(check: str, text: pl.Expr, label: str) -> tuple[pl.Expr, pl.Expr, pl.Expr]:
    """A standard field's check (CHECKS) of its JSON text `text`: (the JSON value sent, whether it is
    bad, why); a blank value (sent only with send_nulls) as it is: not a malformed value."""
    import polars as pl

    value, bad, reason = CHECKS[check](text, label)
    return pl.when(text == '""').then(text).otherwise(value), bad, reason


def _sent(text: pl.Expr, send_nulls: bool, is_custom: bool, identifier: bool) -> pl.Expr:
    """Whether a field's JSON text `text` is sent (see the module docstring)."""
    sent = text.is_not_null()
    if not send_nulls or identifier:  # an identifier is never null nor "": "omit the field" (v2 spec)
        return sent & (text != "null") & (text != '""')
    if not is_custom:  # the v2 standard fields are typed (string, integer): null is not a value there
        return sent & (text != "null")
    return sent


def sent_values(sync: SyncSpec, send_nulls: bool = False) -> list[pl.Expr]:
    """`_t{n}` of every field as sent (for `dinsync plan`'s samples): a standard field with a check in
    its checked form; a value the requests leave out (a NULL, an empty string unless `send_nulls`)
    null, as never sent (the checks would show a NULL as the text `"null"`, or `"NULL"` upper-cased,
    and an empty string showed as `""`, a value the run does not send)."""
    custom = sync.custom or [False] * len(sync.fields)
    out = []
    for n, (name, is_custom) in enumerate(zip(sync.fields, custom)):
        text = pl.col(f"_t{n}")
        spec = None if is_custom else STANDARD_FIELDS[name]
        value = text if spec is None or spec.check is None else checked(spec.check, text, f'field "{name}"')[0]
        sent = _sent(text, send_nulls, is_custom, spec is not None and spec.section == "identifiers")
        out.append(pl.when(sent).then(value).alias(f"_t{n}"))
    return out


def build_rows(frame: pl.DataFrame, sync: SyncSpec, *, send_nulls: bool = False,
               custom_via: str = "v1") -> BuiltRows:
    key_field = sync.key_field
    custom = sync.custom or [False] * len(sync.fields)
    top: list[pl.Expr] = []
    extra_ids: list[pl.Expr] = []
    sections: dict[str, list[pl.Expr]] = {s: [] for s in SECTIONS}
    customs: list[pl.Expr] = []
    checks: list[tuple[str, pl.Expr, pl.Expr]] = []  # (field, bad, reason)
    for n, (name, is_custom) in enumerate(zip(sync.fields, custom)):
        text = pl.col(f"_t{n}")
        identifier = not is_custom and STANDARD_FIELDS[name].section == "identifiers"
        sent = _sent(text, send_nulls, is_custom, identifier)
        label = f'field "{name}"'
        if is_custom:
            nested = text.str.starts_with("[") | text.str.starts_with("{")
            checks.append((name, sent & nested.fill_null(False), pl.lit(
                f"{label}: Attentive does not accept arrays or objects as attribute values")))
            customs.append(pl.when(sent).then(_member(name, text)))
            continue
        spec = STANDARD_FIELDS[name]
        value = text
        if spec.check is not None:
            value, bad, reason = checked(spec.check, text, label)
            checks.append((name, sent & ~(text == '""') & bad, reason))
        fragment = pl.when(sent).then(_member(spec.key, value))
        if spec.section is None:
            top.append(fragment)
        elif spec.section == "identifiers":
            extra_ids.append(fragment)
        else:
            sections[spec.section].append(fragment)

    id_json = pl.struct(pl.col("_id").alias("a")).struct.json_encode().str.slice(5).str.head(-1)
    custom_object = _object(customs)
    attribute_parts = list(top) + [pl.when(obj.is_not_null()).then(_member(s, obj))
                                   for s, obj in ((s, _object(f)) for s, f in sections.items()) if sections[s]]
    if custom_via == "v2" and customs:
        attribute_parts.append(pl.when(custom_object.is_not_null()).then(_member("custom", custom_object)))
    attributes = _object(attribute_parts)
    extra = pl.concat_str(extra_ids, ignore_nulls=True) if extra_ids else pl.lit("")
    v2 = pl.when(attributes.is_not_null() | (extra != "")).then(pl.concat_str([
        pl.lit('{"identifiers":{' + _json_key(key_field) + ":"), id_json, extra, pl.lit("}"),
        pl.when(attributes.is_not_null()).then(pl.concat_str([pl.lit(',"attributes":'), attributes])).otherwise(
            pl.lit("")),
        pl.lit("}")]))
    if custom_via == "v1" and customs:
        v1 = pl.when(custom_object.is_not_null()).then(pl.concat_str([
            pl.lit('{"properties":'), custom_object, pl.lit(',"user":{' + _json_key(key_field) + ":"), id_json,
            pl.lit("}}")]))
    else:
        v1 = pl.lit(None, pl.String)

    bad_columns = [bad.alias(f"_bad{i}") for i, (_, bad, _) in enumerate(checks)]
    work = frame.with_columns(v2.alias("_v2"), v1.alias("_v1"), *bad_columns)
    rejections: list[Rejection] = []
    if checks:
        any_bad = pl.any_horizontal([pl.col(f"_bad{i}") for i in range(len(checks))])
        bad_rows = work.filter(any_bad)
        for i, (name, _, reason) in enumerate(checks):
            hit = bad_rows.filter(pl.col(f"_bad{i}")).select("_key", reason.alias("reason"))
            rejections += [Rejection(key, why, name) for key, why in hit.iter_rows()]
        work = work.filter(~any_bad)
    out = work.select("_key", "_id", "_v2", "_v1",
                      pl.col("_v2").str.len_bytes().fill_null(0).cast(pl.Int64).alias("_v2_bytes"))
    return BuiltRows(out, rejections)


def custom_name_problems(sync: SyncSpec, custom_via: str = "v1") -> list[tuple[str, str]]:
    """(field, message) for custom attribute names Attentive cannot take; through v2, more custom
    attributes than v2 can create (each row would be refused, and parked, whatever its values)."""
    problems = []
    names = [n for n, c in zip(sync.fields, sync.custom or [False] * len(sync.fields)) if c]
    if custom_via == "v2" and len(names) > V2_CUSTOM_MAX:
        problems.append((names[V2_CUSTOM_MAX], f"{len(names)} custom attributes are mapped with custom_attributes_via: "
                                               f"v2, which creates at most {V2_CUSTOM_MAX}: use v1 (no limit), "
                                               f"or map at most {V2_CUSTOM_MAX}"))
    for name, is_custom in zip(sync.fields, sync.custom or [False] * len(sync.fields)):
        if is_custom and len(name) > NAME_MAX:
            problems.append((name, f"custom attribute name is {len(name)} characters; Attentive allows {NAME_MAX}"))
        elif is_custom and not name.strip():
            problems.append((name, "custom attribute name is blank"))
    return problems
