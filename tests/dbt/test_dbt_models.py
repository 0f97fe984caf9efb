"""Models that read dbt models: `{{ ref('name') }}` resolved through a real manifest built by
dbt-duckdb, the errors when it cannot be, and dbt-style selection."""
from __future__ import annotations

import json
import shutil

import pytest

from dinsync.config import load_project
from dinsync.config.dbt import find_refs, resolve_model
from dinsync.errors import ConfigError, ExitCode

from tests.dbt.conftest import MODEL, SYNC


def issues_of(project) -> list:
    with pytest.raises(ConfigError) as exc:
        load_project(project.dir)
    return exc.value.issues


def test_find_refs_reads_the_forms_dbt_users_write():
    text = "select *\nfrom {{ ref('a') }} join {{ref(\"pkg\", \"b\")}} using (id)\njoin {{ ref('c', v=2) }} using (id)"
    refs, other = find_refs(text)
    assert [(r.package, r.name, r.version, r.line) for r in refs] == [(None, "a", None, 2), ("pkg", "b", None, 2),
                                                                       (None, "c", "2", 3)]
    assert other == []
    assert find_refs("select '{{ var(\"x\") }}' {% if x %}")[1] == [('{{ var("x") }}', 1), ("{% if x %}", 1)]


def test_a_node_fail_fast_skipped_is_not_said_to_follow_a_failure_upstream(tmp_path):
    """`dbt build --fail-fast` skips every node not yet run at the first failure, upstream of it
    or not (run_results.json of dbt-core 1.11.16, trimmed): the reason given was "a node upstream
    of it failed"."""
    from dinsync.config.dbt_runs import read_run_results

    (tmp_path / "run_results.json").write_text(json.dumps({
        "metadata": {"dbt_version": "1.11.16", "generated_at": "2026-12-04T05:11:21.000000Z"},
        "args": {"which": "build", "fail_fast": True},
        "results": [
            {"unique_id": "model.analytics.broken_model", "status": "error", "message": "Binder Error: ..."},
            {"unique_id": "model.analytics.dim_customers", "status": "skipped",
             "message": "Skipping due to fail_fast"},
            {"unique_id": "model.analytics.fct_ltv.v1", "status": "skipped", "message": None}]}))
    results = read_run_results(tmp_path)
    assert results.describe("model.analytics.dim_customers", "dbt model dim_customers") == (
        "dbt's last build (run_results.json, 2026-12-04T05:11:21.000000Z) skipped dbt model dim_customers "
        "(--fail-fast stopped the run at its first failure)")
    assert results.describe("model.analytics.fct_ltv.v1", "dbt model fct_ltv.v1").endswith(
        "skipped dbt model fct_ltv.v1 (a node upstream of it failed)")


def test_ref_resolves_to_the_relation_dbt_built_with_its_tags(dbt_project):
    project = load_project(dbt_project.dir)
    model = project.models["active"]
    assert model.sql == 'select * from "warehouse"."analytics"."active_customers"'
    assert model.dbt_models == ("active_customers",) and model.tags == ("daily",)
    assert project.dbt.project_dir == "../analytics"
    result = dbt_project.cli("validate")
    assert result.exit_code == 0, result.output  # the columns were read from the relation in the warehouse


def test_primary_key_comes_from_the_dbt_model_tests_when_the_header_has_none(dbt_project):
    dbt_project.write(models={"active": "-- model_type: user\nselect * from {{ ref('active_customers') }}\n",
                              "churned": "-- model_type: user\nselect * from {{ ref('churned_customers') }}\n"},
                      syncs={})
    issues = issues_of(dbt_project)
    # active_customers has unique + not_null tests on customer_id (dbt's primary_key); churned has none
    assert [(i.file, i.message) for i in issues] == [("models/churned.sql", "missing primary key header")]
    assert "unique" in issues[0].hint
    dbt_project.write(models={"active": "-- model_type: user\nselect * from {{ ref('active_customers') }}\n"})
    assert load_project(dbt_project.dir).models["active"].primary_key == "customer_id"
    # the model renames dbt's key column: the error says where the key came from
    dbt_project.write(models={"active": "-- model_type: user\nselect customer_id as id, email, first_name, plan "
                                        "from {{ ref('active_customers') }}\n"})
    result = dbt_project.cli("validate", "--offline")
    assert result.exit_code == ExitCode.CONFIG_ERROR
    issue, = json.loads(result.stdout)["issues"]
    assert issue["message"] == ("primary key 'customer_id', taken from dbt model active_customers (the file has no "
                                "primary_key header), is not a column of model active")
    assert issue["hint"] == "start the file with `-- primary_key: <column>`; columns: id, email, first_name, plan"


