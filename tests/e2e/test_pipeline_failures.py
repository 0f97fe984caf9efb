"""Failures inside the send phase end the run with an error: they never leave it waiting."""
from __future__ import annotations

import threading

from dinsync.diff.planner import Planner
from dinsync.warehouses.errors import WarehouseUnavailable


class Acknowledgements:
    """Counts the checkpointer's acknowledged() calls (on the event loop's thread); `wait(n)`: until
    n more than when it was called came (rows for a later checkpoint than the one committing)."""

    def __init__(self, monkeypatch):
        from dinsync.engine.commits import Checkpointer

        self.count = 0
        self.changed = threading.Condition()
        acknowledged = Checkpointer.acknowledged

        def counted(checkpointer, keys):
            acknowledged(checkpointer, keys)
            with self.changed:
                self.count += 1
                self.changed.notify_all()

        monkeypatch.setattr(Checkpointer, "acknowledged", counted)

    def wait(self, n: int) -> None:
        with self.changed:
            target = self.count + n
            assert self.changed.wait_for(lambda: self.count >= target, timeout=30)


def test_a_failing_commit_fails_the_run_instead_of_hanging(project, monkeypatch):
    """Every sender task commits; when commits fail (here: DuckDB out of memory), the tasks end
    while the reader still has batches for a request queue that nobody drains any more."""
    project.write(destination_extra="    bulk_max_users: 10\n    rate_limits: {bulk_update: null}\n")
    project.seed(3000)
    project.thread.call(lambda: project.sandbox.options.__setattr__("limits", False))  # 300 requests at once
    monkeypatch.setenv("DINSYNC_BATCH_ROWS", "500")
    monkeypatch.setenv("DINSYNC_QUEUE_REQUESTS", "1")
    monkeypatch.setenv("DINSYNC_CHECKPOINT_ROWS", "10")

    def out_of_memory(self, keys, also=None):
        raise WarehouseUnavailable("Out of Memory Error: could not allocate block of size 256 KiB")

    original = Planner.commit_acknowledged
    monkeypatch.setattr(Planner, "commit_acknowledged", out_of_memory)
    result: dict = {}
    runner = threading.Thread(target=lambda: result.setdefault("out", project.sync()), daemon=True)
    runner.start()
    runner.join(60)
    assert not runner.is_alive(), "the run hung after its commits failed"
    out = result["out"]
    assert out["exit_code"] == 1, out
    [run] = out["runs"]
    assert run["status"] == "failed" and "Out of Memory" in run["error"], run
    assert project.snapshot_keys() == set()  # nothing acknowledged was committed: sent again next run
    monkeypatch.setattr(Planner, "commit_acknowledged", original)
    for name in ("DINSYNC_BATCH_ROWS", "DINSYNC_QUEUE_REQUESTS", "DINSYNC_CHECKPOINT_ROWS"):
        monkeypatch.delenv(name)
    again = project.sync()
    assert again["exit_code"] == 0 and again["runs"][0]["acknowledged"] == 3000, again
    assert len(project.snapshot_keys()) == 3000


def test_a_run_whose_end_cannot_be_recorded_keeps_its_run_id(project, monkeypatch):
    """The warehouse goes away at the end of a run: its run log row (status `running`) cannot be
    finished or read back. The run object still names the run (`dinsync serve` logged it as
    "end ... not started", run_id null, although the run had started and its row exists)."""
    from dinsync.state import StateStore

    def unavailable(self, *args, **kwargs):
        raise WarehouseUnavailable("PostgreSQL: connection failed: connection refused")

    monkeypatch.setattr(StateStore, "finish_run", unavailable)
    monkeypatch.setattr(StateStore, "last_runs", unavailable)
    out = project.sync()
    [run] = out["runs"]
    assert out["exit_code"] == 1 and run["status"] == "failed" and "connection refused" in run["error"], run
    [(logged,)] = project.sql("select run_id from dinsync.runs")
    assert run["run_id"] == logged


