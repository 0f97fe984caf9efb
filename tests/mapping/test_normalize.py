"""Identifier normalisation: emails and phones."""
from __future__ import annotations

import polars as pl
import pytest

from dinsync.mapping.normalize import (
    email_is_valid,
    email_problem,
    normalize_email,
    normalize_phones,
    preview,
)


def _eval(expr: pl.Expr, values: list) -> list:
    return pl.DataFrame({"s": values}, schema={"s": pl.String}).select(expr.alias("r")).to_series().to_list()


VALID = [
    "a@b.co",
    "first.last@example.com",
    "user+tag+more@sub.domain.example.co.uk",
    "o'hara@example.ie",
    "!#$%&'*+/=?^_`{|}~-@example.com",
    "a@xn--mnchen-3ya.de",
    "l" * 64 + "@example.com",
    # International addresses (RFC 6531): the platform decides, not us.
    "amélie.457@example.net",
    "josé@example.com",
    "a@münchen.de",
    "用户@例子.广告",
    # Odd but not impossible everywhere: sent, and the platform's per-record answer decides.
    "a@localhost",
    "a.@example.com",
    "a@example.com.",
    '"quoted"@example.com',
    "a@[1.2.3.4]",
    "a@example.com\u200b",
]

INVALID = [
    ("plainaddress", "has no @"),
    ("a@@b.com", "has more than one @"),
    ("a@b@c.com", "has more than one @"),
    ("@example.com", "has an empty local part"),
    ("a@", "has an empty domain"),
    ("a b@example.com", "whitespace"),
    ("ab@exa mple.com", "whitespace"),
    ("a\t@example.com", "whitespace"),
    ("a\u3000b@example.com", "whitespace"),
    ("a\x00b@example.com", "control"),
    ("a\x7f@example.com", "control"),
    ("l" * 65 + "@example.com", "longer than 64"),
    ("é" * 33 + "@example.com", "longer than 64"),
    ("a@" + ".".join(["d" * 60] * 5) + ".com", "longer than 254"),
    ("", "is empty"),
]


@pytest.mark.parametrize("email", VALID)
def test_valid_emails(email):
    assert _eval(email_is_valid(pl.col("s")), [email]) == [True]
    assert _eval(email_problem(pl.col("s")), [email]) == [None]


@pytest.mark.parametrize(("email", "phrase"), INVALID)
def test_invalid_emails_have_a_precise_reason(email, phrase):
    assert _eval(email_is_valid(pl.col("s")), [email]) == [False]
    [reason] = _eval(email_problem(pl.col("s")), [email])
    assert reason is not None and phrase in reason, reason


def test_null_email_is_not_valid_and_has_no_problem_phrase():
    assert _eval(email_is_valid(pl.col("s")), [None]) == [False]
    assert _eval(email_problem(pl.col("s")), [None]) == [None]


def test_normalize_email_trims_and_lowercases():
    got = _eval(normalize_email(pl.col("s")), ["  Ann.Lee+X@Example.COM \n", "a@b.co", None, "\tB@C.IO"])
    assert got == ["ann.lee+x@example.com", "a@b.co", None, "b@c.io"]


def test_preview_cuts_long_values():
    [short, long_] = _eval(preview(pl.col("s")), ["abc", "x" * 10_000])
    assert short == "'abc'"
    assert long_.startswith("'" + "x" * 100) and long_.endswith("…'") and len(long_) < 110


@pytest.mark.parametrize(
    ("raw", "region", "expected"),
    [
        ("+1 415 555 0100", None, "+14155550100"),
        ("+1 (415) 555-0100", "FR", "+14155550100"),  # international form ignores the region
        ("(415) 555-0100", "US", "+14155550100"),
        ("415.555.0100", "us", "+14155550100"),  # region case-insensitive
        ("14155550100", "US", "+14155550100"),
        ("(415) 555-0100", None, None),  # national form needs a region
        ("06 12 34 56 78", "FR", "+33612345678"),
        ("+33 6 12 34 56 78", None, "+33612345678"),
        ("0033 6 12 34 56 78", "FR", "+33612345678"),  # international dialling prefix
        ("+44 20 7946 0958", "US", "+442079460958"),
        ("  +1 415 555 0100  ", None, "+14155550100"),
        ("+1 415 555 010", None, None),  # too short
        ("+1 000 555 0100", None, None),  # no North American area code starts with 0
        ("0612345678", "US", None),  # a French national number has not the shape of a US one
        ("+33 1122334455", None, None),  # too long for France
        ("555-0100", "US", None),  # only dialable locally: no E.164 form
        # the platforms' own examples, which libphonenumber calls invalid (unassigned ranges):
        # possible and shaped like North American numbers, so sent; the platform decides
        ("+1 555 867 5309", None, "+15558675309"),  # Attio's
        ("+1 311 555 2368", None, "+13115552368"),  # Attentive's
        ("not a phone", "US", None),
        ("", "US", None),
        ("   ", "US", None),
        (None, "US", None),
    ],
)
def test_normalize_phones(raw, region, expected):
    got = normalize_phones(pl.Series("p", [raw], dtype=pl.String), region)
    assert got.to_list() == [expected]
    assert got.name == "p" and got.dtype == pl.String


def test_normalize_phones_maps_distinct_values_back_in_order():
    values = ["(415) 555-0100", None, "+33 6 12 34 56 78", "(415) 555-0100", "bad", "+33 6 12 34 56 78"]
    got = normalize_phones(pl.Series(values), "US").to_list()
    assert got == ["+14155550100", None, "+33612345678", "+14155550100", None, "+33612345678"]


def test_normalize_phones_integers_and_all_null():
    assert normalize_phones(pl.Series([14155550100, None]), "US").to_list() == ["+14155550100", None]
    assert normalize_phones(pl.Series([None, None], dtype=pl.String), "US").to_list() == [None, None]
    assert normalize_phones(pl.Series([], dtype=pl.String), None).to_list() == []