def test_missing_manifest_says_to_run_dbt_parse_or_build(dbt_project):
    (dbt_project.dbt_dir / "target").rename(dbt_project.dbt_dir / "built_target")
    dbt_project.write(models={"active": MODEL, "again": MODEL},
                      syncs={"iterable_active": SYNC.format(model="active", extra="")})
    issues = issues_of(dbt_project)
    assert len(issues) == 1  # said once, not once per model
    issue = issues[0]
    assert (issue.file, issue.line) == ("models/active.sql", 3)
    assert issue.message == "the dbt manifest ../analytics/target/manifest.json does not exist"
    assert "run `dbt parse` or `dbt build` in ../analytics first" in issue.hint
    result = dbt_project.cli("sync")
    assert result.exit_code == ExitCode.CONFIG_ERROR and "does not exist" in result.stdout
    data, code = dbt_project.json("sync", "--select", "tag:hourly")  # the tags are not known without it
    assert [i["message"] for i in data["issues"]] == [
        "--select tag:hourly matches no sync", "the dbt manifest ../analytics/target/manifest.json does not exist"]
    # the run log stays readable without the manifest
    assert dbt_project.cli("status").exit_code == 0
    # a model taking dbt's primary key (no header) is not also missing one: its key is not known yet
    keyless = "-- model_type: user\nselect * from {{ ref('active_customers') }}\n"
    dbt_project.write(models={"active": keyless, "again": keyless}, syncs={})
    issue, = issues_of(dbt_project)
    assert issue.message == "the dbt manifest ../analytics/target/manifest.json does not exist"
    result = dbt_project.cli("check")
    assert result.exit_code == ExitCode.CONFIG_ERROR and "missing primary key header" not in result.stdout
    # stale or not built: the same (the key is dbt's, once dbt has built the model)
    model = dbt_project.dbt_dir / "models" / "active_customers.sql"
    model.write_text(model.read_text() + "-- changed\n")
    shutil.copytree(dbt_project.dbt_dir / "built_target", dbt_project.dbt_dir / "target")
    issues = issues_of(dbt_project)
    assert [i.file for i in issues] == ["models/active.sql", "models/again.sql"]
    assert all(" is stale: models/active_customers.sql " in i.message for i in issues), issues


def test_a_changed_model_file_makes_the_manifest_stale_upstream_too(dbt_project):
    staging = dbt_project.dbt_dir / "models" / "stg_customers.sql"
    staging.write_text(staging.read_text() + "\n-- a new comment\n")
    issue, = issues_of(dbt_project)
    assert (issue.file, issue.line) == ("models/active.sql", 3)
    assert issue.message.startswith("ref('active_customers'): the dbt manifest (generated ")
    assert "is stale: models/stg_customers.sql (dbt model stg_customers) changed since" in issue.message
    assert "dbt build" in issue.hint
    staging.write_text(staging.read_text().replace("\n-- a new comment\n", ""))
    assert load_project(dbt_project.dir).models["active"].tags == ("daily",)  # same content: fresh again


