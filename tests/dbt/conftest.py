"""A real dbt project (tests/fixtures/dbt_analytics) built once per session with dbt-duckdb, and a
dinsync project next to it that reads the relations dbt built.

dbt runs in a subprocess through its Python entry point (`dbtRunner().invoke(["build"])`), offline
(DBT_SEND_ANONYMOUS_USAGE_STATS=false), so that its logging set-up stays out of the test process.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import duckdb
import pytest
from typer.testing import CliRunner

from dinsync.cli import app
from tests.conftest import TEST_KEY

FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "dbt_analytics"

DBT_SCRIPT = """
import sys
from dbt.cli.main import dbtRunner
result = dbtRunner().invoke(sys.argv[1:] + ["--project-dir", ".", "--profiles-dir", ".", "--quiet"])
sys.exit(0 if result.success else 1)
"""


def run_dbt(command: str, project_dir: Path, succeed: bool = True) -> None:
    """Run `dbt <command>` (build, parse, `build --empty`) in `project_dir`, which writes its warehouse.duckdb.
    `succeed=False`: the command is expected to fail (a model that does not build)."""
    env = dict(os.environ, DBT_SEND_ANONYMOUS_USAGE_STATS="false",
               DINSYNC_DBT_WAREHOUSE=str(project_dir / "warehouse.duckdb"))
    env.pop("DBT_TARGET_PATH", None)
    done = subprocess.run([sys.executable, "-c", DBT_SCRIPT, *command.split()], cwd=project_dir, env=env,
                          capture_output=True, text=True, timeout=300)
    assert (done.returncode == 0) == succeed, f"dbt {command} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"


@pytest.fixture(scope="session")
def dbt_built(tmp_path_factory) -> Path:
    """The fixture dbt project after `dbt build` (target/manifest.json and warehouse.duckdb)."""
    missing = [m for m in ("dbt.cli.main", "dbt.adapters.duckdb") if not _importable(m)]
    if missing:  # not imported here: dbt runs in its own process
        message = f"dbt-core and dbt-duckdb are needed (pip install -e '.[test]'); missing {', '.join(missing)}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    root = tmp_path_factory.mktemp("dbt") / "analytics"
    shutil.copytree(FIXTURE, root)
    run_dbt("build", root)
    return root


def _importable(module: str) -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


DINSYNC_YML = """\
version: 1
warehouse:
  type: duckdb
  path: ../analytics/warehouse.duckdb
{dbt}destinations:
  iterable:
    type: iterable
    api_key: ${{env:ITERABLE_TEST_KEY}}
    base_url: {base_url}
"""

MODEL = """\
-- primary_key: customer_id
-- model_type: user
select * from {{ ref('active_customers') }}
"""

SYNC = """\
model: {model}
destination: iterable
service: users
mode: upsert
match: {{column: email, field: email}}
fields: {{first_name: firstName, plan: plan}}
{extra}"""


class DbtProject:
    """`analytics/` (the dbt project, built) next to `activation/` (the dinsync project)."""

    def __init__(self, root: Path, base_url: str):
        self.root = root
        self.dbt_dir = root / "analytics"
        self.dir = root / "activation"
        self.base_url = base_url
        self.runner = CliRunner()

    def write(self, *, dbt_section: str = "dbt: {project_dir: ../analytics}\n", models: dict | None = None,
              syncs: dict | None = None) -> None:
        for folder in ("models", "syncs"):
            shutil.rmtree(self.dir / folder, ignore_errors=True)
            (self.dir / folder).mkdir(parents=True)
        (self.dir / "dinsync.yml").write_text(DINSYNC_YML.format(dbt=dbt_section, base_url=self.base_url))
        for name, text in (models if models is not None else {"active": MODEL}).items():
            (self.dir / "models" / f"{name}.sql").write_text(textwrap.dedent(text))
        for name, text in (syncs if syncs is not None else {"iterable_active": SYNC.format(model="active", extra="")}).items():
            (self.dir / "syncs" / f"{name}.yml").write_text(text)

    def cli(self, *args: str, json_output: bool = True):
        argv = ["--project-dir", str(self.dir)] + (["--json"] if json_output else []) + list(args)
        return self.runner.invoke(app, argv, catch_exceptions=False)

    def json(self, *args: str) -> tuple[dict, int]:
        result = self.cli(*args)
        return json.loads(result.stdout), result.exit_code

    def sql(self, statement: str):
        con = duckdb.connect(str(self.dbt_dir / "warehouse.duckdb"))
        try:
            return con.execute(statement).fetchall()
        finally:
            con.close()


@pytest.fixture
def dbt_project(dbt_built, tmp_path, monkeypatch, iterable_sandbox, iterable_requests) -> DbtProject:
    """A copy of the built dbt project and a dinsync project reading it, syncing to the sandbox."""
    sandbox, thread = iterable_sandbox
    monkeypatch.setenv("ITERABLE_TEST_KEY", TEST_KEY)
    monkeypatch.setenv("DINSYNC_CHECKPOINT_SECONDS", "0")
    monkeypatch.delenv("DBT_TARGET_PATH", raising=False)
    shutil.copytree(dbt_built, tmp_path / "analytics")
    project = DbtProject(tmp_path, thread.url)
    project.sandbox = sandbox
    project.write()
    return project
