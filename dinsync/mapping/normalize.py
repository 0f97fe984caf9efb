"""Identifier normalisation and validation as Polars expressions.

Only what no platform can accept is rejected here; everything else is sent and the platform's
per-record answer decides (an RFC 6531 address such as ``amélie@example.net`` or ``josé@例え.jp``
is valid for platforms that support international mail, and a platform that does not says so
for that record alone).

Email rules (applied to the normalised value: trimmed and lowercased):
  - not empty, at most 254 bytes of UTF-8, no whitespace or control characters;
  - exactly one ``@``, with a non-empty local part of at most 64 bytes and a non-empty domain.

Phones are parsed with ``phonenumbers`` (the only per-value Python here), once per distinct
value, and joined back. A number is sent (in E.164) when it parses, its length is possible for its
country and it has the shape of that country's numbers (libphonenumber's general pattern: in the
North American plan, no area code starting with 0 or 1); whether it is *valid* (an assigned range)
is the platform's call: libphonenumber's ranges lag behind new allocations, and the platforms' own
examples are numbers it calls invalid (Attio's ``+15558675309``, Attentive's ``+13115552368``), so
a stricter check would reject numbers a platform accepts. Text that is not a number, too short or
too long numbers, unknown country codes and numbers only dialable locally are rejected here.
"""
from __future__ import annotations

import re
from functools import lru_cache
from typing import TYPE_CHECKING

import polars as pl

if TYPE_CHECKING:
    import phonenumbers

EMAIL_MAX = 254
LOCAL_MAX = 64
PREVIEW_CHARS = 100
_BAD_CHARS = r"[\s\x00-\x1f\x7f]"


def preview(expr: pl.Expr, limit: int = PREVIEW_CHARS) -> pl.Expr:
    """A value quoted for an error message, cut to `limit` characters (rows may hold megabytes)."""
    s = expr.cast(pl.String)
    cut = pl.when(s.str.len_chars() > limit).then(pl.concat_str([s.str.slice(0, limit), pl.lit("…")])).otherwise(s)
    return pl.concat_str([pl.lit("'"), cut, pl.lit("'")])


def normalize_email(expr: pl.Expr) -> pl.Expr:
    """Trim surrounding whitespace and lowercase."""
    return expr.cast(pl.String).str.strip_chars().str.to_lowercase()


def email_is_valid(expr: pl.Expr) -> pl.Expr:
    """True when the value can be an email on some platform (see module docstring); False for NULL."""
    s = expr.cast(pl.String)
    at = s.str.find("@", literal=True)
    return (
        s.is_not_null()
        & (s.str.len_bytes() <= EMAIL_MAX)
        & ~s.str.contains(_BAD_CHARS)
        & (s.str.count_matches("@", literal=True) == 1)
        & (at > 0)
        & (s.str.len_bytes() - at > 1)  # a domain after the @
        & (s.str.extract(r"^([^@]*)@", 1).str.len_bytes() <= LOCAL_MAX)
    ).fill_null(False)


def email_problem(expr: pl.Expr) -> pl.Expr:
    """Why a value cannot be an email (a short phrase), NULL when it can or is NULL."""
    s = expr.cast(pl.String)
    at_count = s.str.count_matches("@", literal=True)
    local = s.str.extract(r"^([^@]*)@", 1)
    domain = s.str.extract(r"@([^@]*)$", 1)
    checks = [
        (s == "", "is empty"),
        (s.str.len_bytes() > EMAIL_MAX, f"is longer than {EMAIL_MAX} bytes"),
        (s.str.contains(_BAD_CHARS), "contains whitespace or control characters"),
        (at_count == 0, "has no @"),
        (at_count > 1, "has more than one @"),
        (local.str.len_bytes() == 0, "has an empty local part"),
        (local.str.len_bytes() > LOCAL_MAX, f"has a local part longer than {LOCAL_MAX} bytes"),
        (domain.str.len_bytes() == 0, "has an empty domain"),
    ]
    chain = pl.when(s.is_null()).then(pl.lit(None, pl.String))
    for cond, phrase in checks:
        chain = chain.when(cond).then(pl.lit(phrase))
    return chain.otherwise(pl.lit(None, pl.String))


def _phonenumbers():
    """phonenumbers, imported when a phone is first parsed: 58 modules and ~30 ms of CPU that a
    sync without phone values (every email-keyed sync to Iterable, say) never needs; its mapping
    imports this module all the same."""
    import phonenumbers

    return phonenumbers


@lru_cache(maxsize=None)
def _national_shape(country_code: int) -> re.Pattern[str] | None:
    """The general pattern of a country calling code's national numbers (None: no metadata)."""
    phonenumbers = _phonenumbers()
    region = phonenumbers.region_code_for_country_code(country_code)
    meta = phonenumbers.PhoneMetadata.metadata_for_region_or_calling_code(country_code, region)
    pattern = meta.general_desc.national_number_pattern if meta and meta.general_desc else None
    return re.compile(pattern) if pattern else None


def _plausible(number: phonenumbers.PhoneNumber) -> bool:
    """Possible length and the general shape of the country's numbers (see the module's doc)."""
    phonenumbers = _phonenumbers()
    if phonenumbers.is_possible_number_with_reason(number) != phonenumbers.ValidationResult.IS_POSSIBLE:
        return False
    shape = _national_shape(number.country_code)
    return shape is None or shape.fullmatch(phonenumbers.national_significant_number(number)) is not None


