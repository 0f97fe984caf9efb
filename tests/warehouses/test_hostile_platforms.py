"""Hostile keys and values from DuckDB, PostgreSQL and Snowflake (fakesnow) to Attio, Attentive and
Splio (API) through the real CLI: the same rows are rejected for the same reasons whatever the
warehouse (tests/warehouses/test_hostile_values.py does Iterable), the sandbox holds the model's
values for the others, a second run sends nothing, and a bad row made good is sent.

Keys that need escaping in a URL travel in Attentive's lookup query (`?email=`) and Splio's PATCH
path (`/data/contacts/{email}`, the fix run changes such a row), so a wrong escape would reach
another contact or none.
"""
from __future__ import annotations

import textwrap

import pytest

from dinsync.sandbox import AttentiveSandbox, AttioSandbox, SandboxThread, SplioSandbox
from tests.warehouses.support import run_cli

TOKEN = "hostile-platform-token-5e1d"
URLISH = "a/b?c#d%41e+f&g=h@example.com"
EMOJI = "\U0001F600@example.com"
TEXT = 'a"b\\c\nd\re\tf \U0001F600 e\u0301 \u200fx'
KEYS = [None, "", "dup@example.com", "dup@example.com", "Case@example.com", "case@example.com", URLISH, EMOJI,
        "noat", "quotes@example.com", "big@example.com", "f_nan@example.com", "tz_west@example.com",
        "ts_min@example.com", "j_bad@example.com", "plain@example.com"]
REJECTED = {  # key -> a phrase of its reason, the same from every warehouse
    "noat": "has no @", "f_nan@example.com": "NaN/infinite", "tz_west@example.com": "date out of range",
    "j_bad@example.com": "invalid JSON"}
DESTINATIONS = {
    "attio": ("service: people\nmode: upsert\nmatch: {column: email, field: email_addresses}\n"
              "fields: {s: note, f: visits, ts: last_seen, tstz: seen_tz, j: {field: jnote, type: json}}\n"),
    "attentive": ("service: users\nmode: update\nmatch: {column: email, field: email}\n"
                  "fields: {s: firstName, f: {field: F, custom: true}, ts: {field: TS, custom: true}, "
                  "tstz: {field: TSTZ, custom: true}, j: {field: J, custom: true, type: json}}\n"),
    "splio": ("service: contacts\nmode: insert\nmatch: {column: email, field: email}\n"
              "fields: {s: firstname, f: {field: fd, custom: true}, ts: {field: tsd, custom: true}, "
              "tstz: {field: tstzd, custom: true}, j: {field: jt, custom: true, type: json}}\n"),
}


def _sandbox(dest: str):
    if dest == "attio":
        return AttioSandbox([TOKEN], custom_attributes=[
            "people:note:text", "people:visits:number", "people:last_seen:timestamp", "people:seen_tz:timestamp",
            "people:jnote:text"])
    if dest == "attentive":
        sandbox = AttentiveSandbox([TOKEN])
        for key in {k.strip().lower() for k in KEYS if k and "@" in k}:
            sandbox.add_subscriber(email=key)
        return sandbox
    return SplioSandbox(TOKEN, custom_fields=[{"id": 3, "name": "fd", "type": "double"},
                                              {"id": 4, "name": "tsd", "type": "date"},
                                              {"id": 5, "name": "tstzd", "type": "date"},
                                              {"id": 6, "name": "jt", "type": "text"}])


def _held(dest: str, sandbox, thread: SandboxThread, email: str) -> dict | None:
    """The sandbox's record of `email`: {s, ts} as the platform keeps them."""
    if dest == "attio":
        record = thread.call(sandbox.find_person, email)
        plain = record and sandbox.plain(record)
        return plain and {"s": plain["note"], "ts": plain["last_seen"]}
    if dest == "attentive":
        sub = thread.call(sandbox.get_subscriber, email=email)
        return sub and {"s": (sub.get("attributes") or {}).get("firstName"), "ts": (sub.get("custom") or {}).get("TS")}
    contact = thread.call(sandbox.contact, email)
    return contact and {"s": contact.get("firstname"), "ts": contact["custom_fields"].get("tsd")}


def _cast(kind: str, value: str, sql_type: str) -> str:
    if kind == "snowflake":
        sql_type = {"TIMESTAMP": "TIMESTAMP_NTZ", "TIMESTAMPTZ": "TIMESTAMP_TZ"}.get(sql_type, sql_type)
    return f"CAST('{value}' AS {sql_type})"


