"""Configuration of operations: schedules (cron or interval), the new thresholds, and notification
channels in dinsync.yml, with their issues at file:line; channel secrets are masked."""
from __future__ import annotations

from dinsync import redaction
from dinsync.config import load_project
from tests.config.test_loader import ENV, PROJECT_YML, SYNC_YML, issues_of, make, where

SLACK = "https://hooks.slack.com/services/T0/B0/abcdefSECRET123"


def test_schedules_thresholds_and_channels_load(tmp_path):
    project_yml = PROJECT_YML + """\
notifications:
  - type: webhook
    url: https://alerts.example.com/dinsync
    headers:
      X-Token: ${env:HOOK_TOKEN}
      Authorization: ${env:HOOK_BEARER}
    events: [failed, paused]
  - type: slack
    name: data_team
    webhook_url: ${env:SLACK_WEBHOOK}
"""
    sync = SYNC_YML + ("schedule: {cron: '0 6 * * 1-5', timezone: Europe/Paris}\n"
                       "thresholds: {max_not_found: 10, max_segment_drop_pct: 20, warn_on_zero_rows: true, "
                       "max_run_minutes: 30}\n")
    env = {**ENV, "SLACK_WEBHOOK": SLACK, "HOOK_TOKEN": "token-abcdef-123", "HOOK_BEARER": "Bearer bt9f3a7c21e5b84d"}
    project = load_project(make(tmp_path, dinsync_dot_yml=project_yml, syncs__users_dot_yml=sync,
                                syncs__every_dot_yml=SYNC_YML + "schedule: {every: 2h}\n"), env=env)
    users = project.syncs["users"]
    assert (users.schedule.cron, users.schedule.timezone, users.schedule.every) == ("0 6 * * 1-5", "Europe/Paris", None)
    assert project.syncs["every"].schedule.every == 7200 and project.syncs["every"].schedule.describe() == "every 2h"
    th = users.thresholds
    assert (th.max_not_found, th.max_segment_drop_pct, th.warn_on_zero_rows, th.max_run_minutes) == (10, 20, True, 30)
    hook, slack = project.notifications
    assert (hook.type, hook.events, slack.type, slack.name) == ("webhook", ["failed", "paused"], "slack", "data_team")
    assert slack.events == ["warning", "failed", "recovered", "paused", "resumed"]
    assert SLACK not in repr(project) and SLACK in redaction.registered()
    assert "https://alerts.example.com/dinsync" in redaction.registered()  # a URL may carry a token
    assert redaction.redact(f"posting to {SLACK}") == "posting to ***"
    # the start of a header's token, as an answer may echo it (the token of `Bearer <token>` too)
    assert redaction.redact("bad token token-abcdef-1..., bad bearer bt9f3a7c2...") == "bad token ***..., bad bearer ***..."


def test_operation_issues_are_located(tmp_path):
    project_yml = PROJECT_YML + """\
notifications:
  - type: slack
    webhook_url: https://hooks.slack.com/services/written/in/the/file
  - type: webhook
    url: ftp://example.com/x
  - type: pager
    url: https://example.com
  - type: webhook
    url: https://example.com
    events: [exploded]
"""
    sync = SYNC_YML + "schedule: {every: soon}\nthresholds: {max_segment_drop_pct: 120, max_run_minutes: 0}\n"
    issues = issues_of(make(tmp_path, dinsync_dot_yml=project_yml, syncs__users_dot_yml=sync))
    assert where(issues) == [("dinsync.yml", 12), ("dinsync.yml", 14), ("dinsync.yml", 15), ("dinsync.yml", 19),
                             ("syncs/users.yml", 11), ("syncs/users.yml", 12), ("syncs/users.yml", 12)]
    text = [i.message for i in issues]
    assert text[0] == "notifications[0].webhook_url is a credential written in the file"
    assert "must be an http:// or https:// URL" in text[1]
    assert "pager" in text[2] and "exploded" in text[3]
    assert "invalid interval 'soon'" in text[4]
    assert {"thresholds.max_segment_drop_pct: Input should be less than or equal to 100",
            "thresholds.max_run_minutes: Input should be greater than 0"} == set(text[5:])


