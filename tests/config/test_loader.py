"""load_project / check_columns: valid projects, and each kind of issue at its file and line."""
from __future__ import annotations

import dataclasses

import textwrap
from pathlib import Path

import pytest

from dinsync.engine.run import transport_options
from dinsync.config import check_columns, load_project
from dinsync.config import loader as loader_module
from dinsync.destinations.iterable import IterableDestination
from dinsync.errors import ConfigError, ConfigIssue

SECRET = "sk-test-0123456789abcdef"
ENV = {"ITERABLE_API_KEY": SECRET}

PROJECT_YML = """\
version: 1
warehouse:
  type: duckdb
  path: warehouse.duckdb
destinations:
  iterable:
    type: iterable
    api_key: ${env:ITERABLE_API_KEY}
    region: us
"""

MODEL_SQL = """\
-- primary_key: user_id
-- model_type: user
select user_id, email, first_name, plan from customers where active
"""

SYNC_YML = """\
model: active_users
destination: iterable
service: users
mode: upsert
match:
  column: email
  field: email
fields:
  first_name: firstName
  plan: plan
"""

BASE = {"dinsync.yml": PROJECT_YML, "models/active_users.sql": MODEL_SQL, "syncs/users.yml": SYNC_YML}


def make(root: Path, **files: str | None) -> Path:
    """Write the base project plus `files` (keys use __ for / and _dot_ for .; None removes)."""
    contents = dict(BASE)
    for key, text in files.items():
        name = key.replace("__", "/").replace("_dot_", ".")
        if text is None:
            contents.pop(name, None)
        else:
            contents[name] = text
    for name, text in contents.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text), encoding="utf-8")
    return root


def issues_of(root: Path, env: dict | None = None) -> list[ConfigIssue]:
    with pytest.raises(ConfigError) as info:
        load_project(root, env=ENV if env is None else env)
    return info.value.issues


def only_issue(root: Path, env: dict | None = None) -> ConfigIssue:
    issues = issues_of(root, env)
    assert len(issues) == 1, [i.format() for i in issues]
    return issues[0]


def where(issues: list[ConfigIssue]) -> list[tuple[str, int | None]]:
    return [(i.file, i.line) for i in issues]


# --- valid projects --------------------------------------------------------------------------

def test_valid_project_loads_with_expected_values(tmp_path):
    project_yml = PROJECT_YML + """\
    base_url: http://127.0.0.1:8765/
    rate_limits: {bulk_update: 2, get_user: null}
    concurrency: 4
    timeout_seconds: 12.5
"""
    sync = SYNC_YML + 'schedule: "0 6 * * *"\nthresholds: {max_rejected_pct: 10}\nenabled: false\n'
    project = load_project(make(tmp_path, dinsync_dot_yml=project_yml, syncs__users_dot_yml=sync), env=ENV)

    assert project.root == tmp_path.resolve()
    assert project.path == tmp_path.resolve() / "dinsync.yml"
    assert project.version == 1 and project.state_schema == "dinsync"
    assert project.warehouse.type == "duckdb" and project.warehouse.threads is None
    assert project.warehouse.resolved_path(project.root) == str(tmp_path.resolve() / "warehouse.duckdb")

    dest = project.destinations["iterable"]
    assert dest.name == "iterable" and dest.type == "iterable"
    assert dest.destination_class is IterableDestination
    assert dest.settings.region == "us"
    assert dest.credentials() == {"api_key": SECRET}
    assert "api_key" not in dest.options()
    assert dest.resolved_base_url() == "http://127.0.0.1:8765"
    assert dest.rate_limits == {"bulk_update": 2.0, "get_user": None}
    assert (dest.concurrency, dest.timeout_seconds, dest.limits_enabled) == (4, 12.5, True)
    sender = dest.make_destination().make_transport(transport_options(dest))
    assert sender.limiter("bulk_update").rate == 2.0 and sender.limiter("get_user").rate is None

    model = project.models["active_users"]
    assert (model.name, model.primary_key, model.model_type) == ("active_users", "user_id", "user")
    assert model.sql == "select user_id, email, first_name, plan from customers where active"
    assert model.path == tmp_path.resolve() / "models" / "active_users.sql"

    s = project.syncs["users"]
    assert (s.name, s.model, s.destination, s.service, s.mode) == ("users", "active_users", "iterable", "users", "upsert")
    assert (s.match_column, s.match_field) == ("email", "email")
    assert [(f.column, f.field, f.type) for f in s.fields] == [("first_name", "firstName", "auto"), ("plan", "plan", "auto")]
    assert s.schedule.cron == "0 6 * * *" and s.schedule.timezone == "UTC" and s.enabled is False
    assert s.thresholds.max_rejected_pct == 10 and s.thresholds.max_duplicate_pct == 5
    assert s.thresholds.fail_on_warning is True
    assert s.spec().key_field == "email" and s.spec().fields == ["firstName", "plan"]


def test_defaults_state_schema_region_url_and_memory_warehouse(tmp_path):
    yml = PROJECT_YML.replace("path: warehouse.duckdb", 'path: ":memory:"\n  threads: 2').replace("region: us", "region: eu")
    project = load_project(make(tmp_path, dinsync_dot_yml=yml + "state_schema: sync_state\n"), env=ENV)
    assert project.warehouse.resolved_path(project.root) == ":memory:" and project.warehouse.threads == 2
    assert project.state_schema == "sync_state"
    assert project.destinations["iterable"].resolved_base_url() == IterableDestination.base_urls["eu"]
    assert project.destinations["iterable"].rate_limits == {}


def test_iterable_sockets_default_to_its_requests_in_flight(tmp_path):
    """Without `concurrency`, Iterable gets sockets for every request its endpoints may have in
    flight at once (8 bulk + 16 lookups), twice over so that those caps can grow with the latency:
    the generic 8 held update mode's lookups at about half of their 100/s when a request takes
    150 ms, 24 at 79% when it takes 300 ms. A value in dinsync.yml still wins."""
    project = load_project(make(tmp_path, dinsync_dot_yml=PROJECT_YML), env=ENV)
    dest = project.destinations["iterable"]
    in_flight = sum(limit.max_concurrency for limit in IterableDestination.limits.values())
    assert dest.concurrency == IterableDestination.default_concurrency == 2 * in_flight == 48
    sender = dest.make_destination().make_transport(transport_options(dest))
    assert sender.connections == 48  # room for the caps to grow with the latency (sender/inflight.py)
    project = load_project(make(tmp_path, dinsync_dot_yml=PROJECT_YML + "    concurrency: 3\n"), env=ENV)
    assert project.destinations["iterable"].concurrency == 3


def test_duckdb_pools_default_to_what_the_sync_needs(tmp_path):
    """`memory_limit` and `streaming_memory_limit` default to "auto" (sized for the sync by the
    adapter); a size is a floor; anything else is named as the error."""
    from dinsync.operations import connect_warehouse

    project = load_project(make(tmp_path), env=ENV)
    assert (project.warehouse.memory_limit, project.warehouse.streaming_memory_limit) == ("auto", "auto")
    w = connect_warehouse(project.warehouse, project.root)
    try:
        w.size_for(10)
        assert (w.memory_limit, w.streaming_memory_limit) == ("144MB", "112MB")  # 96/64 + 3 x (10 + 6)
    finally:
        w.close()
    yml = PROJECT_YML.replace("path: warehouse.duckdb", "path: warehouse.duckdb\n  memory_limit: 300MB\n"
                                                        "  streaming_memory_limit: auto")
    project = load_project(make(tmp_path, dinsync_dot_yml=yml), env=ENV)
    w = connect_warehouse(project.warehouse, project.root)
    try:
        w.size_for(10)
        assert (w.memory_limit, w.streaming_memory_limit) == ("300MB", "112MB")
    finally:
        w.close()
    bad = PROJECT_YML.replace("path: warehouse.duckdb", "path: warehouse.duckdb\n  memory_limit: automatic")
    issue = only_issue(make(tmp_path, dinsync_dot_yml=bad))
    assert "memory_limit" in issue.format()


def test_fields_list_form_with_types(tmp_path):
    sync = SYNC_YML.split("fields:")[0] + """\
fields:
  - {column: first_name, field: firstName}
  - column: plan
    field: plan
    type: string
  - {column: email, field: email}
"""
    project = load_project(make(tmp_path, syncs__users_dot_yml=sync), env=ENV)
    fields = project.syncs["users"].fields
    assert [(f.column, f.field, f.type) for f in fields] == [
        ("first_name", "firstName", "auto"), ("plan", "plan", "string"), ("email", "email", "auto")]
    # the match column mapped onto the key field itself is redundant but accepted
    assert project.syncs["users"].match_field == "email"


def test_mapping_and_list_forms_are_equivalent(tmp_path):
    a = load_project(make(tmp_path / "a"), env=ENV).syncs["users"].fields
    listed = SYNC_YML.split("fields:")[0] + "fields:\n  - {column: first_name, field: firstName}\n  - {column: plan, field: plan}\n"
    b = load_project(make(tmp_path / "b", syncs__users_dot_yml=listed), env=ENV).syncs["users"].fields
    assert a == b


def test_no_syncs_are_allowed(tmp_path):
    assert load_project(make(tmp_path / "b", syncs__users_dot_yml=None), env=ENV).syncs == {}


