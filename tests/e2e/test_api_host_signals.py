"""An orchestrator's own signal handlers during `Project.sync()`: Airflow's `execution_timeout`
(SIGALRM, its handler raises AirflowTaskTimeout in the task's main thread), Airflow 2's SIGTERM
(AirflowTaskTerminated). The API installs no handler of its own; what theirs raise must end the
call as they meant it to."""
from __future__ import annotations

import signal
import threading
import time

import pytest

import dinsync


class TaskTimeout(Exception):
    """What Airflow's `execution_timeout` raises: an Exception, not a BaseException."""


@pytest.fixture
def alarm_raises():
    def on_alarm(signum, frame):
        raise TaskTimeout("Timeout, PID: 1234")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    yield
    signal.signal(signal.SIGALRM, previous)


def test_an_orchestrators_timeout_ends_the_call_and_cancels_the_run(project, alarm_raises):
    """The handler's exception was taken for a failure of the run under way: the run was recorded
    `failed` ("TaskTimeout: ... (the run was sending)"), the later syncs all ran, past the timeout
    (Airflow's alarm fires once: the task's timeout never ended it), and `sync()` returned as if
    nothing had happened. Now the run ends `cancelled` with what was acknowledged committed, the
    later syncs do not start, and the call raises the handler's exception."""
    (project.root / "syncs" / "iterable_users_2.yml").write_text(
        (project.root / "syncs" / "iterable_users.yml").read_text())
    project.thread.set_faults(latency=3.0)  # (the alarm comes long before the answer, even on a busy machine)

    def alarm_once_a_request_is_in_flight():
        while not any(path.startswith("/api/users/bulkUpdate") for _, path, _ in list(project.requests.requests)):
            time.sleep(0.01)
        signal.pthread_kill(threading.main_thread().ident, signal.SIGALRM)  # (answered after 3 s)

    def on_send(sync, event, data):
        if event == "send":
            threading.Thread(target=alarm_once_a_request_is_in_flight, daemon=True).start()

    api = dinsync.load_project(project.root)
    with pytest.raises(TaskTimeout):
        api.sync(progress=on_send)
    runs = api.status(limit=1).runs
    assert [(r.sync, r.status) for r in runs] == [("iterable_users", "cancelled")], runs
    assert "stopped by SIGALRM (TaskTimeout: Timeout, PID: 1234)" in runs[0].error, runs[0].error
    assert len(project.snapshot_keys()) == runs[0].acknowledged  # nothing unacknowledged committed

    project.thread.set_faults(latency=0.0)
    assert api.sync().ok  # the lock was released: the next call converges
    assert len(project.snapshot_keys()) == 20 and len(project.sandbox.users) == 20


def test_an_orchestrators_timeout_ends_a_call_from_a_coroutine(project, alarm_raises):
    """From async code the call runs in a helper thread, and the handler's exception, raised in the
    loop's thread, only ended that thread's wait: the helper ran the run under way and the later
    syncs to their end (the call waited for it before raising), past the timeout. It now stops
    them as in a call from plain code."""
    import asyncio

    (project.root / "syncs" / "iterable_users_2.yml").write_text(
        (project.root / "syncs" / "iterable_users.yml").read_text())
    project.thread.set_faults(latency=3.0)

    def alarm_once_a_request_is_in_flight():
        while not any(path.startswith("/api/users/bulkUpdate") for _, path, _ in list(project.requests.requests)):
            time.sleep(0.01)
        signal.pthread_kill(threading.main_thread().ident, signal.SIGALRM)  # the loop's thread

    def on_send(sync, event, data):
        if event == "send":
            threading.Thread(target=alarm_once_a_request_is_in_flight, daemon=True).start()

    async def main():
        return api.sync(progress=on_send)

    api = dinsync.load_project(project.root)
    loop = asyncio.new_event_loop()
    try:
        with pytest.raises(TaskTimeout):
            loop.run_until_complete(main())
    finally:
        loop.close()
    runs = api.status(limit=10).runs
    assert [(r.sync, r.status) for r in runs] == [("iterable_users", "cancelled")], runs
    assert "stopped by SIGALRM" in runs[0].error, runs[0].error
    assert not any(t.name.startswith("dinsync-api") for t in threading.enumerate())  # nothing left running


def test_an_orchestrators_timeout_landing_in_an_event_loop_callback_is_named_and_not_logged(
        project, alarm_raises, monkeypatch, caplog):
    """The alarm can land while the run's event loop runs a callback (a timer firing), not a task:
    asyncio logged the handler's exception as "Exception in callback ..." with its traceback and
    dropped it; the stop it requested ended the run all the same, but its error said only "stopped
    by SIGALRM", without the exception (1 run in ~40 of the test above under load)."""
    import asyncio
    import logging

    from dinsync.engine.pipeline import Pipeline

    project.thread.set_faults(latency=3.0)
    original = Pipeline._deliver
    scheduled: list[int] = []

    async def deliver(self, request, keys=None):
        if not scheduled:
            scheduled.append(1)
            asyncio.get_running_loop().call_soon(signal.raise_signal, signal.SIGALRM)  # (in a callback)
        return await original(self, request, keys)

    monkeypatch.setattr(Pipeline, "_deliver", deliver)
    api = dinsync.load_project(project.root)
    with caplog.at_level(logging.ERROR, logger="asyncio"):
        with pytest.raises(TaskTimeout):
            api.sync()
    assert scheduled
    runs = api.status(limit=1).runs
    assert [(r.sync, r.status) for r in runs] == [("iterable_users", "cancelled")], runs
    assert "stopped by SIGALRM (TaskTimeout: Timeout, PID: 1234)" in runs[0].error, runs[0].error
    assert not [r for r in caplog.records if r.name == "asyncio"], [r.getMessage() for r in caplog.records]
    monkeypatch.setattr(Pipeline, "_deliver", original)
    project.thread.set_faults(latency=0.0)
    assert api.sync().ok and len(project.snapshot_keys()) == 20