def test_a_slack_webhook_in_clear_text_to_another_machine_is_refused(tmp_path):
    """A Slack webhook URL is the credential: over http:// anyone on the path could post with it."""
    project_yml = PROJECT_YML + "notifications:\n  - type: slack\n    webhook_url: ${env:SLACK_WEBHOOK}\n"
    plain = SLACK.replace("https://", "http://")
    issues = issues_of(make(tmp_path, dinsync_dot_yml=project_yml), env={**ENV, "SLACK_WEBHOOK": plain})
    assert where(issues) == [("dinsync.yml", 12)]
    assert "clear text" in issues[0].message and "abcdefSECRET123" not in issues[0].message + (issues[0].hint or "")


def test_a_webhook_sending_headers_in_clear_text_to_another_machine_is_refused(tmp_path):
    """Headers are the webhook's credentials (e.g. X-Token): never over http:// across the network;
    a plain http:// receiver without them (an internal relay) is still accepted."""
    hook = "notifications:\n  - type: webhook\n    url: http://alerts.internal/dinsync\n"
    issues = issues_of(make(tmp_path / "a", dinsync_dot_yml=PROJECT_YML + hook + "    headers:\n"
                            "      X-Token: ${env:HOOK_TOKEN}\n"), env={**ENV, "HOOK_TOKEN": "token-abcdef-123"})
    assert where(issues) == [("dinsync.yml", 11)] and "clear text" in issues[0].message
    assert "token-abcdef" not in issues[0].message
    project = load_project(make(tmp_path / "b", dinsync_dot_yml=PROJECT_YML + hook), env=ENV)
    assert project.notifications[0].headers == {}


def test_a_webhook_url_carrying_credentials_in_clear_text_to_another_machine_is_refused(tmp_path):
    """A webhook `url` (from the environment) with `user:password@`, sent as Basic credentials, or
    with a token in its query (`?token=`, Azure's `?code=`) crossed the network in clear text over
    http://, where headers are refused; both are masked as the credentials they are. Refused alike;
    a plain http:// receiver without them (an internal relay) is still accepted."""
    hook = "notifications:\n  - type: webhook\n    url: ${env:HOOK_URL}\n"
    for n, url in enumerate(["http://alerts:hookpw-4d5e6f7a@alerts.example.com/hook",
                             "http://alerts.example.com/hook?channel=ops&token=qrysecret7c1d",
                             "http://alerts.example.com/api/hook?code=azsecret99"]):
        issues = issues_of(make(tmp_path / str(n), dinsync_dot_yml=PROJECT_YML + hook), env={**ENV, "HOOK_URL": url})
        assert where(issues) == [("dinsync.yml", 11)] and "clear text" in issues[0].message, (url, issues)
        assert not any(s in issues[0].message for s in ("hookpw", "qrysecret", "azsecret")), issues[0].message
    for n, url in enumerate(["http://alerts.internal/dinsync?channel=ops", "https://alerts:pw-4d5e6f7a@alerts.example.com/",
                             "http://127.0.0.1:9000/hook?token=local"]):
        project = load_project(make(tmp_path / f"ok{n}", dinsync_dot_yml=PROJECT_YML + hook), env={**ENV, "HOOK_URL": url})
        assert project.notifications[0].url.get_secret_value() == url


def test_a_cron_that_never_fires_or_has_seconds_is_located(tmp_path):
    """`serve` failed at start-up with 'unexpected error: CroniterBadDateError' (31 February),
    and a six-field cron ran every second of its minute; both are configuration errors."""
    make(tmp_path, syncs__never_dot_yml=SYNC_YML + "schedule: '0 6 31 2 *'\n",
         syncs__seconds_dot_yml=SYNC_YML + "schedule: {cron: '0 6 * * * *'}\n")
    issues = issues_of(tmp_path)
    assert where(issues) == [("syncs/never.yml", 11), ("syncs/seconds.yml", 11)]
    assert "never fires" in issues[0].message and "five fields" in issues[1].message