@pytest.mark.parametrize("fields, line", [("fields:\n", 8), ("fields: {}\n", 8), ("fields: []\n", 8), ("", 1)])
def test_a_sync_that_maps_no_field_is_an_issue_at_its_line(tmp_path, fields, line):
    """`validate` said OK, then `sync` failed without a file or line ("maps no field")."""
    sync = SYNC_YML.split("fields:")[0] + fields
    issue = only_issue(make(tmp_path, syncs__users_dot_yml=sync))
    assert (issue.file, issue.line, issue.message) == ("syncs/users.yml", line, "the sync maps no field")
    assert "fields: {first_name: firstName}" in issue.hint


# --- secrets and ${env:...} ------------------------------------------------------------------

def test_secret_never_in_repr_or_str_of_project(tmp_path):
    project = load_project(make(tmp_path), env=ENV)
    dest = project.destinations["iterable"]
    for text in (repr(project), str(project), repr(dest), str(dest), repr(dest.settings),
                 project.model_dump_json(), str(project.model_dump())):
        assert SECRET not in text
    assert dest.settings.api_key.get_secret_value() == SECRET


def test_missing_env_variable(tmp_path):
    issue = only_issue(make(tmp_path), env={})
    assert (issue.file, issue.line) == ("dinsync.yml", 8)
    assert "ITERABLE_API_KEY" in issue.message
    assert issue.hint == "export ITERABLE_API_KEY=..."


def test_secret_not_in_config_error_message(tmp_path):
    yml = PROJECT_YML.replace("region: us", "region: ${env:REGION}") + "    bad_key: 1\n"
    env = {**ENV, "REGION": "secret-region-value"}
    issues = issues_of(make(tmp_path, dinsync_dot_yml=yml), env=env)
    assert where(issues) == [("dinsync.yml", 9), ("dinsync.yml", 10)]
    assert "region" in issues[0].message
    text = str(ConfigError(issues))
    assert SECRET not in text and "secret-region-value" not in text


def test_destination_secret_written_in_the_file_is_refused(tmp_path):
    # The README's rule ("secrets only from the environment"), as for warehouse passwords: an API key
    # pasted into dinsync.yml used to validate ("OK") and end up committed with the project.
    yml = PROJECT_YML.replace("${env:ITERABLE_API_KEY}", "sk_live_pasted_0123456789")
    issue = only_issue(make(tmp_path, dinsync_dot_yml=yml))
    assert (issue.file, issue.line) == ("dinsync.yml", 8)
    assert issue.message == "destinations.iterable.api_key is a credential written in the file"
    assert "${env:NAME}" in issue.hint
    assert "sk_live_pasted_0123456789" not in issue.format()


def test_a_password_inside_a_url_written_in_the_file_is_refused(tmp_path):
    """`base_url: https://api:<password>@proxy` or a webhook `url` with a password validated ("OK"):
    the password was committed with the project, whereas an api_key written so is refused."""
    yml = PROJECT_YML.replace("    region: us\n", "    region: us\n    base_url: https://api:pw-pasted-9f3a@proxy.example.com\n")
    yml += ("notifications:\n  - type: webhook\n    url: https://hook:pw-pasted-77aa@alerts.example.com/x\n"
            "  - type: webhook\n    url: https://hook:${env:HOOK_PW}@alerts.example.com/y\n"
            "  - type: webhook\n    url: https://alerts.example.com/z?user=a:b@c\n")
    issues = issues_of(make(tmp_path, dinsync_dot_yml=yml), env={**ENV, "HOOK_PW": "from-env-pw-123"})
    assert where(issues) == [("dinsync.yml", 10), ("dinsync.yml", 13)]
    assert issues[0].message == "destinations.iterable.base_url holds a password (user:password@) written in the file"
    assert issues[1].message.startswith("notifications[0].url holds a password") and "${env:NAME}" in issues[1].hint
    text = str(ConfigError(issues))
    assert "pw-pasted" not in text


def test_a_user_in_base_url_is_refused_where_the_key_is_a_bearer_token(tmp_path):
    """aiohttp sends a base_url's `user:password@` as `Authorization: Basic`, the header Attio's
    bearer token travels in: every request failed ("Cannot combine AUTHORIZATION header"), retried
    as transient, every run. Iterable's key travels in `Api-Key`: its proxy login goes through."""
    proxy = "https://proxyuser:${env:PROXY_PW}@proxy.example.com"
    yml = PROJECT_YML + f"  crm:\n    type: attio\n    api_key: ${{env:ATTIO_KEY}}\n    base_url: {proxy}\n"
    env = {**ENV, "PROXY_PW": "from-env-pw-123", "ATTIO_KEY": "attio-key-0123456789"}
    issues = issues_of(make(tmp_path, dinsync_dot_yml=yml), env=env)
    assert where(issues) == [("dinsync.yml", 13)]
    assert issues[0].message == ("destinations.crm.base_url: attio sends its credentials in the Authorization header, "
                                 "so base_url cannot carry a user or password (user:password@)")
    assert "from-env-pw-123" not in str(ConfigError(issues))
    iterable = PROJECT_YML.replace("    region: us\n", f"    region: us\n    base_url: {proxy}\n")
    project = load_project(make(tmp_path, dinsync_dot_yml=iterable), env=env)
    assert project.destinations["iterable"].resolved_base_url() == "https://proxyuser:from-env-pw-123@proxy.example.com"


def test_env_substitution_inside_strings_and_escape(tmp_path):
    yml = PROJECT_YML.replace("${env:ITERABLE_API_KEY}", "key-${env:ITERABLE_API_KEY}-$${env:LITERAL}")
    yml = yml.replace("path: warehouse.duckdb", "path: ${env:DATA_DIR}/wh.duckdb")
    root = make(tmp_path, dinsync_dot_yml=yml)
    (root / "data").mkdir()  # DuckDB creates its file, not the folder (a missing folder is an issue)
    project = load_project(root, env={**ENV, "DATA_DIR": "data"})
    assert project.destinations["iterable"].credentials()["api_key"] == f"key-{SECRET}-${{env:LITERAL}}"
    assert project.warehouse.path == "data/wh.duckdb"


def test_malformed_env_reference(tmp_path):
    yml = PROJECT_YML.replace("${env:ITERABLE_API_KEY}", "${env:ITERABLE-KEY}")
    issue = only_issue(make(tmp_path, dinsync_dot_yml=yml))
    assert (issue.file, issue.line) == ("dinsync.yml", 8)
    assert "invalid environment reference" in issue.message


# --- YAML structure --------------------------------------------------------------------------

def test_yaml_syntax_error_line(tmp_path):
    yml = PROJECT_YML.replace("region: us", "region: [us")
    issue = only_issue(make(tmp_path, dinsync_dot_yml=yml))
    assert issue.file == "dinsync.yml" and issue.line == 10  # where the parser gave up (end of file)
    assert issue.message.startswith("invalid YAML")

    bad_sync = "model: active_users\ndestination: iterable\n  service: users\n"
    issue = only_issue(make(tmp_path / "b", syncs__users_dot_yml=bad_sync))
    assert (issue.file, issue.line) == ("syncs/users.yml", 3)


def test_yaml_error_does_not_echo_the_line(tmp_path):
    yml = PROJECT_YML.replace("${env:ITERABLE_API_KEY}", "sk_literal_key_abc: oops")
    issue = only_issue(make(tmp_path, dinsync_dot_yml=yml))
    assert issue.line == 8 and "sk_literal_key_abc" not in issue.format()


def test_file_not_a_mapping(tmp_path):
    issues = issues_of(make(tmp_path, syncs__users_dot_yml="- a\n- b\n", syncs__empty_dot_yml="# nothing\n"))
    assert where(issues) == [("syncs/empty.yml", 1), ("syncs/users.yml", 1)]
    assert "empty" in issues[0].message and "not a mapping" in issues[1].message


def test_duplicate_yaml_key(tmp_path):
    issue = only_issue(make(tmp_path, syncs__users_dot_yml=SYNC_YML + "mode: update\n"))
    assert (issue.file, issue.line) == ("syncs/users.yml", 11)
    assert "duplicate key mode" in issue.message and "line 4" in issue.message


def test_a_duplicate_keys_wrong_value_is_located_where_it_is_written(tmp_path):
    """YAML keeps a duplicated key's last value: its problem is on the last line, not the first
    (`enabled: true` on line 4, `enabled: nope` on line 12 was reported at line 4)."""
    yml = SYNC_YML.replace("mode: upsert\n", "mode: upsert\nenabled: true\n") + "enabled: nope\n"
    issues = issues_of(make(tmp_path, syncs__users_dot_yml=yml))
    [bad] = [i for i in issues if "boolean" in i.message]
    [dup] = [i for i in issues if "duplicate key enabled" in i.message]
    assert bad.line == dup.line == yml.count("\n")


def test_missing_project_file(tmp_path):
    issue = only_issue(make(tmp_path, dinsync_dot_yml=None))
    assert issue.file == "dinsync.yml" and issue.line is None and "dinsync init" in issue.hint


# --- keys, types and values ------------------------------------------------------------------

