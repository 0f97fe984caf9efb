"""Matching keys that are distinct in the model but one record in Attio, caught before sending.

The diff tells keys apart by their text; Attio by the value it stores. Two rows whose keys Attio
reads as the same value would be written to one record (each overwriting the other, both
acknowledged), so within a batch they are withheld (`duplicate=True`: the next run plans them again
once the model holds one). Per key type:
  - domain: Attio lowercases and trims scheme, path and query (`Acme.com`, `https://acme.com/`);
  - email-address: Attio stores the address normalised, its local part in Unicode NFC and its domain
    as Unicode (`cafe\u0301@…` and `café@…`; `user@xn--exmple-cua.com` and `user@exämple.com`);
  - number, currency, rating: Attio keeps numbers as 64-bit floats ("Numbers are persisted as 64
    bit floats", spec `input-value`): `1`, `1.0`, `1e0`, `-0` and `0` are one number. A key that is
    not the number its float is (9007199254740993 is stored as 9007199254740992, another row's key)
    can never be matched as written: rejected for its content (parked until it changes);
  - phone-number: Attio stores the number in E.164 (`+33 6 12 34 56 78` and `+33612345678`); keys
    are sent in that form, national ones with the destination's default region (`e164_keys`);
  - date, timestamp: Attio stores a day, an instant in UTC (`2024-01-01 10:00:00` and
    `2024-01-01T12:00:00+02:00`).
"""
from __future__ import annotations

import decimal
import math
from typing import TYPE_CHECKING, Callable

import orjson

from ..base import Rejection, email_form
from .values import e164, instant_form, normalise_domain

if TYPE_CHECKING:
    import polars as pl


def float_key(text: str) -> float | None:
    """A numeric key as the 64-bit float Attio stores; None when that float is another number
    (its shortest decimal form differs from the key's value: 9007199254740993, 0.10000000000000001,
    1e400). 0.1 is kept: Attio stores and returns 0.1, and no other key reads as that float."""
    try:
        exact = decimal.Decimal(text.strip())
        number = float(exact)
    except (decimal.InvalidOperation, ValueError, OverflowError):
        return None
    if not math.isfinite(number) or decimal.Decimal(repr(number)) != exact:
        return None
    return number + 0.0  # -0 is 0 for Attio


def inexact_numbers(frame: pl.DataFrame, key_field: str) -> tuple[pl.DataFrame, list[Rejection]]:
    """Rows whose numeric key Attio cannot store as written (see `float_key`): rejected, parked."""
    ids = frame.get_column("_id").to_list()
    bad = [float_key(i) is None for i in ids]
    if not any(bad):
        return frame, []
    import polars as pl

    rejected = [Rejection(k, f'key "{key_field}": {i!r} is not a 64-bit float: Attio keeps numbers as 64-bit '
                             f"floats and would store it as {_stored(i)} (another number); use keys a 64-bit float "
                             "holds exactly (integers up to 2^53)", key_field)
                for k, i, b in zip(frame.get_column("_key").to_list(), ids, bad) if b]
    return frame.filter(~pl.Series(bad)), rejected


def same_number(frame: pl.DataFrame, key_field: str) -> tuple[pl.DataFrame, list[Rejection]]:
    """Rows of a batch whose keys are one number for Attio (`1`, `1.0`, `1e0`): withheld, not parked."""
    return _withhold_same(frame, lambda i: repr(float_key(i)), lambda i, form, others: (
        f'key "{key_field}": {i!r} is the same number for Attio as {others} on another row of the model '
        "(Attio keeps numbers as 64-bit floats); make the model's keys unique as numbers"), key_field)


def same_domain(frame: pl.DataFrame, key_field: str) -> tuple[pl.DataFrame, list[Rejection]]:
    """Rows of a batch whose domains Attio would read as the same company (e.g. `Acme.com` and
    `https://acme.com/`): withheld, like duplicated keys, and not parked: once the model holds one
    of them, the next run sends it (its own values never changed)."""
    return _withhold_same(frame, normalise_domain, lambda i, form, others: (
        f'key "{key_field}": {i!r} is the same domain for Attio ({form!r}) as {others} on another row of the '
        "model; make the model's domains unique after lowercasing and trimming scheme and path"), key_field)


