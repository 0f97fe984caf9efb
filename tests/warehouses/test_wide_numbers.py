"""Wide numbers on the cloud warehouses, through the whole sync path (real CLI, the warehouse's
emulator, the Iterable sandbox): what the platform receives, digit for digit.

- 38-digit integers and 38-digit decimals (BigQuery NUMERIC, Snowflake NUMBER(38, s), Databricks
  DECIMAL(38, s)) reach the platform with every digit, as JSON numbers (a float would round them).
- INT64 extremes are sent exactly.
- A float NaN / infinity rejects its row with a reason; the other rows are sent; the next run sends
  nothing.

Emulator limits: BigQuery's fake runs on DuckDB, whose DECIMAL holds 38 digits: it reports a
DECIMAL of more than 9 decimals as BIGNUMERIC (read by the client as decimal256(76, 38), as
BigQuery's is), so BIGNUMERIC is tested end to end up to 38 digits; up to 76 on the adapter's
reading of a decimal256 (the last test). Fakesnow runs on DuckDB too: NUMBER(38, 0) (and INT)
becomes a BIGINT, so 38-digit integers are tested as NUMBER(37, 0), and its write path fails on
them: the table is made by SQL. tests/warehouses/fakesnow_main.py sends NUMBER columns as
Snowflake does (unscaled int64 with a scale when the values fit; decimal128 beyond).
"""
from __future__ import annotations

import decimal

import pyarrow as pa
import pytest

from tests.warehouses.support import run_cli, write_iterable_project

D = decimal.Decimal
INT38 = D("12345678901234567890123456789012345678")
INT37 = D("1234567890123456789012345678901234567")
NEG38 = D("-98765432109876543210987654321098765432")
NUM29_9 = D("12345678901234567890123456789.123456789")  # BigQuery NUMERIC: 29 + 9 digits
NUM38_10 = D("1234567890123456789012345678.0123456789")
NUM38_18 = D("12345678901234567890.123456789012345678")
NEG29_9, NEG38_10, NEG38_18 = (D("-12345678901234567890123456789.123456789"),
    D("-1234567890123456789012345678.0123456789"), D("-12345678901234567890.123456789012345678"))
NEG37 = D("-1234567890123456789012345678901234567")
BIG38_20 = D("123456789012345678.12345678901234567891")
MID18_10 = D("12345678.0123456789")  # 18 digits: a float64 keeps 15 to 17
I64 = (2**63 - 1, -(2**63))


def table(kind: str) -> tuple[pa.Table, dict[str, str]]:
    """The model table of a warehouse, and the wide values the body must hold, digit for digit."""
    ids = [1, 2, 3, 4]
    base = {"id": pa.array(ids, pa.int64()), "email": [f"u{i}@example.com" for i in ids]}
    floats = pa.array([1.5, float("nan"), float("inf"), 2.5], pa.float64())  # (-inf: tested on PostgreSQL/DuckDB)
    if kind == "bigquery":
        cols = {"num": pa.array([NUM29_9, D(0), D(0), NEG29_9], pa.decimal128(38, 9)),
                # a DECIMAL of more than 9 decimals is a BIGNUMERIC on the fake (38 digits of 76 on DuckDB)
                "bignum": pa.array([BIG38_20, D(1), D(1), D(5)], pa.decimal128(38, 20)),
                "i64": pa.array([I64[0], 0, 1, I64[1]], pa.int64()), "f": floats}
        expect = {"num": NUM29_9, "i64": I64[0], "bignum": BIG38_20, "num ": NEG29_9, "i64 ": I64[1]}
    elif kind == "snowflake":
        # fakesnow makes NUMBER(38, 0) a BIGINT (64 bits): the widest integers it holds are NUMBER(37, 0)
        cols = {"big": pa.array([INT37, D(7), D(0), NEG37], pa.decimal128(37, 0)),
                "num": pa.array([NUM38_10, D(1), D(0), NEG38_10], pa.decimal128(38, 10)),
                # unscaled values within 64 bits: Snowflake sends them as integers with a scale
                "mid": pa.array([MID18_10, D(1), D(0), D("-0.5")], pa.decimal128(38, 10)), "f": floats}
        expect = {"big": INT37, "num": NUM38_10, "big ": NEG37, "num ": NEG38_10, "mid": MID18_10, "mid ": "-0.5"}
    else:
        cols = {"big": pa.array([INT38, D(7), D(0), NEG38], pa.decimal128(38, 0)),
                "num": pa.array([NUM38_18, D(1), D(0), NEG38_18], pa.decimal128(38, 18)),
                "f": pa.array([1.5, float("nan"), 2.5, 3.5], pa.float64())}
        expect = {"big": INT38, "num": NUM38_18, "big ": NEG38, "num ": NEG38_18}
    return pa.table({**base, **cols}), expect


