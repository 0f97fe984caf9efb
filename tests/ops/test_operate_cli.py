"""Sync warnings, notifications once per change of state, pauses by hand and by the sync itself,
through the CLI against the Iterable sandbox and a loopback webhook receiver."""
from __future__ import annotations

import json

from dinsync.errors import ExitCode
from dinsync.report import worst_exit_code
from tests.conftest import TEST_KEY
from tests.ops.conftest import HOOK_TOKEN, set_sync


def test_exit_precedence_ranks_a_paused_sync_after_failures_and_before_a_held_lock():
    assert worst_exit_code([ExitCode.WARNINGS, ExitCode.PAUSED, ExitCode.LOCKED]) == ExitCode.PAUSED
    assert worst_exit_code([ExitCode.PAUSED, ExitCode.RUN_FAILED]) == ExitCode.RUN_FAILED
    assert worst_exit_code([ExitCode.PAUSED, ExitCode.CONFIG_ERROR]) == ExitCode.CONFIG_ERROR


def test_warnings_notify_once_per_change_and_recovery_once(ops):
    set_sync(ops, thresholds="  max_run_minutes: 0.00001\n")  # every run takes longer than 0.6 ms
    first = ops.sync()
    assert first["exit_code"] == ExitCode.WARNINGS
    [run] = first["runs"]
    assert run["status"] == "warning" and run["acknowledged"] == 20 and run["segment_rows"] == 20
    assert any(w.startswith("the run took") and " seconds (threshold 0.0006 seconds, max_run_minutes 0.00001)" in w
               for w in run["warnings"])
    assert ops.events() == ["warning"]
    assert ops.sync()["runs"][0]["status"] == "warning"
    assert ops.events() == ["warning"]  # the second warning run: no change of state, no notice
    status = ops.status()["iterable_users"]
    assert status["state"] == "warning" and status["notified_state"] == "warning"
    assert status["last_run"]["warnings"] and not status["paused"]
    logged = ops.sql("select status, warnings from dinsync.runs order by started_at")
    assert [s for s, _ in logged] == ["warning", "warning"] and all("the run took" in w for _, w in logged)

    set_sync(ops)  # the threshold is gone
    assert ops.sync()["exit_code"] == ExitCode.OK
    assert ops.events() == ["warning", "recovered"]
    assert ops.sync()["exit_code"] == ExitCode.OK
    assert ops.events() == ["warning", "recovered"]
    # the Slack channel got the same two, in Slack's shape; the webhook carried its header
    slack = [r["json"] for r in ops.receiver.received if r["path"].startswith("/services/")]
    assert [s["text"].split(":")[1].strip() for s in slack] == ["iterable_users finished with warnings",
                                                                 "iterable_users is healthy again"]
    assert all(s["text"].count("iterable_users") == 1 for s in slack)
    hook = [r for r in ops.receiver.received if r["path"] == "/hook"]
    assert all(r["headers"]["Authorization"] == HOOK_TOKEN for r in hook)
    assert hook[1]["json"]["previous_state"] == "warning" and hook[1]["json"]["state"] == "ok"
    notified = ops.sql("select event, detail from dinsync.events order by event_at")
    assert notified == [("notified", "warning to ops, slack#2"), ("notified", "recovered to ops, slack#2")]