def test_a_changed_file_of_an_installed_package_makes_the_manifest_stale(dbt_project):
    """A package's models (a local package kept in the repository, or one `dbt deps` upgraded)
    are read where `dbt deps` installed them: before, only the root project's files were checked."""
    from tests.dbt.conftest import run_dbt

    package = dbt_project.dbt_dir / "packages" / "crm"
    (package / "models").mkdir(parents=True)
    (package / "dbt_project.yml").write_text('name: crm\nversion: "1.0.0"\nconfig-version: 2\n'
                                             "models:\n  crm:\n    +materialized: table\n")
    model = package / "models" / "crm_contacts.sql"
    model.write_text("select customer_id, email, first_name, plan from {{ ref('analytics', 'active_customers') }}\n")
    (dbt_project.dbt_dir / "packages.yml").write_text("packages:\n  - local: packages/crm\n")
    run_dbt("deps", dbt_project.dbt_dir)
    run_dbt("build", dbt_project.dbt_dir)
    dbt_project.write(models={"active": MODEL.replace("ref('active_customers')", "ref('crm', 'crm_contacts')")})
    assert load_project(dbt_project.dir).models["active"].dbt_models == ("crm_contacts",)
    model.write_text(model.read_text().replace("first_name, plan", "first_name, 'pro' as plan"))
    issue, = issues_of(dbt_project)
    assert (issue.file, issue.line) == ("models/active.sql", 3)
    assert ("is stale: dbt_packages/crm/models/crm_contacts.sql (dbt model crm_contacts) changed since"
            in issue.message)
    run_dbt("build", dbt_project.dbt_dir)
    assert load_project(dbt_project.dir).models["active"].dbt_models == ("crm_contacts",)


def test_a_model_file_with_crlf_line_ends_is_fresh_after_dbt_parse(dbt_project):
    """dbt hashes a file's bytes (stripped): a Windows checkout's CRLF files are not stale."""
    from tests.dbt.conftest import run_dbt

    staging = dbt_project.dbt_dir / "models" / "stg_customers.sql"
    staging.write_bytes(staging.read_bytes().replace(b"\n", b"\r\n"))
    run_dbt("parse", dbt_project.dbt_dir)
    assert load_project(dbt_project.dir).models["active"].dbt_models == ("active_customers",)
    staging.write_bytes(staging.read_bytes().replace(b"\r\n", b"\n"))  # the same lines, LF: another file
    issue, = issues_of(dbt_project)
    assert "is stale: models/stg_customers.sql (dbt model stg_customers) changed since" in issue.message


def test_a_model_dbt_failed_to_build_is_refused_not_read_as_built(dbt_project):
    """`dbt build` rewrites the manifest even for a model it failed to build, whose relation keeps
    an earlier build's rows: target/run_results.json tells, and dinsync refuses to read it."""
    from tests.dbt.conftest import run_dbt

    churned = "-- primary_key: customer_id\n-- model_type: user\nselect * from {{ ref('churned_customers') }}\n"
    dbt_project.write(models={"active": MODEL, "churned": churned}, syncs={
        "iterable_active": SYNC.format(model="active", extra=""),
        "iterable_churned": SYNC.format(model="churned", extra="")})
    model = dbt_project.dbt_dir / "models" / "churned_customers.sql"
    good = model.read_text()
    model.write_text(good.replace("first_name from", "first_name, no_such_column from"))
    run_dbt("build", dbt_project.dbt_dir, succeed=False)
    issue, = issues_of(dbt_project)  # active_customers was built: only the failed model is refused
    assert (issue.file, issue.line) == ("models/churned.sql", 3)
    assert issue.message.startswith("ref('churned_customers'): dbt's last build (run_results.json, ")
    assert ") failed for dbt model churned_customers: " in issue.message and "no_such_column" in issue.message
    assert "run `dbt build` again" in issue.hint
    result = dbt_project.cli("sync", "iterable_churned")
    assert result.exit_code == ExitCode.CONFIG_ERROR and len(dbt_project.sandbox.users) == 0
    assert "no_such_column" in result.output
    # selected through the dbt model it reads (known from the manifest although it failed): refused too
    result = dbt_project.cli("sync", "--select", "model:churned_customers")
    assert result.exit_code == ExitCode.CONFIG_ERROR and "no_such_column" in result.output
    # a selection that matches nothing is what to fix: not the models of syncs it did not select
    data, code = dbt_project.json("sync", "--select", "tag:hourly")
    assert code == ExitCode.CONFIG_ERROR
    assert [i["message"] for i in data["issues"]] == ["--select tag:hourly matches no sync"]
    # a sync whose model dbt built is not stopped by a model only another sync reads
    result = dbt_project.cli("sync", "iterable_active")
    assert result.exit_code == ExitCode.OK, result.output
    assert len(dbt_project.sandbox.users) > 0
    assert dbt_project.cli("validate", "--offline").exit_code == ExitCode.CONFIG_ERROR  # validate: every model
    run_dbt("parse", dbt_project.dbt_dir)  # the manifest alone does not make the relation built
    assert issues_of(dbt_project)[0].message == issue.message
    # a failed node upstream: dbt skips the models reading it
    model.write_text(good)
    staging = dbt_project.dbt_dir / "models" / "stg_customers.sql"
    staging.write_text(staging.read_text().replace("from", ", no_such_column from", 1))
    run_dbt("build", dbt_project.dbt_dir, succeed=False)
    messages = sorted(i.message for i in issues_of(dbt_project))
    assert len(messages) == 2 and all("failed for dbt model stg_customers, upstream of " in m for m in messages)
    staging.write_text(staging.read_text().replace(", no_such_column from", "from"))
    run_dbt("build", dbt_project.dbt_dir)
    assert load_project(dbt_project.dir).models["churned"].dbt_models == ("churned_customers",)