def same_email(frame: pl.DataFrame, key_field: str) -> tuple[pl.DataFrame, list[Rejection]]:
    """Rows of a batch whose email keys are one address for Attio (`email_form`): withheld, not
    parked, like same_domain."""
    return _withhold_same(frame, email_form, lambda i, form, others: (
        f'key "{key_field}": {i!r} is the same email address for Attio ({form!r}) as {others} on another row '
        "of the model (Attio stores addresses in Unicode NFC, their domains decoded from IDNA); make the "
        "model's addresses unique in that form"), key_field)


def e164_keys(frame: pl.DataFrame, region: str | None) -> pl.DataFrame:
    """`_kjson` of phone keys in E.164, as Attio stores them (a national number read with the default
    region, which Attio cannot do without a country code); a key that does not parse is sent as
    written: Attio's answer decides."""
    import polars as pl

    ids = frame.get_column("_id")
    distinct = ids.unique()
    forms = pl.Series([orjson.dumps(e164(i, region) or i).decode() for i in distinct.to_list()], dtype=pl.String)
    return frame.with_columns(ids.replace_strict(distinct, forms, return_dtype=pl.String).alias("_kjson"))


def same_phone(frame: pl.DataFrame, key_field: str, region: str | None) -> tuple[pl.DataFrame, list[Rejection]]:
    """Rows of a batch whose keys are one phone number for Attio (`+33 6 12 34 56 78`,
    `+33612345678`, `06 12 34 56 78` with region FR): withheld, not parked, like same_domain."""
    return _withhold_same(frame, lambda i: e164(i, region) or i, lambda i, form, others: (
        f'key "{key_field}": {i!r} is the same phone number for Attio ({form!r}) as {others} on another row of '
        "the model; make the model's phone numbers unique in E.164"), key_field)


def same_instant(frame: pl.DataFrame, key_field: str, attr_type: str) -> tuple[pl.DataFrame, list[Rejection]]:
    """Rows of a batch whose date or timestamp keys are one value for Attio (one day, one instant):
    withheld, not parked, like same_domain."""
    what = "day" if attr_type == "date" else "instant"
    return _withhold_same(frame, lambda i: instant_form(i, attr_type) or i, lambda i, form, others: (
        f'key "{key_field}": {i!r} is the same {what} for Attio ({form!r}) as {others} on another row of the '
        f"model; write the model's keys in one form"), key_field)


def _withhold_same(frame: pl.DataFrame, form_of: Callable[[str], str], reason: Callable[[str, str, str], str],
                   key_field: str) -> tuple[pl.DataFrame, list[Rejection]]:
    """Take out the rows whose keys share a form; `reason(key text, form, the other rows' key texts)`.
    Each rejection names the matching attribute as its field, as the model's duplicated keys do."""
    import polars as pl

    ids = frame.get_column("_id")
    distinct = ids.unique()
    forms = ids.replace_strict(distinct, pl.Series([form_of(d) for d in distinct.to_list()], dtype=pl.String),
                               return_dtype=pl.String)
    dup = forms.is_duplicated()
    if not dup.any():
        return frame, []
    texts: dict[str, list[str]] = {}
    for i, f in zip(ids.filter(dup).to_list(), forms.filter(dup).to_list()):
        texts.setdefault(f, []).append(i)
    rejected = []
    for k, i, f in zip(frame.filter(dup)["_key"], frame.filter(dup)["_id"], forms.filter(dup)):
        others = ", ".join(repr(o) for o in dict.fromkeys(texts[f]) if o != i) or repr(i)
        rejected.append(Rejection(k, reason(i, f, others), key_field, duplicate=True))
    return frame.filter(~dup), rejected


def _stored(text: str) -> str:
    try:
        number = float(text.strip())
    except (ValueError, OverflowError):
        return "another value"
    return repr(number) if math.isfinite(number) else "another value"
