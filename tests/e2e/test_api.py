"""The Python API (`import dinsync`): the CLI's results as dataclasses, the same exit codes, the
same implementation underneath."""
from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import threading

import pytest

import dinsync
from dinsync.engine import StopToken
from dinsync.report import run_object


def test_import_dinsync_loads_no_heavy_library():
    code = ("import sys, dinsync; dinsync.load_project; dinsync.ConfigError; "
            "print([m for m in ('polars', 'aiohttp', 'sqlglot', 'duckdb', 'pyarrow', 'typer', 'rich') "
            "if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_run_has_the_fields_of_the_cli_run_object():
    assert [f.name for f in dataclasses.fields(dinsync.Run)] == list(run_object(sync="x", status="success"))
    assert dinsync.ConfigError.exit_code == dinsync.ExitCode.CONFIG_ERROR == 3


def test_load_project_reports_configuration_errors(tmp_path):
    with pytest.raises(dinsync.ConfigError) as exc:
        dinsync.load_project(tmp_path)
    assert "no dinsync.yml" in exc.value.issues[0].message
    (tmp_path / "dinsync.yml").write_text("version: 2\n")
    with pytest.raises(dinsync.ConfigError) as exc:
        dinsync.load_project(tmp_path)
    assert exc.value.exit_code == 3 and exc.value.issues[0].file == "dinsync.yml"


def test_plan_sync_status_check_like_the_cli(project, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # the API works from anywhere and leaves the working directory alone
    api = dinsync.load_project(project.root)
    assert api.syncs == ["iterable_users"] and api.models == ["customers"]

    planned = api.plan(select="iterable_*")
    plan, = planned.plans
    assert isinstance(plan, dinsync.SyncPlan) and (plan.added, plan.segment_rows, planned.exit_code) == (20, 20, 0)
    cli_plan = json.loads(project.cli("plan").stdout)["plans"][0]
    assert dataclasses.asdict(plan).keys() == cli_plan.keys()
    assert plan.as_dict() == cli_plan  # like Run.as_dict(): the CLI's JSON object (README)

    events, finished = [], []
    result = api.sync(progress=lambda sync, event, data: events.append((sync, event)), on_run=finished.append)
    assert os.getcwd() == str(tmp_path)
    run, = result.runs
    assert isinstance(run, dinsync.Run) and (run.status, run.acknowledged, result.exit_code) == ("success", 20, 0)
    assert result.ok and finished == [run] and ("iterable_users", "plan") in events
    result.raise_for_status()

    status = api.status(limit=1)
    cli_status = json.loads(project.cli("status", "--limit", "1").stdout)
    assert [r.as_dict() for r in status.runs] == cli_status["runs"]
    assert status.syncs == cli_status["syncs"] and status.syncs[0]["paused"] is False  # each sync's state
    assert status.runs[0].run_id == run.run_id

    checked = api.check()
    model, = checked.models
    assert isinstance(model, dinsync.ModelCheck) and (model.model, model.status, checked.exit_code) == (
        "customers", "ok", 0)
    assert dataclasses.asdict(checked)["models"] == json.loads(project.cli("check").stdout)["models"]
    assert [model.as_dict()] == json.loads(project.cli("check").stdout)["models"]
    assert model.keys[0].as_dict() == model.as_dict()["keys"][0]


def test_failures_keep_the_cli_exit_codes(project):
    api = dinsync.load_project(project.root)
    with pytest.raises(dinsync.ConfigError) as exc:
        api.sync(select="tag:nothing")
    assert exc.value.exit_code == 3
    project.sql("insert into main.customers select id + 100, email, user_id, first_name, plan, ltv "
                "from main.customers")  # every key twice: the model is blocked
    result = api.sync()
    assert result.exit_code == dinsync.ExitCode.RUN_FAILED and not result.ok
    assert result.runs[0].error.startswith("model customers is blocked: 40 of 40 rows (100.0%)")
    with pytest.raises(dinsync.SyncFailed) as failed:
        result.raise_for_status()
    assert failed.value.exit_code == 1 and failed.value.result is result
    assert "iterable_users failed: model customers is blocked" in failed.value.message
    checked = api.check()
    assert checked.exit_code == 1 and checked.models[0].status == "blocked"
    with pytest.raises(dinsync.SyncFailed):
        checked.raise_for_status()


def test_warnings_can_be_allowed(project):
    project.seed(100)
    project.sql("insert into main.customers values (101, 'user1@example.com', 'u', 'D', 'free', 1.0)")
    result = dinsync.load_project(project.root).sync()
    assert result.exit_code == dinsync.ExitCode.WARNINGS and result.runs[0].status == "warning"
    result.raise_for_status(allow_warnings=True)
    with pytest.raises(dinsync.SyncFailed):
        result.raise_for_status()


def test_a_stop_requested_before_starts_nothing(project):
    stop = StopToken()
    stop.request()
    result = dinsync.load_project(project.root).sync(stop=stop)
    run, = result.runs  # listed as not started: stopped, not a success
    assert (run.status, run.run_id, result.exit_code) == ("cancelled", None, 143)


def test_check_counts_in_the_warehouse_without_pulling_rows(project, monkeypatch):
    """`check` asks the warehouse for counts: no result larger than the samples, nothing streamed."""
    from dinsync.warehouses.duckdb import DuckDBWarehouse

    project.seed(500)
    project.sql("insert into main.customers select id + 1000, email, user_id, first_name, plan, ltv "
                "from main.customers where id <= 10")  # 10 duplicated emails
    results, original_query, original_rows = [], DuckDBWarehouse.query, DuckDBWarehouse.rows

    def query(self, sql, params=None):
        table = original_query(self, sql, params)
        results.append(table.num_rows)
        return table

    def rows(self, sql, params=None):
        found = original_rows(self, sql, params)
        results.append(len(found))
        return found

    def stream(self, *args, **kwargs):
        raise AssertionError("check streamed rows")

    monkeypatch.setattr(DuckDBWarehouse, "query", query)
    monkeypatch.setattr(DuckDBWarehouse, "rows", rows)
    monkeypatch.setattr(DuckDBWarehouse, "stream", stream)
    checked = dinsync.load_project(project.root).check(samples=3)
    email = checked.models[0].keys[0]
    assert (email.duplicate_keys, email.duplicate_rows, len(email.sample)) == (10, 20, 3)
    assert results and max(results) <= 3


def test_status_and_check_need_no_destination_secret(project, monkeypatch):
    """As `dinsync status` / `dinsync check`: a process without the destination's key (a monitor,
    an orchestrator's check task) loads the project and reads; `sync` refuses before running."""
    dinsync.load_project(project.root).sync()
    monkeypatch.delenv("ITERABLE_TEST_KEY")
    api = dinsync.load_project(project.root)
    assert api.status(limit=1).runs[0].status == "success"
    assert api.check().exit_code == 0
    with pytest.raises(dinsync.ConfigError) as exc:
        api.sync()
    issue, = exc.value.issues
    assert "ITERABLE_TEST_KEY is not set" in issue.message and (issue.file, issue.line) == ("dinsync.yml", 8)


def test_a_stop_before_any_run_says_so_when_raised(project):
    stop = StopToken()
    stop.request()
    result = dinsync.load_project(project.root).sync(stop=stop)
    with pytest.raises(dinsync.SyncFailed) as failed:
        result.raise_for_status()
    assert failed.value.exit_code == 143
    assert "stopped by SIGTERM before" in failed.value.message


def test_calls_from_two_threads_wait_for_each_other(tmp_path, monkeypatch):
    """The working directory is the process's: a call from another thread (an orchestrator running
    tasks in threads) waits for the running one instead of moving its working directory."""
    from dinsync.operations import working_dir

    monkeypatch.chdir(tmp_path)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    seen, release = [], threading.Event()

    def other():
        with working_dir(tmp_path / "b"):
            seen.append(os.getcwd())
            release.wait(5)

    thread = threading.Thread(target=other)
    with working_dir(tmp_path / "a"):
        thread.start()
        thread.join(0.3)
        inside = os.getcwd()
        release.set()
    thread.join(5)
    assert inside == str(tmp_path / "a") and seen == [str(tmp_path / "b")]
    assert os.getcwd() == str(tmp_path)


def test_a_relative_path_is_the_callers_while_another_thread_runs(project, monkeypatch, tmp_path):
    from dinsync.operations import working_dir

    monkeypatch.chdir(project.root.parent)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    loaded = []
    thread = threading.Thread(target=lambda: loaded.append(dinsync.load_project(project.root.name).root))
    with working_dir(elsewhere):  # another thread's call, running
        thread.start()
        thread.join(0.3)
    thread.join(5)
    assert loaded == [project.root]


def test_a_run_interrupted_by_an_exception_that_is_not_an_error_is_never_left_running(project):
    """A KeyboardInterrupt in a host that installed no signal handler (or SystemExit: rich raises
    it when the output pipe closed, `dinsync sync 2>&1 | head -1`) went through the engine's
    `finally`, which recorded the run with the status it had, "running", and released its lock:
    the run log showed it running forever (never taken over, so never marked abandoned)."""
    def progress(sync, event, data):
        if event == "send":
            raise KeyboardInterrupt

    api = dinsync.load_project(project.root)
    with pytest.raises(KeyboardInterrupt):
        api.sync(progress=progress)
    [run] = api.status(limit=1).runs
    assert run.status == "failed" and "KeyboardInterrupt" in run.error, run
    assert api.sync().ok  # the lock was released: the next run goes ahead


def test_a_callback_that_raises_fails_no_sync(project):
    """An orchestrator's progress or on_run callback that raises (its metrics client is down) made
    the run `failed` with the callback's error in the run log and the channels' `failed` notice
    (progress), or lost the whole result and the syncs after it (on_run). Now the runs go on; the
    result's notes say which callback raised, and it is not called again."""
    calls = []

    def progress(sync, event, data):
        calls.append(event)
        raise ValueError("metrics backend down")

    def on_run(run):
        raise RuntimeError("orchestrator bug")

    api = dinsync.load_project(project.root)
    result = api.sync(progress=progress, on_run=on_run)
    [run] = result.runs
    assert (run.status, run.acknowledged, run.error, result.exit_code) == ("success", 20, None, 0)
    assert len(calls) == 1
    assert result.notes == [
        "the progress callback raised ValueError: metrics backend down; it was not called again by this sync() call",
        "the on_run callback raised RuntimeError: orchestrator bug; it was not called again by this sync() call"]
    assert api.status(limit=1).runs[0].status == "success"


def test_sync_notes_hold_what_the_cli_prints_on_stderr(project, monkeypatch):
    """README: each result has `notes`, what the CLI prints on stderr. The API passed no log to the
    operator nor the runs and kept no engine note: a notification that failed, a pause, skipped
    rows were printed by `dinsync sync` and missing from `SyncResult.notes`."""
    with open(project.root / "dinsync.yml", "a") as f:
        f.write("notifications:\n  - type: webhook\n    name: ops\n    url: http://127.0.0.1:1/hook\n"
                "    attempts: 1\n    timeout_seconds: 1\n")
    project.seed(100)
    project.sql("insert into main.customers values (500, null, 'u-500', 'N', 'free', 1.0), "
                "(501, 'user1@example.com', 'u', 'D', 'free', 1.0)")  # a key twice: the run warns
    result = dinsync.load_project(project.root).sync()
    assert result.runs[0].status == "warning", result.runs[0]
    cli = project.cli("sync", json_output=False)
    cli_notes = [line.removeprefix("note: ").replace("iterable_users: note: ", "iterable_users: ")
                 for line in cli.stderr.splitlines() if "note: " in line]
    assert any(n.startswith("notification to ops (iterable_users warning) failed after 1 attempt(s)")
               for n in result.notes), result.notes
    assert "iterable_users: 1 row with a NULL matching key was skipped" in result.notes, result.notes
    assert [n for n in result.notes if "notification" not in n] == [n for n in cli_notes if "notification" not in n]


def test_calls_from_a_coroutine_run(project):
    """From async code (an async orchestrator's task, a web handler) every run failed with
    "RuntimeError: asyncio.run() cannot be called from a running event loop", was recorded failed
    and its notice could not be sent either; now the call runs in a helper thread (still blocking)."""
    import asyncio

    async def main():
        api = dinsync.load_project(project.root)
        return api.sync(), api.plan(), api.check(), api.status(limit=1)

    synced, planned, checked, status = asyncio.run(main())
    [run] = synced.runs
    assert (run.status, run.acknowledged, run.error, synced.exit_code) == ("success", 20, None, 0)
    assert (planned.exit_code, checked.exit_code, status.runs[0].run_id) == (0, 0, run.run_id)
    assert os.getcwd() != str(project.root)


def test_a_stop_during_the_last_sync_does_not_speak_of_remaining_syncs(project):
    """SyncFailed said "...; stopped by SIGTERM before the remaining syncs ran" of a stop during the
    only selected sync: no sync remained."""
    stop = StopToken()

    def progress(sync, event, data):
        if event == "send":
            stop.request()

    result = dinsync.load_project(project.root).sync(stop=stop, progress=progress)
    assert result.exit_code == 143 and result.runs[0].status == "cancelled"
    with pytest.raises(dinsync.SyncFailed) as failed:
        result.raise_for_status()
    assert failed.value.message.startswith("1 of 1 syncs did not succeed (exit code 143): iterable_users cancelled: ")
    assert "remaining" not in failed.value.message and "before" not in failed.value.message
    assert "_selected" not in result.as_dict()


def test_arguments_out_of_the_clis_bounds_raise_value_error(project):
    """`--limit` is at least 1 and `--samples` at least 0 on the command line, both at most
    1,000,000,000; through the API, plan(samples=-1) raised a WarehouseSqlError ("LIMIT/OFFSET
    cannot be negative") after opening the warehouse, status(limit=-1) answered no run at all, and
    plan(samples=10**20) failed in DuckDB ('Type INT128 ... out of range')."""
    api = dinsync.load_project(project.root)
    for call, message in ((lambda: api.plan(samples=-1), "samples must be an integer from 0 to 1,000,000,000, not -1"),
                          (lambda: api.check(samples=-2), "samples must be an integer from 0 to 1,000,000,000, not -2"),
                          (lambda: api.status(limit=0), "limit must be an integer from 1 to 1,000,000,000, not 0"),
                          (lambda: api.status(limit=-1), "limit must be an integer from 1 to 1,000,000,000, not -1"),
                          (lambda: api.plan(samples=10**20),
                           f"samples must be an integer from 0 to 1,000,000,000, not {10**20}")):
        with pytest.raises(ValueError) as exc:
            call()
        assert str(exc.value) == message
    assert len(api.plan(samples=0).plans) == 1


def test_a_selection_given_as_an_iterator_is_read_once(project):
    """`select` and `exclude` may be any iterable of names (README); an iterator (a generator, `map`,
    `filter`) was consumed by the selection checked while loading the project, and the selection of
    the run itself then read it empty: `exclude=` excluded nothing (the excluded sync was sent)."""
    (project.root / "syncs" / "iterable_users.yml").rename(project.root / "syncs" / "iterable_a.yml")
    (project.root / "syncs" / "iterable_b.yml").write_text(
        (project.root / "syncs" / "iterable_a.yml").read_text())
    api = dinsync.load_project(project.root)
    assert [p.sync for p in api.plan(exclude=(n for n in ["iterable_b"])).plans] == ["iterable_a"]
    assert [p.sync for p in api.plan(select=iter(["iterable_b"])).plans] == ["iterable_b"]
    result = api.sync(select=map(str, ["iterable_a", "iterable_b"]), exclude=filter(None, ["iterable_b"]))
    assert [r.sync for r in result.runs] == ["iterable_a"]
    assert [r.sync for r in api.status(exclude=iter(["iterable_a"])).runs] == []


def test_the_calling_threads_event_loop_is_kept(project):
    """The sender runs its own loop with `asyncio.run`, which unsets the thread's event loop when it
    ends: a host that had set one (`asyncio.set_event_loop(loop)`, later `get_event_loop()`) found
    none after a sync ("RuntimeError: There is no current event loop in thread 'MainThread'")."""
    import asyncio

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        assert dinsync.load_project(project.root).sync().ok
        assert asyncio.get_event_loop() is loop
    finally:
        asyncio.set_event_loop(None)
        loop.close()


def test_a_selection_of_the_wrong_type_is_a_type_error(project):
    """`select=[None]` or `select=b"name"` raised AttributeError ('NoneType' object has no attribute
    'split') from inside the selection, after the warehouse was opened."""
    api = dinsync.load_project(project.root)
    for bad in (5, [None], b"iterable_users", ["iterable_users", 3]):
        for call in (lambda: api.plan(select=bad), lambda: api.sync(exclude=bad), lambda: api.status(select=bad),
                     lambda: api.check(exclude=bad)):
            with pytest.raises(TypeError) as exc:
                call()
            assert str(exc.value).startswith("a selection is a sync name, glob, tag: or model: selector"), exc.value
    assert api.status(select=("iterable_users",)).syncs[0]["sync"] == "iterable_users"


def test_an_interrupt_of_a_call_from_a_coroutine_stops_its_sync(project):
    """Jupyter runs a cell's code in a running event loop, so a call runs in a helper thread; the
    kernel's interrupt (a KeyboardInterrupt in the loop's thread) only ended the wait: the sync went
    on to its end, or past a second interrupt in the background, holding the working directory and
    the next call. Now the interrupt stops the sync as `stop.request()` does, then is raised."""
    import asyncio
    import signal as signals

    project.seed(20000)
    sent = []

    def progress(sync, event, data):
        if event == "sent":
            sent.append(data)
            if len(sent) == 1:
                os.kill(os.getpid(), signals.SIGINT)  # the loop's thread waits: it gets KeyboardInterrupt

    async def main():
        return api.sync(progress=progress)

    api = dinsync.load_project(project.root)
    loop = asyncio.new_event_loop()  # (asyncio.run would make the first SIGINT cancel its task instead)
    try:
        with pytest.raises(KeyboardInterrupt):
            loop.run_until_complete(main())
    finally:
        loop.close()
    [run] = api.status(limit=1).runs
    assert run.status == "cancelled" and run.acknowledged < 20000, run
    assert not any(t.name.startswith("dinsync-api") for t in threading.enumerate())  # nothing left running


def test_sync_failed_survives_pickling(project):
    """An orchestrator running the call in another process (a process pool, Celery, Ray) pickles the
    exception: SyncFailed could not be unpickled ("__init__() missing 1 required positional argument:
    'result'"), and the task's failure became that TypeError."""
    import pickle

    project.sql("insert into main.customers select id + 100, email, user_id, first_name, plan, ltv "
                "from main.customers")  # every key twice: the model is blocked
    result = dinsync.load_project(project.root).sync()
    with pytest.raises(dinsync.SyncFailed) as failed:
        result.raise_for_status()
    copy = pickle.loads(pickle.dumps(failed.value))
    assert (copy.message, copy.hint, copy.exit_code) == (failed.value.message, failed.value.hint, 1)
    assert copy.result == result and str(copy) == str(failed.value)


def test_config_error_survives_pickling(tmp_path):
    """A process pool, Celery or Ray pickles the ConfigError a task raised: unpickling called
    ConfigError(message), which took the message for the list of issues: "190 configuration
    error(s):" followed by one "issue" per character of the original text."""
    import pickle

    (tmp_path / "dinsync.yml").write_text("version: 2\n")
    with pytest.raises(dinsync.ConfigError) as exc:
        dinsync.load_project(tmp_path)
    copy = pickle.loads(pickle.dumps(exc.value))
    assert str(copy) == str(exc.value) and copy.args == exc.value.args
    assert (copy.issues, copy.message, copy.exit_code) == (exc.value.issues, exc.value.message, 3)


def _sync_in_a_child(root, answers):
    try:
        dinsync.load_project(root).sync()
        answers.put(("returned", ""))
    except BaseException as exc:  # noqa: BLE001 - the test reads what the child saw
        answers.put((type(exc).__name__, str(exc)))


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork on this platform")
def test_a_sync_in_a_process_forked_after_polars_was_used_is_refused_not_hung(project):
    """Celery's prefork pool, Airflow's LocalExecutor, multiprocessing's default on Linux fork
    the worker: Polars' thread pool does not survive a fork, and a sync in a child forked after a
    sync in the parent hung in Polars for ever, holding its sync's lock (its heartbeat went on)."""
    import multiprocessing

    api = dinsync.load_project(project.root)
    assert api.plan().plans[0].added == 20  # Polars used in this process
    context = multiprocessing.get_context("fork")
    answers = context.Queue()
    child = context.Process(target=_sync_in_a_child, args=(project.root, answers))
    child.start()
    child.join(60)
    hung = child.is_alive()
    if hung:
        child.kill()
        child.join()
    assert not hung, "the sync in the forked child hung"
    kind, message = answers.get(timeout=5)
    assert kind == "RuntimeError" and "spawn" in message, (kind, message)
    assert api.sync().runs[0].acknowledged == 20  # the parent's next sync: nothing was sent nor locked


def test_a_sync_from_a_progress_callback_does_not_break_the_running_one(project):
    """A sync or plan of the same sync called from a progress callback while its run was going
    (the callback runs in the calling thread, which holds the call's lock): the inner call found
    the sync's lock busy, but on its way out detached the DuckDB scratch database the outer run
    was planning in, and the outer run failed ("Schema ... does not exist")."""
    api = dinsync.load_project(project.root)
    inner = []

    def progress(sync, event, data):
        if event == "plan" and not inner:
            for call in (api.sync, api.plan):
                try:
                    call()
                except RuntimeError as exc:
                    inner.append(str(exc))

    result = api.sync(progress=progress)
    run, = result.runs
    assert (run.status, run.acknowledged, run.error) == ("success", 20, None)
    assert len(inner) == 2 and all("on_run" in message for message in inner), inner
    assert api.status().runs[0].status == "success" and api.sync(on_run=lambda run: api.plan()).ok


def test_a_status_from_a_callback_inside_the_senders_event_loop_does_not_hang(project):
    """`send` and `sent` events are handed to the progress callback from inside the sender's
    event loop: a status() there took the loop for the caller's and waited in a helper thread for
    the call's lock, which its own thread held: it hung for ever, the sync's lock beating on."""
    api = dinsync.load_project(project.root)
    seen = []

    def progress(sync, event, data):
        if event in ("send", "sent") and len(seen) < 2:
            seen.append((event, [run.status for run in api.status(limit=1).runs], api.check().exit_code))

    outcome = []
    caller = threading.Thread(target=lambda: outcome.append(api.sync(progress=progress)), daemon=True)
    caller.start()
    caller.join(60)
    assert not caller.is_alive(), "the call hung"
    run, = outcome[0].runs
    assert (run.status, run.acknowledged) == ("success", 20) and outcome[0].notes == []
    assert seen == [("send", ["running"], 0), ("sent", ["running"], 0)]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork on this platform")
def test_a_child_of_a_host_that_only_imported_polars_may_plan(project):
    """Polars' thread pool starts on first use: a host that imported Polars (a Celery app's task
    module) and forks its workers before any sync or plan is not refused."""
    code = f"""if True:
        import multiprocessing, polars, dinsync
        project = dinsync.load_project({str(project.root)!r})
        def child(answers):
            try:
                answers.put(project.plan(samples=0).plans[0].added)
            except BaseException as exc:
                answers.put(repr(exc))
        context = multiprocessing.get_context("fork")
        answers = context.Queue()
        process = context.Process(target=child, args=(answers,))
        process.start()
        print(answers.get(timeout=60))
        process.join(10)
    """
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "20", (out.stdout, out.stderr[-2000:])


def test_calls_work_when_the_hosts_working_directory_was_removed(project, tmp_path, monkeypatch):
    """A long-lived worker whose working directory was deleted (a deployment replacing its release
    folder, a cleaned temporary folder): every call, with an absolute project path, raised a bare
    FileNotFoundError from reading the working directory it moves back to afterwards."""
    gone = tmp_path / "gone"
    gone.mkdir()
    monkeypatch.chdir(gone)
    gone.rmdir()
    api = dinsync.load_project(project.root)
    assert api.sync().runs[0].acknowledged == 20 and api.status().runs[0].status == "success"
    with pytest.raises(FileNotFoundError):
        os.getcwd()  # back where the host was
    with pytest.raises(dinsync.ConfigError) as exc:
        dinsync.load_project("relative/path")
    assert "absolute" in exc.value.issues[0].hint


def test_the_debug_traceback_a_failed_runs_hint_offers_is_in_the_notes(project, monkeypatch):
    """A run that failed on an unexpected error says "set DINSYNC_DEBUG=1 for a traceback"; the CLI
    then prints it on stderr, the API gave it nowhere (no `on_exception`): the hint led nowhere."""
    from dinsync.engine.run import SyncRun

    def broken(self):
        raise RuntimeError("boom in the engine")

    monkeypatch.setattr(SyncRun, "run", broken)
    api = dinsync.load_project(project.root)
    [run] = api.sync().runs
    assert run.error == "unexpected error: RuntimeError: boom in the engine"
    assert run.hint == "set DINSYNC_DEBUG=1 for a traceback"
    monkeypatch.setenv("DINSYNC_DEBUG", "1")
    result = api.sync()
    assert any(n.startswith("Traceback (most recent call last)") and "boom in the engine" in n and "in broken" in n
               for n in result.notes), result.notes


def test_the_hosts_sigint_handler_still_runs_promptly_after_a_sync(project):
    """A sync imports Polars, which puts a SIGINT handler of its own in front of the process's at
    import time: afterwards the host's handler (or its KeyboardInterrupt) ran only once the main
    thread's wait ended (`Thread.join()`, `Event.wait()`), not when the signal came."""
    code = f"""
import os, signal, threading, time, dinsync
seen = []
signal.signal(signal.SIGINT, lambda signum, frame: seen.append(time.monotonic()))
assert dinsync.load_project({str(project.root)!r}).sync().ok
start, done = time.monotonic(), threading.Event()
threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGINT)).start()
threading.Timer(3, done.set).start()
done.wait()
print(round(seen[0] - start, 1) if seen else None)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert float(out.stdout) < 1, out.stdout


def test_a_call_that_raises_runtime_error_runs_once(project):
    """In a process that had not imported asyncio, a call raising RuntimeError (e.g. "can't start
    new thread") was caught as "no running event loop" and made a second time."""
    code = f"""
import sys, dinsync
from dinsync import operations
calls = []
def status_data(*args):
    calls.append(1)
    raise RuntimeError("can't start new thread")
operations.status_data = status_data
assert "asyncio" not in sys.modules
try:
    dinsync.load_project({str(project.root)!r}).status()
except RuntimeError as exc:
    print(len(calls), exc)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "1 can't start new thread", (out.stdout, out.stderr[-500:])


def test_a_stop_that_is_not_a_stop_token_is_a_type_error(project):
    """`stop=threading.Event()` raised AttributeError ('Event' object has no attribute 'requested')
    from inside the runs' loop."""
    api = dinsync.load_project(project.root)
    for stop in (threading.Event(), True):
        with pytest.raises(TypeError) as exc:
            api.sync(stop=stop)
        assert str(exc.value).startswith("stop must be a dinsync.engine.StopToken (stop.request() stops the runs), ")
    assert api.status().runs == []


def test_a_project_folder_behind_a_symlink_is_followed_at_each_call(project, tmp_path):
    """Deployments swap a symlink to the new release (git-sync, Capistrano) and remove the old one;
    `load_project` resolved the link once, so a long-lived Project read the old release's files, then
    failed with FileNotFoundError (a traceback, not a ConfigError) once it was removed."""
    import shutil

    current = tmp_path / "current"
    current.symlink_to(project.root)
    api = dinsync.load_project(current)
    assert api.root == current
    release2 = tmp_path / "release2"
    shutil.copytree(project.root, release2)
    (release2 / "syncs" / "iterable_users.yml").rename(release2 / "syncs" / "iterable_people.yml")
    current.unlink()
    current.symlink_to(release2)
    shutil.rmtree(project.root)
    assert [p.sync for p in api.plan().plans] == ["iterable_people"]
    shutil.rmtree(release2)
    with pytest.raises(dinsync.ConfigError) as exc:
        api.status()
    assert exc.value.issues[0].message == f"project folder {current} not found"


def test_plan_samples_hold_the_clis_json_values(project):
    """README: `as_dict()` gives the CLI's JSON. A plan's samples held Decimal, datetime and date
    objects (the CLI writes their text): `json.dumps(plan.as_dict())` failed (an orchestrator
    storing it: Airflow's XCom, Dagster's metadata) and it differed from `dinsync plan --json`."""
    project.sql("create or replace table main.customers as select i as id, 'user' || i || '@example.com' as email, "
                "'u' || i as user_id, 'N' as first_name, 'free' as plan, (i * 1.5)::decimal(10, 2) as ltv, "
                "timestamp '2024-01-01 10:00:00' as seen, date '2024-01-02' as day from range(1, 4) t(i)")
    (project.root / "models" / "customers.sql").write_text(
        "-- primary_key: id\n-- model_type: user\nselect id, email, user_id, first_name, plan, ltv, seen, day "
        "from main.customers\n")
    sync_file = project.root / "syncs" / "iterable_users.yml"
    sync_file.write_text(sync_file.read_text().replace("  ltv: ltv\n", "  ltv: ltv\n  seen: seenAt\n  day: day\n"))
    planned = dinsync.load_project(project.root).plan()
    sample = planned.plans[0].samples["added"][0]["fields"]
    assert (sample["ltv"], sample["seenAt"], sample["day"]) == (1.5, "2024-01-01T10:00:00", "2024-01-02")  # as sent
    assert json.loads(json.dumps(planned.as_dict()))["plans"] == json.loads(project.cli("plan").stdout)["plans"]


def test_get_event_loop_still_creates_a_loop_after_a_sync(project):
    """`asyncio.run` (the sender's) marks the thread's loop as set, to none: a host's later
    `asyncio.get_event_loop()` (the legacy pattern, which creates the main thread's loop) raised
    "There is no current event loop in thread 'MainThread'"."""
    code = f"""
import asyncio, warnings, dinsync
assert dinsync.load_project({str(project.root)!r}).sync().ok
warnings.simplefilter("ignore", DeprecationWarning)
print(asyncio.get_event_loop().run_until_complete(asyncio.sleep(0, "ran")))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "ran", out.stderr[-300:]


def test_a_call_from_a_callback_of_the_commit_thread_does_not_hang(project):
    """`checkpoint` events come from the run's commit thread: a progress callback calling the API
    there (`project.status()`, to report progress) waited for the running sync(), which waited for
    its commit thread: the process hung for ever. Now that call raises and the callback's note says so."""
    project.seed(3000)
    api = dinsync.load_project(project.root)

    def progress(sync, event, data):
        if event == "checkpoint":
            api.status(limit=1)

    results = []
    caller = threading.Thread(target=lambda: results.append(api.sync(progress=progress)), daemon=True)
    caller.start()
    caller.join(60)
    assert not caller.is_alive(), "sync() hung"
    [result] = results
    assert result.ok and result.runs[0].acknowledged == 3000
    assert result.notes == ["the progress callback raised RuntimeError: a dinsync call from a callback run by another "
                            "thread of a running sync() would wait for that sync() for ever: make it after sync() "
                            "returns; it was not called again by this sync() call"], result.notes


def test_rows_rejected_before_sending_are_committed_as_the_run_goes(project, monkeypatch):
    """Only a send's answer ran a checkpoint: rows rejected by the mapping (a NaN here) waited in
    memory for the next answer, and a sync whose rows were all rejected held all of them until its
    last commit (peak RSS 309 MB at 100k rows, 598 MB at 500k)."""
    project.sql("create or replace table main.customers as select i as id, 'user' || i || '@example.com' as email, "
                "'u-' || i as user_id, 'n' as first_name, 'free' as plan, 'NaN'::double as ltv from range(1000) t(i)")
    monkeypatch.setenv("DINSYNC_BATCH_ROWS", "100")
    monkeypatch.setenv("DINSYNC_CHECKPOINT_ROWS", "100")
    monkeypatch.setenv("DINSYNC_CHECKPOINT_SECONDS", "3600")
    events = []
    run, = dinsync.load_project(project.root).sync(progress=lambda sync, event, data: events.append(event)).runs
    assert (run.rejected, run.parked, run.sent) == (1000, 1000, 0)
    assert events.count("checkpoint") >= 10, events


def test_a_flag_that_is_not_a_bool_is_a_type_error(project):
    """`sync(full_refresh="yes")` (a string from an orchestrator's config) sent every row again as
    a full refresh, then failed the run with "commit_full_refresh_cleanup needs a full-refresh
    plan" (the engine asks `is True`): an exit 1 after the whole segment went out, where a caller's
    mistake raises before anything runs, as a selection of the wrong type does."""
    api = dinsync.load_project(project.root)
    for bad in ("yes", 1, None):
        for call in (lambda: api.sync(full_refresh=bad), lambda: api.sync(retry_rejected=bad),
                     lambda: api.sync(force=bad), lambda: api.plan(full_refresh=bad)):
            with pytest.raises(TypeError) as exc:
                call()
            assert " must be True or False, not " in str(exc.value), exc.value
    assert api.status().runs == []


def test_an_error_of_a_call_is_not_shown_as_raised_while_handling_another(project, monkeypatch):
    """In a process that imported asyncio (Airflow, Dagster, a web framework), every exception a call
    raised was chained to the RuntimeError("no running event loop") of the API's check for a running
    loop: the task's log began with that error, then "During handling of the above exception,
    another exception occurred", then the real one."""
    import asyncio  # noqa: F401  (as any orchestrator has)

    monkeypatch.delenv("ITERABLE_TEST_KEY")
    with pytest.raises(dinsync.ConfigError) as raised:
        dinsync.load_project(project.root).sync()
    chain, exc = [], raised.value
    while exc is not None:
        chain.append(repr(exc))
        exc = exc.__context__
    assert not any("no running event loop" in text for text in chain), chain