def test_a_model_whose_dbt_test_failed_is_refused_like_dbt_build_skips_what_reads_it(dbt_project):
    """`dbt build` builds a model, then runs its tests; a failed test (severity error) makes dbt skip
    every model reading it. dinsync reads it too, so it refuses it: before, the model was read as
    built and its rows sent although its `unique` test had failed."""
    from tests.dbt.conftest import run_dbt

    churned = "-- primary_key: customer_id\n-- model_type: user\nselect * from {{ ref('churned_customers') }}\n"
    dbt_project.write(models={"active": MODEL, "churned": churned}, syncs={
        "iterable_active": SYNC.format(model="active", extra=""),
        "iterable_churned": SYNC.format(model="churned", extra="").replace(", plan: plan", "")})
    seed = dbt_project.dbt_dir / "seeds" / "raw_customers.csv"
    good = seed.read_text()
    seed.write_text(good + "1,ada.again@example.com,Ada,pro,false\n")  # customer_id 1 twice: unique fails
    run_dbt("build", dbt_project.dbt_dir, succeed=False)
    issue, = issues_of(dbt_project)  # churned_customers has no test: it is read
    assert (issue.file, issue.line) == ("models/active.sql", 3)
    assert issue.message.startswith("ref('active_customers'): dbt's last build (run_results.json, ")
    assert ") failed for dbt test unique_active_customers_customer_id of active_customers: Got 1 result" in issue.message
    assert "severity: warn" in issue.hint
    result = dbt_project.cli("sync", "iterable_active")
    assert result.exit_code == ExitCode.CONFIG_ERROR and len(dbt_project.sandbox.users) == 0
    assert "unique_active_customers_customer_id" in result.output
    assert dbt_project.cli("sync", "iterable_churned").exit_code == ExitCode.OK
    # a test that warns does not block, in dbt build as here
    schema = dbt_project.dbt_dir / "models" / "schema.yml"
    schema.write_text(schema.read_text().replace("data_tests: [unique, not_null]",
                                                 "data_tests: [{unique: {config: {severity: warn}}}, not_null]"))
    run_dbt("build", dbt_project.dbt_dir)
    assert load_project(dbt_project.dir).models["active"].dbt_models == ("active_customers",)