def test_unknown_keys_with_did_you_mean(tmp_path):
    yml = PROJECT_YML.replace("  path:", "  pth:").replace("region: us", "regoin: us") + "state_shema: x\n"
    sync = SYNC_YML.replace("  field: email", "  feild: email") + "thresholds: {max_rejected: 3}\nenabeld: true\n"
    issues = issues_of(make(tmp_path, dinsync_dot_yml=yml, syncs__users_dot_yml=sync))
    got = [(i.file, i.line, i.message, i.hint.split("?")[0]) for i in issues]
    assert got == [
        ("dinsync.yml", 2, "missing required key warehouse.path", "add `path:` here"),
        ("dinsync.yml", 4, "unknown key warehouse.pth", "did you mean 'path'"),
        ("dinsync.yml", 9, "unknown key destinations.iterable.regoin", "did you mean 'region'"),
        ("dinsync.yml", 10, "unknown key state_shema", "did you mean 'state_schema'"),
        ("syncs/users.yml", 5, "missing required key match.field", "add `field:` here"),
        ("syncs/users.yml", 7, "unknown key match.feild", "did you mean 'field'"),
        ("syncs/users.yml", 11, "unknown key thresholds.max_rejected", "did you mean 'max_rejected_pct'"),
        ("syncs/users.yml", 12, "unknown key enabeld", "did you mean 'enabled'"),
    ]
    assert "allowed keys:" in issues[1].hint and "threads" in issues[1].hint


@pytest.mark.parametrize("warehouse", [
    "  type: snowflake\n  account: acme\n  user: u\n  password: ${env:SNOWFLAKE_TEST_PASSWORD}\n  shema: MARTS\n",
    "  type: databricks\n  host: dbc-1.cloud.databricks.com\n  warehouse_id: abc\n"
    "  token: ${env:DATABRICKS_TEST_TOKEN}\n  shema: marts\n"])
def test_an_unknown_key_hint_names_the_key_as_written_not_its_python_name(tmp_path, warehouse):
    """`shema:` under a Snowflake or Databricks warehouse was answered "did you mean 'schema_'?",
    listing `schema_` among the allowed keys: the setting's Python name, where the file's key is
    `schema` (README). The hint names `schema`."""
    env = {**ENV, "SNOWFLAKE_TEST_PASSWORD": "pw-123456", "DATABRICKS_TEST_TOKEN": "dapi-123456"}
    yml = PROJECT_YML.replace("  type: duckdb\n  path: warehouse.duckdb\n", warehouse)
    assert "shema" in yml
    issue = only_issue(make(tmp_path, dinsync_dot_yml=yml), env)
    assert issue.message == "unknown key warehouse.shema", issue
    assert issue.hint.startswith("did you mean 'schema'?"), issue.hint
    assert "schema_" not in issue.hint, issue.hint


def test_a_duckdb_path_under_the_home_folder_is_read_as_duckdb_and_dbt_read_it(tmp_path, monkeypatch):
    """`path: ~/warehouses/shop.duckdb` (as dbt-duckdb's profiles.yml names the file dbt builds, and
    DuckDB opens it) was joined to the project folder: "warehouse.path: folder <project>/~/warehouses
    does not exist"."""
    home = tmp_path / "home"
    (home / "warehouses").mkdir(parents=True)
    import duckdb
    duckdb.connect(str(home / "warehouses" / "shop.duckdb")).close()
    monkeypatch.setenv("HOME", str(home))
    yml = PROJECT_YML.replace("  path: warehouse.duckdb", "  path: ~/warehouses/shop.duckdb")
    project = load_project(make(tmp_path / "p", dinsync_dot_yml=yml), env=ENV, warehouse_must_exist=True)
    assert project.warehouse.resolved_path(project.root) == str(home / "warehouses" / "shop.duckdb")


def test_missing_required_top_level_key(tmp_path):
    sync = "\n".join(line for line in SYNC_YML.splitlines() if not line.startswith("mode:"))
    issue = only_issue(make(tmp_path, syncs__users_dot_yml=sync))
    assert (issue.file, issue.line, issue.message) == ("syncs/users.yml", 1, "missing required key mode")


def test_wrong_types(tmp_path):
    yml = PROJECT_YML.replace("  path: warehouse.duckdb", "  path: warehouse.duckdb\n  threads: many")
    yml += "    concurrency: [1]\n"
    sync = SYNC_YML + "enabled: maybe\n"
    sync = sync.replace("match:\n  column: email\n  field: email", "match: email")
    issues = issues_of(make(tmp_path, dinsync_dot_yml=yml, syncs__users_dot_yml=sync))
    assert where(issues) == [("dinsync.yml", 5), ("dinsync.yml", 11), ("syncs/users.yml", 5), ("syncs/users.yml", 9)]
    assert issues[0].message.startswith("warehouse.threads: Input should be a valid integer")
    assert issues[1].message.startswith("destinations.iterable.concurrency")
    assert issues[2].message == "match: expected a mapping of `key: value` lines, got the text 'email'"
    assert issues[3].message.startswith("enabled: Input should be a valid boolean")


def test_a_key_left_without_a_value_says_so(tmp_path):
    """`model:` with nothing after the colon (YAML's null) was "model: Input should be a valid string
    (hint: quote the value)", `mode:` "invalid value None" and `region:` / `concurrency:` likewise:
    nothing to quote, and None is Python's word. Each says the key has no value."""
    yml = PROJECT_YML.replace("region: us", "region:") + "    concurrency:\n"
    sync = SYNC_YML.replace("model: active_users", "model:").replace("mode: upsert", "mode:")
    assert "model:\n" in sync and "mode:\n" in sync
    issues = issues_of(make(tmp_path, dinsync_dot_yml=yml, syncs__users_dot_yml=sync))
    got = [(i.file, i.message, i.hint) for i in issues]
    hint = "write the value after the colon (nothing there is null)"
    assert got == [("dinsync.yml", "destinations.iterable.region has no value", hint),
                   ("dinsync.yml", "destinations.iterable.concurrency has no value", hint),
                   ("syncs/users.yml", "model has no value", hint),
                   ("syncs/users.yml", "mode has no value", hint)], got


def test_an_environment_reference_in_a_sync_file_is_refused_not_sent_as_a_field_name(tmp_path):
    """`${env:NAME}` is read in dinsync.yml only: in a sync file, `fields: {plan: "${env:PLAN_FIELD}"}`
    was taken as written, and the run sent Iterable a field named `${env:PLAN_FIELD}` (created, as
    Iterable creates fields it does not know). It is a configuration error at its line."""
    sync = SYNC_YML.replace("  plan: plan", '  plan: "${env:PLAN_FIELD}"')
    issue = only_issue(make(tmp_path, syncs__users_dot_yml=sync), {**ENV, "PLAN_FIELD": "plan"})
    assert (issue.file, issue.line) == ("syncs/users.yml", 10), issue
    assert issue.message == "fields.plan: ${env:PLAN_FIELD} is not read in a sync file", issue
    assert issue.hint == "environment variables are read in dinsync.yml only: write the value itself", issue


def test_a_control_character_in_a_yaml_file_is_a_located_configuration_error(tmp_path):
    """A NUL (or another control character YAML refuses, from a bad copy-paste or an editor) in a
    sync file or dinsync.yml was "error: unexpected error: ReaderError: unacceptable character
    #x0000", exit 1, naming no file: PyYAML refuses it while setting up its reader, before the
    parse whose errors are reported at their line."""
    sync = SYNC_YML.replace("service: users", "service: us\x00ers")
    yml = PROJECT_YML.replace("region: us", "region: us\x07")
    issues = issues_of(make(tmp_path, dinsync_dot_yml=yml, syncs__users_dot_yml=sync))
    got = [(i.file, i.line, i.message, i.hint) for i in issues]
    hint = "delete it (a control character, say, from a copy-paste): YAML files hold text only"
    assert got == [("dinsync.yml", 9, "invalid YAML: the file holds the character U+0007, which YAML does not allow",
                    hint),
                   ("syncs/users.yml", 3, "invalid YAML: the file holds the character U+0000, which YAML does not "
                                          "allow", hint)], got


def test_duckdb_threads_far_above_any_machine_are_a_config_error(tmp_path):
    yml = PROJECT_YML.replace("  path: warehouse.duckdb", "  path: warehouse.duckdb\n  threads: 100000")
    issue = only_issue(make(tmp_path, dinsync_dot_yml=yml))
    assert (issue.file, issue.line) == ("dinsync.yml", 5)
    assert issue.message.startswith("warehouse.threads: Input should be less than or equal to 1024")


def test_bad_enum_values_list_allowed_values(tmp_path):
    yml = PROJECT_YML.replace("region: us", "region: mars")
    sync = SYNC_YML.replace("mode: upsert", "mode: upsrt").split("fields:")[0]
    sync += "fields:\n  - {column: plan, field: plan, type: strng}\n"
    issues = issues_of(make(tmp_path, dinsync_dot_yml=yml, syncs__users_dot_yml=sync))
    assert where(issues) == [("dinsync.yml", 9), ("syncs/users.yml", 4), ("syncs/users.yml", 9)]
    assert "'mars'" in issues[0].message and "'us' or 'eu'" in issues[0].hint
    assert "'upsrt'" in issues[1].message and "'upsert', 'update' or 'insert'" in issues[1].hint
    assert issues[2].message.startswith("fields[0].type") and "'number'" in issues[2].hint


def test_unknown_warehouse_and_destination_types(tmp_path):
    yml = PROJECT_YML.replace("type: duckdb", "type: duckbd").replace("type: iterable", "type: iterabel")
    issues = issues_of(make(tmp_path, dinsync_dot_yml=yml))
    assert where(issues) == [("dinsync.yml", 3), ("dinsync.yml", 7)]
    assert "unknown warehouse type 'duckbd'" in issues[0].message and "did you mean 'duckdb'" in issues[0].hint
    assert "unknown destination type 'iterabel'" in issues[1].message and "did you mean 'iterable'" in issues[1].hint