def test_a_run_recorded_as_ended_keeps_its_status_when_its_lock_cannot_be_released(project, monkeypatch):
    """The run's end is in the run log (success); only releasing its lock fails: the command fails
    (exit 1), the run object still says what the run log says."""
    from dinsync.state import StateStore

    def unavailable(self, *args, **kwargs):
        raise WarehouseUnavailable("PostgreSQL: connection failed: connection refused")

    monkeypatch.setattr(StateStore, "release_lock", unavailable)
    out = project.sync()
    [run] = out["runs"]
    assert out["exit_code"] == 1 and "connection refused" in run["error"], run
    [(logged,)] = project.sql("select status from dinsync.runs")
    assert run["status"] == logged == "success"


def test_no_request_starts_once_a_checkpoints_commit_failed(project, monkeypatch):
    """A checkpoint's commit fails (here: DuckDB out of memory) while the sender tasks have answers
    coming in: the run is lost, yet sender tasks took the next requests from the queue and started
    them until the event loop learnt of the failure (6 of 117 here; ~2 s of sending on a busy
    machine). Counted: requests started (client side) once the commit had failed."""
    from dinsync.engine.commits import Checkpointer

    project.write(destination_extra="    bulk_max_users: 10\n    rate_limits: {bulk_update: null}\n")
    yml = project.root / "dinsync.yml"
    yml.write_text(yml.read_text().replace("concurrency: 4", "concurrency: 8"))
    project.seed(3000)
    project.thread.call(lambda: project.sandbox.options.__setattr__("limits", False))
    monkeypatch.setenv("DINSYNC_CHECKPOINT_ROWS", "10")
    started = project.requests.requests
    at_failure: list[int] = []
    commits: list[int] = []

    def fails_third(self, keys, also=None):
        commits.append(len(keys))
        if len(commits) == 3:
            raise WarehouseUnavailable("Out of Memory Error: could not allocate block of size 256 KiB")
        return original(self, keys, also)

    def noting_failure(self, batch, counts=None):
        try:
            return commit(self, batch, counts)
        except Exception:
            at_failure.append(len(started))
            raise

    original, commit = Planner.commit_acknowledged, Checkpointer.commit
    monkeypatch.setattr(Planner, "commit_acknowledged", fails_third)
    monkeypatch.setattr(Checkpointer, "commit", noting_failure)
    out = project.sync()
    [run] = out["runs"]
    assert out["exit_code"] == 1 and run["status"] == "failed" and "Out of Memory" in run["error"], run
    assert at_failure and len(started) - at_failure[0] == 0, (at_failure, len(started))
    delivered = project.thread.call(lambda: {u["email"] for u in project.sandbox.users})
    assert project.snapshot_keys() <= delivered
    monkeypatch.setattr(Planner, "commit_acknowledged", original)
    monkeypatch.setattr(Checkpointer, "commit", commit)
    again = project.sync()
    assert again["exit_code"] == 0 and len(project.snapshot_keys()) == 3000, again


def test_an_unexpected_error_while_mapping_names_what_the_run_was_doing(project, monkeypatch):
    """A bug in mapping one batch (a Polars error on a value no test met): the run failed saying
    only "ValueError: ...", as a failed plan or a failed commit would, with nothing telling whether
    what had been sent was committed. It names the phase; what was acknowledged is committed and
    the next run sends the rest."""
    from dinsync.engine import pipeline as pipeline_module

    project.write(destination_extra="    bulk_max_users: 10\n    rate_limits: {bulk_update: null}\n")
    project.seed(3000)
    project.thread.call(lambda: project.sandbox.options.__setattr__("limits", False))
    monkeypatch.setenv("DINSYNC_BATCH_ROWS", "500")
    monkeypatch.setenv("DINSYNC_CHECKPOINT_ROWS", "10")
    batches: list[int] = []
    original = pipeline_module.map_plan_batch

    def fails_third(batch, *args, **kwargs):
        batches.append(batch.num_rows)
        if len(batches) == 3:
            raise ValueError("cannot cast the value of row 7")
        return original(batch, *args, **kwargs)

    monkeypatch.setattr(pipeline_module, "map_plan_batch", fails_third)
    out = project.sync()
    [run] = out["runs"]
    assert out["exit_code"] == 1 and run["status"] == "failed", run
    assert run["error"] == "ValueError: cannot cast the value of row 7 (the run was mapping the plan's rows to send)"
    # (of the two batches mapped before it: requests not answered yet were given up)
    assert 0 < len(project.snapshot_keys()) == run["acknowledged"] <= 1000, run
    monkeypatch.setattr(pipeline_module, "map_plan_batch", original)
    again = project.sync()
    assert again["exit_code"] == 0 and again["runs"][0]["sent"] == 3000 - run["acknowledged"], again
    assert len(project.snapshot_keys()) == 3000