def test_segment_drop_zero_rows_and_not_found_thresholds(ops):
    set_sync(ops, thresholds="  max_segment_drop_pct: 30\n  warn_on_zero_rows: true\n")
    assert ops.sync()["exit_code"] == ExitCode.OK
    ops.sql("delete from main.customers where id > 12")  # 20 -> 12 rows: a 40% drop
    [run] = ops.sync()["runs"]
    assert run["status"] == "warning" and run["segment_rows"] == 12
    assert run["warnings"] == ["the segment fell from 20 to 12 rows (40.0% since the last successful run; "
                               "threshold 30.0%)"]
    ops.sql("delete from main.customers where id > 10")  # 12 -> 10: 16.7% of the last good run
    assert ops.sync()["runs"][0]["warnings"] == []
    ops.sql("delete from main.customers")
    [run] = ops.sync()["runs"]
    assert "the model returned no rows (warn_on_zero_rows)" in run["warnings"] and run["removed"] == 10
    assert ops.events() == ["warning", "recovered", "warning"]

    # update mode: users unknown to Iterable are not found; more than max_not_found is a warning
    ops.seed(5)
    set_sync(ops, mode="update", thresholds="  max_not_found: 2\n")
    ops.sql("delete from dinsync.snap_iterable_users")  # as if new to the sync: they are looked up
    ops.thread.call(ops.sandbox.reset)
    [run] = ops.sync()["runs"]
    assert run["not_found"] == 5 and run["acknowledged"] == 0
    assert "5 rows were not found in the destination (update mode; threshold 2)" in run["warnings"]


def test_plan_says_the_next_sync_warns_of_a_segment_drop(ops):
    """`plan` of a model that lost most of its rows (a dbt filter bug, a half-built model) showed the
    removed count and exit 0, not that the sync right after it would warn and exit 4: the thresholds
    the plan's figures already breach are its notes, as a blocked model is."""
    set_sync(ops, thresholds="  max_segment_drop_pct: 30\n  warn_on_zero_rows: true\n")
    assert ops.sync()["exit_code"] == ExitCode.OK
    # 20 -> 4 rows, 2 of them on one key: blocked, the sync fails before sending (no warning)
    ops.sql("delete from main.customers where id > 3")
    ops.sql("insert into main.customers select * from main.customers where id = 1")
    [plan] = json.loads(ops.cli("plan").stdout)["plans"]
    assert len(plan["notes"]) == 1 and plan["notes"][0].startswith("the next sync fails before sending anything")

    ops.sql("delete from main.customers where id > 2 or rowid = (select max(rowid) from main.customers)")
    [plan] = json.loads(ops.cli("plan").stdout)["plans"]
    assert plan["removed"] == 18
    assert plan["notes"] == ["the next sync warns (exit 4, fail_on_warning): the segment fell from 20 to 2 rows "
                             "(90.0% since the last successful run; threshold 30.0%)"]
    assert "the next sync warns" in ops.cli("plan", json_output=False).stdout
    [run] = ops.sync()["runs"]  # and it does
    assert run["warnings"] == ["the segment fell from 20 to 2 rows (90.0% since the last successful run; "
                               "threshold 30.0%)"]
    ops.sql("delete from main.customers")
    [plan] = json.loads(ops.cli("plan").stdout)["plans"]
    assert plan["notes"] == ["the next sync warns (exit 4, fail_on_warning): the model returned no rows "
                             "(warn_on_zero_rows)",
                             "the next sync warns (exit 4, fail_on_warning): the segment fell from 2 to 0 rows "
                             "(100.0% since the last successful run; threshold 30.0%)"]
    set_sync(ops)  # no threshold: no note
    assert json.loads(ops.cli("plan").stdout)["plans"][0]["notes"] == []


def test_keys_gone_null_are_a_segment_drop(ops):
    """A model whose key column went NULL (a dbt bug) lost its segment: the keyless rows are not
    counted in it for max_segment_drop_pct (they were, and the run that planned every delivered
    key `removed` passed with exit 0), and the run says how many rows it skipped."""
    set_sync(ops, thresholds="  max_segment_drop_pct: 30\n")
    assert ops.sync()["exit_code"] == ExitCode.OK
    ops.sql("update main.customers set email = NULL where id > 2")  # 18 of 20 keys gone
    data = ops.sync()
    [run] = data["runs"]
    assert run["null_keys"] == 18 and run["removed"] == 18 and run["segment_rows"] == 20
    assert "18 rows with a NULL matching key were skipped" in ops.last.stderr
    assert run["status"] == "warning" and data["exit_code"] == ExitCode.WARNINGS
    assert run["warnings"] == ["the segment fell from 20 to 2 rows with a key (90.0% since the last successful "
                               "run; threshold 30.0%; 18 rows have a NULL or empty key)"]
    ops.sql("update main.customers set email = 'user' || id || '@example.com'")  # fixed: the keys return
    [run] = ops.sync()["runs"]
    assert run["status"] == "success" and run["added"] == 18 and run["null_keys"] == 0
    # a few NULL keys among good rows: those go through, the keyless are counted, within the threshold
    ops.sql("update main.customers set email = NULL where id in (3, 4)")
    ops.sql("update main.customers set plan = 'pro' where id in (1, 2, 3)")
    [run] = ops.sync()["runs"]
    assert (run["status"], run["changed"], run["acknowledged"], run["null_keys"]) == ("success", 2, 2, 2)


