"""Models reading dbt models through manifests written by hand as dbt writes them (no dbt run):
what dbt's artifacts can say that the fixture project does not easily produce."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from dinsync.config import load_project
from dinsync.errors import ConfigError

MODEL_SQL = "select 1 as customer_id, 'a@example.com' as email\n"


def hand_project(tmp_path: Path, results: list[dict] | None = None, node: dict | None = None,
                 others: dict | None = None, args: dict | None = None) -> Path:
    """analytics/ (a dbt project: one table model `customers`, its manifest v12 and, when given,
    run_results.json) next to activation/ (a dinsync project reading it); returns activation/.
    `node`: keys of the model's manifest node to set; `others`: more manifest nodes (tests); `args`:
    run_results.json's args (`{"empty": True}`)."""
    dbt_dir, act = tmp_path / "analytics", tmp_path / "activation"
    (dbt_dir / "models").mkdir(parents=True)
    (dbt_dir / "target").mkdir()
    (dbt_dir / "dbt_project.yml").write_text("name: analytics\nversion: '1.0'\nprofile: analytics\n")
    (dbt_dir / "models" / "customers.sql").write_text(MODEL_SQL)
    checksum = hashlib.sha256(MODEL_SQL.strip().encode()).hexdigest()
    model = {"resource_type": "model", "name": "customers", "package_name": "analytics",
             "unique_id": "model.analytics.customers", "relation_name": '"warehouse"."analytics"."customers"',
             "config": {"materialized": "table", "enabled": True}, "tags": ["daily"],
             "original_file_path": "models/customers.sql", "checksum": {"name": "sha256", "checksum": checksum},
             "depends_on": {"macros": [], "nodes": []}, "primary_key": ["customer_id"], "constraints": [],
             "columns": {}, **(node or {})}
    nodes = {model["unique_id"]: model, **(others if others is not None else {
        data_test(test, "customer_id")["unique_id"]: data_test(test, "customer_id") for test in TESTS})}
    (dbt_dir / "target" / "manifest.json").write_text(json.dumps({
        "metadata": {"dbt_schema_version": "https://schemas.getdbt.com/dbt/manifest/v12.json",
                     "dbt_version": "1.11.16", "generated_at": "2026-12-06T05:00:00.000000Z",
                     "project_name": "analytics", "adapter_type": "duckdb"},
        "nodes": nodes, "sources": {}, "disabled": {}}))
    if results is not None:
        (dbt_dir / "target" / "run_results.json").write_text(json.dumps({
            "metadata": {"dbt_version": "1.11.16", "generated_at": "2026-12-06T05:01:00.000000Z"},
            "args": {"which": "build", **(args or {})}, "results": results}))
    (act / "models").mkdir(parents=True)
    (act / "dinsync.yml").write_text("version: 1\nwarehouse: {type: duckdb, path: ':memory:'}\n"
                                     "dbt: {project_dir: ../analytics}\ndestinations: {}\n")
    (act / "models" / "m.sql").write_text("-- model_type: user\nselect * from {{ ref('customers') }}\n")
    return act


TESTS = ("unique", "not_null")


def data_test(name: str, column: str, model: str = "model.analytics.customers", **config) -> dict:
    """A generic data test of a column as dbt 1.11 writes it in the manifest's nodes."""
    return {"resource_type": "test", "name": f"{name}_customers_{column}", "package_name": "analytics",
            "unique_id": f"test.analytics.{name}_customers_{column}.0", "column_name": column,
            "attached_node": model, "config": {"enabled": True, "severity": "ERROR", **config},
            "test_metadata": {"name": name, "kwargs": {"column_name": column,
                                                       "model": "{{ get_where_subquery(ref('customers')) }}"}},
            "depends_on": {"macros": [f"macro.dbt.test_{name}"], "nodes": [model]}}


def issues_of(project: Path) -> list:
    with pytest.raises(ConfigError) as exc:
        load_project(project)
    return exc.value.issues