def test_a_model_dbt_built_with_empty_is_refused_not_read_as_a_segment_that_emptied(dbt_project):
    """`dbt build --empty` (a dry run of the SQL, e.g. in CI) replaces a table or view with one
    without rows: read as built, every delivered row would leave the snapshot (and be sent again
    after the next real build). A table it did not select, or a view over a model it did not
    build, keeps its rows."""
    from tests.dbt.conftest import run_dbt

    churned = "-- primary_key: customer_id\n-- model_type: user\nselect * from {{ ref('churned_customers') }}\n"
    dbt_project.write(models={"active": MODEL, "churned": churned}, syncs={
        "iterable_active": SYNC.format(model="active", extra="")})
    assert dbt_project.cli("sync", "iterable_active").exit_code == ExitCode.OK
    run_dbt("build --empty --select active_customers", dbt_project.dbt_dir)
    assert dbt_project.sql("select count(*) from analytics.active_customers") == [(0,)]
    issue, = issues_of(dbt_project)
    assert (issue.file, issue.line) == ("models/active.sql", 3)
    assert issue.message.startswith("ref('active_customers'): dbt's last build (run_results.json, ")
    assert issue.message.endswith(") built dbt model active_customers with --empty (a dry run: no rows, or an "
                                  "incremental model's earlier ones)")
    assert "without --empty" in issue.hint
    data, code = dbt_project.json("sync", "iterable_active")
    assert code == ExitCode.CONFIG_ERROR, data
    assert dbt_project.sql("select count(*) from dinsync.snap_iterable_active") == [(8,)]  # nothing left it
    run_dbt("build --empty --select stg_customers", dbt_project.dbt_dir)  # a view, without rows now
    staging = "-- primary_key: customer_id\n-- model_type: user\nselect * from {{ ref('stg_customers') }}\n"
    dbt_project.write(models={"staging": staging, "churned": churned}, syncs={})
    issue, = issues_of(dbt_project)  # churned_customers, a table dbt did not build again, kept its rows
    assert issue.file == "models/staging.sql" and " built dbt model stg_customers with --empty " in issue.message


def test_unknown_disabled_and_ephemeral_models_are_located_errors(dbt_project):
    dbt_project.write(models={"m": """\
        -- primary_key: customer_id
        select *
        from {{ ref('activ_customers') }}
        join {{ ref('legacy_customers') }} using (customer_id)
        join {{ ref('customer_emails') }} using (customer_id)
        where x = '{{ var("x") }}'
        """}, syncs={})
    issues = issues_of(dbt_project)
    found = {i.line: (i.message, i.hint) for i in issues}
    assert found[6][0] == "unsupported Jinja {{ var(\"x\") }}"  # other Jinja is not evaluated
    dbt_project.write(models={"m": """\
        -- primary_key: customer_id
        select *
        from {{ ref('activ_customers') }}
        join {{ ref('legacy_customers') }} using (customer_id)
        join {{ ref('customer_emails') }} using (customer_id)
        """}, syncs={})
    found = {i.line: (i.message, i.hint) for i in issues_of(dbt_project)}
    assert found[3][0].startswith("ref('activ_customers'): no dbt model 'activ_customers' in the manifest")
    assert "did you mean 'active_customers'?" in found[3][1] and "dbt parse" in found[3][1]
    assert found[4][0] == "ref('legacy_customers'): the dbt model legacy_customers is disabled (enabled: false)"
    assert found[5][0] == ("ref('customer_emails'): the dbt model customer_emails is ephemeral, so dbt builds no "
                           "relation for it")


def test_a_ref_whose_package_or_version_does_not_match_says_so(dbt_project):
    dbt_project.write(models={"m": """\
        -- primary_key: customer_id
        select *
        from {{ ref('active_customers', v=2) }}
        join {{ ref('shared', 'active_customers') }} using (customer_id)
        join {{ ref('shared', 'legacy_customers') }} using (customer_id)
        """}, syncs={})
    found = {i.line: (i.message, i.hint) for i in issues_of(dbt_project)}
    assert found[3] == ("ref('active_customers', v=2): the dbt model active_customers has no version 2",
                        "versions: none (an unversioned model); if you just added it, run `dbt parse` or `dbt build`")
    assert found[4] == ("ref('shared', 'active_customers'): no dbt model 'active_customers' in package 'shared'",
                        "it is in analytics: ref('analytics', 'active_customers'), or ref('active_customers')")
    # legacy_customers is disabled in the analytics package, not in 'shared'
    assert found[5][0].startswith("ref('shared', 'legacy_customers'): no dbt model 'legacy_customers' in the manifest")