def test_an_interval_longer_than_a_date_can_reach_is_located(tmp_path):
    """`validate` said OK to `every: 3000000d` (or a bare 1e300 seconds), then `serve` failed at
    start-up with 'unexpected error: OverflowError: date value out of range'."""
    make(tmp_path, syncs__days_dot_yml=SYNC_YML + "schedule: {every: 3000000d}\n",
         syncs__seconds_dot_yml=SYNC_YML + "schedule: {every: 1.0e+300}\n",
         syncs__ten_years_dot_yml=SYNC_YML + "schedule: {every: 3650d}\n")
    issues = issues_of(tmp_path)
    assert where(issues) == [("syncs/days.yml", 11), ("syncs/seconds.yml", 11)], issues
    assert all("at most 3650d" in i.message for i in issues), [i.message for i in issues]


def test_the_scheme_word_of_an_authorization_header_is_no_secret(tmp_path):
    """`Authorization: Bearer <token>` masks the value and its token (an answer may echo the token
    alone), not the word `Bearer` (or `Basic`): registered as a secret, every `Bearer` of every
    message, payload and reason became `***` (`Authorization: *** ***`, 'expected a *** token')."""
    hook = ("notifications:\n  - type: webhook\n    url: https://alerts.example.com/hook\n    headers:\n"
            "      Authorization: ${env:HOOK_BEARER}\n      Proxy-Authorization: ${env:HOOK_BASIC}\n")
    env = {**ENV, "HOOK_BEARER": "Bearer bz7Qk2mP9xL4", "HOOK_BASIC": "Basic dXNlcjpwYXNzd29yZA=="}
    load_project(make(tmp_path, dinsync_dot_yml=PROJECT_YML + hook), env=env)
    assert redaction.redact("refused: expected a Bearer or Basic token") == "refused: expected a Bearer or Basic token"
    assert redaction.redact("invalid token bz7Qk2mP9xL4; Authorization: Bearer bz7Qk2mP9xL4") == \
        "invalid token ***; Authorization: ***"
    assert redaction.redact("Basic dXNlcjpwYXNzd29yZA== refused, dXNlcjpwYXNz...") == "*** refused, ***..."


def test_a_literal_header_that_names_no_credential_is_no_secret(tmp_path):
    """A header written in the file whose name says no credential (`X-Source: dinsync-hooks`) is not
    masked: registered as a secret, every "dinsync" of every message became `***` (`*** runs SYNC`).
    One whose name says credential is, written in the file or not; any from `${env:NAME}` is."""
    hook = ("notifications:\n  - type: webhook\n    url: https://alerts.example.com/hook\n    headers:\n"
            "      X-Source: dinsync-hooks\n      X-Api-Key: lit3ralKey9q8w7e\n      X-Team: ${env:HOOK_TEAM}\n")
    env = {**ENV, "HOOK_TEAM": "tm4Rk9zQ2w"}
    load_project(make(tmp_path, dinsync_dot_yml=PROJECT_YML + hook), env=env)
    assert redaction.redact("run `dinsync-hooks runs users`") == "run `dinsync-hooks runs users`"
    assert redaction.redact("key lit3ralKey9q8w7e, team tm4Rk9zQ2w") == "key ***, team ***"


def test_query_values_of_a_channel_url_masked_on_their_own(tmp_path):
    """A webhook URL's query token is masked alone (with its start, as other credentials); a long
    value of another name is masked whole only, and a short plain one not at all."""
    from dinsync import redaction
    from dinsync.config.loader import _register_secrets
    from dinsync.config.models import WebhookChannel

    redaction.clear()
    url = "https://hooks.example.com/h?channel=ops&code=azfunckey9f3a2b&room=engineering-alerts-room"
    project = type("P", (), {"warehouse": [], "destinations": {}, "notifications": [
        WebhookChannel(type="webhook", url=url)]})()
    _register_secrets(project)
    assert redaction.redact("bad code azfunckey9f3a2b; channel ops") == "bad code ***; channel ops"
    assert redaction.redact("key azfunckey9f3a... refused") == "key ***... refused"
    assert redaction.redact("room engineering-alerts-room; engineering team") == "room ***; engineering team"
    redaction.clear()