def test_invalid_state_schema_version_and_names(tmp_path):
    yml = PROJECT_YML.replace("version: 1", "version: 2") + "state_schema: my-state\n"
    yml = yml.replace("destinations:\n", "destinations:\n  bad-name:\n    type: iterable\n    api_key: ${env:ITERABLE_API_KEY}\n")
    issues = issues_of(make(tmp_path, dinsync_dot_yml=yml, **{"syncs__bad-sync_dot_yml": SYNC_YML}))
    assert where(issues) == [("dinsync.yml", 1), ("dinsync.yml", 6), ("dinsync.yml", 13), ("syncs/bad-sync.yml", None)]
    assert "invalid value 2" in issues[0].message and issues[0].hint == "expected 1"
    assert "invalid name 'bad-name'" in issues[1].message
    assert "plain identifier" in issues[2].message
    assert "invalid sync name" in issues[3].message


def test_a_name_with_an_accented_letter_is_told_only_ascii_letters_are_allowed(tmp_path):
    """`syncs/clients_été.yml` was refused with the hint "letters, digits and underscores only":
    `é` is a letter, so the hint did not say what was wrong with the name."""
    yml = PROJECT_YML.replace("destinations:\n", "destinations:\n  itérable:\n    type: iterable\n"
                              "    api_key: ${env:ITERABLE_API_KEY}\n")
    issues = issues_of(make(tmp_path, dinsync_dot_yml=yml, **{"syncs__clients_été_dot_yml": SYNC_YML}))
    texts = [i.format() for i in issues]
    assert len(texts) == 2 and all("ASCII letters" in t for t in texts), texts


def test_a_name_or_state_schema_ending_in_a_line_break_is_refused(tmp_path):
    """`state_schema: |` (a YAML block scalar) ends in a line break; Python's `$` matched before it,
    so the schema was accepted and PostgreSQL's statements failed to tokenize at sync time."""
    yml = PROJECT_YML.replace("  iterable:\n", '  "iterable\\n":\n') + "state_schema: |\n  dinsync\n"
    issues = [i for i in issues_of(make(tmp_path, dinsync_dot_yml=yml)) if i.file == "dinsync.yml"]
    assert [i.line for i in issues] == [6, 10], [i.format() for i in issues]
    assert "invalid name 'iterable\\n'" in issues[0].message
    assert "plain identifier" in issues[1].message


def test_base_url_must_be_http(tmp_path):
    issue = only_issue(make(tmp_path, dinsync_dot_yml=PROJECT_YML + "    base_url: 127.0.0.1:8765\n"))
    assert (issue.line, issue.message) == (10, "destinations.iterable.base_url: base_url must start with http:// or https://")


@pytest.mark.parametrize("url", ["http://api.iterable.com", "http://10.1.2.3:8080", "http://localhost.example.com"])
def test_a_base_url_in_clear_text_to_another_machine_is_refused(tmp_path, url):
    """The API key travels in a header of every request: over http:// to another host, anyone on
    the path read it. http:// stays for this machine (the sandboxes)."""
    issue = only_issue(make(tmp_path, dinsync_dot_yml=PROJECT_YML + f"    base_url: {url}\n"))
    assert issue.line == 10 and "clear text" in issue.message and "use https://" in issue.message
    for local in ("http://127.0.0.1:8765", "http://localhost:8765", "http://[::1]:8765", "http://0.0.0.0:8765",
                  "http://127.8.9.1:8765", "https://api.iterable.com"):
        (tmp_path / "ok").mkdir(exist_ok=True)
        load_project(make(tmp_path / "ok", dinsync_dot_yml=PROJECT_YML + f"    base_url: {local}\n"), env=ENV)


def test_rate_limits_endpoint_names(tmp_path):
    endpoints = sorted(IterableDestination.limits)
    yml = PROJECT_YML + f"    rate_limits:\n      {endpoints[0]}: 1\n      bulk_updat: 3\n"
    issue = only_issue(make(tmp_path, dinsync_dot_yml=yml))
    assert (issue.file, issue.line) == ("dinsync.yml", 12)
    assert "bulk_updat" in issue.message
    assert issue.hint.startswith("did you mean 'bulk_update'?") and ", ".join(endpoints) in issue.hint


def test_rate_limits_disabled_and_bad_values(tmp_path):
    project = load_project(make(tmp_path / "a", dinsync_dot_yml=PROJECT_YML + "    limits_enabled: false\n"), env=ENV)
    dest = project.destinations["iterable"]
    sender = dest.make_destination().make_transport(transport_options(dest))
    assert sender.limiter("bulk_update").rate is None and sender.limiter("get_user").rate is None
    issue = only_issue(make(tmp_path / "b", dinsync_dot_yml=PROJECT_YML + "    rate_limits: {bulk_update: 0}\n"))
    assert issue.line == 10 and "greater than 0" in issue.message


# --- sync references -------------------------------------------------------------------------

def test_unknown_model_and_destination(tmp_path):
    sync = SYNC_YML.replace("model: active_users", "model: active_user").replace("destination: iterable", "destination: iterabl")
    issues = issues_of(make(tmp_path, syncs__users_dot_yml=sync))
    assert where(issues) == [("syncs/users.yml", 1), ("syncs/users.yml", 2)]
    assert issues[0].message == "unknown model 'active_user'" and "did you mean 'active_users'" in issues[0].hint
    assert issues[1].message == "unknown destination 'iterabl'" and "did you mean 'iterable'" in issues[1].hint


def test_service_and_match_field_of_the_destination_type(tmp_path):
    sync = SYNC_YML.replace("service: users", "service: events").replace("  field: email", "  field: phone")
    issues = issues_of(make(tmp_path / "a", syncs__users_dot_yml=sync))
    assert where(issues) == [("syncs/users.yml", 3)]  # the matching fields are the service's
    assert "no service 'events'" in issues[0].message and "users" in issues[0].hint
    sync = SYNC_YML.replace("  field: email", "  field: phone")
    issues = issues_of(make(tmp_path / "b", syncs__users_dot_yml=sync))
    assert where(issues) == [("syncs/users.yml", 7)]
    assert "cannot match on 'phone'" in issues[0].message and "email, userId" in issues[0].hint


def test_mode_not_supported_by_destination_type(tmp_path, monkeypatch):
    class UpdateOnly(IterableDestination):
        type_name = "update_only"
        services = {"users": dataclasses.replace(IterableDestination.services["users"], modes=("update",),
                                                 mode_notes={"upsert": "it never creates records"})}

    monkeypatch.setattr(loader_module, "registry", lambda: {"iterable": IterableDestination, "update_only": UpdateOnly})
    yml = PROJECT_YML + "  attentive:\n    type: update_only\n    api_key: ${env:ITERABLE_API_KEY}\n"
    sync = SYNC_YML.replace("destination: iterable", "destination: attentive")
    issue = only_issue(make(tmp_path, dinsync_dot_yml=yml, syncs__users_dot_yml=sync))
    assert (issue.file, issue.line) == ("syncs/users.yml", 4)
    assert issue.message == "update_only users does not support mode 'upsert': it never creates records"
    assert "update" in issue.hint
    ok = sync.replace("mode: upsert", "mode: update")
    project = load_project(make(tmp_path, dinsync_dot_yml=yml, syncs__users_dot_yml=ok), env=ENV)
    assert project.syncs["users"].mode == "update"


def test_destination_field_mapped_twice(tmp_path):
    sync = SYNC_YML + "  email: plan\n"
    issue = only_issue(make(tmp_path, syncs__users_dot_yml=sync))
    assert (issue.file, issue.line) == ("syncs/users.yml", 11)
    assert "'plan' is mapped twice" in issue.message and "line 10" in issue.message


def test_other_column_mapped_onto_the_key_field(tmp_path):
    sync = SYNC_YML.split("fields:")[0] + "fields:\n  - {column: first_name, field: firstName}\n  - {column: plan, field: email}\n"
    issue = only_issue(make(tmp_path, syncs__users_dot_yml=sync))
    assert (issue.file, issue.line) == ("syncs/users.yml", 10)
    assert "matching key" in issue.message


# --- models ----------------------------------------------------------------------------------

def test_model_header_problems(tmp_path):
    issues = issues_of(make(
        tmp_path,
        models__active_users_dot_sql="-- model_type: user\nselect 1 as user_id\n",
        models__composite_dot_sql="-- a comment\n-- primary_key: a, b\nselect 1 as a, 2 as b\n",
        models__typo_dot_sql="-- primary_key: id\n-- modeltype: user\n-- model_type: person\nselect 1 as id\n",
    ))
    assert where(issues) == [("models/active_users.sql", 1), ("models/composite.sql", 2),
                             ("models/typo.sql", 2), ("models/typo.sql", 3)]
    assert issues[0].message == "missing primary key header" and "-- primary_key:" in issues[0].hint
    assert "one column" in issues[1].message
    assert "unknown header key 'modeltype'" in issues[2].message and "model_type" in issues[2].hint
    assert "invalid model_type 'person'" in issues[3].message and "custom, user" in issues[3].hint


def test_primary_key_holding_spaces_is_written_in_double_quotes(tmp_path):
    sql = 'select 1 as "User ID", \'a\' as email, \'b\' as first_name, \'c\' as plan\n'
    issue = only_issue(make(tmp_path, models__active_users_dot_sql="-- primary_key: User ID\n" + sql))
    assert issue.line == 1 and "one column" in issue.message
    assert issue.hint == 'a column name holding spaces goes in double quotes: `-- primary_key: "User ID"`'
    project = load_project(make(tmp_path, models__active_users_dot_sql='-- primary_key: "User ID"\n' + sql), env=ENV)
    assert project.models["active_users"].primary_key == "User ID"
    project = load_project(make(tmp_path, models__active_users_dot_sql='-- primary_key: "a""b"\n' + sql), env=ENV)
    assert project.models["active_users"].primary_key == 'a"b'