@lru_cache(maxsize=200_000)
def _e164(value: str, region: str | None) -> str | None:
    text = value.strip()
    if not text:
        return None
    phonenumbers = _phonenumbers()
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        return None
    if not _plausible(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def phone_e164(value: str, region: str | None = None) -> str | None:
    """One number in E.164 by the phone kind's rule (`normalize_phones`), None when it is not a
    plausible number: for values a destination shapes itself (e.g. Attio's multiselect phone
    attributes, which the mapping coerces as `auto`), so they are checked as the mapping checks them."""
    return _e164(value, region.upper() if region else None)


def normalize_phones(series: pl.Series, region: str | None = None) -> pl.Series:
    """E.164 form of each phone number, NULL when it is missing or not a possible number (see the
    module's doc).

    National numbers need `region` (ISO 3166 alpha-2, e.g. "US", "FR"); without it only
    numbers written in international form (starting with "+") parse.
    Parsing runs once per distinct value (cached across batches), then maps back vectorised.
    """
    s = series if series.dtype == pl.String else series.cast(pl.String)
    region = region.upper() if region else None
    distinct = s.drop_nulls().unique()
    if distinct.len() == 0:
        return pl.Series(series.name, [None] * s.len(), dtype=pl.String)
    parsed = pl.Series([_e164(v, region) for v in distinct.to_list()], dtype=pl.String)
    return s.replace_strict(distinct, parsed, default=None, return_dtype=pl.String).alias(series.name)


# --- phone numbers as matching keys -----------------------------------------------------------
# The same rule as the diff's SQL (dinsync/diff/keys.py), so that two spellings of one number are
# one key in the warehouse and in Polars. It is a normalisation, not a validation: a value that is
# not a real number still gets a key (validation of the value sent is `normalize_phones`); one that
# holds more than digits and separators gets its text as written, which the mapping rejects.


def phone_key_params(region: str | None) -> tuple[str, str]:
    """(country calling code, national trunk prefix) of an ISO 3166 region from phonenumbers'
    metadata, as digit strings: "FR" -> ("33", "0"), "US" -> ("1", "1"), "IT" -> ("39", "")."""
    if not region:
        return "", ""
    code = region.strip().upper()
    phonenumbers = _phonenumbers()
    cc = phonenumbers.country_code_for_region(code)
    if not cc:
        raise ValueError(f"unknown phone region {region!r} (expected an ISO 3166 alpha-2 code such as US or FR)")
    meta = phonenumbers.PhoneMetadata.metadata_for_region(code)
    trunk = (meta.national_prefix if meta is not None else None) or ""
    if not trunk.isdigit():
        trunk = ""
    return str(cc), trunk


# What a phone key is read through: ASCII digits and the separators people write in numbers
# (space, tab, CR, LF, no-break spaces, '-', '.', '(', ')', '/', dashes), as a regular-expression
# class; the same class as the SQL's (dinsync.diff.dialects.PHONE_KEY_READ, which a test checks).
PHONE_KEY_READ = "[-0-9 \\t\\n\\r()./\u00a0\u202f\u2010\u2011\u2012\u2013\u2014\u2015\u2212]"


def _phone_key_parts(expr: pl.Expr) -> tuple[pl.Expr, pl.Expr, pl.Expr, pl.Expr]:
    """(text without '(0)', its ASCII digits, its digits and '+', the rest: '+' and anything but
    the separators)."""
    s = expr.cast(pl.String).str.replace_all("(0)", "", literal=True)
    return (s, s.str.replace_all(r"[^0-9]", ""), s.str.replace_all(r"[^0-9+]", ""),
            s.str.replace_all(PHONE_KEY_READ, ""))


def phone_key_unreadable(expr: pl.Expr) -> pl.Expr:
    """Whether a phone number holds more than the key reads: anything but ASCII digits, the
    separators and one '+' in front of them (a non-ASCII digit, a letter, '*', '#', ...). Its key
    is its text as written (`phone_key_expr`), which the mapping rejects: its ASCII digits alone
    may be another number. NULL for NULL."""
    _, _, kept, rest = _phone_key_parts(expr)
    return _unreadable(kept, rest)


def _unreadable(kept: pl.Expr, rest: pl.Expr) -> pl.Expr:
    """`phone_key_unreadable` of the parts `_phone_key_parts` made (its digits and '+', the rest)."""
    return (rest != "") & ~((rest == "+") & kept.str.starts_with("+"))


def phone_key_expr(expr: pl.Expr, region: str | None = None) -> pl.Expr:
    """Matching key of a phone number: keep '+' and ASCII digits; a leading '+' stays; else a
    leading '00' becomes '+'; else '+<country code>' after dropping the trunk prefix of `region`
    (without a region: the digits without '+', which the mapping rejects: '+' in front of a
    national number made another country's); a '(0)' inside is dropped first (the trunk prefix in
    +44 (0)20 ..., which E.164 drops). Only separators are dropped: a value holding anything
    else (`phone_key_unreadable`) keeps its text as written. No ASCII digit, and nothing but ASCII
    letters, '+' and separators ('', 'n/a', 'CALL ME') -> NULL."""
    cc, trunk = phone_key_params(region)
    _, digits, kept, rest = _phone_key_parts(expr)
    national = pl.lit("+" + cc) + digits if cc else digits
    if trunk:
        national = (
            pl.when(digits.str.starts_with(trunk))
            .then(pl.lit("+" + cc) + digits.str.slice(len(trunk)))
            .otherwise(national)
        )
    international = pl.lit("+") + digits.str.slice(2)
    return (
        pl.when(digits.is_null() | ((digits == "") & (rest.str.replace_all(r"[A-Za-z+]", "") == "")))
        .then(pl.lit(None, pl.String))
        .when(_unreadable(kept, rest))
        .then(expr.cast(pl.String))
        .when(kept.str.starts_with("+"))
        .then(pl.lit("+") + digits)
        .when(digits.str.starts_with("00"))
        .then(pl.when(international == "+").then(pl.lit(None, pl.String)).otherwise(international))
        .otherwise(national)
    )
