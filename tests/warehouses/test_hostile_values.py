"""Hostile values through the whole path on Snowflake (fakesnow) and PostgreSQL: the real CLI, the
Iterable sandbox, the request bodies it received compared with the model's values.

Each bad row is rejected with its reason while the others are sent; the text, numbers, timestamps
and dates the platform receives are the model's (no trim, no Unicode normalisation, no rounding,
no truncation of a 1 MB text); a second run sends nothing, and a changed hostile value is sent for
its row alone.
"""
from __future__ import annotations

import decimal
import json

import pytest

from tests.warehouses.support import run_cli, write_iterable_project

MODEL = "-- primary_key: email\n-- model_type: user\nselect email, s, n, big, w, ts, tstz, d from hostile\n"
BIG_TEXT = "x" * (1 << 20)
TEXTS = {  # email -> a hostile text sent as it is
    "plain@example.com": "ok",
    "emoji@example.com": "😀𝄞 \U0010FFFF",
    "quotes@example.com": 'a"b\\c\nd\re\'f\t',
    "nfc@example.com": "\u00e9",
    "nfd@example.com": "e\u0301",
    "pad@example.com": "  padded  ",
    "big@example.com": BIG_TEXT,
    "\u00e9@example.com": "key in NFC",
    "e\u0301@example.com": "key in NFD",
}
REJECTED = {  # email (as normalised) -> a phrase of its reason
    "not-an-email": "has no @",
    "tab\t@example.com": "contains whitespace or control characters",
    "nan@example.com": "NaN/infinite",
    "inf@example.com": "NaN/infinite",
    "ninf@example.com": "NaN/infinite",
    "y10000@example.com": "date out of range",
}


@pytest.mark.parametrize("kind", ["snowflake", "postgres"])
def test_hostile_values_reach_the_platform_as_the_model_holds_them(kind, request, tmp_path, iterable_sandbox, bodies):
    target = request.getfixturevalue(f"wh_{kind}")
    sandbox, thread = iterable_sandbox
    sf = kind == "snowflake"
    wide = "NUMBER(37,0)" if sf else "NUMERIC(38,0)"  # (fakesnow makes NUMBER(38,0) a 64-bit BIGINT)
    target.execute(f"CREATE TABLE hostile (email VARCHAR, s VARCHAR, n DOUBLE PRECISION, big {wide}, w {wide}, "
                   f"ts TIMESTAMP, tstz {'TIMESTAMP_TZ' if sf else 'TIMESTAMPTZ'}, d DATE)")
    rows = [(e, s) for e, s in TEXTS.items()] + [(e, "r") for e in REJECTED] + [
        ("  Mixed@Example.COM  ", "mixed"), (None, "null key"), ("dup@example.com", "d1"), ("dup@example.com", "d2"),
        ("wide@example.com", "wide"), ("times@example.com", "times")] + [(f"f{i}@example.com", f"f{i}") for i in range(40)]
    with target.connect() as wh:
        for email, text in rows:
            wh.execute("INSERT INTO hostile (email, s) VALUES (:e, :s)", {"e": email, "s": text})
    cast = (lambda v, t: f"'{v}'::{t}") if sf else (lambda v, t: f"'{v}'")
    for email, n in (("nan", "NaN"), ("inf", "Infinity" if not sf else "inf"), ("ninf", "-Infinity" if not sf else "-inf")):
        target.execute(f"UPDATE hostile SET n = {cast(n, 'DOUBLE')} WHERE email = '{email}@example.com'")
    big = "1234567890123456789012345678901234567"
    target.execute(f"UPDATE hostile SET w = {big} WHERE email = 'wide@example.com'")  # (a field of its own: the
    # platform types a field by its first value, and takes no 37-digit number where it saw a 64-bit one)
    target.execute("UPDATE hostile SET big = 9007199254740993 WHERE email = 'plain@example.com'")
    target.execute("UPDATE hostile SET w = -9223372036854775809 WHERE email = 'emoji@example.com'")
    target.execute(f"UPDATE hostile SET ts = {cast('2024-01-02 03:04:05.123456', 'TIMESTAMP_NTZ')}, "
                   f"tstz = {cast('2024-01-02 03:04:05.123456 +05:30', 'TIMESTAMP_TZ')}, "
                   f"d = {cast('0001-01-01', 'DATE')} WHERE email = 'times@example.com'")
    target.execute(f"UPDATE hostile SET ts = {cast('1800-01-01 00:00:00', 'TIMESTAMP_NTZ')}, "
                   f"d = {cast('1899-12-31', 'DATE')} WHERE email = 'plain@example.com'")
    target.execute(f"UPDATE hostile SET d = {cast('9999-12-31', 'DATE')}, "
                   f"tstz = {cast('9999-12-31 23:59:59 -08:00' if sf else '9999-12-31 23:59:59-08', 'TIMESTAMP_TZ')} "
                   "WHERE email = 'y10000@example.com'")  # (in UTC: year 10000)
    root = tmp_path / "project"
    write_iterable_project(root, target, thread.url, MODEL, ["s", "n", "big", "w", "ts", "tstz", "d"])

    def sent(since: int) -> dict[str, list[dict]]:
        out: dict[str, list[dict]] = {}
        for body in bodies[since:]:
            for user in json.loads(body, parse_float=decimal.Decimal)["users"]:
                out.setdefault(user["email"], []).append(user["dataFields"])
        return out

    code, result = run_cli(root, target, "sync")
    assert code == 4, result  # a warning: the duplicated key (within the 5% limit)
    [run] = result["runs"]
    users = sent(0)
    assert {e: [f["s"] for f in fields] for e, fields in users.items() if e in TEXTS} == {
        e: [s] for e, s in TEXTS.items()}
    assert users["mixed@example.com"] == [{"s": "mixed", "n": None, "big": None, "w": None, "ts": None, "tstz": None, "d": None}]
    assert users["wide@example.com"][0]["w"] == int(big)
    assert users["plain@example.com"][0] | {"s": None} == {
        "s": None, "n": None, "big": 9007199254740993, "w": None, "ts": "1800-01-01T00:00:00", "tstz": None, "d": "1899-12-31"}
    assert users["emoji@example.com"][0]["w"] == -9223372036854775809
    assert users["times@example.com"][0] | {"s": None} == {
        "s": None, "n": None, "big": None, "w": None, "ts": "2024-01-02T03:04:05.123456", "tstz": "2024-01-01T21:34:05.123456Z",
        "d": "0001-01-01"}
    assert not set(users) & (set(REJECTED) | {"dup@example.com"})
    code, listed = run_cli(root, target, "rejections")
    reasons = {r["key"]: r["reason"] for r in listed["rejections"]}
    for email, phrase in REJECTED.items():
        assert phrase in reasons[email], (email, reasons.get(email))
    assert "withheld" in reasons["dup@example.com"] and "NULL" in reasons[None]
    assert run["acknowledged"] == len(users) and run["rejected"] == len(REJECTED)

    n = len(bodies)
    code, again = run_cli(root, target, "sync")
    assert (again["runs"][0]["sent"], len(bodies)) == (0, n), again  # nothing changed: nothing sent

    target.execute("UPDATE hostile SET s = s || '\U0001F600' WHERE email = 'quotes@example.com'")
    code, changed = run_cli(root, target, "sync")
    assert changed["runs"][0]["sent"] == 1, changed
    assert sent(n) == {"quotes@example.com": [{"s": TEXTS["quotes@example.com"] + "\U0001F600"}]}