def test_model_prose_comments_are_not_header_keys(tmp_path):
    sql = "-- primary_key: user_id\n-- note: refreshed nightly by dbt\n\nselect 1 as user_id, 'a' as email, 'b' as first_name, 'c' as plan;\n"
    project = load_project(make(tmp_path, models__active_users_dot_sql=sql), env=ENV)
    model = project.models["active_users"]
    assert model.model_type == "custom" and model.sql.endswith("'c' as plan")
    assert model.line("sql") == 4 and model.line("primary_key") == 1


def test_empty_and_multi_statement_models(tmp_path):
    issues = issues_of(make(
        tmp_path,
        models__empty_dot_sql="-- primary_key: id\n\n-- TODO\n",
        models__two_dot_sql="-- primary_key: id\nselect 1 as id;\n\nselect 2 as id;\n",
    ))
    assert where(issues) == [("models/empty.sql", 3), ("models/two.sql", 4)]
    assert issues[0].message == "model SQL is empty"
    assert issues[1].message == "more than one SQL statement in a model"


def test_duplicate_model_names(tmp_path):
    issue = only_issue(make(tmp_path, models__marketing__active_users_dot_sql=MODEL_SQL))
    assert (issue.file, issue.line) == ("models/marketing/active_users.sql", 1)
    assert "duplicate model name 'active_users'" in issue.message and "models/active_users.sql" in issue.message


def test_a_model_name_repeated_in_other_case_is_not_said_to_be_a_file_not_ending_in_sql(tmp_path):
    """models/Active_Users.sql next to models/active_users.sql: the second is a duplicate (names ignore
    case) and the sync's `model: active_users` is unknown; its hint said "models/active_users.sql is
    not read: a model's file name ends in .sql", of a file whose name ends in .sql."""
    issues = issues_of(make(tmp_path, models__Active_Users_dot_sql=MODEL_SQL))
    texts = [i.format() for i in issues]
    assert any("duplicate model name 'active_users'" in t for t in texts), texts
    unknown = next(t for t in texts if "unknown model 'active_users'" in t)
    assert "ends in .sql" not in unknown and "Active_Users" in unknown, unknown


def test_a_model_file_with_an_invalid_name_is_named_in_the_syncs_hint(tmp_path):
    """models/active-users.sql (a dash) is refused at its file; the sync naming `active-users` then
    got the hint "no models defined", as if the file were not there."""
    sync = SYNC_YML.replace("model: active_users", "model: active-users")
    issues = issues_of(make(tmp_path, models__active_users_dot_sql=None, **{"models__active-users_dot_sql": MODEL_SQL},
                            syncs__users_dot_yml=sync))
    unknown = next(i.format() for i in issues if "unknown model 'active-users'" in i.message)
    assert "no models defined" not in unknown and "models/active-users.sql is not read" in unknown, unknown


# --- schedules and thresholds ----------------------------------------------------------------

def test_invalid_schedule_and_thresholds(tmp_path):
    sync = SYNC_YML + 'schedule: "61 * * * *"\nthresholds:\n  max_rejected_pct: 101\n  max_duplicate_pct: -1\n'
    issues = issues_of(make(tmp_path, syncs__users_dot_yml=sync))
    assert where(issues) == [("syncs/users.yml", 11), ("syncs/users.yml", 13), ("syncs/users.yml", 14)]
    assert "invalid cron expression" in issues[0].message
    assert issues[1].message == "thresholds.max_rejected_pct: Input should be less than or equal to 100"
    assert issues[2].message == "thresholds.max_duplicate_pct: Input should be greater than or equal to 0"


@pytest.mark.parametrize("key", ["max_rejected_pct", "max_duplicate_pct", "max_not_found", "max_segment_drop_pct",
                                 "max_run_minutes"])
@pytest.mark.parametrize("value", ["false", "true"])
def test_a_threshold_given_a_boolean_is_refused_not_read_as_0_or_1(tmp_path, key, value):
    """`max_segment_drop_pct: false` (meant: off) was read as 0, a warning at any drop (exit 4), and
    `max_not_found: true` as 1; a number is what a threshold takes, and leaving it out turns it off."""
    issue = only_issue(make(tmp_path, syncs__users_dot_yml=SYNC_YML + f"thresholds:\n  {key}: {value}\n"))
    assert issue.line == 12 and issue.message.startswith(f"thresholds.{key}: expected a number, got {value} ")
    off = key not in ("max_rejected_pct", "max_duplicate_pct")
    assert ("leave the key out to turn it off" if off else "leave the key out to keep the default, 5") in issue.message


@pytest.mark.parametrize("value, got", [("5", "the number 5"), ("[a]", "a list"), ("true", "true")])
def test_a_schedule_of_the_wrong_kind_names_both_forms_it_takes(tmp_path, value, got):
    """`schedule: 5` said "expected a mapping of `key: value` lines" although a cron text (the
    scaffold's own example) is what most files hold."""
    issue = only_issue(make(tmp_path, syncs__users_dot_yml=SYNC_YML + f"schedule: {value}\n"))
    assert (issue.line, issue.message) == (11, "schedule: expected a cron expression (text) or a mapping with "
                                               f"every: or cron: (and timezone:), got {got}")
    assert issue.hint.startswith('write e.g. schedule: "0 6 * * *" (cron, UTC), {every: 15m}')


# --- everything at once ----------------------------------------------------------------------

def test_many_errors_in_many_files_sorted(tmp_path):
    yml = PROJECT_YML.replace("region: us", "region: mars")
    issues = issues_of(make(
        tmp_path,
        dinsync_dot_yml=yml,
        syncs__b_dot_yml=SYNC_YML.replace("mode: upsert", "mode: sometimes"),
        syncs__a_dot_yml=SYNC_YML.replace("model: active_users", "model: nope") + "colour: red\n",
        models__broken_dot_sql="select 1\n",
    ), env={})
    assert where(issues) == [
        ("dinsync.yml", 8), ("dinsync.yml", 9),
        ("models/broken.sql", 1),
        ("syncs/a.yml", 1), ("syncs/a.yml", 11),
        ("syncs/b.yml", 4),
    ]
    text = str(ConfigError(issues))
    assert text.startswith("6 configuration error(s)") and "syncs/a.yml:11: unknown key colour" in text


# --- check_columns ---------------------------------------------------------------------------

def test_check_columns_reports_missing_columns(tmp_path):
    sync = SYNC_YML.replace("  column: email", "  column: mail")
    project = load_project(make(tmp_path, syncs__users_dot_yml=sync), env=ENV)
    issues = check_columns(project, lambda model: ["id", "email", "first_name"])
    assert where(issues) == [("models/active_users.sql", 1), ("syncs/users.yml", 6), ("syncs/users.yml", 10)]
    assert "primary key 'user_id'" in issues[0].message
    assert "match column 'mail'" in issues[1].message and "did you mean 'email'" in issues[1].hint
    assert "column 'plan'" in issues[2].message


def test_check_columns_accepts_matching_columns(tmp_path):
    project = load_project(make(tmp_path), env=ENV)
    assert check_columns(project, lambda model: ["user_id", "email", "first_name", "plan"]) == []


def test_check_columns_model_error_is_one_issue(tmp_path):
    project = load_project(make(tmp_path), env=ENV)

    def columns_of(model):
        raise RuntimeError("Catalog Error: Table with name customers does not exist!")

    issues = check_columns(project, columns_of)
    assert len(issues) == 1
    assert (issues[0].file, issues[0].line) == ("models/active_users.sql", 3)
    assert "Table with name customers does not exist" in issues[0].message



def test_check_columns_reports_a_used_column_the_model_returns_twice(tmp_path):
    # `select * from customers c join plans p ...` returns `id` twice; DuckDB would read one of
    # them, silently; names differing only by case are one column on most warehouses
    project = load_project(make(tmp_path), env=ENV)
    issues = check_columns(project, lambda model: ["user_id", "email", "first_name", "plan", "Email", "plan",
                                                   "other", "other"])
    assert where(issues) == [("syncs/users.yml", 6), ("syncs/users.yml", 10)]
    assert issues[0].message == "match column 'email' is returned 2 times by model active_users (as email, Email)"
    assert issues[1].message == "column 'plan' is returned 2 times by model active_users (as plan, plan)"
    assert "give each column its own name" in issues[1].hint
    issues = check_columns(project, lambda model: ["user_id", "USER_ID", "email", "first_name", "plan"])
    assert where(issues) == [("models/active_users.sql", 1)]
    assert issues[0].message == "primary key 'user_id' is returned 2 times by model active_users (as user_id, USER_ID)"

@pytest.mark.parametrize("written, returned", [
    ("pre\u0301nom", "pr\u00e9nom"),  # a decomposed accent (NFD, as macOS file names and some editors write it)
    ("first\u00a0name", "first name"),  # a no-break space, copied from a document
    ("plan\u200b", "plan"),  # a zero-width space
])
def test_a_column_name_that_only_looks_like_the_models_says_how_it_differs(tmp_path, written, returned):
    """The hint was `did you mean 'prénom'?` for a column written 'prénom': the same to the eye."""
    sync = SYNC_YML.replace("  plan: plan", f"  \"{written}\": plan")
    assert sync != SYNC_YML
    project = load_project(make(tmp_path, syncs__users_dot_yml=sync), env=ENV)
    [issue] = check_columns(project, lambda model: ["user_id", "email", "first_name", returned])
    assert issue.message == f"column {written!r} is not a column of model active_users"
    assert issue.hint.startswith(f"{written!r} looks like the model's column {returned!r} but is not the same text "
                                 f"(other Unicode characters: {ascii(written)} vs {ascii(returned)}")