def test_a_run_whose_last_checkpoint_fails_too_keeps_the_first_error(project, monkeypatch):
    """A checkpoint's commit fails (the warehouse ran out of memory); the run still commits what
    was acknowledged since, at its last checkpoint, which fails too (the warehouse is gone by then).
    The run's error was the last checkpoint's, and the failure that ended the run was nowhere."""
    project.write(destination_extra="    bulk_max_users: 10\n    rate_limits: {bulk_update: null}\n")
    project.seed(3000)
    project.thread.call(lambda: project.sandbox.options.__setattr__("limits", False))
    project.thread.set_faults(latency=0.02)  # (answers still coming while the second commit runs)
    monkeypatch.setenv("DINSYNC_CHECKPOINT_ROWS", "10")
    commits: list[int] = []
    answers = Acknowledgements(monkeypatch)

    def fails_from_the_second(self, keys, also=None):
        commits.append(len(keys))
        if len(commits) == 2:
            answers.wait(2)  # rows acknowledged for a later checkpoint
            raise WarehouseUnavailable("Out of Memory Error: could not allocate block of size 256 KiB")
        if len(commits) > 2:
            raise WarehouseUnavailable("DuckDB: the database file is gone")
        return original(self, keys, also)

    original = Planner.commit_acknowledged
    monkeypatch.setattr(Planner, "commit_acknowledged", fails_from_the_second)
    out = project.sync()
    [run] = out["runs"]
    assert out["exit_code"] == 1 and run["status"] == "failed", run
    assert len(commits) == 3, commits  # the last checkpoint was tried
    assert run["error"].startswith("Out of Memory Error"), run
    assert "the last checkpoint failed too (DuckDB: the database file is gone)" in project.last.stderr
    monkeypatch.setattr(Planner, "commit_acknowledged", original)
    again = project.sync()
    assert again["exit_code"] == 0 and len(project.snapshot_keys()) == 3000, again


def test_sigterm_while_a_checkpoint_fails_tries_no_further_commit(project, monkeypatch):
    """SIGTERM comes while a checkpoint's commit is failing (here: out of memory; on PostgreSQL a
    lock held on the snapshot fails it after lock_timeout, 15 s): the run went on to its last
    checkpoint, a second commit as likely to fail, and as long, while the orchestrator's grace
    period (Kubernetes: 30 s) ran out before the run recorded its end. The run is lost already:
    it ends at once, `failed` with the commit's error, and the next run sends what was not committed."""
    import os
    import signal

    project.write(destination_extra="    bulk_max_users: 10\n    rate_limits: {bulk_update: null}\n")
    project.seed(3000)
    project.thread.call(lambda: project.sandbox.options.__setattr__("limits", False))
    project.thread.set_faults(latency=0.02)  # (answers still coming while the second commit runs)
    monkeypatch.setenv("DINSYNC_CHECKPOINT_ROWS", "10")
    commits: list[int] = []
    answers = Acknowledgements(monkeypatch)

    def fails_second_after_sigterm(self, keys, also=None):
        commits.append(len(keys))
        if len(commits) == 2:
            os.kill(os.getpid(), signal.SIGTERM)  # the handler of `sync` is installed: it only sets the token
            answers.wait(2)  # rows acknowledged for a later checkpoint
            raise WarehouseUnavailable("Out of Memory Error: could not allocate block of size 256 KiB")
        return original(self, keys, also)

    original = Planner.commit_acknowledged
    monkeypatch.setattr(Planner, "commit_acknowledged", fails_second_after_sigterm)
    out = project.sync()
    [run] = out["runs"]
    assert out["exit_code"] == 128 + signal.SIGTERM and run["status"] == "failed", run
    assert run["error"].startswith("Out of Memory Error"), run
    assert len(commits) == 2, commits  # no commit tried after the failed one
    committed = project.snapshot_keys()
    assert len(committed) == commits[0]
    monkeypatch.setattr(Planner, "commit_acknowledged", original)
    again = project.sync()
    assert again["exit_code"] == 0 and again["runs"][0]["sent"] == 3000 - len(committed), again
    assert len(project.snapshot_keys()) == 3000


