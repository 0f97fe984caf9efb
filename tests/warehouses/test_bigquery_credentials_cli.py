"""BigQuery credentials that cannot be used as they are (not JSON, a file that does not exist, a key
of an unsupported type, an incomplete one) are a configuration error through the CLI (exit 3, in
`--json` too), never a run to try again (exit 1), and the key never reaches the output. They fail
before any server is asked."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from dinsync.errors import ExitCode

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
    root = tmp_path / "proj"
    (root / "models").mkdir(parents=True)
    (root / "syncs").mkdir()
    (root / "dinsync.yml").write_text(
        "version: 1\nwarehouse:\n  type: bigquery\n  project: aud-proj\n  credentials: ${env:AUD_BQ_CREDS}\n"
        "destinations:\n  iterable: {type: iterable, api_key: \"${env:AUD_KEY}\", base_url: \"http://127.0.0.1:9\"}\n")
    (root / "models" / "people.sql").write_text("-- primary_key: email\nselect 'a@x.com' as email, 'A' as first_name\n")
    (root / "syncs" / "people.yml").write_text(
        "model: people\ndestination: iterable\nservice: users\nmode: upsert\n"
        "match: {column: email, field: email}\nfields: {first_name: firstName}\n")
    proc = subprocess.run([sys.executable, "-m", "dinsync.cli", "--json", "--project-dir", str(root), *command],
                          env=dict(os.environ, AUD_BQ_CREDS=credentials, AUD_KEY="key-123456"),
                          capture_output=True, text=True, timeout=120)
    out = json.loads(proc.stdout)
    assert (proc.returncode, out["exit_code"]) == (ExitCode.CONFIG_ERROR, ExitCode.CONFIG_ERROR), out
    assert says in out["error"], out
    assert SECRET[:30] not in proc.stdout + proc.stderr
