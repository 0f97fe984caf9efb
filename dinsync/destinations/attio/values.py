"""Attribute values in Attio's write forms, built from the mapping's JSON text of each value.

Every value is sent as an array (`"slug": [v]`, and `[]` for NULL, which clears the value): the
form the OpenAPI file's `values` schema describes, accepted by Attio's type pages for single- and
multi-value attributes alike. Per type:
  - text, number, checkbox, date, timestamp, rating, select and status (by title), email-address,
    domain, phone-number (E.164 from the mapping): `[v]`; a multiselect phone-number (People's
    `phone_numbers`, mapped as `auto`) is put in E.164 here by the mapping's rule, and a value that
    does not parse rejects the row as the mapping would;
  - currency: `[{"currency_value": n}]`, n rounded to 4 decimal places (the spec's maximum);
  - personal-name: a struct -> `{"first_name", "last_name", "full_name"}` (missing parts "", full name
    computed; a struct with every part NULL or empty is no name: `[]`, as for NULL); a string as is
    (Attio reads "Last name(s), First name(s)");
  - location: a struct -> every property (missing ones null, coordinates as strings); a string as is;
  - record-reference: a company by domain, a person by email, any record by id (UUID);
  - multiselect (any type): a list column as the list, a scalar as a one-element list, NULL items dropped.
Simple single values are shaped column-wise in Polars; structured and multiselect values go through
Python once per distinct value.
"""
from __future__ import annotations

import datetime as dt
import decimal
import math
import re
from typing import TYPE_CHECKING, Any, Callable

import orjson

from ..base import Rejection
from .schema import NUMERIC_TYPES, AttributeInfo

if TYPE_CHECKING:  # polars is loaded only when rows are sent
    import polars as pl

LOCATION_KEYS = ("line_1", "line_2", "line_3", "line_4", "locality", "region", "postcode", "country_code",
                 "latitude", "longitude")
NAME_KEYS = ("first_name", "last_name", "full_name")
PYTHON_TYPES = ("personal-name", "location", "record-reference")
# by type: how one bare value is wrapped (the array included)
WRAP = {"currency": ('[{"currency_value":', "}]")}
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_JSON_NUMBER = r"^-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?$"
_SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*://")
CURRENCY_DECIMALS = 4
FLOAT_TYPES = ("number", "currency")  # kept as 64-bit floats (a rating is 0..5)
# a JSON number with more than 4 decimals (or a negative exponent)
_EXCESS_DECIMALS = r"^-?[0-9]+(?:\.[0-9]{5,}(?:[eE][+-]?[0-9]+)?|(?:\.[0-9]+)?[eE]-[0-9]+)$"
# a JSON number that may be 2^53 or more: 16 digits or more before the point, or an exponent
_LARGE_NUMBER = r"^-?(?:[0-9]{16,}|[0-9]+(?:\.[0-9]+)?[eE]\+?[0-9]+)"
FLOAT_EXACT_INTEGERS = 2**53  # from here on, a 64-bit float no longer holds every integer
# An ISO 8601 date or datetime as a warehouse writes it (`2024-01-01 10:00:00.5`, a space for the `T`)
# or Attio returns it (`2024-01-01T10:00:00.500000000Z`): day, time, fraction (up to ns), zone.
_ISO = re.compile(r"(\d{4}-\d{2}-\d{2})(?:[T ](\d{2}:\d{2}(?::\d{2})?)(?:\.(\d{1,9}))?)?"
                  r"\s*(Z|[+-]\d{2}(?::?\d{2})?)?", re.I)
# A record reference by value: the unique attribute used for each target object.
REFERENCE_BY = {"companies": ("domains", "domain"), "people": ("email_addresses", "email_address")}


# ------------------------------------------------------------------------ keys
def normalise_domain(text: str) -> str:
    """A domain as Attio stores it: lowercased; scheme, credentials, port, path, query and fragment
    trimmed ("domain attributes store domains, not URLs"). Nothing else is changed (`www.` stays)."""
    host = _SCHEME.sub("", text.strip().lower())
    host = re.split(r"[/?#]", host, maxsplit=1)[0].rsplit("@", 1)[-1]
    return re.sub(r":\d*$", "", host).rstrip(".")


