"""What a run leaves to the cycle collector in a long-lived process (`dinsync serve`, the Python
API): nothing of its own. Objects in a reference cycle outlive the run until a full collection,
which a process with few new objects between runs reaches late: `serve` of a sync every second with
a few rows changed each run grew from 237 to 478 MB of RSS over 409 runs on PostgreSQL (~211 objects
a run: the run, its planner, state store, pipeline, sender, session and sockets).

The fixture runs the sync in process with the collector off and DEBUG_SAVEALL, then collects: what
the collection finds is what only it could free. (CPython 3.11's own socket transport keeps a cycle
with its bound method: closed, small, not ours.)"""
from __future__ import annotations

import collections
import gc
import os

import pyarrow as pa
import pytest

import dinsync
from dinsync.sandbox import IterableSandbox, SandboxThread
from tests.conftest import TEST_KEY
from tests.warehouses.conftest import DuckDBTarget, PostgresTarget
from tests.warehouses.support import write_iterable_project

RUNS = 3


def _name(o) -> str:
    """A garbage object as `module.qualname` of its type; a function by its own name, a bound
    method by its owner's type."""
    if type(o).__name__ == "function":
        return f"{o.__module__}.{o.__qualname__}"
    if type(o).__name__ == "method":
        return f"{type(o.__self__).__module__}.{type(o.__self__).__qualname__}.{o.__func__.__name__}"
    return f"{type(o).__module__}.{type(o).__qualname__}"


def _in_cycles(garbage: list) -> collections.Counter:
    """The names of the objects of `garbage` that are on a reference cycle (not merely reachable
    from one): those whose referents lead back to them."""
    among = {id(o): o for o in garbage}
    names = collections.Counter()
    for o in garbage:
        seen, todo = set(), [r for r in gc.get_referents(o) if id(r) in among]
        while todo:
            r = todo.pop()
            if r is o:
                names[_name(o)] += 1
                break
            if id(r) not in seen:
                seen.add(id(r))
                todo.extend(x for x in gc.get_referents(r) if id(x) in among)
    return names


def _collect(kind: str, tmp_path, failing: bool = False) -> collections.Counter:
    """Of RUNS runs with changes (after a first one), or of RUNS runs that fail in the warehouse
    (`failing`: the model's SQL fails as it runs, not when its columns are read): the objects on a
    reference cycle, by name."""
    target = DuckDBTarget(tmp_path) if kind == "duckdb" else PostgresTarget(tmp_path)
    sandbox = SandboxThread(IterableSandbox([TEST_KEY]))
    sandbox.start()
    saved = os.environ.get("ITERABLE_TEST_KEY")
    os.environ.update(ITERABLE_TEST_KEY=TEST_KEY, **target.env)
    try:
        target.load("customers", pa.table({"email": [f"u{i}@example.com" for i in range(20)],
                                           "n": list(range(20))}))
        root = tmp_path / "project"
        header = "-- primary_key: email\n-- model_type: user\n"
        write_iterable_project(root, target, sandbox.base_url, header + "select email, n from customers\n", ["n"])
        project = dinsync.load_project(root)
        project.sync().raise_for_status()
        if failing:
            (root / "models" / "customers.sql").write_text(
                header + "select email, cast(case when n = 3 then cast('x' || n as integer) else n end as bigint) "
                         "as n from customers\n")
            project = dinsync.load_project(root)
            assert project.sync().runs[0].status == "failed"  # (its SQL rendered once: Jinja2's own cycles)
        gc.collect()
        gc.disable()
        gc.set_debug(gc.DEBUG_SAVEALL)
        try:
            for i in range(RUNS):
                target.execute(f"UPDATE customers SET n = n + 100 WHERE n % 5 = {i}")
                run = project.sync().runs[0]
                if failing:
                    assert run.status == "failed" and "failed in the warehouse" in run.error, run.error
                else:
                    assert run.sent >= 4
            gc.collect()
            names = _in_cycles(gc.garbage)
        finally:
            gc.set_debug(0)
            gc.garbage.clear()
            gc.enable()
        return names
    finally:
        if saved is None:
            os.environ.pop("ITERABLE_TEST_KEY", None)
        else:
            os.environ["ITERABLE_TEST_KEY"] = saved
        sandbox.stop()
        target.close()


@pytest.fixture(scope="module", params=["duckdb", "postgres"])
def left_behind(request, tmp_path_factory) -> collections.Counter:
    return _collect(request.param, tmp_path_factory.mktemp(request.param))


def _of(names: collections.Counter, *prefixes: str) -> dict[str, int]:
    return {name: n for name, n in names.items() if name.startswith(prefixes)}


def test_a_run_leaves_no_state_store_in_a_cycle(left_behind):
    assert _of(left_behind, "dinsync.state.") == {}


def test_a_run_leaves_no_run_or_planner_in_a_cycle(left_behind):
    assert _of(left_behind, "dinsync.engine.run.", "dinsync.diff.") == {}


def test_a_run_leaves_no_pipeline_in_a_cycle(left_behind):
    assert _of(left_behind, "dinsync.engine.pipeline.", "dinsync.engine.commits.") == {}


def test_a_run_leaves_no_sender_or_trace_config_in_a_cycle(left_behind):
    assert _of(left_behind, "dinsync.sender.", "aiohttp.", "aiosignal.") == {}


def test_loading_the_project_leaves_no_configuration_in_a_cycle(left_behind):
    """(The Python API reads the project again for each call.)"""
    assert _of(left_behind, "dinsync.config.") == {}


# CPython 3.11's socket transport and its `_read_ready` bound method: a cycle of asyncio's own,
# its socket closed
ASYNCIO_OWN = ("asyncio.selector_events._SelectorSocketTransport",)


def test_a_run_leaves_nothing_else_in_a_cycle(left_behind):
    assert {name: n for name, n in left_behind.items() if not name.startswith(ASYNCIO_OWN)} == {}


@pytest.mark.parametrize("kind", ["duckdb", "postgres"])
def test_a_run_that_fails_in_the_warehouse_leaves_nothing_in_a_cycle(kind, tmp_path):
    """Its exception's traceback held the frames that held the exception (the operator's list of
    why runs failed; contextlib's `value`), and with them the run, its planner and its connection."""
    left = _collect(kind, tmp_path, failing=True)
    assert {name: n for name, n in left.items() if not name.startswith(ASYNCIO_OWN)} == {}