def test_pause_by_hand_refuses_runs_until_resumed(ops):
    assert ops.sync()["exit_code"] == ExitCode.OK
    paused = ops.cli("pause", "iterable_users", "--reason", "CRM migration this week")
    assert paused.exit_code == 0
    [entry] = json.loads(paused.stdout)["syncs"]
    assert (entry["state"], entry["paused_by"], entry["culprit"], entry["reason"]) == \
        ("paused", "hand", "hand", "CRM migration this week")
    assert ops.events() == ["paused"]
    assert ops.receiver.received[0]["json"]["pause"] == {"paused_by": "hand", "culprit": "hand",
                                                          "reason": "CRM migration this week"}
    # each text says "hand" once (the event's detail used to read "hand: hand: CRM migration this week")
    assert ops.sql("select detail from dinsync.events where event = 'paused'") == [("hand: CRM migration this week",)]
    assert ops.receiver.received[0]["json"]["message"] == "iterable_users paused by hand: CRM migration this week"
    # pausing it again without --reason keeps the reason and time given (it used to become "paused by hand")
    paused_at = ops.sql("select paused_at from dinsync.sync_state")
    again = ops.cli("pause", "iterable_users")
    assert again.exit_code == 0 and "already paused by hand: CRM migration this week" in again.stderr
    assert json.loads(again.stdout)["syncs"][0]["reason"] == "CRM migration this week"
    assert ops.sql("select paused_at from dinsync.sync_state") == paused_at and ops.events() == ["paused"]

    ops.sql("update main.customers set plan = 'pro' where id = 1")
    refused = ops.sync()
    assert refused["exit_code"] == ExitCode.PAUSED
    [run] = refused["runs"]
    assert run["status"] == "paused" and run["run_id"] is None and "is paused (by hand: CRM migration" in run["error"]
    assert "dinsync resume iterable_users" in run["hint"]
    assert ops.thread.call(ops.sandbox.stats)["requests"] == 1  # the first sync's only

    # validate lists it and leaves a pause by hand alone
    validated = json.loads(ops.cli("validate").stdout)
    assert validated["paused"] == [{"sync": "iterable_users", "paused_by": "hand", "culprit": "hand",
                                    "reason": "CRM migration this week", "resumed": False}]
    text = ops.cli("status", json_output=False).stdout
    assert "paused by hand: CRM migration this week" in text

    forced = ops.sync("--force")
    assert forced["exit_code"] == ExitCode.OK and forced["runs"][0]["changed"] == 1
    assert ops.status()["iterable_users"]["paused"]  # --force runs it once; the pause stays
    assert ops.events() == ["paused"]

    resumed = ops.cli("resume", "iterable_users")
    assert resumed.exit_code == 0 and json.loads(resumed.stdout)["syncs"][0]["state"] == "success"
    assert ops.events() == ["paused", "resumed"]
    assert ops.sync()["exit_code"] == ExitCode.OK and ops.events() == ["paused", "resumed"]
    again = ops.cli("resume", "iterable_users")
    assert again.exit_code == 0 and "is not paused" in again.stderr
    assert ops.sql("select event from dinsync.events where event in ('paused', 'resumed') order by event_at") == \
        [("paused",), ("resumed",)]