def instant_form(text: str, attr_type: str) -> str | None:
    """A date or timestamp as Attio stores it: a timestamp's instant in UTC to the nanosecond (no
    zone: UTC, as Attio assumes), a date's day (a datetime's UTC day, as Attio coerces it); None
    when `text` is neither. Keys written by a warehouse (`2024-01-01 10:00:00.5`) and the values Attio
    returns (`2024-01-01T10:00:00.500000000Z`) then compare equal."""
    found = _ISO.fullmatch(text.strip())
    if found is None:
        return None
    day, clock, fraction, zone = found.groups()
    try:
        moment = dt.datetime.fromisoformat(f"{day}T{clock or '00:00'}")
        if zone and zone.upper() != "Z":
            digits = zone[1:].replace(":", "")
            if int(digits[:2]) > 23 or int(digits[2:] or 0) > 59:
                return None  # no offset (ISO 8601, RFC 3339): `+99:99` made another row's instant
            offset = dt.timedelta(hours=int(digits[:2]), minutes=int(digits[2:] or 0))
            moment = moment - offset if zone[0] == "+" else moment + offset
    except (ValueError, OverflowError):
        return None
    if attr_type == "date":
        return moment.date().isoformat()
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + "." + (fraction or "").ljust(9, "0") + "Z"


def match_form(attr_type: str, text: str, region: str | None = None) -> Any:
    """A matching key as Attio compares it (to pair records found by a lookup with keys);
    `region`: the destination's default phone region, for national numbers."""
    if attr_type == "email-address":
        return text.strip().lower()
    if attr_type == "domain":
        return normalise_domain(text)
    if attr_type in ("date", "timestamp"):
        return instant_form(text, attr_type) or text
    if attr_type in NUMERIC_TYPES:
        try:
            return float(text)
        except ValueError:
            return text
    if attr_type == "phone-number":
        return e164(text, region) or text.strip()
    return text


def stored_match_forms(attr_type: str, value: dict) -> list[Any]:
    """The forms of a value Attio returned (a record's matching attribute) that keys compare with."""
    if attr_type == "email-address":
        return [str(v).lower() for v in (value.get("email_address"), value.get("original_email_address")) if v]
    if attr_type == "domain":
        return [normalise_domain(str(value["domain"]))] if value.get("domain") else []
    if attr_type == "phone-number":
        found = value.get("phone_number") or value.get("normalized_phone_number") or value.get("original_phone_number")
        return [str(found)] if found else []
    if attr_type == "currency":
        raw = value.get("currency_value")
    else:
        raw = value.get("value")
    if raw is None:
        return []
    if attr_type in ("date", "timestamp"):
        return [instant_form(str(raw), attr_type) or str(raw)]
    if attr_type in NUMERIC_TYPES:
        try:
            return [float(raw)]
        except (TypeError, ValueError):
            return []
    return [str(raw)]


def key_value_json(attr: AttributeInfo, ident: pl.Expr) -> tuple[pl.Expr, pl.Expr | None]:
    """(JSON text of the key as the attribute takes it, bad-key condition or None)."""
    import polars as pl

    if attr.type in NUMERIC_TYPES:
        text = ident.str.strip_chars()
        return text, ~text.str.contains(_JSON_NUMBER)
    if attr.type == "timestamp":  # ISO 8601's `T`, where a warehouse writes a timestamp with a space
        ident = ident.str.replace(r"^(\d{4}-\d{2}-\d{2}) (\d{2}:)", "${1}T${2}")
    return pl.struct(ident.alias("a")).struct.json_encode().str.slice(5).str.head(-1), None


def is_json_number(text: str) -> bool:
    """Whether a numeric key's text is a number (the test key_value_json applies column-wise)."""
    return re.fullmatch(_JSON_NUMBER, text.strip()) is not None