def test_no_request_starts_once_a_sender_task_failed(project, monkeypatch):
    """A sender task fails on an unexpected error (a bug; a plugin's transport raising) after the
    reader has queued every request: the other sender tasks went on taking requests from the queue
    and sending them until the run noticed (up to 0.2 s later: every request left, here). Counted:
    requests started (client side) once the task had failed."""
    from dinsync.engine.pipeline import Pipeline

    project.write(destination_extra="    bulk_max_users: 10\n    rate_limits: {bulk_update: null}\n")
    project.seed(300)  # 30 requests: the reader has queued them all by the 20th answer
    project.thread.call(lambda: project.sandbox.options.__setattr__("limits", False))
    started = project.requests.requests
    at_failure: list[int] = []
    original = Pipeline._collect_ready

    def fails_twentieth(self):
        at_failure.append(len(started))
        if len(at_failure) == 20:
            raise RuntimeError("a bug after the 20th answer")
        return original(self)

    monkeypatch.setattr(Pipeline, "_collect_ready", fails_twentieth)
    out = project.sync()
    [run] = out["runs"]
    assert out["exit_code"] == 1 and run["status"] == "failed" and "a bug after the 20th answer" in run["error"], run
    assert len(started) - at_failure[19] == 0, (at_failure[19], len(started))
    monkeypatch.setattr(Pipeline, "_collect_ready", original)
    again = project.sync()
    assert again["exit_code"] == 0 and len(project.snapshot_keys()) == 300, again


def test_a_sender_task_that_swallows_its_cancellation_does_not_hang_the_run(project, monkeypatch):
    """A sender task fails (the destination found down); the run cancels the others and waits for
    them. A cancellation that lands as aiohttp's own request timeout fires is swallowed (it becomes
    that timeout's TimeoutError, a retry outcome): that task went back to the queue, empty with the
    reader cancelled, and waited on it forever, and the run with it (seen in CI, 1 run in ~10 of
    tests/e2e/test_cli_iterable.py's never-answering destination under load)."""
    import asyncio
    import threading

    from dinsync.engine.pipeline import Pipeline
    from dinsync.errors import DestinationUnreachableError

    project.write(destination_extra="    bulk_max_users: 10\n    rate_limits: {bulk_update: null}\n")
    project.seed(300)
    original = Pipeline._deliver
    calls = []

    async def deliver(self, request, keys=None):
        calls.append(request)
        if len(calls) == 4:
            await asyncio.sleep(0.2)  # (the others are in flight by then)
            raise DestinationUnreachableError("iterable answered no request for 35 s")
        if len(calls) < 4:
            try:
                await asyncio.sleep(30)  # an answer that does not come
            except asyncio.CancelledError:  # as aiohttp's timeout swallowing a cancellation
                pass
        return await original(self, request, keys)

    monkeypatch.setattr(Pipeline, "_deliver", deliver)
    done: list[dict] = []
    runner = threading.Thread(target=lambda: done.append(project.sync()), daemon=True)
    runner.start()
    runner.join(60)
    assert not runner.is_alive(), "the run still waited for a sender task that had swallowed its cancellation"
    [run] = done[0]["runs"]
    assert done[0]["exit_code"] == 1 and run["status"] == "failed" and "answered no request" in run["error"], run
    monkeypatch.setattr(Pipeline, "_deliver", original)
    again = project.sync()
    assert again["exit_code"] == 0 and len(project.snapshot_keys()) == 300, again
