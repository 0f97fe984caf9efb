"""A Databricks token the workspace refuses (401 UNAUTHENTICATED: wrong or expired) is a
configuration error through the CLI (exit 3, in `--json` too), as a refused PostgreSQL or Snowflake
login is, not a run to try again (exit 1); the token never reaches the output. The tests' fake
answers as the SQL Statement Execution API does."""
from __future__ import annotations


import pytest

from dinsync.errors import ExitCode
from dinsync.sandbox.runner import SandboxThread
from tests.warehouses.databricks_fake import DatabricksFake
from tests.warehouses.support import cli_on_warehouse


@pytest.mark.parametrize("command", [("validate", "--offline"), ("sync",)])
def test_a_refused_token_is_a_configuration_error(tmp_path, command):
    pytest.importorskip("databricks.sdk")
    fake = DatabricksFake()
    thread = SandboxThread(fake)
    thread.start()
    wrong = "dapi-aud-wrong-token-8b9c0d1e"
    try:
        status, out, printed = cli_on_warehouse(
            tmp_path / "proj",
            f"warehouse:\n  type: databricks\n  host: {fake.url}\n  token: ${{env:AUD_DBX_TOKEN}}\n"
            f"  warehouse_id: {fake.warehouse_id}\n  catalog: {fake.catalog}\n  schema: main\n  retry_seconds: 5\n",
            {"AUD_DBX_TOKEN": wrong}, *command)
    finally:
        thread.stop()
    assert (status, out["exit_code"]) == (ExitCode.CONFIG_ERROR, ExitCode.CONFIG_ERROR), out
    assert "Invalid access token" in out["error"] and "token" in out["hint"]
    assert wrong not in printed