@pytest.mark.parametrize("kind, refused", [
    ("TIMESTAMP WITH TIME ZONE", True), ("timestamptz", True), ("TIMESTAMP_LTZ", True),  # DuckDB, PostgreSQL, Snowflake
    ("TIMESTAMP", False), ("timestamp", False), ("TIMESTAMP_NTZ", False), ("TIMESTAMP_TZ", False),
    ("timetz", False), ("TIME WITH TIME ZONE", False), ("VARCHAR", False), ("TIMESTAMP WITH TIME ZONE[]", False),
])
def test_check_columns_refuses_a_match_column_written_in_the_sessions_time_zone(tmp_path, kind, refused):
    """A TIMESTAMPTZ key is sent as its text in the session's time zone (`...00:00:01+00` from a
    UTC host, `...19:00:01-05` under TZ=America/New_York): a run from elsewhere re-created every
    record under another key. Mapped as a field it is sent in UTC, so only the key is refused."""
    project = load_project(make(tmp_path), env=ENV)
    issues = check_columns(project, lambda model: [("user_id", "BIGINT"), ("email", kind), ("first_name", kind),
                                                   ("plan", "VARCHAR")])
    assert where(issues) == ([("syncs/users.yml", 6)] if refused else [])
    if refused:
        assert f"match column 'email' of model active_users is of type {kind}, whose text form" in issues[0].message
        assert "time zone" in issues[0].message and "EXTRACT(EPOCH FROM email)" in issues[0].hint


# --- load_project(columns_of=...): column checks in the same pass ----------------------------

def issues_with_columns(root: Path, columns_of, env: dict | None = None) -> list[ConfigIssue]:
    with pytest.raises(ConfigError) as info:
        load_project(root, env=ENV if env is None else env, columns_of=columns_of)
    return info.value.issues


def test_unknown_key_and_missing_column_reported_together(tmp_path):
    sync = SYNC_YML.replace("  column: email", "  column: mail") + "colour: red\n"
    issues = issues_with_columns(make(tmp_path, syncs__users_dot_yml=sync),
                                 lambda model: ["user_id", "email", "first_name"])
    assert where(issues) == [("syncs/users.yml", 6), ("syncs/users.yml", 10), ("syncs/users.yml", 11)]
    assert issues[0].message == "match column 'mail' is not a column of model active_users"
    assert issues[0].hint == "did you mean 'email'? columns: user_id, email, first_name"
    assert issues[1].message == "column 'plan' is not a column of model active_users"
    assert "unknown key colour" in issues[2].message
    assert str(ConfigError(issues)).startswith("3 configuration error(s)")


def test_columns_checked_on_raw_list_form_when_validation_fails(tmp_path):
    sync = SYNC_YML.split("fields:")[0].replace("mode: upsert", "mode: sometimes") + """\
fields:
  - {column: first_nam, field: firstName}
  - column: plan
    field: plan
    type: strng
"""
    issues = issues_with_columns(make(tmp_path, syncs__users_dot_yml=sync),
                                 lambda model: ["user_id", "email", "first_name"])
    assert where(issues) == [("syncs/users.yml", 4), ("syncs/users.yml", 9), ("syncs/users.yml", 10),
                             ("syncs/users.yml", 12)]
    assert "mode" in issues[0].message
    assert "column 'first_nam'" in issues[1].message and "did you mean 'first_name'" in issues[1].hint
    assert "column 'plan'" in issues[2].message
    assert "type" in issues[3].message


def test_model_failing_in_columns_of_plus_yaml_error_elsewhere(tmp_path):
    calls = []

    def columns_of(model):
        calls.append(model.name)
        if model.name == "broken":
            raise RuntimeError("Catalog Error: Table with name nope does not exist!")
        return ["user_id", "email", "first_name", "plan"]

    issues = issues_with_columns(make(
        tmp_path,
        models__broken_dot_sql="-- primary_key: id\n\nselect id from nope\n",
        syncs__bad_dot_yml="model: active_users\nmatch: [unclosed\n",
        syncs__uses_broken_dot_yml=SYNC_YML.replace("model: active_users", "model: broken")
        .replace("  column: email", "  column: whatever"),
    ), columns_of)
    assert sorted(calls) == ["active_users", "broken"]  # once per model
    assert where(issues) == [("models/broken.sql", 3), ("syncs/bad.yml", 3)]
    assert issues[0].message == "model broken failed in the warehouse: Catalog Error: Table with name nope does not exist!"
    assert issues[0].hint == "run the model's SQL in the warehouse to debug it"
    assert issues[1].message.startswith("invalid YAML")


def test_primary_key_checked_and_unknown_or_broken_models_skipped(tmp_path):
    issues = issues_with_columns(make(
        tmp_path,
        models__headerless_dot_sql="select 1 as id\n",
        syncs__unknown_dot_yml=SYNC_YML.replace("model: active_users", "model: nope"),
        syncs__headerless_dot_yml=SYNC_YML.replace("model: active_users", "model: headerless"),
    ), lambda model: ["id", "email", "first_name", "plan"])
    assert where(issues) == [("models/active_users.sql", 1), ("models/headerless.sql", 1), ("syncs/unknown.yml", 1)]
    assert issues[0].message == "primary key 'user_id' is not a column of model active_users"
    assert issues[1].message == "missing primary key header"
    assert issues[2].message == "unknown model 'nope'"


def test_same_column_issue_on_one_line_is_reported_once(tmp_path):
    sync = SYNC_YML.split("fields:")[0] + "fields: [{column: plna, field: a}, {column: plna, field: b}]\n"
    issues = issues_with_columns(make(tmp_path, syncs__users_dot_yml=sync),
                                 lambda model: ["user_id", "email", "first_name", "plan"])
    assert where(issues) == [("syncs/users.yml", 8)]
    assert issues[0].message == "column 'plna' is not a column of model active_users"


def test_columns_of_matches_check_columns(tmp_path):
    sync = SYNC_YML.replace("  column: email", "  column: mail")
    root = make(tmp_path, syncs__users_dot_yml=sync)
    columns = lambda model: ["id", "email", "first_name"]  # noqa: E731
    assert issues_with_columns(root, columns) == check_columns(load_project(root, env=ENV), columns)


def test_valid_project_with_columns_of(tmp_path):
    calls = []

    def columns_of(model):
        calls.append(model.name)
        return ["user_id", "email", "first_name", "plan"]

    project = load_project(make(tmp_path), env=ENV, columns_of=columns_of)
    assert calls == ["active_users"]
    assert project == load_project(make(tmp_path), env=ENV)


def test_without_columns_of_columns_are_not_checked(tmp_path):
    sync = SYNC_YML.replace("  column: email", "  column: mail")
    project = load_project(make(tmp_path / "a", syncs__users_dot_yml=sync), env=ENV)
    assert project.syncs["users"].match_column == "mail"
    issues = issues_of(make(tmp_path / "b", syncs__users_dot_yml=sync + "colour: red\n"))
    assert where(issues) == [("syncs/users.yml", 11)]
    assert "unknown key colour" in issues[0].message


@pytest.mark.parametrize("kind", ["DOUBLE", "float8", "FLOAT64", "DECIMAL(10,2)", "NUMBER(38, 2)"])
def test_a_match_column_of_a_floating_or_scaled_type_is_an_issue(tmp_path, kind):
    """Its text form is the key: 1.0 (or 1.00) names another record than the 1 it stands for."""
    issues = issues_with_columns(make(tmp_path), lambda model: [("user_id", "BIGINT"), ("email", kind),
                                                                ("first_name", "VARCHAR"), ("plan", kind)])
    assert where(issues) == [("syncs/users.yml", 6)]  # the match column only: a mapped value may be a number
    assert issues[0].message.startswith(f"match column 'email' of model active_users is of type {kind}, whose text")
    assert "CAST(email AS BIGINT)" in issues[0].hint


@pytest.mark.parametrize("kind", ["BIGINT", "DECIMAL(18,0)", "NUMBER(38,0)", "numeric", "VARCHAR", "int8"])
def test_a_match_column_of_an_integer_or_text_type_is_fine(tmp_path, kind):
    load_project(make(tmp_path), env=ENV, columns_of=lambda model: [("user_id", "BIGINT"), ("email", kind),
                                                                      ("first_name", "VARCHAR"), ("plan", "DOUBLE")])


# --- encodings: what editors save -------------------------------------------------------------

def test_a_model_saved_with_a_utf8_bom_keeps_its_header(tmp_path):
    # "UTF-8 with BOM" (Notepad, some VS Code setups; here with Windows line ends too): the BOM is
    # no part of the header or the SQL
    root = make(tmp_path)
    (root / "models" / "active_users.sql").write_bytes(b"\xef\xbb\xbf" + MODEL_SQL.replace("\n", "\r\n").encode())
    (root / "syncs" / "users.yml").write_bytes(b"\xef\xbb\xbf" + SYNC_YML.encode())

    project = load_project(root, env=ENV)

    model = project.models["active_users"]
    assert (model.primary_key, model.model_type) == ("user_id", "user")
    assert model.sql == "select user_id, email, first_name, plan from customers where active"