def test_a_forced_run_that_fails_keeps_a_pause_by_hand(ops, monkeypatch):
    """A sync paused by hand, run with --force while its credentials are refused: the pause stays
    by hand (never lifted by a check). It used to become an automatic pause (credentials), which
    the next plain `dinsync sync` lifted once the key worked, running the sync paused by hand."""
    assert ops.sync()["exit_code"] == ExitCode.OK
    assert ops.cli("pause", "iterable_users", "--reason", "CRM migration").exit_code == 0
    monkeypatch.setenv("ITERABLE_TEST_KEY", "wrong-key-0000000000")
    ops.sql("update main.customers set plan = 'pro' where id = 1")
    assert ops.sync("--force")["exit_code"] == ExitCode.RUN_FAILED
    status = ops.status()["iterable_users"]
    assert (status["paused"], status["paused_by"], status["culprit"], status["reason"]) == \
        (True, "hand", "hand", "CRM migration")
    monkeypatch.setenv("ITERABLE_TEST_KEY", TEST_KEY)
    refused = ops.sync()
    assert refused["exit_code"] == ExitCode.PAUSED and refused["runs"][0]["status"] == "paused"
    assert ops.status()["iterable_users"]["paused_by"] == "hand" and ops.events() == ["paused"]


def test_pause_by_hand_without_a_reason_says_so_once(ops):
    """No --reason: status, the event and the notice say "no reason given", not "paused by hand:
    paused by hand" (the reason used to default to "paused by hand")."""
    assert ops.cli("pause", "iterable_users").exit_code == 0
    assert ops.status()["iterable_users"]["reason"] == "no reason given"
    assert "paused by hand: no reason given" in ops.cli("status", json_output=False).stdout
    assert ops.sql("select detail from dinsync.events where event = 'paused'") == [("hand: no reason given",)]
    assert ops.receiver.received[0]["json"]["message"] == "iterable_users paused by hand: no reason given"


def test_rejected_credentials_pause_the_sync_until_they_work(ops, monkeypatch):
    monkeypatch.setenv("ITERABLE_TEST_KEY", "wrong-key-0000000000")
    failed = ops.sync()
    assert failed["exit_code"] == ExitCode.RUN_FAILED
    assert "now paused" in ops.last.stderr
    status = ops.status()["iterable_users"]
    assert (status["state"], status["paused_by"], status["culprit"]) == ("paused", "auto", "credentials")
    assert status["reason"].startswith("iterable refused the credentials: iterable: Iterable refused the API key")
    assert status["last_run"]["status"] == "failed"
    assert ops.events() == ["paused"]  # not "failed" and then "paused": one notice
    pause = [r["json"] for r in ops.receiver.received if r["path"] == "/hook"][0]
    assert pause["pause"]["culprit"] == "credentials" and pause["run"]["status"] == "failed"

    # still wrong: `sync` checks again (one read-only lookup, refused) and refuses the run
    requests = ops.thread.call(ops.sandbox.stats)["requests"]
    refused = ops.sync()
    assert refused["exit_code"] == ExitCode.RUN_FAILED  # as its cause would: a failure, not a pause by hand
    [run] = refused["runs"]
    assert run["status"] == "paused" and run["run_id"] is None
    assert run["error"].startswith("sync iterable_users is paused by itself (credentials: iterable refused the "
                                   "credentials: iterable: Iterable refused the API key (HTTP 401")
    assert ops.thread.call(ops.sandbox.stats)["requests"] == requests + 1
    assert ops.requests.requests[-1][:2] == ("GET", "/api/users/getByEmail?email=dinsync-access-check%40example.com")
    assert ops.events() == ["paused"]

    # fixed: `validate --offline` lists it without asking the platform (no request, no resume,
    # no notification); validate checks it again and resumes it; the next sync delivers
    monkeypatch.setenv("ITERABLE_TEST_KEY", TEST_KEY)
    requests = ops.thread.call(ops.sandbox.stats)["requests"]
    offline = ops.cli("validate", "--offline")
    assert offline.exit_code == 0
    assert json.loads(offline.stdout)["paused"][0]["resumed"] is False
    assert ops.thread.call(ops.sandbox.stats)["requests"] == requests and ops.events() == ["paused"]
    validated = ops.cli("validate")
    assert validated.exit_code == 0
    assert json.loads(validated.stdout)["paused"][0]["resumed"] is True
    assert ops.events() == ["paused", "resumed"]
    assert ops.sync()["runs"][0]["acknowledged"] == 20
    assert ops.events() == ["paused", "resumed"]
    assert "wrong-key-0000000000" not in json.dumps(ops.sql("select * from dinsync.sync_state"), default=str)