@pytest.fixture(params=["bigquery", "snowflake", "databricks"])
def cloud(request):
    return request.getfixturevalue(f"wh_{request.param}")


def test_wide_numbers_keep_their_digits_and_nan_rejects_its_row(tmp_path, cloud, iterable_sandbox, bodies):
    sandbox, thread = iterable_sandbox
    data, expect = table(cloud.kind)
    if cloud.kind == "snowflake":  # fakesnow's write_pandas path rounds 38-digit values: the table by SQL
        cloud.execute(f'CREATE TABLE "{cloud.model_schema}".wide_customers '
                      "(id INT, email VARCHAR, big NUMBER(37, 0), num NUMBER(38, 10), mid NUMBER(38, 10), f FLOAT)")
        rows = ", ".join(f"({r['id']}, '{r['email']}', {r['big']}, {r['num']}, {r['mid']}, '{r['f']}'::FLOAT)"
                         for r in data.to_pylist())
        cloud.execute(f'INSERT INTO "{cloud.model_schema}".wide_customers VALUES {rows}')
    else:
        cloud.load("wide_customers", data)
    value_cols = [c for c in data.column_names if c not in ("id", "email")]
    root = tmp_path / "project"
    write_iterable_project(root, cloud, thread.url, "-- primary_key: id\n-- model_type: user\n"
                           f"select id, email, {', '.join(value_cols)} from wide_customers\n", value_cols)

    code, checked = run_cli(root, cloud, "validate")
    assert code == 0, checked
    code, plan = run_cli(root, cloud, "plan", "--samples", "5")
    assert code == 0, plan
    samples = {s["key"]: s["fields"] for s in plan["plans"][0]["samples"]["added"]}
    assert len(samples) == 4, samples
    assert samples["u1@example.com"]["num"] == str(expect["num"])
    assert samples["u3@example.com"]["num"] == 0, samples  # a zero decimal (was "0E-9"), as sent

    code, result = run_cli(root, cloud, "sync")
    assert code == 0, result
    [r] = result["runs"]
    bad = {"bigquery": 2, "snowflake": 2, "databricks": 1}[cloud.kind]
    assert (r["added"], r["acknowledged"], r["rejected"]) == (4, 4 - bad, bad), r
    code, rejections = run_cli(root, cloud, "rejections", "users")
    assert code == 0, rejections
    assert {x["reason"] for x in rejections["rejections"]} == {'field "f": NaN/infinite is not valid JSON'}

    body = "".join(bodies)
    for col, value in expect.items():  # (a trailing space: the same column, another row)
        assert f'"{col.strip()}":{value}' in body, (col, value, body)
    assert "u2@example.com" not in body
    if cloud.kind == "bigquery":  # BIGNUMERIC: its digits, not the 38 zeros of the client's decimal256(76, 38)
        assert '"bignum":5.0,' in body
        assert samples["u1@example.com"]["bignum"] == str(BIG38_20)

    code, again = run_cli(root, cloud, "sync")
    assert code == 0 and (again["runs"][0]["sent"], again["runs"][0]["added"]) == (0, 0), again


def test_decimal256_is_read_as_its_exact_digits():
    """What google-cloud-bigquery returns for BIGNUMERIC (decimal256(76, 38)): Polars cannot read it
    (the run failed with a panic); as `numeric_text`, the digits without the scale's padding zeros,
    nor Arrow's exponent notation (0E-38, 1.0E-7)."""
    from dinsync.mapping import frame_from_arrow
    from dinsync.warehouses.bigquery import _readable

    values = [D("99999999999999999999999999999999999999.99999999999999999999999999999999999999"), D(0), D(10),
              D("-0.5"), None, D("0.0000001"), D("-1E-38")]
    batch = _readable(pa.record_batch({"x": pa.array(values, pa.decimal256(76, 38))}))
    frame, numeric = frame_from_arrow(batch)
    assert numeric == {"x": True}
    assert frame["x"].to_list() == [
        "99999999999999999999999999999999999999.99999999999999999999999999999999999999", "0", "10", "-0.5", None,
        "0.0000001", "-0." + "0" * 37 + "1"]
