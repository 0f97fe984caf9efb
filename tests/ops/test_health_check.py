"""The health check gives up quickly and yields to a stop request.

- Its requests get a short retry policy (data passed to the transport, every destination's),
  while a run's sending keeps the sender's full policy.
- A stop request cancels a check in flight: the result is inconclusive and `abandoned`, and the
  operator records nothing for it (no resume, no `checked`).
"""
from __future__ import annotations

import functools
import threading
import time

from dinsync.config import load_project
from dinsync.destinations.attentive import AttentiveDestination
from dinsync.destinations.base import TransportOptions
from dinsync.destinations.splio import SplioDestination
from dinsync.engine import StopToken
from dinsync.engine.run import transport_options
from dinsync.ops import health
from dinsync.ops.health import CheckResult, check_destination
from dinsync.ops.notify import Notifier
from dinsync.ops.operate import Operator
from dinsync.sender import HttpSender
from dinsync.sender.retry import RetryPolicy
from tests.conftest import TEST_KEY
from tests.stalled_dns import stalled_name_lookups


def test_the_check_gets_a_short_retry_policy_and_a_run_the_full_one(project):
    dest_cfg = load_project(project.root).destinations["iterable"]
    run, check = transport_options(dest_cfg), health.check_transport_options(dest_cfg)
    assert run.retry_policy is None  # a run's sending: the sender's default, 8 attempts
    policy = check.retry_policy
    assert policy.max_attempts == 3 and policy.max_retry_after <= 2.0
    worst = sum(policy.backoff_ceiling(n) for n in range(1, policy.max_attempts))
    assert worst <= 2.0, "a few quick attempts, not the send-time backoff"
    assert check.timeout <= health.CHECK_ATTEMPT_SECONDS and check.concurrency == run.concurrency

    sender = dest_cfg.make_destination().make_transport(check)
    assert isinstance(sender, HttpSender) and sender.policy is policy
    assert dest_cfg.make_destination().make_transport(run).policy.max_attempts == RetryPolicy().max_attempts == 8


def test_every_transport_takes_the_retry_policy_it_is_given():
    policy = health.check_retry_policy()
    attentive = AttentiveDestination("http://127.0.0.1:9", {"api_key": "attn-k-0001"}, {})
    assert attentive.make_transport(TransportOptions(retry_policy=policy)).sender.policy is policy
    splio = SplioDestination("http://127.0.0.1:9", {"api_key": "splio-k-0001"}, {"transport": "api"})
    assert splio.make_transport(TransportOptions(retry_policy=policy)).policy is policy


def test_an_unreachable_destination_makes_the_check_inconclusive_after_three_attempts(project, monkeypatch):
    """The platform answers only 503s: three lookups, then inconclusive (before: the full send
    policy, 8 attempts with backoff up to 30 s, ~20-50 s in all)."""
    import dinsync.sender.http as http

    # a run's default policy made fast, so that the test is quick whichever policy the check uses
    monkeypatch.setattr(http, "RetryPolicy", functools.partial(http.RetryPolicy, base=0.01, cap=0.02))
    project.thread.set_faults(error_rate=1.0, seed=3)
    result = check_destination(load_project(project.root), "iterable_users")
    assert project.thread.stats()["requests"] == 3  # (before: 8)
    assert not result.ok and result.finding is None
    assert "could not be checked: failed after 3 attempt(s): HTTP 5" in result.inconclusive


def test_a_stop_request_abandons_a_check_in_flight(project):
    """The lookup hangs (the sandbox answers after 30 s); a stop request cancels the check's task
    at once: inconclusive, abandoned, nothing more sent."""
    project.thread.set_faults(latency=30.0)
    stop = StopToken()
    results: list[CheckResult] = []
    worker = threading.Thread(target=lambda: results.append(
        check_destination(load_project(project.root), "iterable_users", stop=stop)))
    worker.start()
    deadline = time.monotonic() + 20
    while project.thread.stats()["requests"] < 1:  # the lookup is in flight
        assert time.monotonic() < deadline and worker.is_alive(), results
        time.sleep(0.01)
    stop.request()
    worker.join(10)  # generous: the mechanism is the cancellation, not a speed
    assert not worker.is_alive(), "the check did not yield to the stop request"
    [result] = results
    assert result.abandoned and not result.ok and result.inconclusive == health.ABANDONED
    assert project.thread.stats()["requests"] == 1


def test_a_check_started_after_a_stop_request_does_nothing(project):
    stop = StopToken()
    stop.request()
    result = health.check_sync(load_project(project.root), "iterable_users", None, stop=stop)  # no warehouse needed
    assert result.abandoned and project.thread.stats()["requests"] == 0