def test_a_channel_variable_set_but_empty_is_left_out_by_commands_that_notify_nobody(tmp_path):
    """CI systems pass a secret they do not have as an empty variable (GitHub Actions'
    `${{ secrets.SLACK_WEBHOOK }}`): `dinsync status` failed on it (exit 3, "must be an http:// or
    https:// URL") where an unset one is left out, and `sync` said nothing of the variable."""
    project_yml = PROJECT_YML + ("notifications:\n  - type: slack\n    webhook_url: ${env:SLACK_WEBHOOK}\n"
                                 "  - type: webhook\n    url: https://alerts.example.com/x\n")
    root = make(tmp_path, dinsync_dot_yml=project_yml)
    env = {**ENV, "SLACK_WEBHOOK": ""}
    project = load_project(root, env=env, destination_secrets=False, notification_secrets=False)
    assert [c.type for c in project.notifications] == ["webhook"]
    issues = issues_of(root, env=env)
    assert where(issues) == [("dinsync.yml", 12)]
    assert issues[0].message == "notifications[0].webhook_url is empty"
    assert issues[0].hint == "environment variable SLACK_WEBHOOK is set but empty: export SLACK_WEBHOOK=<the value>"


def test_a_channel_url_with_surrounding_whitespace_is_used_without_it(tmp_path):
    """A webhook URL read from a secret file or a variable often ends with a newline: it was sent
    as `%0A` (Slack answers 404 no_service, every notice lost), and a leading space was refused as
    "must be an http:// or https:// URL". Whitespace around a URL is no part of it."""
    project_yml = PROJECT_YML + """\
notifications:
  - type: webhook
    url: ${env:HOOK_URL}
  - type: slack
    webhook_url: ${env:SLACK_WEBHOOK}
"""
    env = {**ENV, "SLACK_WEBHOOK": f" {SLACK}\n", "HOOK_URL": "https://alerts.example.com/dinsync \n"}
    project = load_project(make(tmp_path, dinsync_dot_yml=project_yml, syncs__users_dot_yml=SYNC_YML), env=env)
    hook, slack = project.notifications
    assert hook.url.get_secret_value() == "https://alerts.example.com/dinsync"
    assert slack.webhook_url.get_secret_value() == SLACK
    assert redaction.redact(f"posting to {SLACK}") == "posting to ***"


def test_a_variable_not_set_is_one_issue_not_also_set_but_empty(tmp_path):
    """An unset `${env:NAME}` of a channel or of the warehouse was reported twice, the second time
    as the opposite of the truth: `environment variable SLACK_WEBHOOK is not set` then
    `notifications[0].webhook_url is empty (hint: environment variable SLACK_WEBHOOK is set but
    empty ...)`, and likewise for `warehouse.dsn`."""
    project_yml = PROJECT_YML + ("notifications:\n  - type: slack\n    webhook_url: ${env:SLACK_WEBHOOK}\n"
                                 "  - type: webhook\n    url: http://127.0.0.1:9/x\n"
                                 "    headers: {Authorization: '${env:ALERT_TOKEN}'}\n")
    issues = issues_of(make(tmp_path, dinsync_dot_yml=project_yml))
    assert [(i.line, i.message) for i in issues] == [
        (12, "environment variable SLACK_WEBHOOK is not set (used by notifications[0].webhook_url)"),
        (15, "environment variable ALERT_TOKEN is not set (used by notifications[1].headers.Authorization)")]
    warehouse_yml = PROJECT_YML.replace("warehouse:\n  type: duckdb\n", "warehouse:\n  type: postgres\n  dsn: ${env:PG_DSN}\n")
    warehouse_yml = "\n".join(line for line in warehouse_yml.splitlines() if not line.startswith("  path:")) + "\n"
    issues = issues_of(make(tmp_path / "pg", dinsync_dot_yml=warehouse_yml))
    assert [i.message for i in issues] == ["environment variable PG_DSN is not set (used by warehouse.dsn)"]
