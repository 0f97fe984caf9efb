"""Throughput of map_batch against a naive per-row Python + orjson mapper.

1M plan rows x 10 mixed-type fields, email key, 70% added / 30% changed rows (changed rows flag
a random subset of fields), ~1.5% rejected rows, processed in 50k-row batches. Prints rows/s of both and the ratio.

    python benchmarks/bench_mapping.py [--rows 1000000] [--batch 50000]
"""
from __future__ import annotations

import argparse
import datetime as dt
import decimal
import math
import random
import re
import time

import orjson
import polars as pl

from dinsync.mapping.frame import FieldMapping, KeyMapping, map_batch
from dinsync.mapping.normalize import EMAIL_MAX, LOCAL_MAX

FIELDS = [
    FieldMapping(0, "first_name"),
    FieldMapping(1, "plan"),
    FieldMapping(2, "age", "integer"),
    FieldMapping(3, "score"),
    FieldMapping(4, "active"),
    FieldMapping(5, "signup_date"),
    FieldMapping(6, "last_seen"),
    FieldMapping(7, "ltv"),
    FieldMapping(8, "tags"),
    FieldMapping(9, "company"),
]
KEY = KeyMapping("email", "email")


def make_plan(rows: int, seed: int = 7) -> pl.DataFrame:
    rng = random.Random(seed)
    names = ["Ana", "Bo", "Chloé", "Dmitri", 'Eve "E"', "Fu\\n", "Günther", "Hana 😀", None]
    plans = ["free", "pro", "enterprise", None]
    tags = [["a"], ["b", "c"], [], None, ["vip", "beta", "x"]]
    start = dt.datetime(2020, 1, 1, tzinfo=dt.timezone.utc)
    added = [rng.random() < 0.7 for _ in range(rows)]
    data = {
        # ~1% malformed keys and ~0.5% NaN scores, so that rejections are part of the work
        "_key": [f"user{i}@example{i % 97}.com" if i % 100 else f"user {i}@example" for i in range(rows)],
        "_op": ["added" if a else "changed" for a in added],
        "v0": [names[i % len(names)] for i in range(rows)],
        "v1": [plans[i % len(plans)] for i in range(rows)],
        "v2": [rng.randint(18, 90) if i % 11 else None for i in range(rows)],
        "v3": [rng.random() * 100 if i % 200 != 7 else math.nan for i in range(rows)],
        "v4": [bool(i % 2) for i in range(rows)],
        "v5": [dt.date(2020, 1, 1) + dt.timedelta(days=i % 1500) for i in range(rows)],
        "v6": [start + dt.timedelta(seconds=i * 37, microseconds=i % 1000) for i in range(rows)],
        "v7": [decimal.Decimal(i % 100000) / 100 for i in range(rows)],
        "v8": [tags[i % len(tags)] for i in range(rows)],
        "v9": [f"Company {i % 5000} & Co" for i in range(rows)],
    }
    schema = {"v7": pl.Decimal(12, 2), "v6": pl.Datetime("us", "UTC")}
    frame = pl.DataFrame(data, schema_overrides=schema)
    flags = {f"x{i}": [a or rng.random() < 0.3 for a in added] for i in range(len(FIELDS))}
    return frame.with_columns(pl.DataFrame(flags))


_BAD = re.compile(r"[\s\x00-\x1f\x7f]")


def _email_ok(email: str) -> bool:
    """The rule map_batch applies (dinsync.mapping.normalize.email_is_valid), row by row: only what
    no platform accepts is refused (the platform judges the rest)."""
    local, at, domain = email.partition("@")
    return (bool(email) and len(email.encode()) <= EMAIL_MAX and not _BAD.search(email)
            and email.count("@") == 1 and bool(local) and bool(domain) and len(local.encode()) <= LOCAL_MAX)


def _py_value(value):
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError("NaN/infinite")
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.timezone.utc) if value.tzinfo else value
    if isinstance(value, decimal.Decimal):
        return float(value)
    return value


def naive_map(frame: pl.DataFrame) -> tuple[list[bytes], list[tuple]]:
    """What one would write without Polars: a dict per row, orjson.dumps per row."""
    out, rejected = [], []
    for row in frame.iter_rows(named=True):
        email = (row["_key"] or "").strip().lower()
        if not _email_ok(email):
            rejected.append((row["_key"], "email"))
            continue
        obj = {}
        try:
            for i, f in enumerate(FIELDS):
                if row[f"x{i}"]:
                    obj[f.field] = _py_value(row[f"v{i}"])
        except ValueError:
            rejected.append((row["_key"], "value"))
            continue
        out.append(orjson.dumps(obj, option=orjson.OPT_UTC_Z))
    return out, rejected


def run(rows: int, batch: int) -> None:
    t0 = time.perf_counter()
    plan = make_plan(rows)
    print(f"generated {rows:,} rows x {len(FIELDS)} fields in {time.perf_counter() - t0:.1f}s")
    batches = [plan.slice(o, batch) for o in range(0, rows, batch)]

    t0 = time.perf_counter()
    sent = rejected = 0
    for b in batches:
        mapped = map_batch(b, KEY, FIELDS, max_value_bytes=65_536, max_row_bytes=1_000_000)
        sent += mapped.frame.height
        rejected += mapped.rejections.height
    vec = time.perf_counter() - t0
    print(f"map_batch : {rows / vec:>12,.0f} rows/s  ({vec:.2f}s, {sent:,} rows, {rejected:,} rejections)")

    t0 = time.perf_counter()
    n = 0
    for b in batches:
        n += len(naive_map(b)[0])
    naive = time.perf_counter() - t0
    print(f"per-row py: {rows / naive:>12,.0f} rows/s  ({naive:.2f}s, {n:,} rows)")
    print(f"speed-up  : {naive / vec:.1f}x")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=50_000)
    args = parser.parse_args()
    run(args.rows, args.batch)
