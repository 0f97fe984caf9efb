"""A Databricks token the workspace refuses (401 UNAUTHENTICATED: wrong or expired) is a
configuration error through the CLI (exit 3, in `--json` too), as a refused PostgreSQL or Snowflake
login is, not a run to try again (exit 1); the token never reaches the output. The tests' fake
answers as the SQL Statement Execution API does."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from dinsync.errors import ExitCode
from dinsync.sandbox.runner import SandboxThread
from tests.warehouses.databricks_fake import DatabricksFake


@pytest.mark.parametrize("command", [("validate", "--offline"), ("sync",)])
def test_a_refused_token_is_a_configuration_error(tmp_path, command):
    pytest.importorskip("databricks.sdk")
    fake = DatabricksFake()
    thread = SandboxThread(fake)
    thread.start()
    wrong = "dapi-aud-wrong-token-8b9c0d1e"
    root = tmp_path / "proj"
    (root / "models").mkdir(parents=True)
    (root / "syncs").mkdir()
    (root / "dinsync.yml").write_text(
        f"version: 1\nwarehouse:\n  type: databricks\n  host: {fake.url}\n  token: ${{env:AUD_DBX_TOKEN}}\n"
        f"  warehouse_id: {fake.warehouse_id}\n  catalog: {fake.catalog}\n  schema: main\n  retry_seconds: 5\n"
        "destinations:\n  iterable: {type: iterable, api_key: \"${env:AUD_KEY}\", base_url: \"http://127.0.0.1:9\"}\n")
    (root / "models" / "people.sql").write_text("-- primary_key: email\nselect 'a@x.com' as email, 'A' as first_name\n")
    (root / "syncs" / "people.yml").write_text(
        "model: people\ndestination: iterable\nservice: users\nmode: upsert\n"
        "match: {column: email, field: email}\nfields: {first_name: firstName}\n")
    try:
        proc = subprocess.run([sys.executable, "-m", "dinsync.cli", "--json", "--project-dir", str(root), *command],
                              env=dict(os.environ, AUD_DBX_TOKEN=wrong, AUD_KEY="key-123456"),
                              capture_output=True, text=True, timeout=120)
    finally:
        thread.stop()
    out = json.loads(proc.stdout)
    assert (proc.returncode, out["exit_code"]) == (ExitCode.CONFIG_ERROR, ExitCode.CONFIG_ERROR), out
    assert "Invalid access token" in out["error"] and "token" in out["hint"]
    assert wrong not in proc.stdout + proc.stderr