def test_a_microbatch_model_dbt_built_in_part_is_refused(tmp_path):
    """A microbatch model some of whose batches failed ends `partial success` (dbt-core 1.9+): its
    relation lacks the failed batches' rows, dbt skips what reads it and `dbt retry` runs them
    again. It was read as built: rows of the failed batches seemed to have left the model."""
    act = hand_project(tmp_path, [{"unique_id": "model.analytics.customers", "status": "partial success",
                                   "message": "PARTIAL SUCCESS (2/3)", "failures": None}])
    issue, = issues_of(act)
    assert (issue.file, issue.line) == ("models/m.sql", 2)
    assert issue.message == ("ref('customers'): dbt's last build (run_results.json, 2026-12-06T05:01:00.000000Z) "
                             "built only some batches of dbt model customers (PARTIAL SUCCESS (2/3): the failed "
                             "batches' rows are missing)")
    assert "dbt retry" in issue.hint
    act = hand_project(tmp_path / "ok", [{"unique_id": "model.analytics.customers", "status": "success",
                                          "message": "SUCCESS"}])
    assert load_project(act).models["m"].primary_key == "customer_id"


def test_a_ref_written_over_several_lines_keeps_the_lines_after_it_where_the_file_has_them(tmp_path):
    """`{{\\n ref('customers')\\n}}` was replaced by the relation on one line: the lines after it
    moved up, so a warehouse error (`LINE 6:`) was reported two lines above the line at fault."""
    from dinsync.config import check_columns

    act = hand_project(tmp_path)
    (act / "models" / "m.sql").write_text(
        "-- model_type: user\nselect *\nfrom {{\n    ref('customers')\n}} as c\nwhere\n  c.id = = 1\n")
    model = load_project(act).models["m"]
    assert model.sql.splitlines()[5] == "  c.id = = 1"  # file line 7, the statement's 6th
    assert model.sql.startswith('select *\nfrom "warehouse"."analytics"."customers"')

    def columns_of(model):  # what PostgreSQL says (the query starts with a line break: LINE 7 is line 6)
        raise RuntimeError('syntax error at or near "="\nLINE 7:   c.id = = 1\n                ^')

    issue, = check_columns(load_project(act), columns_of)
    assert (issue.file, issue.line) == ("models/m.sql", 7) and "line 7:   c.id = = 1" in issue.message


def test_the_dbt_models_key_is_taken_only_when_its_tests_or_a_constraint_make_it_one(tmp_path):
    """dbt's inferred `primary_key` also names a column with only a `unique` test, or with a
    disabled one (a test turned off because it failed): the README promises dbt's key only for a
    column with enabled `unique` and `not_null` tests or a primary_key constraint, and dinsync took
    such a column (first_name, say) as the rows' identity without a word."""
    disabled = data_test("unique", "first_name", enabled=False)  # in `disabled`, not in `nodes`
    act = hand_project(tmp_path / "a", node={"primary_key": ["first_name"]}, others={})
    issue, = issues_of(act)
    assert (issue.file, issue.line, issue.message) == ("models/m.sql", 1, "missing primary key header")
    only_unique = {disabled["unique_id"]: data_test("unique", "first_name")}
    act = hand_project(tmp_path / "b", node={"primary_key": ["first_name"]}, others=only_unique)
    assert issues_of(act)[0].message == "missing primary key header"
    # enabled unique and not_null tests, a column's or the model's primary_key constraint: dbt's key
    assert load_project(hand_project(tmp_path / "c")).models["m"].primary_key == "customer_id"
    constraint = {"type": "primary_key", "columns": ["customer_id"], "name": None, "expression": None}
    for node in ({"constraints": [constraint]},
                 {"columns": {"customer_id": {"name": "customer_id", "constraints": [{"type": "primary_key"}]}}}):
        act = hand_project(tmp_path / str(len(str(node))), node=node, others={})
        assert load_project(act).models["m"].primary_key == "customer_id"


@pytest.mark.parametrize("args, said", [({"empty": True}, "with --empty"), ({"sample": "3 days"}, "with --sample")])
def test_a_snapshot_dbt_built_with_empty_or_sample_is_refused_like_a_model(tmp_path, args, said):
    """`dbt build --empty` runs snapshots too, from empty inputs: with `hard_deletes: invalidate`
    every current row gets its dbt_valid_to (dbt-core 1.11: 10 current rows, 0 after), and a model
    reading `where dbt_valid_to is null` saw every delivered row leave. Only models were refused."""
    snapshot = {"resource_type": "snapshot", "unique_id": "snapshot.analytics.customers",
                "config": {"materialized": "snapshot", "enabled": True}}
    act = hand_project(tmp_path, [{"unique_id": "snapshot.analytics.customers", "status": "success",
                                   "message": "INSERT 0 10"}], node=snapshot, args=args)
    (act / "models" / "m.sql").write_text("-- primary_key: customer_id\n-- model_type: user\n"
                                          "select * from {{ ref('customers') }} where dbt_valid_to is null\n")
    issue, = issues_of(act)
    assert (issue.file, issue.line) == ("models/m.sql", 3)
    assert f") built dbt snapshot customers {said} " in issue.message