def test_a_check_that_cannot_reach_the_destination_leaves_the_sync_paused(ops, monkeypatch):
    """The credentials fixed while the platform answers only 503s: the check's read-only lookup
    fails, which says nothing of the credentials. Before, any lookup that did not raise 401/403
    counted as a pass, so the sync was resumed ("its checks pass again") and the run failed."""
    import functools

    import dinsync.sender.http as http

    monkeypatch.setattr(http, "RetryPolicy", functools.partial(http.RetryPolicy, base=0.01, cap=0.02))
    monkeypatch.setenv("ITERABLE_TEST_KEY", "wrong-key-0000000000")
    ops.sync()
    assert ops.status()["iterable_users"]["culprit"] == "credentials"
    monkeypatch.setenv("ITERABLE_TEST_KEY", TEST_KEY)
    ops.thread.set_faults(error_rate=1.0, seed=3)
    refused = ops.sync()
    [run] = refused["runs"]
    assert (run["status"], run["run_id"]) == ("paused", None), run
    assert ops.status()["iterable_users"]["paused"]
    assert ops.events() == ["paused"]
    validated = ops.cli("validate")  # its own check of the key cannot tell either: exit 1, try again
    assert validated.exit_code == ExitCode.RUN_FAILED and "were not checked" in validated.stdout, validated.stdout
    assert ops.status()["iterable_users"]["paused"] and ops.events() == ["paused"]
    offline = json.loads(ops.cli("validate", "--offline").stdout)
    assert offline["paused"][0]["resumed"] is False, offline
    ops.thread.set_faults(error_rate=0.0)  # back: the next check passes and the sync delivers
    assert ops.sync()["runs"][0]["acknowledged"] == 20
    assert ops.events() == ["paused", "resumed"]


def test_an_automatic_pause_is_lifted_by_the_next_sync_when_checks_pass(ops, monkeypatch):
    monkeypatch.setenv("ITERABLE_TEST_KEY", "wrong-key-0000000000")
    ops.sync()
    assert ops.status()["iterable_users"]["paused"]
    monkeypatch.setenv("ITERABLE_TEST_KEY", TEST_KEY)
    data = ops.sync()
    assert data["exit_code"] == ExitCode.OK and data["runs"][0]["acknowledged"] == 20
    assert ops.events() == ["paused", "resumed"]
    assert ops.status()["iterable_users"]["state"] == "success"


def test_a_failure_that_is_not_a_dependency_notifies_failed_without_pausing(ops):
    ops.sync()
    ops.sql("insert into main.customers select 100 + i, 'user1@example.com', 'x', 'd', 'free', 1 "
            "from range(5) t(i)")  # too many duplicated keys: the data, not a dependency
    assert ops.sync()["exit_code"] == ExitCode.RUN_FAILED
    status = ops.status()["iterable_users"]
    assert status["state"] == "failed" and not status["paused"]
    assert ops.events() == ["failed"]
    ops.sql("delete from main.customers where id >= 100")
    assert ops.sync()["exit_code"] == ExitCode.OK
    assert ops.events() == ["failed", "recovered"]


