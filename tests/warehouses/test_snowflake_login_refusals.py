"""Snowflake refusing the login its settings ask for (a wrong password, an invalid key pair, a
disabled user, a role or database of the connect string that does not exist) is a configuration
error through the CLI (exit 3), as on PostgreSQL, not a run to try again (exit 1); a user locked for a
while stays exit 1. A stub answers the connector's login request as Snowflake does (its error code
and message, `success: false`); the password never reaches the output."""
from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from dinsync.errors import ExitCode
from tests.warehouses.support import cli_on_warehouse

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
    try:
        status, out, printed = cli_on_warehouse(
            tmp_path / "proj",
            "warehouse:\n  type: snowflake\n  account: fakesnow\n  user: dinsync\n"
            "  password: ${env:AUD_SF_PASSWORD}\n  database: DB\n  host: 127.0.0.1\n"
            f"  port: {server.server_address[1]}\n  protocol: http\n  login_timeout: 10\n",
            {"AUD_SF_PASSWORD": PASSWORD}, "sync")
    finally:
        server.shutdown()
    assert (status, out["exit_code"]) == (exit_code, exit_code), out
    assert message in out["error"] and PASSWORD not in printed