def test_an_abandoned_check_is_not_recorded(ops, monkeypatch):
    """The operator neither resumes the sync nor records the check when it was abandoned."""
    monkeypatch.setenv("ITERABLE_TEST_KEY", "wrong-key-0000000000")
    ops.sync()
    monkeypatch.setenv("ITERABLE_TEST_KEY", TEST_KEY)
    before = ops.sql("select paused, checked_at, check_error, culprit, reason from dinsync.sync_state")
    project = load_project(ops.root)
    stop = StopToken()
    seen = []

    def check(project, name, wh, *, destination=True, stop=None):
        seen.append(stop)
        return CheckResult(inconclusive="abandoned", abandoned=True)

    from dinsync.operations import connect_warehouse

    wh = connect_warehouse(project.warehouse, project.root)
    try:
        operator = Operator(project, wh, Notifier(project.notifications), check=check, stop=stop)
        result = operator.recheck("iterable_users")
    finally:
        wh.close()
    assert result.abandoned and seen == [stop]
    assert ops.sql("select paused, checked_at, check_error, culprit, reason from dinsync.sync_state") == before
    assert ops.events() == ["paused"]


def test_a_pause_by_hand_made_while_a_check_runs_is_not_lifted_by_it(ops, monkeypatch):
    """`dinsync pause users --reason "CRM migration"` from another shell while `serve` (or
    `validate`, or a `dinsync sync` of the sync) checked it again (up to 20 s of the destination's
    requests): the check passed and resumed the sync, lifting the pause by hand, which no check may
    lift, and channels heard `resumed`. The pause by hand stays, and a `dinsync sync` is refused
    as for any sync paused by hand (exit 6)."""
    from dinsync.operations import connect_warehouse
    from dinsync.state import StateStore
    from dinsync.state.syncstate import SyncStates

    monkeypatch.setenv("ITERABLE_TEST_KEY", "wrong-key-0000000000")
    ops.sync()  # paused by itself (credentials)
    monkeypatch.setenv("ITERABLE_TEST_KEY", TEST_KEY)
    project = load_project(ops.root)

    def check(project, name, wh, *, destination=True, stop=None):  # another shell pauses it meanwhile
        SyncStates(StateStore(wh, project.state_schema)).pause(name, by="hand", culprit="hand", reason="CRM migration")
        return CheckResult()

    wh = connect_warehouse(project.warehouse, project.root)
    try:
        operator = Operator(project, wh, Notifier(project.notifications), check=check)
        result = operator.recheck("iterable_users")
        state = operator.states.get("iterable_users")
        refusal = operator.guard("iterable_users")
    finally:
        wh.close()
    assert (state.paused, state.paused_by, state.reason) == (True, "hand", "CRM migration"), state
    assert not result.ok, result
    assert "resumed" not in ops.events(), ops.events()
    assert refusal is not None and refusal.exit_code == 6 and "CRM migration" in refusal.message, refusal


def test_a_pause_by_hand_made_while_a_failed_run_is_diagnosed_stays_a_pause_by_hand(ops):
    """A run failed and the check after it found a culprit; meanwhile (the check of the destination
    takes up to 20 s) someone paused the sync by hand from another shell. The automatic pause was
    written over it: the pause by hand became `auto`, which the next passing check lifted."""
    from dinsync.ops.health import Finding
    from dinsync.operations import connect_warehouse
    from dinsync.state import StateStore
    from dinsync.state.syncstate import SyncStates

    ops.sync()
    project = load_project(ops.root)

    def check(project, name, wh, *, destination=True, stop=None):  # another shell pauses it meanwhile
        SyncStates(StateStore(wh, project.state_schema)).pause(name, by="hand", culprit="hand", reason="CRM migration")
        return CheckResult(Finding("column", "column 'plan' is not a column of model customers"))

    wh = connect_warehouse(project.warehouse, project.root)
    try:
        operator = Operator(project, wh, Notifier(project.notifications), check=check)
        operator.after_run("iterable_users", {"run_id": "r1", "status": "failed", "error": "boom"}, 1)
        state = operator.states.get("iterable_users")
    finally:
        wh.close()
    assert (state.paused, state.paused_by, state.reason) == (True, "hand", "CRM migration"), state


def test_a_stalled_name_lookup_does_not_hold_the_check_past_its_bound(project, monkeypatch):
    """The check gives up after CHECK_SECONDS (or at once on a stop request), but `asyncio.run`
    then waited for the thread still resolving the destination's host name: a DNS server that
    does not answer held the check (and `serve`'s stop, `dinsync sync` of a paused sync) for as
    long as the resolver kept trying. The lookup is now left behind in a daemon thread."""
    config = project.root / "dinsync.yml"
    config.write_text(config.read_text().replace(project.base_url, "https://api.stalled.invalid"))
    monkeypatch.setattr(health, "CHECK_SECONDS", 0.3)
    with stalled_name_lookups(monkeypatch, "api.stalled.invalid") as blocked:
        result = check_destination(load_project(project.root), "iterable_users")
        assert result.inconclusive == "iterable could not be checked: no answer within 0.3 s", result
        assert blocked == ["api.stalled.invalid"]  # returned while the lookup was still stalled