@pytest.mark.parametrize("schema", ["v10", "v11"])
def test_a_manifest_of_dbt_before_1_8_gives_the_key_its_tests_make(tmp_path, schema):
    """Manifests v10 and v11 (dbt-core 1.6, 1.7) have no `primary_key` on a node: a model reading a
    dbt model with `unique` and `not_null` tests on customer_id was refused for its missing header,
    although the README promises dbt's key from those tests (or a primary_key constraint)."""
    act = hand_project(tmp_path, node={"primary_key": None})
    manifest = tmp_path / "analytics" / "target" / "manifest.json"
    data = json.loads(manifest.read_text())
    data["metadata"]["dbt_schema_version"] = f"https://schemas.getdbt.com/dbt/manifest/{schema}.json"
    del data["nodes"]["model.analytics.customers"]["primary_key"]
    if schema == "v10":  # a test's model is then only in its depends_on
        for node in data["nodes"].values():
            node.pop("attached_node", None)
    manifest.write_text(json.dumps(data))
    assert load_project(act).models["m"].primary_key == "customer_id"
    del data["nodes"][data_test("not_null", "customer_id")["unique_id"]]  # unique alone: no key
    manifest.write_text(json.dumps(data))
    assert issues_of(act)[0].message == "missing primary key header"
    data["nodes"]["model.analytics.customers"]["constraints"] = [{"type": "primary_key", "columns": ["customer_id"]}]
    manifest.write_text(json.dumps(data))
    assert load_project(act).models["m"].primary_key == "customer_id"


@pytest.mark.parametrize("text", ["[]", '{"nodes": {"model.analytics.customers": null}}',
                                  '{"nodes": {"model.analytics.customers": {"resource_type": "model", '
                                  '"name": "customers", "relation_name": "x", "checksum": "sha256"}}}'])
def test_a_manifest_not_shaped_as_dbt_writes_it_is_a_located_error(tmp_path, text):
    """JSON that is not a dbt manifest (another tool's file at target/manifest.json, a hand edit)
    failed every command with "unexpected error: AttributeError" (exit 1), a crash to report
    rather than a file to rewrite."""
    act = hand_project(tmp_path)
    (tmp_path / "analytics" / "target" / "manifest.json").write_text(text)
    issue, = issues_of(act)
    assert (issue.file, issue.line) == ("models/m.sql", 2)
    assert issue.message.startswith("the dbt manifest ../analytics/target/manifest.json cannot be read: ")
    assert "dbt parse" in issue.hint


def test_a_dinsync_project_in_the_dbt_projects_own_folder_is_told_models_is_dbts(tmp_path):
    """dinsync.yml next to dbt_project.yml (a place the README says dinsync looks for the dbt
    project): dinsync read dbt's models/ as its own and reported each dbt model twice ("unsupported
    Jinja {{ config(...) }}", "missing primary key header"), 14 errors for the fixture project."""
    act = hand_project(tmp_path)
    dbt_dir = tmp_path / "analytics"
    (dbt_dir / "dinsync.yml").write_text((act / "dinsync.yml").read_text().replace("dbt: {project_dir: ../analytics}\n",
                                                                                  ""))
    (dbt_dir / "models" / "staged.sql").write_text("{{ config(materialized='view') }}\nselect 1 as id\n")
    issue, = issues_of(dbt_dir)
    assert (issue.file, issue.line) == ("dbt_project.yml", None)
    assert issue.message == ("models/ is the dbt project's model folder (dbt_project.yml here): dinsync would read "
                             "dbt's models as its own")
    assert "a folder of its own" in issue.hint
    (dbt_dir / "dbt_project.yml").write_text("name: analytics\nprofile: analytics\nmodel-paths: [./models/dbt]\n")
    assert issues_of(dbt_dir)[0].message.startswith("models/ is the dbt project's model folder")  # read at any depth
    # dbt's models elsewhere (model-paths): the folder is dinsync's
    (dbt_dir / "dbt_project.yml").write_text("name: analytics\nprofile: analytics\nmodel-paths: [transform]\n")
    (dbt_dir / "models" / "staged.sql").unlink()
    (dbt_dir / "models" / "customers.sql").write_text("-- primary_key: id\nselect 1 as id\n")
    assert load_project(dbt_dir).models["customers"].primary_key == "id"