def key_filter_value(attr: AttributeInfo, ident: str, region: str | None = None) -> Any:
    """The key as a records-query filter operand (a domain, a phone number in the form Attio stores)."""
    if attr.type == "domain":
        return normalise_domain(ident) or ident
    if attr.type == "phone-number":
        return e164(ident, region) or ident
    if attr.type == "timestamp":
        return re.sub(r"^(\d{4}-\d{2}-\d{2}) (\d{2}:)", r"\1T\2", ident)
    if attr.type in NUMERIC_TYPES:
        try:
            number = float(ident)
            return int(number) if number.is_integer() and abs(number) < 2**53 else number
        except ValueError:
            return ident  # Attio answers 400: the lookup is split until the key is isolated, then it is rejected
    return ident


# ------------------------------------------------------------------------ values
def e164(text: str, region: str | None) -> str | None:
    """E.164 by the mapping's phone rule (plausible, not `is_valid_number`: Attio's own example
    +15558675309 is unassigned for libphonenumber), so a multiselect phone attribute, which the
    mapping coerces as `auto`, is checked like a single-value one."""
    from ...mapping.normalize import phone_e164  # (loads polars: only once rows are shaped)

    return phone_e164(text, region)


class ValueShaper:
    """Shapes the values of one attribute (single values column-wise, the rest per distinct value)."""

    def __init__(self, attr: AttributeInfo, name: str, region: str | None):
        self.attr = attr
        self.name = name  # as mapped (slug or attribute id): the key written in `values`
        self.region = region

    @property
    def in_python(self) -> bool:
        return self.attr.is_multiselect or self.attr.type in PYTHON_TYPES

    def polars(self, t: pl.Expr) -> pl.Expr:
        """`t`: JSON text of a value (``null`` for NULL) -> the JSON array sent for it."""
        import polars as pl

        before, after = WRAP.get(self.attr.type, ("[", "]"))
        if self.attr.type == "currency":
            t = currency_json(t)
        return (pl.when(t == "null").then(pl.lit("[]"))
                .when(t.str.starts_with("[")).then(t)  # already an array (e.g. `type: json`)
                .when(t.str.starts_with("{")).then(pl.concat_str([pl.lit("["), t, pl.lit("]")]))  # an object form
                .otherwise(pl.concat_str([pl.lit(before), t, pl.lit(after)])))

    def python(self, text: str) -> tuple[str | None, str | None]:
        """JSON text of a value -> (the JSON array sent for it, or None and why it cannot be sent)."""
        value = orjson.loads(text)
        if value is None:
            return "[]", None
        items = value if isinstance(value, list) else [value]
        out = []
        item_form: Callable[[Any], Any] = getattr(self, "_" + self.attr.type.replace("-", "_"), _as_is)
        for item in items:
            if item is None:
                continue
            try:
                form = item_form(item)
            except ValueError as exc:
                return None, f'field "{self.name}": {exc}'
            if form is not None:  # None: an item with nothing in it (an empty name), dropped like NULL
                out.append(form)
        return orjson.dumps(out).decode(), None

    # one item -> its write form (ValueError: cannot be written)
    def _email_address(self, item: Any) -> Any:
        return item.strip().lower() if isinstance(item, str) else item

    def _phone_number(self, item: Any) -> Any:
        if isinstance(item, (str, int)) and not isinstance(item, bool):
            text = str(item)
            number = e164(text, self.region)
            if number is None:  # Attio takes "+<country code>..." strings only: as the mapping words it
                from ...mapping.field_kinds import phone_note

                raise ValueError(f"invalid phone number {text[:100]!r}{phone_note(text, self.region)}")
            return number
        return item  # {original_phone_number, country_code}: Attio parses it

    def _currency(self, item: Any) -> Any:
        if isinstance(item, float):
            item = round(item, CURRENCY_DECIMALS)
        return item if isinstance(item, dict) else {"currency_value": item}

    def _personal_name(self, item: Any) -> Any:
        if not isinstance(item, dict):
            return item  # a string: Attio reads "Last name(s), First name(s)"
        first, last = (str(item.get(k) or "") for k in ("first_name", "last_name"))
        full = item.get("full_name") or " ".join(p for p in (first, last) if p)
        if not (first.strip() or last.strip() or str(full).strip()):
            return None  # every part NULL or empty: `[]` clears the name, as NULL does
        return {"first_name": first, "last_name": last, "full_name": str(full)}

    def _location(self, item: Any) -> Any:
        if not isinstance(item, dict):
            return item  # a string: Attio parses free text
        out = {k: item.get(k) for k in LOCATION_KEYS}
        out.update({k: v for k, v in item.items() if k not in out})  # unknown keys: Attio decides
        for k in ("latitude", "longitude"):
            if isinstance(out[k], (int, float)) and not isinstance(out[k], bool):
                out[k] = _coordinate(out[k])
        return out

    def _record_reference(self, item: Any) -> Any:
        targets = self.attr.targets
        if isinstance(item, dict):
            if "target_object" not in item and len(targets) == 1:
                return {"target_object": targets[0], **item}
            return item
        if not isinstance(item, str) or len(targets) != 1:
            raise ValueError(f"a reference to {' or '.join(targets) or 'a record'} is a record id, or an object "
                             "with target_object")
        target = targets[0]
        if _UUID.fullmatch(item.strip()):
            return {"target_object": target, "target_record_id": item.strip()}
        if target not in REFERENCE_BY:
            raise ValueError(f"a reference to {target} is given by record id (UUID), not {item[:100]!r}")
        slug, prop = REFERENCE_BY[target]
        return {"target_object": target, slug: [{prop: item.strip()}]}