@pytest.mark.parametrize("dest", sorted(DESTINATIONS))
@pytest.mark.parametrize("kind", ["duckdb", "postgres", "snowflake"])
def test_hostile_rows_get_the_same_outcome_from_every_warehouse(kind, dest, request, tmp_path, monkeypatch):
    target = request.getfixturevalue(f"wh_{kind}")
    sandbox = _sandbox(dest)
    thread = SandboxThread(sandbox)
    thread.start()
    request.addfinalizer(thread.stop)
    monkeypatch.setenv("HOSTILE_PLATFORM_TOKEN", TOKEN)
    double = "DOUBLE PRECISION" if kind == "postgres" else "DOUBLE"
    target.execute(f"CREATE TABLE hostile (id INTEGER, email VARCHAR, s VARCHAR, f {double}, ts "
                   f"{'TIMESTAMP_NTZ' if kind == 'snowflake' else 'TIMESTAMP'}, tstz "
                   f"{'TIMESTAMP_TZ' if kind == 'snowflake' else 'TIMESTAMPTZ'}, j VARCHAR)")
    with target.connect() as wh:
        for i, email in enumerate(KEYS):
            text = {"quotes@example.com": TEXT, "big@example.com": "x" * (1 << 20)}.get(email, f"row {i}")
            wh.execute("INSERT INTO hostile (id, email, s) VALUES (:i, :e, :s)", {"i": i, "e": email, "s": text})
    nan = {"postgres": "NaN", "duckdb": "nan", "snowflake": "nan"}[kind]
    target.execute(f"UPDATE hostile SET f = {_cast(kind, nan, double)} WHERE email = 'f_nan@example.com'")
    target.execute(f"UPDATE hostile SET tstz = {_cast(kind, '9999-12-31 23:00:00-08:00', 'TIMESTAMPTZ')} "
                   "WHERE email = 'tz_west@example.com'")  # in UTC: year 10000
    target.execute(f"UPDATE hostile SET ts = {_cast(kind, '0001-01-01 00:00:00', 'TIMESTAMP')} "
                   "WHERE email = 'ts_min@example.com'")
    target.execute("UPDATE hostile SET j = '{x' WHERE email = 'j_bad@example.com'")
    root = tmp_path / "project"
    (root / "models").mkdir(parents=True)
    (root / "syncs").mkdir()
    (root / "models" / "hostile.sql").write_text(
        "-- primary_key: id\n-- model_type: user\nselect id, email, s, f, ts, tstz, j from hostile\n")
    destination = {"splio": "type: splio, transport: api, universe: sandbox"}.get(dest, f"type: {dest}")
    (root / "dinsync.yml").write_text("version: 1\n" + target.warehouse_yaml() + textwrap.dedent(f"""\
        destinations:
          {dest}: {{{destination}, api_key: "${{env:HOSTILE_PLATFORM_TOKEN}}", base_url: "{thread.url}"}}
        """))
    thresholds = "thresholds: {max_rejected_pct: 100, max_duplicate_pct: 50, fail_on_warning: false}\n"
    (root / "syncs" / "h.yml").write_text(f"model: hostile\ndestination: {dest}\n" + DESTINATIONS[dest] + thresholds)

    code, result = run_cli(root, target, "sync")
    assert code == 0, result
    [run] = result["runs"]
    _, listed = run_cli(root, target, "rejections")
    outcome = {r["key"]: (r["status"], r["reason"]) for r in listed["rejections"]}
    over_255 = {"big@example.com": "over the 255 Splio accepts"} if dest == "splio" else {}
    for key, phrase in (REJECTED | over_255).items():
        assert outcome[key][0] == "rejected" and phrase in outcome[key][1], (key, outcome.get(key))
    assert {k: s for k, (s, _) in outcome.items() if s != "rejected"} == {
        None: "skipped", "dup@example.com": "duplicate", "case@example.com": "duplicate"}
    delivered = {"plain@example.com", URLISH, EMOJI, "quotes@example.com", "ts_min@example.com"}
    assert (run["acknowledged"], run["rejected"], run["failed"]) == (
        len(delivered) + (0 if over_255 else 1), len(REJECTED) + len(over_255), 0), run
    assert _held(dest, sandbox, thread, "quotes@example.com")["s"] == TEXT
    assert _held(dest, sandbox, thread, URLISH)["s"] == f"row {KEYS.index(URLISH)}"
    assert _held(dest, sandbox, thread, EMOJI)["s"] == f"row {KEYS.index(EMOJI)}"
    assert _held(dest, sandbox, thread, "ts_min@example.com")["ts"] == {
        "attio": "0001-01-01T00:00:00.000000000Z", "attentive": "0001-01-01T00:00:00",
        "splio": "0001-01-01 00:00:00"}[dest]
    if not over_255:
        assert _held(dest, sandbox, thread, "big@example.com")["s"] == "x" * (1 << 20)
    for key in ("dup@example.com", "case@example.com", "f_nan@example.com"):  # (Attentive's are seeded, unwritten)
        assert (_held(dest, sandbox, thread, key) or {}).get("s") is None, key

    _, again = run_cli(root, target, "sync")
    assert again["runs"][0]["sent"] == 0, again

    target.execute("UPDATE hostile SET f = 1.5 WHERE email = 'f_nan@example.com'")
    target.execute(f"UPDATE hostile SET s = 'changed' WHERE email = '{URLISH}'")
    _, fixed = run_cli(root, target, "sync")
    assert (fixed["runs"][0]["sent"], fixed["runs"][0]["acknowledged"]) == (2, 2), fixed
    assert _held(dest, sandbox, thread, URLISH)["s"] == "changed"
    assert _held(dest, sandbox, thread, "f_nan@example.com")["s"] == f"row {KEYS.index('f_nan@example.com')}"