def test_a_macro_changed_since_the_build_makes_the_manifest_stale(tmp_path):
    """A model calling a macro (`{{ shout('first_name') }}`) is built from the macro's text: with
    the macro's file changed and dbt not run again, the relation is what the old macro said, as
    with a changed model file, but dinsync read it as current."""
    act = hand_project(tmp_path)
    dbt_dir = tmp_path / "analytics"
    (dbt_dir / "macros").mkdir()
    macro = "{% macro shout(col) -%}\r\n  upper({{ col }})\r\n{%- endmacro %}"
    (dbt_dir / "macros" / "text.sql").write_text(f"{{# helpers #}}\n{macro}\n", newline="")
    manifest = dbt_dir / "target" / "manifest.json"
    data = json.loads(manifest.read_text())
    data["nodes"]["model.analytics.customers"]["depends_on"]["macros"] = ["macro.analytics.shout"]
    data["macros"] = {"macro.analytics.shout": {
        "name": "shout", "package_name": "analytics", "unique_id": "macro.analytics.shout",
        "original_file_path": "macros/text.sql", "path": "macros/text.sql", "macro_sql": macro,
        "depends_on": {"macros": []}, "resource_type": "macro"},
        "macro.dbt.is_incremental": {"name": "is_incremental", "package_name": "dbt", "macro_sql": "{% macro x %}",
                                     "original_file_path": "macros/materializations/is_incremental.sql",
                                     "depends_on": {"macros": []}, "resource_type": "macro"}}
    data["nodes"]["model.analytics.customers"]["depends_on"]["macros"].append("macro.dbt.is_incremental")
    manifest.write_text(json.dumps(data))
    assert load_project(act).models["m"].dbt_models == ("customers",)  # CRLF as dbt read it; dbt's own: not checked
    (dbt_dir / "macros" / "text.sql").write_text(f"{{# helpers #}}\n{macro.replace('upper', 'lower')}\n")
    issue, = issues_of(act)
    assert (issue.file, issue.line) == ("models/m.sql", 2)
    assert issue.message.startswith("ref('customers'): the dbt manifest (generated 2026-12-06T05:00:00.000000Z) is "
                                    "stale: macros/text.sql (dbt macro shout) changed since (modified ")
    (dbt_dir / "macros" / "text.sql").unlink()
    assert issues_of(act)[0].message.endswith("stale: macros/text.sql (dbt macro shout) was deleted")


def test_a_failed_test_of_a_source_upstream_is_named_not_a_crash(tmp_path):
    """`dbt build` skips the models reading a source whose test failed: dinsync refused the model
    too, but naming what the test tested looked the source up among the manifest's nodes and failed
    with "unexpected error: KeyError"."""
    source = "source.analytics.crm.customers"
    test = {**data_test("not_null", "email", model=source), "unique_id": "test.analytics.source_not_null.1",
            "name": "source_not_null_crm_customers_email"}
    act = hand_project(tmp_path, [{"unique_id": test["unique_id"], "status": "fail", "message": "Got 2 results"}],
                       node={"depends_on": {"macros": [], "nodes": [source]}},
                       others={test["unique_id"]: test, **{data_test(t, "customer_id")["unique_id"]:
                                                           data_test(t, "customer_id") for t in TESTS}})
    issue, = issues_of(act)
    assert (issue.file, issue.line) == ("models/m.sql", 2)
    assert ("failed for dbt test source_not_null_crm_customers_email of source crm.customers, upstream of "
            "customers: Got 2 results") in issue.message


def test_a_dbt_project_dir_under_the_home_folder_is_found(tmp_path, monkeypatch):
    """`dbt: {project_dir: ~/analytics}` was joined to the dinsync project's folder: "dbt.project_dir
    ~/analytics holds no dbt_project.yml (<project>/~/analytics)". `~` is the home folder, as for the
    DuckDB path."""
    act = hand_project(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path))
    yml = act / "dinsync.yml"
    yml.write_text(yml.read_text().replace("project_dir: ../analytics", "project_dir: ~/analytics"))
    project = load_project(act)
    assert list(project.models["m"].dbt_models) == ["customers"]