def test_a_file_that_is_not_utf8_is_reported_at_the_line_of_its_first_bad_byte(tmp_path):
    root = make(tmp_path)
    (root / "models" / "active_users.sql").write_bytes(MODEL_SQL.encode() + b"-- caf\xe9 (latin-1)\n")
    (root / "syncs" / "users.yml").write_bytes(b"# na\xefve\n" + SYNC_YML.encode())

    issues = issues_of(root)

    assert where(issues) == [("models/active_users.sql", 4), ("syncs/users.yml", 1)]
    assert all(i.message.startswith("file is not valid UTF-8") for i in issues)
    assert "0xe9" in issues[0].message and "save it as UTF-8" in issues[0].hint


def test_a_yaml_alias_bomb_is_refused_before_it_is_walked(tmp_path):
    # nested aliases expand to 10^7 values: walking them (lines, ${env:...}) took minutes and
    # gigabytes; a project file holds hundreds of values
    bomb = "a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]\n" for i in range(1, 7))
    issue = only_issue(make(tmp_path, syncs__users_dot_yml=SYNC_YML + bomb))
    assert (issue.file, issue.line) == ("syncs/users.yml", 1)
    assert "aliases" in issue.message and "write the values out" in issue.hint
    # aliases used as intended are fine
    fields = "fields:\n  first_name: &f firstName\n  plan: plan\ntags: &t [daily]\n"
    load_project(make(tmp_path, syncs__users_dot_yml=SYNC_YML.split("fields:")[0] + fields), env=ENV)


def test_a_file_nested_too_deeply_is_a_configuration_error_not_a_crash(tmp_path):
    deep = "x: " + "[" * 2000 + "]" * 2000 + "\n"
    issue = only_issue(make(tmp_path, syncs__users_dot_yml=SYNC_YML + deep))
    assert (issue.file, issue.line) == ("syncs/users.yml", 11)
    assert issue.message == "invalid YAML: nested too deeply" and "fewer levels" in issue.hint


def test_did_you_mean_ignores_case(tmp_path):
    project_yml = PROJECT_YML.replace("type: duckdb", "type: DuckDB")
    issue = only_issue(make(tmp_path, dinsync_dot_yml=project_yml))
    assert issue.message == "unknown warehouse type 'DuckDB'"
    assert issue.hint.startswith("did you mean 'duckdb'? supported types:")


@pytest.mark.parametrize("sync, line, hint", [
    (SYNC_YML.replace("  column: email", "\tcolumn: email"), 6,
     "YAML indents with spaces: replace the tab on this line with spaces"),
    (SYNC_YML + "---\nmodel: other\n", 11, "one YAML document per file: remove the `---` line and what follows it"),
    (SYNC_YML + "tags: !daily [x]\n", 11, "remove the `!tag`: dinsync reads plain YAML"),
])
def test_a_yaml_mistake_gets_a_hint_of_its_own(tmp_path, sync, line, hint):
    issue = only_issue(make(tmp_path, syncs__users_dot_yml=sync))
    assert (issue.file, issue.line) == ("syncs/users.yml", line)
    assert issue.message.startswith("invalid YAML:")
    assert issue.hint == hint


def test_a_value_that_should_be_a_mapping_says_what_to_write_not_a_class_name(tmp_path):
    sync = SYNC_YML.replace("match:\n  column: email\n  field: email\n", "match: email\n").replace(
        "fields:\n  first_name: firstName\n  plan: plan\n", "fields:\n  - first_name\nschedule: 5\nthresholds: [1]\n")
    issues = issues_of(make(tmp_path, syncs__users_dot_yml=sync))
    shown = [(i.line, i.message, i.hint) for i in issues]
    assert shown == [
        (5, "match: expected a mapping of `key: value` lines, got the text 'email'",
         "write e.g. match: {column: email, field: email}"),
        (7, "fields[0]: expected a mapping of `key: value` lines, got the text 'first_name'",
         "write e.g. - {column: first_name, field: firstName} (or, without the dashes, first_name: firstName)"),
        (8, "schedule: expected a cron expression (text) or a mapping with every: or cron: (and timezone:), "
            "got the number 5",
         'write e.g. schedule: "0 6 * * *" (cron, UTC), {every: 15m} or {cron: "0 6 * * 1-5", timezone: Europe/Paris}'),
        (9, "thresholds: expected a mapping of `key: value` lines, got a list",
         "write e.g. thresholds: {max_rejected_pct: 5, max_duplicate_pct: 5}"),
    ], shown
    assert not any("instance of" in i.message for i in issues)


def test_errors_in_fields_written_as_a_mapping_name_the_column_not_a_list_position(tmp_path):
    """`fields: {first_name: firstName, ...}` is read as a list: its errors said `fields[1].typ`,
    a position the user never wrote (the lines were right)."""
    sync = SYNC_YML.replace("fields:\n  first_name: firstName\n  plan: plan\n", (
        "fields:\n"
        "  first_name: firstName\n"
        "  last_name: {field: lastName, typ: string}\n"
        "  plan: {field: plan, type: nope}\n"
        "  ltv:\n"
        "    type: number\n"
        "  email_opt_in: ''\n"))
    shown = [(i.line, i.message) for i in issues_of(make(tmp_path, syncs__users_dot_yml=sync))]
    assert shown == [
        (10, "unknown key fields.last_name.typ"),
        (11, "fields.plan.type: invalid value 'nope'"),
        (12, "missing required key fields.ltv.field"),
        (14, "fields.email_opt_in: String should have at least 1 character"),
    ], shown
    # nested keys written on lines of their own are found on theirs
    sync = SYNC_YML.replace("  plan: plan\n", "  plan:\n    field: plan\n    typ: string\n")
    issue = only_issue(make(tmp_path, syncs__users_dot_yml=sync))
    assert (issue.line, issue.message) == (12, "unknown key fields.plan.typ")


def test_keys_are_read_as_written_not_as_yaml_booleans_or_numbers(tmp_path):
    # YAML 1.1 reads an unquoted `on`, `yes`, `off` as true/false and `1` as a number: as keys they
    # were "[1]: Keys should be strings", and `on` and `1` even "duplicate key" of each other
    sync = SYNC_YML.replace("fields:\n  first_name: firstName\n  plan: plan\n",
                            "fields:\n  on: onTrial\n  1: one\n  first_name: firstName\n") + "yes: 5\n"
    issue = only_issue(make(tmp_path, syncs__users_dot_yml=sync))
    assert (issue.line, issue.message) == (12, "unknown key yes")
    project = load_project(make(tmp_path, syncs__users_dot_yml=sync.replace("yes: 5\n", "")), env=ENV)
    assert [(f.column, f.field) for f in project.syncs["users"].fields] == [
        ("on", "onTrial"), ("1", "one"), ("first_name", "firstName")]


def test_a_key_overriding_a_yaml_merge_is_no_duplicate(tmp_path):
    # `<<: *anchor` then the key to change: YAML's way to share settings, where the key written
    # wins (it was "duplicate key ... YAML keeps only the last value")
    project_yml = PROJECT_YML.replace("  iterable:\n", "  iterable: &iterable\n") + \
        "  iterable_eu:\n    <<: *iterable\n    region: eu\n"
    project = load_project(make(tmp_path, dinsync_dot_yml=project_yml), env=ENV)
    assert project.destinations["iterable_eu"].settings.region == "eu"
    assert project.destinations["iterable"].settings.region == "us"
    twice = project_yml + "    region: us\n"  # written twice by hand: still a duplicate
    issue = only_issue(make(tmp_path, dinsync_dot_yml=twice))
    assert (issue.line, issue.message) == (13, "duplicate key destinations.iterable_eu.region (first defined on line 12)")


def test_a_secret_whose_variable_is_set_but_empty_names_the_variable(tmp_path):
    issue = only_issue(make(tmp_path), env={"ITERABLE_API_KEY": ""})
    assert (issue.line, issue.message) == (8, "destinations.iterable.api_key is empty")
    assert issue.hint == "environment variable ITERABLE_API_KEY is set but empty: export ITERABLE_API_KEY=<the value>"


