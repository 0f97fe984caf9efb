"""Identifier normalisation and validation as Polars expressions.

Only what no platform can accept is rejected here; everything else is sent and the platform's
per-record answer decides (an RFC 6531 address such as ``amélie@example.net`` or ``josé@例え.jp``
is valid for platforms that support international mail, and a platform that does not says so
for that record alone).

Email rules (applied to the normalised value: trimmed and lowercased):
  - not empty, at most 254 bytes of UTF-8, no whitespace or control characters;
  - exactly one ``@``, with a non-empty local part of at most 64 bytes and a non-empty domain.

Phones are parsed with ``phonenumbers`` (the only per-value Python here), once per distinct
value, and joined back.
"""
from __future__ import annotations

from functools import lru_cache

import phonenumbers
import polars as pl

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


@lru_cache(maxsize=200_000)
def _e164(value: str, region: str | None) -> str | None:
    text = value.strip()
    if not text:
        return None
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def normalize_phones(series: pl.Series, region: str | None = None) -> pl.Series:
    """E.164 form of each phone number, NULL when it is missing or not a valid number.

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