def test_every_sync_blocked_by_duplicated_keys_notifies_failed(ops):
    """Two syncs of one model matching on the same key, the model blocked: the second fails
    without being planned again, and its channels hear `failed` too (only the first's used to:
    the second sync failed, exit 1, and no one was told), then `recovered` once the keys are fixed."""
    path = ops.root / "syncs" / "iterable_users.yml"
    (ops.root / "syncs" / "iterable_users_copy.yml").write_text(path.read_text())
    assert ops.sync()["exit_code"] == ExitCode.OK
    ops.sql("insert into main.customers select 100 + i, 'user1@example.com', 'x', 'd', 'free', 1 "
            "from range(5) t(i)")
    assert ops.sync()["exit_code"] == ExitCode.RUN_FAILED
    told = lambda: sorted((r["json"]["sync"], r["json"]["event"]) for r in ops.receiver.received  # noqa: E731
                          if r["path"] == "/hook")
    assert told() == [("iterable_users", "failed"), ("iterable_users_copy", "failed")]
    ops.sql("delete from main.customers where id >= 100")
    assert ops.sync()["exit_code"] == ExitCode.OK
    assert told() == [("iterable_users", "failed"), ("iterable_users", "recovered"),
                      ("iterable_users_copy", "failed"), ("iterable_users_copy", "recovered")]


def test_a_paused_sync_of_a_blocked_model_is_refused_as_paused(ops):
    """The model blocked by the first of its syncs: a later sync of it paused by hand is refused as
    paused (status `paused`, exit 6 of its own), not reported `failed` for duplicated keys it never planned."""
    path = ops.root / "syncs" / "iterable_users.yml"
    (ops.root / "syncs" / "iterable_users_copy.yml").write_text(path.read_text())
    assert ops.cli("pause", "iterable_users_copy", "--reason", "migration").exit_code == 0
    ops.sql("insert into main.customers select 100 + i, 'user1@example.com', 'x', 'd', 'free', 1 "
            "from range(5) t(i)")
    runs = {r["sync"]: r for r in ops.sync()["runs"]}
    assert runs["iterable_users"]["status"] == "failed"
    assert runs["iterable_users_copy"]["status"] == "paused", runs["iterable_users_copy"]
    assert "is paused (by hand: migration)" in runs["iterable_users_copy"]["error"]


def test_an_outage_notifies_failed_without_pausing(ops, monkeypatch):
    """The platform answering nothing but 503s stops the run (an outage), which is not a reason to
    pause the sync: the next run, once it is back, delivers and recovers."""
    import functools

    import dinsync.sender.http as http

    monkeypatch.setattr(http, "RetryPolicy", functools.partial(http.RetryPolicy, base=0.01, cap=0.02))
    config = ops.root / "dinsync.yml"  # 20 rows in requests of 4 users
    config.write_text(config.read_text().replace("    concurrency: 4\n", "    concurrency: 4\n    bulk_max_users: 4\n"))
    ops.sync()
    ops.sql("update main.customers set plan = 'team'")
    ops.thread.set_faults(error_rate=1.0, seed=5)
    out = ops.sync()
    assert out["exit_code"] == ExitCode.RUN_FAILED and "answered none of" in out["runs"][0]["error"], out
    status = ops.status()["iterable_users"]
    assert status["state"] == "failed" and not status["paused"]
    assert ops.events() == ["failed"]
    ops.thread.set_faults(error_rate=0.0)
    assert ops.sync()["exit_code"] == ExitCode.OK
    assert ops.events() == ["failed", "recovered"]