def test_hidden_files_and_folders_are_not_project_files(tmp_path):
    # an Emacs lock file (a dangling symlink), macOS AppleDouble files, Jupyter's checkpoints: they
    # stopped every command with "invalid model name '.#active_users'", which no rename can fix
    root = make(tmp_path)
    (root / "models" / ".#active_users.sql").symlink_to("user@host.1234:1700000000")
    (root / "syncs" / ".#users.yml").symlink_to("user@host.1234:1700000000")
    (root / "models" / "._active_users.sql").write_bytes(b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X\xff")
    (root / "models" / ".ipynb_checkpoints").mkdir()
    (root / "models" / ".ipynb_checkpoints" / "active_users-checkpoint.sql").write_text(MODEL_SQL)
    project = load_project(root, env=ENV)
    assert sorted(project.models) == ["active_users"] and sorted(project.syncs) == ["users"]


def test_an_infinite_number_is_refused_where_null_means_unlimited(tmp_path):
    # `rate_limits: {bulk_update: .inf}` validated, then every sync failed with "unexpected error:
    # OverflowError: cannot convert float infinity to integer" (exit 1)
    project_yml = PROJECT_YML + "    rate_limits: {bulk_update: .inf}\n    timeout_seconds: .inf\n"
    sync = SYNC_YML + "thresholds: {max_run_minutes: .inf}\n"
    issues = issues_of(make(tmp_path, dinsync_dot_yml=project_yml, syncs__users_dot_yml=sync))
    assert [(i.file, i.line, i.message) for i in issues] == [
        ("dinsync.yml", 10, "destinations.iterable.rate_limits.bulk_update: Input should be a finite number"),
        ("dinsync.yml", 11, "destinations.iterable.timeout_seconds: Input should be a finite number"),
        ("syncs/users.yml", 11, "thresholds.max_run_minutes: Input should be a finite number")]


def test_a_sync_file_whose_extension_is_in_capitals_is_not_silently_ignored(tmp_path):
    # `syncs/leads.YML` (saved on Windows or macOS, case-insensitive there): never read, so the
    # sync never ran and no command said why
    issue = only_issue(make(tmp_path, syncs__leads_dot_YML=SYNC_YML))
    assert (issue.file, issue.line) == ("syncs/leads.YML", None)
    assert issue.message == "syncs/leads.YML is not read: a sync file's name ends in .yml or .yaml"
    assert issue.hint == "rename it to leads.yml"


@pytest.mark.parametrize("warehouse, schema", [
    ("  type: duckdb\n  path: warehouse.duckdb\n", "temp"),  # DuckDB's own: every command failed,
    ("  type: duckdb\n  path: warehouse.duckdb\n", "System"),  # exit 1, "Binder Error: Ambiguous ..."
    ("  type: duckdb\n  path: warehouse.duckdb\n", "information_schema"),
    ("  type: postgres\n  host: 127.0.0.1\n", "pg_dinsync"),  # "the prefix pg_ is reserved"
])
def test_a_state_schema_the_warehouse_keeps_for_itself_is_a_configuration_error(tmp_path, warehouse, schema):
    project_yml = PROJECT_YML.replace("  type: duckdb\n  path: warehouse.duckdb\n", warehouse) + \
        f"state_schema: {schema}\n"
    issue = only_issue(make(tmp_path, dinsync_dot_yml=project_yml))
    assert (issue.file, issue.line) == ("dinsync.yml", 10)
    assert issue.message == f"state_schema: {schema} is a schema the warehouse keeps for itself"
    assert issue.hint == "give dinsync a schema of its own, e.g. state_schema: dinsync"


def test_an_environment_value_that_is_not_utf8_is_a_configuration_error(tmp_path):
    # os.environ holds undecodable bytes as surrogates: it was "unexpected error: UnicodeEncodeError"
    # (exit 1), even for `validate --offline`
    issue = only_issue(make(tmp_path), env={"ITERABLE_API_KEY": "sk-test-\udcff0123456789"})
    assert (issue.file, issue.line) == ("dinsync.yml", 8)
    assert issue.message == ("environment variable ITERABLE_API_KEY is not valid UTF-8 "
                             "(used by destinations.iterable.api_key)")
    assert "0123456789" not in issue.message + issue.hint


@pytest.mark.parametrize("value", [SECRET + "\r", SECRET + "\n", "sk-test\t0123456789"])
def test_a_credential_holding_a_control_character_is_a_configuration_error(tmp_path, value):
    # `export ITERABLE_API_KEY=$(cat key.txt)` of a file saved on Windows keeps its "\r": every
    # request failed ("Forbidden control character detected in headers"), run after run
    issue = only_issue(make(tmp_path), env={"ITERABLE_API_KEY": value})
    assert (issue.file, issue.line) == ("dinsync.yml", 8)
    assert issue.message == "destinations.iterable.api_key holds a control character (a line end or a tab)"
    assert issue.hint.startswith("export ITERABLE_API_KEY without it")
    assert SECRET not in issue.message + issue.hint


def test_a_duckdb_path_that_is_not_utf8_is_a_configuration_error(tmp_path):
    # a folder named in Latin-1 (os.fsdecode gives surrogates): DuckDB failed with
    # "unexpected error: RuntimeError: std::bad_cast" (exit 1)
    root = tmp_path / "caf\udce9"
    root.mkdir()
    issue = only_issue(make(root))
    assert (issue.file, issue.line) == ("dinsync.yml", 4)
    assert issue.message == "warehouse.path: the file's path is not valid UTF-8, which DuckDB cannot open"


@pytest.mark.parametrize("move, expected", [
    (("syncs", "Syncs"), "no folder syncs/, but Syncs/: rename it to syncs"),  # made on macOS, say
    (("syncs", "sync"), "no folder syncs/, but sync/: rename it to syncs"),
    (("models", "model"), "no folder models/, but model/: rename it to models"),
])
def test_a_misnamed_project_folder_is_named_instead_of_validating_an_empty_project(tmp_path, move, expected):
    # `validate` said "OK: 0 sync(s)" (and `sync` "nothing to do") for a project whose syncs live in Syncs/
    root = make(tmp_path)
    (root / move[0]).rename(root / move[1])
    issues = issues_of(root)
    assert [i.message for i in issues if i.file == move[1]] == [expected], [i.format() for i in issues]


def test_a_project_folder_that_is_a_file_is_named(tmp_path):
    root = make(tmp_path)
    for path in (root / "syncs").iterdir():
        path.unlink()
    (root / "syncs").rmdir()
    (root / "syncs").write_text(SYNC_YML)
    issue = only_issue(root)
    assert (issue.file, issue.message) == ("syncs", "syncs is a file, not a folder")
    assert issue.hint == "make syncs/ a folder of .yml files, one per sync (the file name is the sync name)"


def test_a_value_not_matching_its_pattern_says_what_is_allowed_not_the_regex(tmp_path):
    issues = issues_of(make(tmp_path, syncs__users_dot_yml=SYNC_YML + 'tags: ["a b", "tag:x"]\n'))
    assert [(i.line, i.message) for i in issues] == [
        (11, "tags[0]: 'a b' is not allowed: no spaces, commas or colons"),
        (11, "tags[1]: 'tag:x' is not allowed: no spaces, commas or colons")]


def test_a_model_the_warehouse_refuses_to_read_names_the_grant_not_the_sql(tmp_path):
    """A revoked grant (permission denied on the model's table) is a configuration error whose
    hint is the adapter's (grant the privileges), not "run the model's SQL to debug it": the SQL
    is fine, the user debugged it for nothing."""
    from dinsync.config.columns import column_issues
    from dinsync.config.models import Model
    from dinsync.warehouses import WarehousePermissionError

    model = Model(name="people", path=tmp_path / "models" / "people.sql", sql="select * from crm.people",
                  primary_key="id")

    def refused(_model):
        raise WarehousePermissionError("PostgreSQL: permission denied for table people",
                                       "grant the dinsync user the privileges it needs")

    [issue] = column_issues({"people": model}, lambda p: "models/people.sql", [], refused)
    assert "permission denied for table people" in issue.message
    assert issue.hint == "grant the dinsync user the privileges it needs"


@pytest.mark.parametrize("kind", ["delete from customers where id = 2", "update customers set plan = 'x'",
                                  "insert into customers values (9, 'e', 'f', 'p', true)"])
def test_a_model_hiding_a_write_in_a_cte_is_refused_before_the_warehouse_runs_it(tmp_path, kind):
    """DuckDB runs a data-modifying CTE (`with d as (delete ... returning *) select ...`) as soon as
    the query is bound: `validate` reading the model's columns deleted the user's rows (3 -> 2),
    without --force, before the plan refused the model as "a single SELECT query, found SELECT"."""
    import duckdb

    from dinsync.operations import load, working_dir

    con = duckdb.connect(str(tmp_path / "warehouse.duckdb"))
    con.execute("create table customers as select i as user_id, 'u' || i || '@x.com' as email, 'n' as first_name, "
                "'p' as plan, true as active from range(3) t(i)")
    con.close()
    sql = f"-- primary_key: user_id\n-- model_type: user\nwith d as ({kind} returning *)\nselect * from customers\n"
    make(tmp_path, models__active_users_dot_sql=sql)
    issue = only_issue(tmp_path)
    assert (issue.file, issue.line) == ("models/active_users.sql", 3)
    write = kind.split()[0].upper()
    article = "a" if write == "DELETE" else "an"
    assert issue.message == f"a model is a SELECT query, not one holding {article} {write} statement"
    with pytest.raises(ConfigError), working_dir(tmp_path):  # what validate, plan and sync do first
        load(root=tmp_path)
    con = duckdb.connect(str(tmp_path / "warehouse.duckdb"))
    assert con.execute("select count(*), count(*) filter (where plan = 'p') from customers").fetchall() == [(3, 3)]


def test_a_model_sqlglot_cannot_tokenize_is_left_to_the_warehouse_even_with_a_write_word(tmp_path):
    """(The check for writes above must not fail on SQL it cannot read: the warehouse says what is wrong.)"""
    make(tmp_path, models__active_users_dot_sql="-- primary_key: user_id\nselect 'last update as user_id\n")
    assert load_project(tmp_path, env=ENV).models["active_users"].sql == "select 'last update as user_id"


def test_yaml_error_names_the_line_where_the_unclosed_construct_began(tmp_path):
    """A `{` or `[` left open, or a quote, is found by the parser lines later (at the next item, or
    past the file's end): the issue named only that line, which holds nothing wrong, so a user
    looked for the mistake where there was none. The message names the line it began on."""
    yml = PROJECT_YML.replace("region: us", "region: [us")
    issue = only_issue(make(tmp_path, dinsync_dot_yml=yml))
    assert issue.line == 10
    assert issue.message == ("invalid YAML: while parsing a flow sequence begun on line 9, "
                             "expected ',' or ']', but got '<stream end>'")
    sync = SYNC_YML.replace("first_name: firstName", "first_name: \"firstName")
    issue = only_issue(make(tmp_path / "b", syncs__users_dot_yml=sync))
    assert "begun on line 9," in issue.message
