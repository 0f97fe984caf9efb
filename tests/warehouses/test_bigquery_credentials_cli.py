"""BigQuery credentials that cannot be used as they are (not JSON, a file that does not exist, a key
of an unsupported type, an incomplete one) are a configuration error through the CLI (exit 3, in
`--json` too), never a run to try again (exit 1), and the key never reaches the output. They fail
before any server is asked."""
from __future__ import annotations


import pytest

from dinsync.errors import ExitCode
from tests.warehouses.support import cli_on_warehouse

SECRET = "-----BEGIN PRIVATE KEY-----aud-not-a-key-5c6d7e8f"


@pytest.mark.parametrize("credentials,says", [
    ('{"type": "service_account", "project_id": "p", "private_key": "%s"' % SECRET, "not valid JSON"),
    ("/nonexistent/dinsync-aud/key.json", "cannot read the credentials file"),
    ('{"type": "external_account", "project_id": "p"}', "credentials of type 'external_account'"),
    ('{"type": "service_account", "project_id": "p", "private_key": "%s"}' % SECRET, "incomplete"),
])
@pytest.mark.parametrize("command", [("validate", "--offline"), ("sync",)])
def test_unusable_credentials_are_a_configuration_error(tmp_path, credentials, says, command):
    pytest.importorskip("google.cloud.bigquery")
    status, out, printed = cli_on_warehouse(
        tmp_path / "proj", "warehouse:\n  type: bigquery\n  project: aud-proj\n  credentials: ${env:AUD_BQ_CREDS}\n",
        {"AUD_BQ_CREDS": credentials}, *command)
    assert (status, out["exit_code"]) == (ExitCode.CONFIG_ERROR, ExitCode.CONFIG_ERROR), out
    assert says in out["error"], out
    assert SECRET[:30] not in printed