def test_a_failing_channel_never_fails_the_sync(project):
    project.write(max_rejected_pct=1, destination_extra="notifications:\n  - type: webhook\n    name: down\n"
                                                        "    url: http://127.0.0.1:9/hook\n    attempts: 1\n")
    project.sql("insert into main.customers values (101, 'not an email', 'u-101', 'x', 'free', 1)")
    data = project.sync()
    assert data["exit_code"] == ExitCode.WARNINGS and data["runs"][0]["acknowledged"] == 20
    assert "notification to down (iterable_users warning) failed after 1 attempt(s)" in project.last.stderr
    [(event, detail)] = project.sql("select event, detail from dinsync.events")
    assert event == "notify_failed" and detail.startswith("warning to down: ClientConnectorError")
    assert project.sql("select notified_state from dinsync.sync_state") == [("warning",)]


def test_a_channel_answer_echoing_the_slack_urls_path_shows_none_of_it(ops):
    """A Slack URL is the credential: its path is the token. A proxy's or framework's error page
    echoing the path (`Cannot POST /services/...`) put it in the log and the `events` table."""
    path = "/services/T1/B2/slacksecret"
    ops.receiver.scripts[path] = [(404, {}, f"Cannot POST {path}")] * 2
    paused = ops.cli("pause", "iterable_users")
    assert paused.exit_code == 0
    assert "notification to slack#2" in paused.stderr and "slacksecret" not in paused.stderr
    details = ops.sql("select detail from dinsync.events where event = 'notify_failed'")
    assert details and "slacksecret" not in str(details), details


def test_a_channel_answer_echoing_the_path_of_a_webhook_url_from_the_environment_shows_none_of_it(
        project, receiver, monkeypatch):
    """A webhook `url` given as ${env:NAME} is a credential, and its path is often the token
    (Zapier's /hooks/catch/<id>/<token>/, Discord's, Teams'). An error page echoing the path
    (`Cannot POST /hooks/...`) put the token in the log and the `events` table."""
    rec, thread = receiver
    path = "/hooks/catch/123456/zapsecrettoken9f3a/"
    monkeypatch.setenv("DINSYNC_TEST_HOOK_URL", thread.url + path)
    project.write(destination_extra="notifications:\n  - type: webhook\n    name: zap\n"
                                    "    url: ${env:DINSYNC_TEST_HOOK_URL}\n")
    rec.scripts[path] = [(404, {}, f"Cannot POST {path}, nothing at {path.rstrip('/')}")] * 2
    paused = project.cli("pause", "iterable_users")
    assert paused.exit_code == 0
    assert "notification to zap" in paused.stderr and "zapsecrettoken" not in paused.stderr, paused.stderr
    details = project.sql("select detail from dinsync.events where event = 'notify_failed'")
    assert details and "zapsecrettoken" not in str(details), details


def test_a_channel_answer_echoing_a_token_of_the_webhook_urls_query_shows_none_of_it(project, receiver, monkeypatch):
    """A webhook `url` given as ${env:NAME} may carry its token in the query (`?token=...`,
    Azure Functions' `?code=...`). The query was masked only whole: an answer naming the token
    alone (`invalid token <it>`, or the parameters echoed back) put it in the log and the
    `events` table."""
    rec, thread = receiver
    monkeypatch.setenv("DINSYNC_TEST_HOOK_URL", thread.url + "/hook?channel=ops&token=qrysecrettoken7c1d")
    project.write(destination_extra="notifications:\n  - type: webhook\n    name: q\n"
                                    "    url: ${env:DINSYNC_TEST_HOOK_URL}\n")
    rec.scripts["/hook"] = [(401, {}, '{"error": "invalid token", "args": {"channel": "ops", '
                                      '"token": "qrysecrettoken7c1d"}}')] * 4
    paused = project.cli("pause", "iterable_users")
    assert paused.exit_code == 0
    assert "notification to q" in paused.stderr and "qrysecrettoken" not in paused.stderr, paused.stderr
    assert '"channel": "ops"' in paused.stderr  # a short, plain value of the query stays readable
    details = project.sql("select detail from dinsync.events where event = 'notify_failed'")
    assert details and "qrysecrettoken" not in str(details), details