def float_stored(text: str) -> str | None:
    """The number Attio would store instead of `text` ("Numbers are persisted as 64 bit floats", spec
    `input-value`; currency amounts alike) when its float changes the number's integer part (2^53 or
    more: 1234567890123456789 -> 1234567890123456768); None when the float holds it (2^60, 1e20), or
    only rounds its 16th or later significant digit after the point, as any number column would."""
    try:
        exact = decimal.Decimal(text.strip())
        number = float(exact)
    except (decimal.InvalidOperation, ValueError, OverflowError):
        return None
    if not math.isfinite(number) or abs(exact) < FLOAT_EXACT_INTEGERS:
        return None
    if decimal.Decimal(number) == exact or decimal.Decimal(repr(number)) == exact:
        return None
    return format(decimal.Decimal(number), "f") if abs(number) < 1e21 else repr(number)


def float_change_reasons(texts: pl.Series, name: str) -> pl.Series | None:
    """Per row, why its number cannot be written as it is (see `float_stored`), or None; None when no
    row's number changes (the usual case: a regex pass, no Python per row)."""
    import polars as pl

    candidates = texts.filter(texts.str.contains(_LARGE_NUMBER).fill_null(False)).unique().to_list()
    reasons = {}
    for text in candidates:
        stored = float_stored(text)
        if stored is not None:
            reasons[text] = (f'field "{name}": {text[:100]} is beyond what a 64-bit float holds exactly: Attio keeps '
                             f"numbers as 64-bit floats and would store {stored}, another number (send it to a "
                             "text attribute)")
    if not reasons:
        return None
    return texts.replace_strict(pl.Series(list(reasons), dtype=pl.String),
                                pl.Series(list(reasons.values()), dtype=pl.String), default=None,
                                return_dtype=pl.String)


def currency_json(t: pl.Expr) -> pl.Expr:
    """JSON text of a currency amount, rounded to the 4 decimal places Attio takes ("A decimal
    with a max of 4 decimal places", spec `currency_value`): a computed DOUBLE such as 1.0 / 3 or
    0.1 + 0.2 would otherwise get the row refused. The rounding is done on the number's digits
    (half away from zero), never through a float, which changed the integer part of long amounts.
    Other texts (integers, up to 4 decimals, `null`, objects, arrays) are left as they are."""
    import polars as pl

    excess = t.str.contains(_EXCESS_DECIMALS).fill_null(False)
    return pl.when(excess).then(t.map_batches(_rounded_amounts, return_dtype=pl.String)).otherwise(t)


_ROUNDING = decimal.Context(prec=1_000, rounding=decimal.ROUND_HALF_UP)
_QUANTUM = decimal.Decimal(1).scaleb(-CURRENCY_DECIMALS)