def test_a_relation_dbt_has_not_built_says_to_run_dbt_build(dbt_project):
    dbt_project.sql("drop table analytics.active_customers")  # as after `dbt parse` alone
    result = dbt_project.cli("validate")
    assert result.exit_code == ExitCode.CONFIG_ERROR
    issue, = json.loads(result.stdout)["issues"]
    assert issue["file"] == "models/active.sql" and "active_customers" in issue["message"]
    assert issue["hint"].startswith("run `dbt build` (dbt models active_customers)")


def test_where_the_dbt_project_is(dbt_project, monkeypatch):
    dbt_project.write(dbt_section="dbt: {project_dir: ../nowhere}\n")
    issue, = issues_of(dbt_project)
    assert (issue.file, issue.line) == ("dinsync.yml", 5)
    assert issue.message.startswith("dbt.project_dir ../nowhere holds no dbt_project.yml")
    dbt_project.write(dbt_section="")  # no dbt section, no dbt_project.yml here or in the parent
    issue, = issues_of(dbt_project)
    assert issue.file == "models/active.sql" and "project_dir" in issue.hint
    # default: the dinsync project lives inside the dbt project
    inner = dbt_project.dbt_dir / "activation"
    shutil.copytree(dbt_project.dir, inner)
    (inner / "dinsync.yml").write_text((inner / "dinsync.yml").read_text().replace("../analytics/", ""))
    assert load_project(inner).models["active"].tags == ("daily",)
    # the target path: DBT_TARGET_PATH, like dbt itself
    (dbt_project.dbt_dir / "target").rename(dbt_project.dbt_dir / "build_output")
    monkeypatch.setenv("DBT_TARGET_PATH", "build_output")
    assert load_project(inner).models["active"].dbt_models == ("active_customers",)
    dbt_project.write(dbt_section="dbt: {project_dir: ../analytics, target_path: build_output}\n")
    monkeypatch.delenv("DBT_TARGET_PATH")
    assert load_project(dbt_project.dir).models["active"].dbt_models == ("active_customers",)


def test_the_warehouse_must_be_the_one_dbt_builds_into(dbt_project, monkeypatch):
    text = (dbt_project.dir / "dinsync.yml").read_text().replace(
        "type: duckdb\n  path: ../analytics/warehouse.duckdb", "type: postgres\n  host: 127.0.0.1")
    (dbt_project.dir / "dinsync.yml").write_text(text)
    issue, = issues_of(dbt_project)
    assert issue.file == "dinsync.yml" and issue.line == 2
    assert issue.message == "the dbt project builds into duckdb (manifest adapter_type) but the warehouse is postgres"


def test_sync_tags_and_dbt_tags_select_syncs(dbt_project):
    churned = "-- primary_key: customer_id\n-- model_type: user\nselect * from {{ ref('churned_customers') }}\n"
    plain = "-- primary_key: customer_id\n-- model_type: user\nselect 1 as customer_id, 'x@y.co' as email, " \
            "'X' as first_name, 'free' as plan\n"
    dbt_project.write(models={"active": MODEL, "churned": churned, "plain": plain}, syncs={
        "iterable_active": SYNC.format(model="active", extra=""),
        "iterable_churned": SYNC.format(model="churned", extra="tags: [crm]\n"),
        "iterable_plain": SYNC.format(model="plain", extra="tags: crm\n"),
        "iterable_off": SYNC.format(model="active", extra="enabled: false\n")})

    def selected(*args):
        data, code = dbt_project.json("status", *args)
        assert code == 0, data
        return data

    from dinsync.operations import select, working_dir

    with working_dir(dbt_project.dir):
        project = load_project(dbt_project.dir)
        names = lambda *s, x=(): select(project, None, list(s), list(x)).names  # noqa: E731
        assert names("tag:daily") == ["iterable_active"]  # iterable_off (disabled) is not taken by a tag
        assert names("tag:crm") == ["iterable_churned", "iterable_plain"]
        assert names("tag:crm,tag:daily") == ["iterable_active", "iterable_churned", "iterable_plain"]
        assert names("model:active_customers") == ["iterable_active"]  # the dbt model's name
        assert names("model:churned") == ["iterable_churned"]  # the dinsync model's name
        assert names("model:*customers", x=["tag:weekly"]) == ["iterable_active"]
        assert names(x=["tag:crm"]) == ["iterable_active"]
        with pytest.raises(ConfigError) as exc:
            names("tag:hourly")
        assert exc.value.issues[0].hint == "tags: crm, daily, weekly"
    selected("--select", "tag:weekly")


