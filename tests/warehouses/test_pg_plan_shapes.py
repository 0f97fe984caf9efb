"""The plan statements keep a shape PostgreSQL runs in one pass when the data outgrows work_mem.

`x IN (SELECT ...)` in a select list, or `x NOT IN (SELECT ...)`, is a SubPlan to PostgreSQL: hashed
while its table fits in work_mem, otherwise run again for every outer row. At 1M keys a full
refresh took more than 12 minutes that way (45 s as a join). Here work_mem is made tiny so that
the planner faces the same choice on a few thousand rows, and every plan statement's EXPLAIN must
be free of a row-by-row SubPlan ("hashed SubPlan" is fine). The same holds for the statement that
collects the plan rows of a commit's keys (acked.sql), which reads the plan at every checkpoint. The
statements' meaning is pinned by test_diff_sql.py; this file is about their shape."""
from __future__ import annotations

import re

import pytest

from tests.warehouses.test_diff_sql import Recording, Sync
from tests.warehouses.support import WarehouseUnderTest

ROWS = 5_000
PLAN_STATEMENT = re.compile(r"^\s*CREATE TABLE\s+(\S+)\s+AS\s+(.*)$", re.S | re.I)


class Explaining(Recording):
    """Runs EXPLAIN (with a tiny work_mem) before every statement that creates a plan table, or the
    table of a commit's plan rows (`acked_<sync>`)."""

    def __init__(self, wh):
        super().__init__(wh)
        self.explained: dict[str, str] = {}

    def execute(self, sql, params=None):
        m = PLAN_STATEMENT.match(sql)
        if m and ("plan" in m.group(1) or "acked" in m.group(1)):
            self._wh.execute("SET work_mem = '64kB'")
            self._wh.execute("ANALYZE")
            plan = self._wh.query("EXPLAIN " + m.group(2), params).to_pylist()
            self._wh.execute("RESET work_mem")
            self.explained[sql] = "\n".join(str(next(iter(r.values()))) for r in plan)
        return super().execute(sql, params)


def row_by_row_subplans(explain: str) -> list[str]:
    """The SubPlans that are not hashed: EXPLAIN lists each one as a node "SubPlan N" and, where it
    is used, calls it "hashed SubPlan N" when it is hashed."""
    nodes = set(re.findall(r"^\s*SubPlan (\d+)\s*$", explain, re.M))
    hashed = set(re.findall(r"hashed SubPlan (\d+)", explain))
    return sorted(f"SubPlan {n}" for n in nodes - hashed)


@pytest.fixture(params=["postgres", "redshift"])
def s(request, tmp_path):
    target = WarehouseUnderTest(request.param, tmp_path)
    sync = Sync(Explaining(target.wh), target.state_schema)
    sync.model_schema = target.schema
    yield sync
    target.close()


def rows(n, suffix=""):
    return [(f"u{i}@x.com", f"name{i}{suffix if i % 3 == 0 else ''}", i) for i in range(n)]


def test_first_plan_full_refresh_and_churn_plan_have_no_row_by_row_subplan(s):
    s.set_rows(rows(ROWS))
    first = s.plan()
    assert len(first) == ROWS and set(first.values()) == {"added"}
    assert s.ack_all() == ROWS

    # a churn plan: a third of the rows changed, one key spelled another way
    changed = rows(ROWS, suffix="!")
    changed[1] = ("U1@X.com",) + changed[1][1:]
    s.set_rows(changed)
    churn = s.plan()
    # every third name changed, and u1's mapped email value (its raw spelling)
    assert sum(op == "changed" for op in churn.values()) == len(range(0, ROWS, 3)) + 1

    # a full refresh against a snapshot of every key
    s.set_rows(rows(ROWS))
    refresh = s.plan(full_refresh=True)
    assert len(refresh) == ROWS
    assert all(r["_prior"] for r in s.rows.values())

    assert len(s.wh.explained) >= 3, list(s.wh.explained)
    for sql, explain in s.wh.explained.items():
        assert not row_by_row_subplans(explain), f"{sql[:300]}\n---\n{explain}"


def test_commits_that_may_repeat_keys_have_no_row_by_row_subplan(s):
    s.set_rows(rows(ROWS))
    s.plan()
    keys = [k for b in s.p.stream_sendable(batch_rows=1000) for k in b.column("_key").to_pylist()]
    # a first commit, then one of every key: half of them committed by this run already (_again),
    # whose snapshot rows the second commit replaces
    assert s.p.commit_acknowledged(keys[: ROWS // 2]) == ROWS // 2
    s.wh.explained.clear()
    assert s.p.commit_acknowledged(keys) == ROWS
    assert s.snapshot_keys() == sorted(keys)

    acked = {sql: explain for sql, explain in s.wh.explained.items() if "acked" in sql.split("AS", 1)[0]}
    assert len(acked) == 1, list(s.wh.explained)
    for sql, explain in acked.items():
        assert not row_by_row_subplans(explain), f"{sql[:300]}\n---\n{explain}"