def test_a_channel_answer_naming_the_token_segment_of_a_credential_urls_path_shows_none_of_it(
        project, receiver, monkeypatch, empty_redactor):
    """The path of a webhook `url` given as ${env:NAME} (and of a Slack URL) was masked only whole:
    an answer naming its token segment alone (`no hook <it>`) put the token in the log and the
    `events` table."""
    rec, thread = receiver
    path = "/hooks/catch/123456/zapsecrettoken9f3a2b1c/"
    monkeypatch.setenv("DINSYNC_TEST_HOOK_URL", thread.url + path)
    project.write(destination_extra="notifications:\n  - type: webhook\n    name: zap\n"
                                    "    url: ${env:DINSYNC_TEST_HOOK_URL}\n")
    rec.scripts[path] = [(404, {}, '{"status": "error", "message": "no hook zapsecrettoken9f3a2b1c for 123456"}')] * 4
    paused = project.cli("pause", "iterable_users")
    assert paused.exit_code == 0
    assert "notification to zap" in paused.stderr and "zapsecrettoken" not in paused.stderr, paused.stderr
    assert "for 123456" in paused.stderr  # a short segment (an id) stays readable
    details = project.sql("select detail from dinsync.events where event = 'notify_failed'")
    assert details and "zapsecrettoken" not in str(details), details


def test_a_channel_answer_naming_the_password_of_the_webhook_urls_user_shows_none_of_it(
        project, receiver, monkeypatch):
    """A webhook `url` given as ${env:NAME} with `user:password@` (sent as Basic credentials) was
    masked whole and as its Basic token only: an answer naming the password alone put it in the
    log and the `events` table."""
    rec, thread = receiver
    monkeypatch.setenv("DINSYNC_TEST_HOOK_URL", thread.url.replace("://", "://alerts:hookpw-4d5e6f7a@") + "/hook")
    project.write(destination_extra="notifications:\n  - type: webhook\n    name: basic\n"
                                    "    url: ${env:DINSYNC_TEST_HOOK_URL}\n")
    rec.scripts["/hook"] = [(401, {}, "user alerts: password hookpw-4d5e6f7a is wrong")] * 4
    paused = project.cli("pause", "iterable_users")
    assert paused.exit_code == 0
    assert "notification to basic" in paused.stderr and "hookpw" not in paused.stderr, paused.stderr
    details = project.sql("select detail from dinsync.events where event = 'notify_failed'")
    assert details and "hookpw" not in str(details), details


def test_the_first_notice_of_a_sync_names_ok_as_its_previous_state(ops):
    """A sync never told anything is `ok` (the states are ok, warning, failed, paused): its first
    notice says so. It used to carry `"previous_state": null` on the webhook and "unknown → paused"
    in Slack's state line."""
    assert ops.cli("pause", "iterable_users", "--reason", "CRM migration").exit_code == 0
    [hook] = [r["json"] for r in ops.receiver.received if r["path"] == "/hook"]
    assert hook["event"] == "paused" and hook["previous_state"] == "ok" and hook["state"] == "paused"
    [slack] = [r["json"] for r in ops.receiver.received if r["path"].startswith("/services/")]
    assert "unknown" not in json.dumps(slack) and "ok → paused" in json.dumps(slack, ensure_ascii=False)


def test_a_pause_reason_with_bytes_not_utf_8_is_kept_readable(ops):
    """`dinsync pause SYNC --reason "$TEXT"` typed in a Latin-1 terminal: Python reads the byte of
    `é` (0xE9) as a lone surrogate, which the warehouse could not store: the command failed with
    "cannot encode str as UTF-8" (exit 1), the sync not paused."""
    paused = ops.cli("pause", "iterable_users", "--reason", "migration d\udce9cembre")
    assert paused.exit_code == 0, paused.stderr
    [entry] = json.loads(paused.stdout)["syncs"]
    assert (entry["state"], entry["reason"]) == ("paused", "migration d\ufffdcembre")
    assert ops.sync()["exit_code"] == ExitCode.PAUSED
