"""`dinsync plan`'s sample rows show each field's value as the sync sends it (after the mapping:
each field's kind, the key's checks), and a value the mapping would reject as the reason."""
from __future__ import annotations

import json

_TYPES = ("h HUGEINT, d DECIMAL(20,4), ts TIMESTAMP, tstz TIMESTAMPTZ, n VARCHAR, e VARCHAR, ph VARCHAR, "
          "i VARCHAR, j VARCHAR")
_FIELDS = ["- {column: h, field: h}", "- {column: d, field: d}", "- {column: ts, field: ts}",
           "- {column: tstz, field: tstz}", "- {column: n, field: n, type: number}",
           "- {column: e, field: e, type: email}", "- {column: ph, field: ph, type: phone}",
           "- {column: i, field: i, type: integer}", "- {column: j, field: j, type: json}"]


def _model(project) -> None:
    project.sql(f"create or replace table main.customers (id integer, email varchar, {_TYPES})")
    project.sql("""insert into main.customers values
        (1, 'a@example.com', 170141183460469231731687303715884105727, 12.5, '2024-01-02 03:04:05.5',
         '2024-01-02 03:04:05+02', '1.50', ' Bob@X.COM ', '+1 (201) 555-0123', ' 42 ', '{"a": [1, 2]}'),
        (2, 'b@example.com', 1, 0.0001, '2024-01-02 03:04:05', '2024-01-02 03:04:05+00', 'abc',
         'not-an-email', '+12015550124', '7', 'null')""")
    project.write(fields=_FIELDS, max_rejected_pct=100)
    (project.root / "models" / "customers.sql").write_text(
        "-- primary_key: id\n-- model_type: user\nselect * from main.customers\n")


def test_plan_samples_are_the_values_the_sync_sends(project):
    """plan showed the warehouse's values (HUGEINT and DECIMAL as strings, timestamps in DuckDB's
    text, an email as written, a bad value as if it would go out) where the sync sends numbers, ISO
    timestamps, the normalised email and rejects the bad row."""
    _model(project)
    result = project.cli("plan", "--samples", "5")
    assert result.exit_code == 0, result.stdout
    rows = {r["key"]: r for r in json.loads(result.stdout)["plans"][0]["samples"]["added"]}
    table = project.cli("plan", json_output=False)
    assert "h=170141183460469231731687303715884105727" in table.stdout, table.stdout
    assert "rejected (field \"n\": cannot convert 'abc' to a number)" in table.stdout, table.stdout
    run = project.sync()["runs"][0]
    assert (run["acknowledged"], run["rejected"]) == (1, 1), run
    [body] = [b for _, p, b in project.requests.requests if "bulk" in p]
    sent = {u["email"]: u["dataFields"] for u in json.loads(body)["users"]}
    assert rows["a@example.com"]["fields"] == sent["a@example.com"]
    assert rows["a@example.com"]["fields"]["h"] == 170141183460469231731687303715884105727
    assert rows["a@example.com"]["rejected"] == []
    bad = rows["b@example.com"]
    assert "b@example.com" not in sent
    assert bad["rejected"] == [{"field": "n", "reason": "field \"n\": cannot convert 'abc' to a number"},
                               {"field": "e", "reason": "field \"e\": invalid email 'not-an-email' (has no @)"}]
    assert bad["fields"] == {"h": 1, "d": 0.0001, "ts": "2024-01-02T03:04:05", "tstz": "2024-01-02T03:04:05Z",
                             "ph": "+12015550124", "i": 7, "j": None}
