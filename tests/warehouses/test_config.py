"""`warehouse:` blocks of type postgres and redshift in dinsync.yml."""
from __future__ import annotations

import pytest

from dinsync.config import load_project
from dinsync.errors import ConfigError

MODEL = "-- primary_key: id\nselect id, email from customers\n"
SYNC = ("model: m\ndestination: iterable\nservice: users\nmode: upsert\nmatch: {column: email, field: email}\n"
        "fields: {id: externalId}\n")
DEST = "destinations:\n  iterable:\n    type: iterable\n    api_key: ${env:ITERABLE_API_KEY}\n"


def project(tmp_path, warehouse: str):
    (tmp_path / "models").mkdir()
    (tmp_path / "syncs").mkdir()
    (tmp_path / "models" / "m.sql").write_text(MODEL)
    (tmp_path / "syncs" / "s.yml").write_text(SYNC)
    (tmp_path / "dinsync.yml").write_text("version: 1\nwarehouse:\n" + warehouse + DEST)
    return tmp_path


ENV = {"ITERABLE_API_KEY": "itbl-key-123456", "PG_PASSWORD": "pw-from-env-987", "PG_DSN": "postgresql://u:pw-in-dsn-555@h/db"}


@pytest.mark.parametrize("kind", ["postgres", "redshift"])
def test_parts_and_secret_password_from_the_environment(tmp_path, kind):
    p = load_project(project(tmp_path, f"  type: {kind}\n  host: db.internal\n  port: 6543\n  user: dinsync\n"
                                       "  password: ${env:PG_PASSWORD}\n  database: analytics\n  sslmode: require\n"
                                       "  search_path: marts\n"), env=ENV)
    w = p.warehouse
    assert (w.type, w.host, w.port, w.user, w.database, w.sslmode, w.search_path) == (
        kind, "db.internal", 6543, "dinsync", "analytics", "require", ["marts"])
    assert w.password.get_secret_value() == "pw-from-env-987" and "pw-from-env" not in repr(w)


def test_dsn_from_the_environment(tmp_path):
    p = load_project(project(tmp_path, "  type: postgres\n  dsn: ${env:PG_DSN}\n  settings: {work_mem: 64MB}\n"),
                     env=ENV)
    assert p.warehouse.dsn.get_secret_value() == ENV["PG_DSN"] and p.warehouse.settings == {"work_mem": "64MB"}


def test_a_time_zone_setting_may_name_a_region(tmp_path):
    """`settings: {timezone: America/St_Johns}`: IANA zone names hold a slash, which the value
    pattern refused (only an offset or an abbreviation could be set)."""
    p = load_project(project(tmp_path, "  type: postgres\n  dsn: ${env:PG_DSN}\n"
                                       "  settings: {timezone: America/Argentina/Buenos_Aires}\n"), env=ENV)
    assert p.warehouse.settings == {"timezone": "America/Argentina/Buenos_Aires"}


def test_settings_may_be_named_as_postgresql_spells_them(tmp_path):
    """`settings: {TimeZone: UTC}`: PostgreSQL's documentation and `SHOW` spell some settings with
    capitals (TimeZone, DateStyle, IntervalStyle) and read every name case-insensitively; the name
    pattern refused them (a configuration error, exit 3). Names are kept lower-cased, as the server
    reads them."""
    p = load_project(project(tmp_path, "  type: postgres\n  dsn: ${env:PG_DSN}\n"
                                       "  settings: {TimeZone: Europe/Paris, DateStyle: DMY, Work_Mem: 64MB}\n"),
                     env=ENV)
    assert p.warehouse.settings == {"timezone": "Europe/Paris", "datestyle": "DMY", "work_mem": "64MB"}


