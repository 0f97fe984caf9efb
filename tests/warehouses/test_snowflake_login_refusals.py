"""Snowflake refusing the login its settings ask for (a wrong password, an invalid key pair, a
disabled user, a role or database of the connect string that does not exist) is a configuration
error through the CLI (exit 3), as on PostgreSQL, not a run to try again (exit 1); a user locked for a
while stays exit 1. A stub answers the connector's login request as Snowflake does (its error code
and message, `success: false`); the password never reaches the output."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from dinsync.errors import ExitCode

PASSWORD = "sf-aud-Secr3t-Passw0rd"


def _login_refused_by(code: str, message: str) -> ThreadingHTTPServer:
    class Refuse(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 (http.server's name)
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            body = json.dumps({"data": {"nextAction": None}, "code": code, "message": message,
                               "success": False}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Refuse)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.mark.parametrize("code,message,exit_code", [
    ("390100", "Incorrect username or password was specified.", ExitCode.CONFIG_ERROR),
    ("390102", "User is disabled.", ExitCode.CONFIG_ERROR),
    ("390144", "JWT token is invalid.", ExitCode.CONFIG_ERROR),
    ("390189", "Role 'NOPE' specified in the connect string does not exist or not authorized.", ExitCode.CONFIG_ERROR),
    ("390201", "The requested database does not exist or not authorized.", ExitCode.CONFIG_ERROR),
    ("390101", "User temporarily locked.", ExitCode.RUN_FAILED),
])
def test_a_refused_login_exits_as_its_cause(tmp_path, code, message, exit_code):
    pytest.importorskip("snowflake.connector")
    server = _login_refused_by(code, message)
    root = tmp_path / "proj"
    (root / "models").mkdir(parents=True)
    (root / "syncs").mkdir()
    (root / "dinsync.yml").write_text(
        "version: 1\nwarehouse:\n  type: snowflake\n  account: fakesnow\n  user: dinsync\n"
        "  password: ${env:AUD_SF_PASSWORD}\n  database: DB\n  host: 127.0.0.1\n"
        f"  port: {server.server_address[1]}\n  protocol: http\n  login_timeout: 10\n"
        "destinations:\n  iterable: {type: iterable, api_key: \"${env:AUD_KEY}\", base_url: \"http://127.0.0.1:9\"}\n")
    (root / "models" / "people.sql").write_text("-- primary_key: email\nselect 'a@x.com' as email, 'A' as first_name\n")
    (root / "syncs" / "people.yml").write_text(
        "model: people\ndestination: iterable\nservice: users\nmode: upsert\n"
        "match: {column: email, field: email}\nfields: {first_name: firstName}\n")
    try:
        proc = subprocess.run([sys.executable, "-m", "dinsync.cli", "--json", "--project-dir", str(root), "sync"],
                              env=dict(os.environ, AUD_SF_PASSWORD=PASSWORD, AUD_KEY="key-123456"),
                              capture_output=True, text=True, timeout=120)
    finally:
        server.shutdown()
    out = json.loads(proc.stdout)
    assert (proc.returncode, out["exit_code"]) == (exit_code, exit_code), out
    assert message in out["error"] and PASSWORD not in proc.stdout + proc.stderr
