"""Attentive's standard user fields, where they go in the v2 body, and their checks (as data).

Field names are those of the v2 user-attributes body (`firstName`, `dateOfBirth`, `zip`,
`timezone`...), except `address` (v2 `location.address1`, as Attentive's UI and DinMo name it).
`email` and `phone` are identifiers in v2 (`identifiers.email` / `identifiers.phone`): mapping the
one a sync does not match on adds it to the subscriber.

Each field has a mapping kind (the engine coerces and validates the column to it: E.164 phones,
YYYY-MM-DD dates, integers, numbers) and, where Attentive documents a format the kind does not
cover, a check here: coordinates within range and sent as strings, ISO-3166 country and region
shapes, a non-negative age. A value that fails a check rejects its row with a reason.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

from ..base import FieldSpec

if TYPE_CHECKING:
    import polars as pl


@dataclass(frozen=True)
class StandardField:
    name: str
    section: str | None  # None: attributes.<key>; "identifiers": identifiers.<key>; else attributes.<section>.<key>
    key: str  # the key in the v2 body
    kind: str  # mapping kind
    check: str | None = None  # name of a check in CHECKS
    description: str = ""


STANDARD_FIELDS: dict[str, StandardField] = {f.name: f for f in (
    StandardField("firstName", None, "firstName", "string", description="first name"),
    StandardField("lastName", None, "lastName", "string", description="last name"),
    StandardField("email", "identifiers", "email", "email", description="email (identifier)"),
    StandardField("phone", "identifiers", "phone", "phone", description="phone, E.164 (identifier)"),
    StandardField("language", "demographic", "language", "string", description="language"),
    StandardField("dateOfBirth", "demographic", "dateOfBirth", "date", description="date of birth, YYYY-MM-DD"),
    StandardField("age", "demographic", "age", "integer", "age", description="age, a non-negative integer"),
    StandardField("organization", "demographic", "organization", "string", description="organization"),
    StandardField("title", "demographic", "title", "string", description="title"),
    StandardField("website", "demographic", "website", "string", description="website"),
    StandardField("address", "location", "address1", "string", description="address (first line)"),
    StandardField("address2", "location", "address2", "string", description="address (second line)"),
    StandardField("city", "location", "city", "string", description="city"),
    StandardField("state", "location", "state", "string", description="state"),
    StandardField("zip", "location", "zip", "string", description="zip code (text: leading zeros matter)"),
    StandardField("country", "location", "country", "string", "country", description="country, ISO-3166-1 alpha-2"),
    StandardField("region", "location", "region", "string", "region", description="region, ISO-3166-2 (AU-NSW)"),
    StandardField("latitude", "location", "latitude", "number", "latitude", description="latitude, -90..90"),
    StandardField("longitude", "location", "longitude", "number", "longitude", description="longitude, -180..180"),
    StandardField("timezone", "location", "timezone", "string", description="time zone"),
    StandardField("localeLanguage", "locale", "language", "string", description="locale language"),
    StandardField("localeCountry", "locale", "country", "string", "country",
                  description="locale country, ISO-3166-1 alpha-2"),
)}

FIELD_SPECS: dict[str, FieldSpec] = {
    f.name: FieldSpec(f.name, kind=f.kind, description=f.description) for f in STANDARD_FIELDS.values()
}
# standard fields that identify a subscriber (v2 `identifiers`)
IDENTIFIER_FIELDS = frozenset(f.name for f in STANDARD_FIELDS.values() if f.section == "identifiers")
SECTIONS = ("demographic", "location", "locale")  # v2 attributes sub-objects, in body order


# --- checks: (JSON text of a value) -> (formatted JSON text, bad, reason) ---------------------------

def _inner(text: "pl.Expr") -> "pl.Expr":
    """The value inside a JSON string literal (no unescaping: the checked shapes have no escapes),
    or the text itself (numbers)."""
    import polars as pl

    return pl.when(text.str.starts_with('"')).then(text.str.slice(1).str.head(-1)).otherwise(text)


def _quoted(value: "pl.Expr") -> "pl.Expr":
    import polars as pl

    return pl.concat_str([pl.lit('"'), value, pl.lit('"')])


def preview(text: "pl.Expr") -> "pl.Expr":
    from ...mapping.normalize import preview as quoted_preview  # polars only where used

    return quoted_preview(text)


def _code(pattern: str, what: str) -> Callable:
    def check(text: "pl.Expr", label: str):
        import polars as pl

        raw = _inner(text).str.strip_chars()
        code = raw.str.to_uppercase()
        # Unicode's upper case makes ASCII of some other letters ('ﬁ' -> 'FI', 'ıt' -> 'IT'): a
        # code holding anything but ASCII is refused before it could pass for another
        bad = ~code.str.contains(pattern).fill_null(False) | raw.str.contains(r"[^\x00-\x7f]").fill_null(False)
        reason = pl.concat_str([pl.lit(f"{label}: "), preview(_inner(text)), pl.lit(f" is not {what}")])
        return _quoted(code), bad, reason
    return check


def _coordinate(bound: float, what: str) -> Callable:
    def check(text: "pl.Expr", label: str):
        import polars as pl

        raw = _inner(text).str.strip_chars()
        number = raw.cast(pl.Float64, strict=False)
        bad = ~(number.is_finite() & (number.abs() <= bound)).fill_null(False)
        reason = pl.concat_str([pl.lit(f"{label}: "), preview(_inner(text)),
                                pl.lit(f" is not a {what} between -{bound:g} and {bound:g}")])
        # Attentive takes coordinates as strings, in decimal ("40.730610"): never "1e-07"
        return _quoted(raw.map_batches(_positional, return_dtype=pl.String)), bad, reason
    return check


def _positional(texts: "pl.Series") -> "pl.Series":
    """Numbers written with an exponent ("1e-07") in decimal notation ("0.0000001"); other texts as
    they are. Python formats the distinct such values only (rare: coordinates within 1e-4 of 0)."""
    from decimal import Decimal, InvalidOperation

    found = texts.filter(texts.str.contains("[eE]").fill_null(False)).unique().to_list()
    plain = {}
    for text in found:
        try:
            plain[text] = format(Decimal(text), "f")
        except InvalidOperation:
            continue  # not a number: the range check rejects its row
    return texts.replace(plain) if plain else texts


def _age(text: "pl.Expr", label: str):
    import polars as pl

    number = _inner(text).str.strip_chars().cast(pl.Int64, strict=False)
    bad = ~(number >= 0).fill_null(False)
    reason = pl.concat_str([pl.lit(f"{label}: "), preview(_inner(text)), pl.lit(" is not a non-negative integer")])
    return number.cast(pl.String), bad, reason


CHECKS: dict[str, Callable] = {
    "country": _code(r"^[A-Z]{2}$", "an ISO-3166-1 alpha-2 country code (e.g. US)"),
    "region": _code(r"^[A-Z]{2}-[A-Z0-9]{1,3}$", "an ISO-3166-2 subdivision code (e.g. AU-NSW)"),
    "latitude": _coordinate(90.0, "latitude"),
    "longitude": _coordinate(180.0, "longitude"),
    "age": _age,
}