@pytest.mark.parametrize("block,key", [
    ("  type: postgres\n  host: h\n  password: hunter2-literal\n", "password"),
    ("  type: redshift\n  dsn: postgresql://u:hunter2-literal@h/db\n", "dsn"),
    ("  type: postgres\n  dsn: host=h password=hunter2-literal dbname=d\n", "dsn"),
    # libpq takes a URI's parameters in its query too: the password as well
    ("  type: postgres\n  dsn: postgresql://u@h/db?password=hunter2-literal\n", "dsn"),
    ("  type: postgres\n  dsn: 'postgresql://u@h/db?sslmode=disable&PassWord=hunter2-literal'\n", "dsn"),
])
def test_a_password_written_in_the_file_is_refused(tmp_path, block, key):
    with pytest.raises(ConfigError) as info:
        load_project(project(tmp_path, block), env=ENV)
    [issue] = [i for i in info.value.issues if i.file == "dinsync.yml"]
    assert f"warehouse.{key} holds a password" in issue.message and "${env:NAME}" in issue.hint
    assert "hunter2-literal" not in str(info.value)


def test_a_dsn_without_password_may_be_written(tmp_path):
    p = load_project(project(tmp_path, "  type: postgres\n  dsn: host=127.0.0.1 dbname=test\n"), env=ENV)
    assert p.warehouse.dsn.get_secret_value() == "host=127.0.0.1 dbname=test"


@pytest.mark.parametrize("block,needle", [
    ("  type: postgres\n", "set `dsn`"),
    ("  type: postgres\n  host: h\n  port: 70000\n", "warehouse.port"),
    ("  type: postgres\n  host: h\n  sslmode: maybe\n", "warehouse.sslmode"),
    ("  type: redshift\n  host: h\n  settings: {work_mem: 64MB}\n", "unknown key warehouse.settings"),
    ("  type: postgres\n  host: h\n  settings: {\"work_mem; drop\": 1}\n", "warehouse.settings"),
])
def test_invalid_blocks_are_located(tmp_path, block, needle):
    with pytest.raises(ConfigError) as info:
        load_project(project(tmp_path, block), env=ENV)
    assert any(needle in i.message and i.line for i in info.value.issues), info.value.issues


@pytest.mark.parametrize("block, key", [
    ("  type: postgres\n  dsn: ${env:PG_DSN}\n", "dsn"),
    ("  type: postgres\n  host: ${env:PG_HOST}\n  user: u\n  password: ${env:PG_PASSWORD}\n", "host"),
    ("  type: redshift\n  dsn: ${env:PG_DSN}\n", "dsn"),
])
def test_a_warehouse_setting_from_a_variable_set_but_empty_is_refused(tmp_path, block, key):
    """A CI passes a secret it does not have as an empty variable: `dsn: ${env:PG_DSN}` with PG_DSN=''
    made libpq connect to its defaults (here, a database named after the OS user), where `status`
    said `never run` and created a state schema, and a sync would have sent every row again."""
    env = {**ENV, "PG_DSN": "", "PG_HOST": "", "PG_PASSWORD": ""}
    with pytest.raises(ConfigError) as info:
        load_project(project(tmp_path, block), env=env)
    issue, = info.value.issues  # (not the empty password: see below)
    assert (issue.file, issue.message) == ("dinsync.yml", f"warehouse.{key} is empty")
    variable = "PG_DSN" if key == "dsn" else "PG_HOST"
    assert issue.hint == f"environment variable {variable} is set but empty: export {variable}=<the value>"


def test_an_empty_password_from_a_variable_is_kept(tmp_path):
    """An empty password reaches the same database or none: a CI's service container that trusts
    the host is often given `password: ${env:PGPASSWORD}` with PGPASSWORD=''."""
    block = "  type: postgres\n  host: 127.0.0.1\n  user: postgres\n  password: ${env:PG_PASSWORD}\n"
    loaded = load_project(project(tmp_path, block), env={**ENV, "PG_PASSWORD": ""})
    assert loaded.warehouse.host == "127.0.0.1"