def test_a_missing_manifest_names_the_target_path_it_was_looked_for_in(tmp_path):
    """With `target_path: build` (or $DBT_TARGET_PATH, or dbt_project.yml's target-path), the hint
    said dinsync reads target/manifest.json: a user running `dbt parse` into target/ was told the
    wrong folder. It now names the folder and where that came from."""
    act = hand_project(tmp_path)
    (act / "dinsync.yml").write_text((act / "dinsync.yml").read_text().replace(
        "dbt: {project_dir: ../analytics}", "dbt: {project_dir: ../analytics, target_path: build}"))
    with pytest.raises(ConfigError) as info:
        load_project(act, env={})
    issue, = info.value.issues
    assert issue.message == "the dbt manifest ../analytics/build/manifest.json does not exist"
    assert issue.hint == ("run `dbt parse` or `dbt build` in ../analytics first (dinsync reads the relations dbt "
                          "built from build/manifest.json: dbt.target_path in dinsync.yml)")
    (act / "dinsync.yml").write_text((act / "dinsync.yml").read_text().replace(", target_path: build", ""))
    with pytest.raises(ConfigError) as info:
        load_project(act, env={"DBT_TARGET_PATH": "out"})
    assert info.value.issues[0].hint.endswith("built from out/manifest.json: $DBT_TARGET_PATH)")


@pytest.mark.parametrize("cut", [0, 40, -3])
def test_run_results_cut_short_while_dbt_writes_it_is_not_read_as_a_clean_build(tmp_path, cut):
    """dbt writes target/run_results.json in place at the end of a command: read meanwhile (dinsync
    started beside a `dbt build`, or a dbt killed mid-write) it is empty or cut short. It was read as
    "no results": the model dbt had just failed to build was read as built, its earlier build's
    rows sent. Now the model is refused saying the file cannot be read, until dbt finished it."""
    act = hand_project(tmp_path, [{"unique_id": "model.analytics.customers", "status": "error",
                                   "message": "Database Error: no such column"}])
    path = tmp_path / "analytics" / "target" / "run_results.json"
    whole = path.read_bytes()
    path.write_bytes(whole[:cut])
    issue, = issues_of(act)
    assert (issue.file, issue.line) == ("models/m.sql", 2)
    assert issue.message.startswith("ref('customers'): dbt's last results (../analytics/target/run_results.json) "
                                    "cannot be read ("), issue.message
    assert "whether dbt built dbt model customers is unknown" in issue.message
    assert "dbt is writing it" in issue.hint and "dbt build" in issue.hint
    path.write_bytes(whole)  # dbt finished writing it: its failure is read
    issue, = issues_of(act)
    assert "failed for dbt model customers: Database Error: no such column" in issue.message


def test_a_manifest_cut_short_while_dbt_writes_it_says_so_not_only_to_rewrite_it(tmp_path):
    """dbt writes target/manifest.json in place at the start of each command: read meanwhile it is cut
    short, and the hint said only to run `dbt parse` or `dbt build` again, a second dbt command
    beside the one writing the file. It now says to wait for that command first."""
    act = hand_project(tmp_path)
    path = tmp_path / "analytics" / "target" / "manifest.json"
    path.write_bytes(path.read_bytes()[:100])
    issue, = issues_of(act)
    assert issue.message.startswith("the dbt manifest ../analytics/target/manifest.json cannot be read: "
                                    "unexpected end of data"), issue.message
    assert "if a dbt command is writing it now, run dinsync once it has finished" in issue.hint, issue.hint
    assert "dbt parse" in issue.hint


def test_a_dbt_model_with_a_composite_key_is_named_as_such(tmp_path):
    """A dbt model whose primary key has two columns (a `primary_key` constraint over both) gives
    dinsync no key: the issue said "missing primary key header" and hinted at `unique` + `not_null`
    tests, as if dbt knew no key at all, when it knows one dinsync cannot use."""
    key = ["customer_id", "email"]
    act = hand_project(tmp_path, node={"primary_key": key, "constraints": [{"type": "primary_key", "columns": key}]},
                       others={})
    issue, = issues_of(act)
    assert (issue.file, issue.line) == ("models/m.sql", 1)
    assert issue.message == ("missing primary key header: the primary key of dbt model customers has 2 columns "
                             "(customer_id, email), and dinsync needs one")
    assert "`-- primary_key: <column>`" in issue.hint and "customer_id || '-' || email" in issue.hint