def _rounded_amounts(texts: pl.Series) -> pl.Series:
    """Each text with excess decimals rounded to CURRENCY_DECIMALS (Python, once per distinct such
    value of the batch: rare), in plain notation without trailing zeros; other texts unchanged."""
    import polars as pl

    found = texts.filter(texts.str.contains(_EXCESS_DECIMALS).fill_null(False)).unique().to_list()
    if not found:
        return texts
    plain = {}
    for text in found:
        try:  # (amounts reach here within a float's range: 309 digits at most before the point)
            rounded = format(decimal.Decimal(text).quantize(_QUANTUM, context=_ROUNDING), "f")
        except decimal.InvalidOperation:
            continue  # left as it is: Attio's answer for that row decides
        rounded = rounded.rstrip("0").rstrip(".") if "." in rounded else rounded
        plain[text] = "0" if rounded in ("-0", "") else rounded
    return texts.replace(plain).cast(pl.String)


def _coordinate(number: float) -> str:
    """A coordinate as the spec's pattern takes it: decimal notation, never an exponent (repr(1e-05)
    is '1e-05'); Attio keeps 9 decimal places."""
    text = repr(number)
    if "e" in text or "E" in text:
        text = f"{number:.9f}".rstrip("0").rstrip(".")
    return text


def _as_is(item: Any) -> Any:
    return item


def shape_values(frame: pl.DataFrame, shapers: list[tuple[int, ValueShaper]]) -> tuple[pl.DataFrame, list[Rejection]]:
    """Add `_values`: the comma-separated `"name":[...]` members of the fields sent for each row.

    `shapers`: (n of the mapping's `_t{n}` column, shaper). Rows with a value that cannot be
    written are taken out and returned as rejections."""
    import polars as pl

    rejections: list[Rejection] = []
    fragments: list[pl.Expr] = []
    bad_columns: dict[str, str] = {}  # column of the reasons -> the field they are about
    extra: list[pl.Series] = []
    for n, shaper in shapers:
        col = f"_t{n}"
        prefix = pl.lit(orjson.dumps(shaper.name).decode() + ":")
        if shaper.in_python:
            texts = frame.get_column(col)
            distinct = texts.drop_nulls().unique().to_list()
            shaped = {t: shaper.python(t) for t in distinct}
            values = pl.Series([shaped[t][0] for t in distinct], dtype=pl.String)
            reasons = pl.Series([shaped[t][1] for t in distinct], dtype=pl.String)
            source = pl.Series(distinct, dtype=pl.String)
            extra.append(texts.replace_strict(source, values, default=None, return_dtype=pl.String).alias(f"_s{n}"))
            why = texts.replace_strict(source, reasons, default=None, return_dtype=pl.String).alias(f"_why{n}")
            if why.null_count() < why.len():
                extra.append(why)
                bad_columns[f"_why{n}"] = shaper.name
            value = pl.col(f"_s{n}")
        else:
            value = shaper.polars(pl.col(col))
            if shaper.attr.type in FLOAT_TYPES:  # an amount as rounded to Attio's 4 decimals
                amounts = frame.select(currency_json(pl.col(col)) if shaper.attr.type == "currency"
                                       else pl.col(col)).to_series()
                why = float_change_reasons(amounts, shaper.name)
                if why is not None:
                    extra.append(why.alias(f"_why{n}"))
                    bad_columns[f"_why{n}"] = shaper.name
        fragments.append(pl.when(pl.col(col).is_not_null()).then(pl.concat_str([prefix, value])))
    if extra:
        frame = frame.with_columns(extra)
    if bad_columns:
        bad = pl.any_horizontal([pl.col(c).is_not_null() for c in bad_columns])
        for row in frame.filter(bad).select("_key", *bad_columns).iter_rows(named=True):
            found = [c for c in bad_columns if row[c] is not None]
            rejections.append(Rejection(row["_key"], "; ".join(row[c] for c in found),
                                        ", ".join(bad_columns[c] for c in found)))
        frame = frame.filter(~bad)
    values = pl.concat_str(fragments, separator=",", ignore_nulls=True) if fragments else pl.lit("")
    return frame.with_columns(values.fill_null("").alias("_values")), rejections