def test_dbt_build_then_sync_end_to_end(dbt_project):
    """The main way to run: `dbt build`, then `dinsync sync --select tag:daily`."""
    from tests.dbt.conftest import run_dbt

    data, code = dbt_project.json("sync", "--select", "tag:daily")
    assert code == 0, data
    run, = data["runs"]
    assert (run["sync"], run["status"], run["added"], run["acknowledged"]) == ("iterable_active", "success", 8, 8)
    built = {email: (name, plan) for email, name, plan in
             dbt_project.sql("select email, first_name, plan from analytics.active_customers")}
    assert len(built) == 8
    sandbox = dbt_project.sandbox
    assert {u["email"]: (u["dataFields"]["firstName"], u["dataFields"]["plan"]) for u in sandbox.users} == built
    # new data arrives, dbt builds again, dinsync sends only what changed
    seed = dbt_project.dbt_dir / "seeds" / "raw_customers.csv"
    seed.write_text(seed.read_text().replace("2,grace@example.com,Grace,free,false",
                                             "2,grace@example.com,Grace,pro,false")
                    + "11,linus@example.com,Linus,free,false\n")
    run_dbt("build", dbt_project.dbt_dir)
    data, code = dbt_project.json("sync", "--select", "model:active_customers")
    run, = data["runs"]
    assert code == 0 and (run["added"], run["changed"], run["acknowledged"]) == (1, 1, 2), run
    assert sandbox.get_user(email="grace@example.com")["dataFields"]["plan"] == "pro"
    assert sandbox.get_user(email="linus@example.com")["dataFields"] == {"firstName": "Linus", "plan": "free"}
    assert len(sandbox.users) == 9


def test_serve_reads_the_dbt_build_again_before_each_run(dbt_project, monkeypatch):
    """`serve` loads the project once; a `dbt build --empty` after it started was read as a segment
    that emptied (the run removed all 8 delivered keys from the snapshot, to send them all again
    after the next real build), where `dinsync sync` refuses it (exit 3). Each run now reads the
    dbt build again: refused while it stands, and the next build is synced as usual."""
    import datetime as dt

    from dinsync.cli import load_chosen, run_sync
    from dinsync.engine import StopToken
    from dinsync.ops.notify import Notifier
    from dinsync.ops.serve import Service
    from dinsync.operations import connect_warehouse
    from tests.dbt.conftest import run_dbt
    from tests.ops.test_scheduler import FakeClock, InlineExecutor

    dbt_project.write(syncs={"iterable_active": SYNC.format(model="active", extra="schedule: {every: 15m}\n")})
    assert dbt_project.cli("sync").exit_code == ExitCode.OK
    monkeypatch.chdir(dbt_project.dir)
    project, _, chosen = load_chosen(None, None, None, check_models=False, connect=False)  # as `serve` does
    events: list[dict] = []
    stop, clock = StopToken(), FakeClock(dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=2))
    scheduler = Service(project, chosen, connect=lambda: connect_warehouse(project.warehouse, project.root),
                        run_one=lambda wh, name, errors: run_sync(project, wh, name, False, stop=stop, errors=errors,
                                                                  refresh_dbt=True),
                        notifier=Notifier(project.notifications), emit=events.append, stop=stop, clock=clock,
                        executor=InlineExecutor(), recheck_seconds=3600).build()
    run_dbt("build --empty --select active_customers", dbt_project.dbt_dir)
    scheduler.step(clock.t)
    end = [e for e in events if e["event"] == "end"][-1]
    assert (end["exit_code"], end["run"]) == (ExitCode.CONFIG_ERROR, None), end  # not started: no run
    assert "built dbt model active_customers with --empty" in end["error"]
    assert dbt_project.sql("select count(*) from dinsync.snap_iterable_active") == [(8,)]  # nothing left it
    run_dbt("build --select active_customers", dbt_project.dbt_dir)
    clock.t += dt.timedelta(minutes=15)
    scheduler.step(clock.t)
    end = [e for e in events if e["event"] == "end"][-1]
    assert (end["exit_code"], end["run"]["status"], end["run"]["removed"], end["run"]["sent"]) == (0, "success", 0, 0), end


def test_check_names_a_selection_that_matches_nothing_with_the_dbt_problems(dbt_project):
    """`check` reports the dbt problems of every model; a typo in its --select was left out of
    them (only "no dbt model 'nosuch'" was said), where `sync` names it first."""
    broken = "-- primary_key: customer_id\n-- model_type: user\nselect * from {{ ref('nosuch') }}\n"
    dbt_project.write(models={"active": MODEL, "broken": broken}, syncs={
        "iterable_active": SYNC.format(model="active", extra="tags: [daily]\n"),
        "iterable_broken": SYNC.format(model="broken", extra="")})
    data, code = dbt_project.json("check", "--select", "tag:dialy")
    assert code == ExitCode.CONFIG_ERROR
    messages = [i["message"] for i in data["issues"]]
    assert messages[0] == "--select tag:dialy matches no sync", messages
    assert any("no dbt model 'nosuch'" in m for m in messages)


def test_braces_in_a_string_literal_are_jinja_only_where_jinja_reads_them():
    """A string literal holding PostgreSQL's text form of a 2-D array (`'{{1,2},{3,4}}'`) is a value:
    it was refused as `unsupported Jinja {{1,2},{3,4}}`. Jinja in a literal (`'{{ var("x") }}'`, which
    dbt renders there too) and anywhere else is still found; a comment's apostrophe opens no literal."""
    refs, other = find_refs("select '{{1,2},{3,4}}'::int[] a, E'{{\\'a\\',b},{c,d}}' b, $q${{x},{y}}$q$ c\n"
                            "-- it's {{ var('y') }}\nfrom {{ ref('m') }} where x = '{{ var(\"x\") }}' and y = '{{1}}'")
    assert [r.name for r in refs] == ["m"]
    assert other == [("{{ var('y') }}", 2), ('{{ var("x") }}', 3), ("{{1}}", 3)]
    # (a standard literal after a word ending in e is no E'' literal: its backslash escapes nothing)
    assert find_refs("select 1 where name like'a\\' or x = '{{1,2},{3,4}}'") == ([], [])
    [issue] = resolve_model(None, "select '{{1}}'::int[]", "models/m.sql")[1]  # (also a 2-D array's text)
    assert issue.message == "unsupported Jinja {{1}}" and "'{ {1} }', or as ARRAY[[1]]" in issue.hint


def test_other_jinja_beside_a_ref_is_not_also_a_missing_primary_key(dbt_project):
    """The README's model without a `-- primary_key:` line (dbt knows the key) given a `var()` was
    refused twice: `unsupported Jinja {{ var("p") }}` and, at line 1, `missing primary key header`,
    though the header is optional there: fixing the Jinja is all the model needs."""
    dbt_project.write(models={"active": "-- model_type: user\nselect * from {{ ref('active_customers') }}\n"
                                        "where plan = '{{ var(\"p\") }}'\n"}, syncs={})
    assert [(i.line, i.message) for i in issues_of(dbt_project)] == [(3, 'unsupported Jinja {{ var("p") }}')]
