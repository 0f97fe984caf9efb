"""The Splio sandbox over real loopback sockets: asyncssh as the SFTP client, aiohttp for the API."""
from __future__ import annotations

import asyncio
import os
import re
import queue
import signal
import subprocess
import sys
import threading
import time
from typing import Any

import aiohttp
import asyncssh
import orjson
import pytest

from dinsync.sandbox import SandboxThread, SplioOptions, SplioSandbox, build_sandbox
from dinsync.sandbox.faults import delay, error, reset, throttle

KEY = "splio-test-key-93b1"
USER = "dinsync"
PASSWORD = "sftp-pw-5e2d"
DROP = "/imports/contacts"
FIELDS = [{"id": 3, "name": "plan", "type": "text"}, {"id": 4, "name": "visits", "type": "int"},
          {"id": 5, "name": "ltv", "type": "double"}, {"id": 7, "name": "birthday", "type": "date"}]


@pytest.fixture(scope="module")
def client_key() -> asyncssh.SSHKey:
    return asyncssh.generate_private_key("ssh-ed25519")


@pytest.fixture
def make(client_key):
    """make(**options) -> (SandboxThread, SplioSandbox); no poller and no rate limits unless asked for."""
    threads: list[SandboxThread] = []

    def _make(**options: Any) -> tuple[SandboxThread, SplioSandbox]:
        options.setdefault("poll_interval", None)
        options.setdefault("limits", False)
        options.setdefault("custom_fields", FIELDS)
        options.setdefault("sftp_users", {USER: {"password": PASSWORD,
                                                 "public_keys": [client_key.export_public_key().decode()]}})
        sandbox = SplioSandbox(KEY, **options)
        thread = SandboxThread(sandbox)
        thread.start()
        threads.append(thread)
        return thread, sandbox

    yield _make
    for thread in threads:
        thread.stop()


# ---------------------------------------------------------------- SFTP helpers
def connect(sandbox: SplioSandbox, *, password: str | None = PASSWORD, key: asyncssh.SSHKey | None = None,
            username: str = USER, known_hosts: Any = None):
    return asyncssh.connect("127.0.0.1", sandbox.sftp_port, username=username, password=password,
                            client_keys=[key] if key is not None else None, agent_path=None,
                            known_hosts=known_hosts or asyncssh.import_known_hosts(sandbox.known_hosts_line()))


async def _upload(sandbox: SplioSandbox, name: str, data: bytes, rename: bool = True) -> None:
    async with connect(sandbox) as conn, conn.start_sftp_client() as sftp:
        target = f"{DROP}/{name}.part" if rename else f"{DROP}/{name}"
        async with sftp.open(target, "wb") as f:
            await f.write(data)
        if rename:
            await sftp.posix_rename(target, f"{DROP}/{name}")


def upload(sandbox: SplioSandbox, name: str, data: bytes | str, rename: bool = True) -> None:
    asyncio.run(_upload(sandbox, name, data.encode() if isinstance(data, str) else data, rename))


def import_file(runner: SandboxThread, sandbox: SplioSandbox, name: str, data: bytes | str) -> dict:
    """Upload (temporary name + rename), import, and return the report read back over SFTP."""
    upload(sandbox, name, data)
    reports = runner.call(sandbox.process_now)
    assert [r["file"] for r in reports] == [name]
    return read_report(sandbox, name)


def read_report(sandbox: SplioSandbox, name: str) -> dict:
    async def read() -> bytes:
        async with connect(sandbox) as conn, conn.start_sftp_client() as sftp:
            async with sftp.open(sandbox.report_path(name), "rb") as f:
                return await f.read()
    report = orjson.loads(asyncio.run(read()))
    assert report == sandbox.report(name)
    return report


def listdir(sandbox: SplioSandbox, path: str) -> list[str]:
    async def ls() -> list[str]:
        async with connect(sandbox) as conn, conn.start_sftp_client() as sftp:
            return sorted(n for n in await sftp.listdir(path) if n not in (".", ".."))
    return asyncio.run(ls())


def rows(report: dict) -> list[tuple[int, str, str]]:
    return [(r["line"], r["email"], r["status"]) for r in report["rows"]]


# ---------------------------------------------------------------- SFTP: connection and auth
def test_password_and_public_key_logins(make, client_key):
    runner, sandbox = make()

    async def both() -> tuple[list[str], list[str]]:
        async with connect(sandbox) as conn, conn.start_sftp_client() as sftp:
            by_password = sorted(await sftp.listdir("/imports"))
        async with connect(sandbox, password=None, key=client_key) as conn, conn.start_sftp_client() as sftp:
            by_key = sorted(await sftp.listdir(DROP))
        return by_password, by_key

    by_password, by_key = asyncio.run(both())
    assert by_password == [".", "..", "contacts", "processed", "reports"]
    assert by_key == [".", ".."]
    logins = runner.stats()["sftp_logins"]
    assert logins["password"] == 1 and logins["ok"] == 2


@pytest.mark.parametrize("username, password", [(USER, "wrong"), ("nobody", PASSWORD)])
def test_wrong_credentials_are_refused(make, username, password):
    runner, sandbox = make()
    with pytest.raises(asyncssh.PermissionDenied):
        asyncio.run(_login(sandbox, username=username, password=password))
    assert runner.stats()["sftp_logins"].get("ok", 0) == 0


def test_unknown_public_key_is_refused(make):
    _, sandbox = make()
    with pytest.raises(asyncssh.PermissionDenied):
        asyncio.run(_login(sandbox, password=None, key=asyncssh.generate_private_key("ssh-ed25519")))


async def _login(sandbox: SplioSandbox, **kwargs: Any) -> None:
    async with connect(sandbox, **kwargs):
        pass


def test_a_different_host_key_is_not_trusted(make):
    _, sandbox = make()
    other = asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode().split()[:2]
    pinned = asyncssh.import_known_hosts(f"[127.0.0.1]:{sandbox.sftp_port} {' '.join(other)}")
    with pytest.raises(asyncssh.HostKeyNotVerifiable):
        asyncio.run(_login(sandbox, known_hosts=pinned))
    assert sandbox.known_hosts_line().startswith(f"[127.0.0.1]:{sandbox.sftp_port} ssh-ed25519 AAAA")


def test_only_the_drop_folder_is_writable(make):
    runner, sandbox = make()
    (sandbox.root / "imports" / "reports" / "old.report.json").write_text("{}")

    async def attempts() -> list[str]:
        denied = []
        async with connect(sandbox) as conn, conn.start_sftp_client() as sftp:
            for label, action in [
                ("write report", lambda: sftp.open("/imports/reports/x.json", "wb")),
                ("write root", lambda: sftp.open("/x.csv", "wb")),
                ("escape chroot", lambda: sftp.open("/../../x.csv", "wb")),
                ("remove report", lambda: sftp.remove("/imports/reports/old.report.json")),
                ("mkdir", lambda: sftp.mkdir(f"{DROP}/sub")),
            ]:
                try:
                    f = await action()
                    if hasattr(f, "close"):
                        await f.close()
                except asyncssh.SFTPPermissionDenied:
                    denied.append(label)
            async with sftp.open(f"{DROP}/x.csv.part", "wb") as f:  # the drop folder is writable
                await f.write(b"email\n")
            await sftp.remove(f"{DROP}/x.csv.part")
        return denied

    assert asyncio.run(attempts()) == ["write report", "write root", "escape chroot", "remove report", "mkdir"]
    assert (sandbox.root / "imports" / "reports" / "old.report.json").exists()
    assert not os.path.exists(os.path.join(os.path.dirname(sandbox.root), "x.csv"))


# ---------------------------------------------------------------- importer
def test_upload_rename_then_import_with_inserts(make):
    runner, sandbox = make(insert_allowed=True)
    runner.call(sandbox.seed, {"email": "old@example.com", "firstname": "Old", "plan": "free"})
    data = ("email;firstname;lastname;language;cellphone;plan;visits;ltv;birthday\n"
            "New@Example.com;Ann;Lee;fr;+33612345678;pro;12;10.5;1990-02-28 00:00:00\n"
            'old@example.com;"Bob; ""the"" builder";;en;;gold;;;\n')
    report = import_file(runner, sandbox, "sandbox_contacts_20261123.csv", data)
    assert report["status"] == "processed" and report["reason"] is None
    assert rows(report) == [(2, "New@Example.com", "inserted"), (3, "old@example.com", "updated")]
    assert report["counts"] == {"lines": 2, "inserted": 1, "updated": 1, "not_found": 0, "rejected": 0}
    assert report["columns"][0] == "email" and report["insert_allowed"] is True
    new = runner.call(sandbox.contact, "new@example.com")
    assert new["email"] == "new@example.com" and new["language"] == "fr" and new["cellphone"] == "+33612345678"
    assert new["custom_fields"] == {"plan": "pro", "visits": "12", "ltv": "10.50", "birthday": "1990-02-28 00:00:00"}
    old = runner.call(sandbox.contact, "old@example.com")
    assert old["firstname"] == 'Bob; "the" builder' and old["custom_fields"]["plan"] == "gold"
    assert old["lastname"] == ""  # empty cells clear (empty_cells="clear")
    assert listdir(sandbox, DROP) == []
    assert listdir(sandbox, "/imports/processed") == ["sandbox_contacts_20261123.csv"]
    assert listdir(sandbox, "/imports/reports") == ["sandbox_contacts_20261123.csv.report.json"]
    stats = runner.stats()
    assert stats["created"]["sftp"] == 1 and stats["updated"]["sftp"] == 1
    assert stats["files_received"] == stats["files_processed"] == ["sandbox_contacts_20261123.csv"]


def test_insert_not_allowed_reports_unknown_contacts_as_not_found(make):
    runner, sandbox = make()  # insert_allowed defaults to False
    runner.call(sandbox.seed, {"email": "known@example.com"})
    report = import_file(runner, sandbox, "sandbox_contacts_a.csv",
                         "email;firstname\nknown@example.com;K\nunknown@example.com;U\n")
    assert rows(report) == [(2, "known@example.com", "updated"), (3, "unknown@example.com", "not_found")]
    assert report["rows"][1]["code"] == "not_found"
    assert runner.call(sandbox.contact, "unknown@example.com") is None
    assert runner.call(sandbox.contact, "known@example.com")["firstname"] == "K"
    assert runner.stats()["contacts"] == 1


def test_per_line_rejections_keep_the_good_lines(make):
    runner, sandbox = make(insert_allowed=True)
    lines = [
        "email;firstname;language;cellphone;visits;ltv;birthday",
        "ok1@example.com;A;en;0033612345678;1;2;2024-01-31 10:00:00",
        "not-an-email;A;en;;;;",
        f"{'x' * 96}@a.co;A;;;;;",  # 101 characters
        f"long@example.com;{'n' * 256};;;;;",
        "lang@example.com;A;EN;;;;",
        f"phone@example.com;A;;{'1' * 31};;;",
        "int@example.com;A;;;1.5;;",
        "double@example.com;A;;;;abc;",
        "date@example.com;A;;;;;2024-01-31",
        "baddate@example.com;A;;;;;2024-02-30 00:00:00",
        "count@example.com;A",
        "",
        ";A;;;;;",
        'ok2@example.com;"Zed";;;-3;1.005;',
        'tail@example.com;"broken',
    ]
    report = import_file(runner, sandbox, "sandbox_contacts_b.csv", "\n".join(lines) + "\n")
    assert report["status"] == "processed"
    got = {r["line"]: (r["status"], r["code"]) for r in report["rows"]}
    assert got == {
        2: ("inserted", ""), 3: ("rejected", "wrong_email"), 4: ("rejected", "wrong_value"),
        5: ("rejected", "wrong_value"), 6: ("rejected", "wrong_value"), 7: ("rejected", "wrong_value"),
        8: ("rejected", "wrong_type"), 9: ("rejected", "wrong_type"), 10: ("rejected", "wrong_type"),
        11: ("rejected", "wrong_type"), 12: ("rejected", "field_count"), 13: ("rejected", "empty_line"),
        14: ("rejected", "is_blank"), 15: ("inserted", ""), 16: ("rejected", "malformed_line"),
    }
    assert all(r["message"] for r in report["rows"] if r["status"] == "rejected")
    assert report["counts"] == {"lines": 15, "inserted": 2, "updated": 0, "not_found": 0, "rejected": 13}
    assert sorted(runner.call(sandbox.contacts)) == ["ok1@example.com", "ok2@example.com"]
    assert runner.call(sandbox.contact, "ok2@example.com")["custom_fields"] == {"visits": "-3", "ltv": "1.01"}


def test_a_quoted_cell_over_128_kb_is_read_like_any_other(make):
    """Python's csv reader refuses a field over 131,072 characters by default: a text custom field
    of 200 KB written quoted (it holds a quote or the separator) was rejected as `malformed_line`
    ("invalid CSV quoting: field larger than field limit"), and one holding an odd number of
    quotes made the whole file a `multi_line_value`. Splio documents no such limit."""
    runner, sandbox = make(insert_allowed=True)
    big = 'say "hi"; ' * 20_000  # 200,000 characters, quoted in the file
    cell = '"' + big.replace('"', '""') + '"'
    report = import_file(runner, sandbox, "sandbox_contacts_big.csv",
                         f"email;plan\nbig@example.com;{cell}\nok@example.com;p\n")
    assert report["status"] == "processed"
    assert rows(report) == [(2, "big@example.com", "inserted"), (3, "ok@example.com", "inserted")]
    assert runner.call(sandbox.contact, "big@example.com")["custom_fields"] == {"plan": big}


@pytest.mark.parametrize("name, data, code", [
    ("bom", b"\xef\xbb\xbfemail\na@example.com\n", "bom"),
    ("multiline", b'email;firstname\na@example.com;"two\nlines"\nb@example.com;B\n', "multi_line_value"),
    ("crlf_multiline", b'email;firstname\r\na@example.com;"two\r\nlines"\r\n', "multi_line_value"),
    ("unknown_column", b"email;firstname;favourite_colour\na@example.com;A;red\n", "unknown_column"),
    ("missing_email", b"firstname;lastname\nA;B\n", "missing_column"),
    ("duplicate_column", b"email;plan;plan\na@example.com;x;y\n", "bad_header"),
    ("comma_separated", b"email,firstname\na@example.com,A\n", "unknown_column"),
    ("not_utf8", "email;firstname\na@example.com;Andr\u00e9\n".encode("latin-1"), "not_utf8"),
    ("empty", b"", "empty_file"),
    ("custom_by_id", b"email;c3\na@example.com;pro\n", "unknown_column"),
])
def test_whole_file_rejections_import_nothing(make, name, data, code):
    runner, sandbox = make(insert_allowed=True)
    file_name = f"sandbox_contacts_{name}.csv"
    report = import_file(runner, sandbox, file_name, data)
    assert report["status"] == "rejected" and report["reason"]["code"] == code, report["reason"]
    assert report["rows"] == [] and report["counts"]["lines"] == 0
    assert runner.stats()["contacts"] == 0
    assert runner.stats()["files_rejected"] == {file_name: report["reason"]}
    assert listdir(sandbox, "/imports/processed") == [file_name]


def test_line_limit(make):
    """Splio: "limit the size of your file to 200K lines": the header is one of the file's lines."""
    runner, sandbox = make(insert_allowed=True)
    over = "email\n" + "".join(f"u{i}@example.com\n" for i in range(200_000))  # 200,001 lines
    report = import_file(runner, sandbox, "sandbox_contacts_big.csv", over)
    assert report["reason"]["code"] == "too_many_lines" and runner.stats()["contacts"] == 0
    runner2, small = make(insert_allowed=True, max_lines=3)
    at_limit = import_file(runner2, small, "sandbox_contacts_3.csv", "email\na@x.co\nb@x.co\n")
    assert at_limit["status"] == "processed" and at_limit["counts"]["inserted"] == 2
    over_limit = import_file(runner2, small, "sandbox_contacts_4.csv", "email\na@x.co\nb@x.co\nc@x.co\n")
    assert over_limit["reason"]["code"] == "too_many_lines"


def test_file_name_rule(make):
    runner, sandbox = make(insert_allowed=True, universe="acme")
    for name in ("sandbox_contacts_1.csv", "acme_orders_1.csv", "acme_contacts_1.txt"):
        report = import_file(runner, sandbox, name, "email\na@example.com\n")
        assert report["reason"]["code"] == "file_name" and "acme_contacts_*.csv" in report["reason"]["message"]
    assert import_file(runner, sandbox, "acme_contacts_1.csv", "email\na@example.com\n")["status"] == "processed"
    runner2, custom = make(insert_allowed=True, file_name_pattern="{universe}-*.CSV")
    assert import_file(runner2, custom, "sandbox-x.CSV", "email\na@example.com\n")["status"] == "processed"


def test_separator_and_custom_field_columns_options(make):
    runner, sandbox = make(insert_allowed=True, separator=",", custom_field_columns="id")
    report = import_file(runner, sandbox, "sandbox_contacts_c.csv", 'email,c3,firstname\na@example.com,pro,"A, B"\n')
    assert rows(report) == [(2, "a@example.com", "inserted")]
    contact = runner.call(sandbox.contact, "a@example.com")
    assert contact["custom_fields"] == {"plan": "pro"} and contact["firstname"] == "A, B"


def test_empty_cells_keep_option(make):
    runner, sandbox = make(empty_cells="keep")
    runner.call(sandbox.seed, {"email": "a@example.com", "firstname": "A", "lastname": "L", "plan": "gold"})
    import_file(runner, sandbox, "sandbox_contacts_d.csv", "email;firstname;lastname;plan\na@example.com;;New;\n")
    contact = runner.call(sandbox.contact, "a@example.com")
    assert (contact["firstname"], contact["lastname"], contact["custom_fields"]) == ("A", "New", {"plan": "gold"})


def test_temporary_and_hidden_files_are_ignored_until_renamed(make):
    runner, sandbox = make(insert_allowed=True)
    for name in ("sandbox_contacts_e.csv.part", ".sandbox_contacts_e.csv", "sandbox_contacts_e.csv.tmp"):
        upload(sandbox, name, "email\na@example.com\n", rename=False)
    assert runner.call(sandbox.process_now) == []
    assert listdir(sandbox, DROP) == [".sandbox_contacts_e.csv", "sandbox_contacts_e.csv.part",
                                      "sandbox_contacts_e.csv.tmp"]
    assert runner.stats()["files_received"] == [] and runner.stats()["contacts"] == 0

    async def rename() -> None:
        async with connect(sandbox) as conn, conn.start_sftp_client() as sftp:
            await sftp.posix_rename(f"{DROP}/sandbox_contacts_e.csv.part", f"{DROP}/sandbox_contacts_e.csv")
    asyncio.run(rename())
    assert [r["file"] for r in runner.call(sandbox.process_now)] == ["sandbox_contacts_e.csv"]
    assert runner.stats()["contacts"] == 1


def test_a_file_open_for_writing_is_not_picked_up(make):
    runner, sandbox = make(insert_allowed=True)

    async def slow_upload() -> tuple[list, list]:
        async with connect(sandbox) as conn, conn.start_sftp_client() as sftp:
            async with sftp.open(f"{DROP}/sandbox_contacts_f.csv", "wb") as f:
                await f.write(b"email\na@example.com\n")
                while_open = await asyncio.to_thread(runner.call, sandbox.process_now)
                await f.write(b"b@example.com\n")
            after = await asyncio.to_thread(runner.call, sandbox.process_now)
        return while_open, after

    while_open, after = asyncio.run(slow_upload())
    assert while_open == [] and len(after) == 1
    assert rows(after[0]) == [(2, "a@example.com", "inserted"), (3, "b@example.com", "inserted")]


def test_files_are_processed_one_at_a_time_in_name_order(make):
    runner, sandbox = make(insert_allowed=True)
    upload(sandbox, "sandbox_contacts_2.csv", "email;firstname\na@example.com;second\n")
    upload(sandbox, "sandbox_contacts_1.csv", "email;firstname\na@example.com;first\n")
    reports = runner.call(sandbox.process_now)
    assert [r["file"] for r in reports] == ["sandbox_contacts_1.csv", "sandbox_contacts_2.csv"]
    assert [rows(r)[0][2] for r in reports] == ["inserted", "updated"]
    assert runner.call(sandbox.contact, "a@example.com")["firstname"] == "second"


def test_the_poller_imports_without_being_asked(make):
    runner, sandbox = make(insert_allowed=True, poll_interval=0.05)
    upload(sandbox, "sandbox_contacts_g.csv", "email\na@example.com\n")
    deadline = time.monotonic() + 30
    while runner.call(sandbox.report, "sandbox_contacts_g.csv") is None:
        assert time.monotonic() < deadline, "the poller never imported the file"
        time.sleep(0.05)
    assert rows(read_report(sandbox, "sandbox_contacts_g.csv")) == [(2, "a@example.com", "inserted")]


def test_imported_contacts_are_visible_to_the_api(make):
    runner, sandbox = make(insert_allowed=True)
    import_file(runner, sandbox, "sandbox_contacts_h.csv", "email;plan\nh@example.com;pro\n")
    token = auth(runner.url)
    status, _, body = http("GET", runner.url, "/data/contacts/h@example.com", token=token)
    assert status == 200 and body["custom_fields"] == [{"id": 3, "name": "plan", "value": "pro", "data_type": "text"}]


# ---------------------------------------------------------------- SFTP faults
def test_dropped_connection_mid_upload_leaves_a_partial_temp_file_and_no_data(make):
    runner, sandbox = make(insert_allowed=True)
    runner.call(sandbox.sftp_faults.drop_upload_after, 100)
    data = "email\n" + "".join(f"user{i}@example.com\n" for i in range(2000))
    with pytest.raises((OSError, asyncssh.Error)):
        upload(sandbox, "sandbox_contacts_i.csv", data)
    partial = sandbox.root / "imports" / "contacts" / "sandbox_contacts_i.csv.part"
    assert partial.stat().st_size == 100
    assert runner.call(sandbox.process_now) == []
    stats = runner.stats()
    assert stats["contacts"] == 0 and stats["sftp_uploads"]["dropped"] == 1
    assert stats["sftp_faults"] == {"drop_upload": 1}
    upload(sandbox, "sandbox_contacts_i.csv", data)  # the next upload goes through
    assert runner.call(sandbox.process_now)[0]["counts"]["inserted"] == 2000


def test_rename_faults_no_posix_rename_and_a_drop_after_the_rename(make):
    """A server without the posix-rename extension: plain renames, which never replace a file
    (SFTP v3); and a connection dropped once a rename is applied, before its answer."""
    runner, sandbox = make(poll_interval=None)
    runner.call(setattr, sandbox.sftp_faults, "refuse_posix_rename", True)
    runner.call(sandbox.sftp_faults.drop_after_rename, 1)
    drop = sandbox.root / "imports" / "contacts"

    async def steps() -> None:
        async with connect(sandbox) as conn, conn.start_sftp_client() as sftp:
            async with sftp.open(f"{DROP}/a.csv.part", "wb") as f:
                await f.write(b"email\na@example.com\n")
            with pytest.raises(asyncssh.SFTPOpUnsupported):
                await sftp.posix_rename(f"{DROP}/a.csv.part", f"{DROP}/a.csv")
            with pytest.raises((OSError, asyncssh.Error)):  # applied, but the answer never comes
                await sftp.rename(f"{DROP}/a.csv.part", f"{DROP}/a.csv")
        async with connect(sandbox) as conn, conn.start_sftp_client() as sftp:
            async with sftp.open(f"{DROP}/b.csv.part", "wb") as f:
                await f.write(b"email\nb@example.com\n")
            with pytest.raises(asyncssh.SFTPFailure):  # the target exists: not replaced
                await sftp.rename(f"{DROP}/b.csv.part", f"{DROP}/a.csv")

    asyncio.run(steps())
    assert sorted(os.listdir(drop)) == ["a.csv", "b.csv.part"]
    assert (drop / "a.csv").read_bytes() == b"email\na@example.com\n"
    assert runner.stats()["sftp_faults"] == {"drop_after_rename": 1}


def test_refused_logins_fault(make):
    runner, sandbox = make()
    runner.call(sandbox.sftp_faults.refuse_logins, 1)
    with pytest.raises(asyncssh.PermissionDenied):
        asyncio.run(_login(sandbox))
    asyncio.run(_login(sandbox))  # only the next connection was refused
    assert runner.stats()["sftp_logins"]["refused"] >= 1


def test_reject_next_file_fault(make):
    runner, sandbox = make(insert_allowed=True)
    runner.call(sandbox.sftp_faults.reject_next_file, "disk full")
    report = import_file(runner, sandbox, "sandbox_contacts_j.csv", "email\na@example.com\n")
    assert report["reason"] == {"code": "injected", "message": "disk full"}
    assert import_file(runner, sandbox, "sandbox_contacts_k.csv", "email\na@example.com\n")["status"] == "processed"


def test_slow_importer_writes_the_report_only_after_processing(make):
    runner, sandbox = make(insert_allowed=True)
    runner.call(setattr, sandbox.sftp_faults, "importer_delay", 600.0)
    upload(sandbox, "sandbox_contacts_l.csv", "email\na@example.com\n")
    future = asyncio.run_coroutine_threadsafe(sandbox.process_now(), runner._loop)
    deadline = time.monotonic() + 30
    while not runner.stats()["files_received"]:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    # taken from the drop folder, but neither imported nor reported while the importer is busy
    assert listdir(sandbox, DROP) == [] and listdir(sandbox, "/imports/reports") == []
    assert runner.stats()["contacts"] == 0 and not future.done()
    runner.call(setattr, sandbox.sftp_faults, "importer_delay", 0.0)
    assert future.result(30)[0]["status"] == "processed"
    assert runner.stats()["contacts"] == 1


# ---------------------------------------------------------------- REST helpers
def http(method: str, url: str, path: str, body: Any = None, *, token: str | None = None,
         raw: bytes | None = None, content_type: str | None = "application/json") -> tuple[int, dict, Any]:
    async def go():
        headers = {"Content-Type": content_type} if content_type else {}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        data = raw if raw is not None else (orjson.dumps(body) if body is not None else None)
        async with aiohttp.ClientSession() as session:
            async with session.request(method, url + path, data=data, headers=headers) as resp:
                payload = await resp.read()
                try:
                    parsed = orjson.loads(payload)
                except orjson.JSONDecodeError:
                    parsed = payload.decode(errors="replace")
                return resp.status, dict(resp.headers), parsed
    return asyncio.run(go())


def auth(url: str, key: str = KEY) -> str:
    status, _, body = http("POST", url, "/authenticate", {"api_key": key})
    assert status == 200, body
    return body["token"]


def error_of(body: dict) -> tuple[int, str, str]:
    err = body["errors"][0]
    assert set(err) == {"error_key", "error", "error_description"}
    return body["status"], err["error_key"], err["error"]


# ---------------------------------------------------------------- REST: auth
def test_authentication_and_token_expiry(make):
    runner, sandbox = make(token_lifetime=3600)
    status, _, body = http("POST", runner.url, "/authenticate", {"api_key": "wrong"})
    assert status == 400 and error_of(body) == (400, "username", "authentication.failed")
    status, _, body = http("POST", runner.url, "/authenticate", {})
    assert status == 400 and error_of(body) == (400, "api_key", "is_blank")
    token = auth(runner.url)
    assert token.count(".") == 2
    assert http("GET", runner.url, "/universes/unique-key", token=token)[2] == {"unique_key": "email"}
    for bad in (None, "garbage", token[:-2] + ("AA" if not token.endswith("AA") else "BB")):
        status, _, body = http("GET", runner.url, "/universes/unique-key", token=bad)
        assert status == 401 and error_of(body)[2] == "authentication.failed"
    runner.call(sandbox.advance_time, 3601)
    status, _, body = http("GET", runner.url, "/universes/unique-key", token=token)
    assert status == 401 and "expired" in body["errors"][0]["error_description"]
    assert http("GET", runner.url, "/universes/unique-key", token=auth(runner.url))[0] == 200


# ---------------------------------------------------------------- REST: contacts
def test_create_one_contact_then_already_exists(make):
    runner, sandbox = make()
    token = auth(runner.url)
    body = {"email": "Jane@Example.com", "firstname": "Jane", "language": "en",
            "custom_fields": [{"id": 3, "value": "pro"}, {"id": 4, "value": 7}]}
    status, _, created = http("POST", runner.url, "/data/contacts", body, token=token)
    assert status == 201 and created["email"] == "jane@example.com" and created["firstname"] == "Jane"
    assert {c["name"]: c["value"] for c in created["custom_fields"]} == {"plan": "pro", "visits": "7"}
    status, _, again = http("POST", runner.url, "/data/contacts", body, token=token)
    assert status == 400 and "already exists" in again["errors"][0]["error_description"]
    assert runner.stats()["created"]["api"] == 1


def test_bulk_is_create_only_with_207_items(make):
    runner, sandbox = make()
    runner.call(sandbox.seed, {"email": "hhogan@gmail.com", "firstname": "Hulk"})
    token = auth(runner.url)
    contacts = [{"email": "hhogan@gmail.com", "firstname": "Changed"}, {"email": "jdoe@msn.com"},
                {"email": "JDOE@msn.com", "lastname": "Twice"}]
    status, _, body = http("POST", runner.url, "/data/contacts/bulk", {"contacts": contacts}, token=token)
    assert status == 207
    assert body["errors"] == 2 and body["status"] is None and isinstance(body["time"], int)
    assert body["items"] == [
        {"contact_id": "hhogan@gmail.com", "code": 400,
         "description": "Contact with unique key hhogan@gmail.com already exists"},
        {"contact_id": "jdoe@msn.com", "code": 201, "description": ""},
        {"contact_id": "jdoe@msn.com", "code": 400, "description": "Contact with unique key jdoe@msn.com already exists"},
    ]
    assert runner.call(sandbox.contact, "hhogan@gmail.com")["firstname"] == "Hulk"  # bulk never updates
    assert runner.call(sandbox.contact, "jdoe@msn.com")["lastname"] == ""


@pytest.mark.parametrize("contacts, status, error_key, error", [
    ([{"email": "ok@example.com"}, {"email": "bad-email"}], 400, "contacts[1].email", "wrong_email"),
    ([{"email": "ok@example.com"}, "not an object"], 400, "contacts[1]", "wrong_type"),
    ([{"email": "a@example.com", "custom_fields": [{"id": 7, "value": "2024-01-31"}]}], 400,
     "contacts[0].custom_fields[0].value", "wrong_type"),
    ([{"email": "a@example.com", "custom_fields": [{"id": 145, "value": "x"}]}], 400,
     "contacts[0].custom_fields[0].id", "wrong_value"),
    ([{"email": "a@example.com", "custom_fields": [{"name": "plan", "value": "x"}]}], 400,
     "contacts[0].custom_fields[0].id", "is_blank"),
    ([{"email": "a@example.com", "language": "xx"}], 400, "contacts[0].language", "wrong_value"),
    ([{"email": "a@example.com", "favourite": "red"}], 400, "contacts[0].favourite", "wrong_value"),
    # the Swagger's custom field and list items hold id, name and value (lists: id, name) only
    ([{"email": "a@example.com", "custom_fields": [{"id": 3, "value": "x", "field_key": "c3"}]}], 400,
     "contacts[0].custom_fields[0].field_key", "wrong_value"),
    ([{"email": "a@example.com", "lists": [{"id": 1, "subscribed": True}]}], 400,
     "contacts[0].lists[0].subscribed", "wrong_value"),
    ([{"email": "a@example.com"}, {"firstname": "no key"}], 503, "internal_error", "internal_error"),
    ([], 400, "contacts", "wrong_value"),
    ([{"email": f"u{i}@example.com"} for i in range(1001)], 400, "contacts", "wrong_value"),
])
def test_an_invalid_item_rejects_the_whole_bulk(make, contacts, status, error_key, error):
    runner, sandbox = make()
    got_status, _, body = http("POST", runner.url, "/data/contacts/bulk", {"contacts": contacts},
                               token=auth(runner.url))
    assert (got_status, *error_of(body)) == (status, status, error_key, error)
    assert runner.stats()["contacts"] == 0


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", None])
def test_bodies_not_sent_as_json_are_refused(make, content_type):
    """A JSON body sent as text, as a form or without Content-Type (aiohttp then says
    application/octet-stream) is refused with 415 and Splio's envelope, nothing written: it was read
    and applied, so a client that dropped the header passed every Splio API test."""
    runner, sandbox = make(insert_allowed=True)
    runner.call(sandbox.seed, {"email": "a@example.com", "firstname": "A"})
    token = auth(runner.url)
    for method, path, body in (("POST", "/authenticate", {"api_key": KEY}),
                               ("POST", "/data/contacts/bulk", {"contacts": [{"email": "new@example.com"}]}),
                               ("PATCH", "/data/contacts/a@example.com", {"firstname": "Changed"})):
        status, _, answer = http(method, runner.url, path, body, token=token, content_type=content_type)
        assert status == 415, (method, path, status, answer)
        assert error_of(answer) == (415, "body", "wrong_value")
    assert runner.call(sandbox.contact, "new@example.com") is None
    assert runner.call(sandbox.contact, "a@example.com")["firstname"] == "A"
    status, _, _ = http("PATCH", runner.url, "/data/contacts/a@example.com", {"firstname": "B"}, token=token,
                        content_type="application/json; charset=utf-8")
    assert status == 200
    lenient, lenient_sandbox = make(require_json_content_type=False)  # the lenient choice stays available
    status, _, _ = http("POST", lenient.url, "/authenticate", {"api_key": KEY}, content_type="text/plain")
    assert status == 200


def test_custom_fields_by_name_option(make):
    runner, sandbox = make(custom_fields_by_name=True)
    body = {"contacts": [{"email": "a@example.com", "custom_fields": [{"name": "plan", "value": "x"}]}]}
    status, _, result = http("POST", runner.url, "/data/contacts/bulk", body, token=auth(runner.url))
    assert status == 207 and result["items"][0]["code"] == 201
    assert runner.call(sandbox.contact, "a@example.com")["custom_fields"] == {"plan": "x"}


def test_patch_updates_one_contact_and_404s_unknown_ones(make):
    runner, sandbox = make()
    runner.call(sandbox.seed, {"email": "a@example.com", "firstname": "A", "plan": "free"})
    token = auth(runner.url)
    status, _, body = http("PATCH", runner.url, "/data/contacts/A@example.com",
                           {"lastname": "Smith", "custom_fields": [{"id": 3, "value": "pro"}]}, token=token)
    assert status == 200 and body["lastname"] == "Smith" and body["firstname"] == "A"
    assert runner.call(sandbox.contact, "a@example.com")["custom_fields"] == {"plan": "pro"}
    status, _, body = http("PATCH", runner.url, "/data/contacts/nobody@example.com", {"lastname": "X"}, token=token)
    assert status == 404
    assert body == {"status": 404, "errors": [{"error_key": "id", "error": "wrong_value",
                                               "error_description": "Contact not found for given identifier."}]}
    assert runner.call(sandbox.contact, "nobody@example.com") is None
    status, _, body = http("PATCH", runner.url, "/data/contacts/a@example.com", {"email": "b@example.com"},
                           token=token)
    assert status == 400 and error_of(body)[1:] == ("email", "wrong_contact_key")
    internal_id = runner.call(sandbox.contact, "a@example.com")["id"]
    status, _, body = http("PATCH", runner.url, f"/data/contacts/{internal_id}?key=internal_id",
                           {"firstname": "Z"}, token=token)
    assert status == 200 and body["firstname"] == "Z"
    status, _, body = http("GET", runner.url, "/data/contacts/a@example.com", token=token)
    assert status == 200 and body["firstname"] == "Z" and body["lastname"] == "Smith"
    assert http("GET", runner.url, "/data/contacts/nobody@example.com", token=token)[0] == 404
    assert runner.stats()["updated"]["api"] == 2


def test_fields_and_unique_key(make):
    runner, sandbox = make()
    token = auth(runner.url)
    status, _, body = http("GET", runner.url, "/data/fields/contacts", token=token)
    assert status == 200
    custom = [(e["id"], e["name"], e["field_key"]) for e in body["elements"] if not e["is_system"]]
    assert custom == [(3, "plan", "c3"), (4, "visits", "c4"), (5, "ltv", "c5"), (7, "birthday", "c7")]
    assert {"email", "firstname", "lastname", "language", "cellphone"} <= {
        e["name"] for e in body["elements"] if e["is_system"]}
    status, _, created = http("POST", runner.url, "/data/fields", {"scope": "contacts", "name": "score",
                                                                     "type": "int"}, token=token)
    assert status == 201 and created == {"id": 8, "name": "score", "data_type": "int"}
    status, _, body = http("POST", runner.url, "/data/fields", {"scope": "contacts", "name": "score",
                                                                  "type": "int"}, token=token)
    assert status == 400


def test_field_list_query_parameters_can_be_refused(make):
    """Splio's Swagger lists no query parameter on GET /data/fields/contacts: the option holds a client
    to that (400, and the whole list in one answer)."""
    runner, sandbox = make(fields_list_query="refused")
    token = auth(runner.url)
    status, _, body = http("GET", runner.url, "/data/fields/contacts?per_page=5&page_number=1", token=token)
    assert status == 400 and error_of(body) == (400, "page_number", "wrong_value")
    for n in range(120):
        runner.call(sandbox.add_custom_field, f"f{n}", "text")
    status, _, body = http("GET", runner.url, "/data/fields/contacts", token=token)
    assert status == 200 and len(body["elements"]) == body["count_element"] > 120


def test_email_case_option_and_field_types_option(make):
    runner, sandbox = make(lowercase_emails=False, fields_data_type=True)
    token = auth(runner.url)
    status, _, body = http("POST", runner.url, "/data/contacts", {"email": "Mixed@Example.com"}, token=token)
    assert status == 201 and body["email"] == "Mixed@Example.com"
    assert http("GET", runner.url, "/data/contacts/Mixed@Example.com", token=token)[0] == 200
    assert http("GET", runner.url, "/data/contacts/mixed@example.com", token=token)[0] == 404
    _, _, fields = http("GET", runner.url, "/data/fields/contacts?per_page=5&page_number=2", token=token)
    assert fields["count_element"] == 10 and len(fields["elements"]) == 5
    assert [(e["name"], e["data_type"]) for e in fields["elements"][1:]] == [
        ("plan", "text"), ("visits", "int"), ("ltv", "double"), ("birthday", "date")]


# ---------------------------------------------------------------- REST: limits and faults
class FrozenClock:
    def __init__(self, now: float = 1000.25):
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_rate_limits_with_headers_and_429(make):
    runner, sandbox = make(limits=True)
    token = auth(runner.url)
    clock = FrozenClock()
    runner.call(setattr, sandbox.api.limiter, "clock", clock)
    seen = []
    for _ in range(11):
        status, headers, body = http("GET", runner.url, "/universes/unique-key", token=token)
        seen.append((status, headers.get("rateLimit-limit"), headers.get("rateLimit-remaining")))
    assert seen[:10] == [(200, "10", str(9 - i)) for i in range(10)]
    assert seen[10] == (429, "10", "0")
    assert body == {"message": "API rate limit exceeded"}
    assert headers["rateLimit-reset"] == "1" and "Retry-After" not in headers
    clock.now += 1.0  # the next window
    assert http("GET", runner.url, "/universes/unique-key", token=token)[0] == 200
    # data/contacts: 20 per second, bulk shares the bucket
    for i in range(20):
        assert http("GET", runner.url, "/data/contacts/x@example.com", token=token)[0] == 404
    status, headers, _ = http("POST", runner.url, "/data/contacts/bulk", {"contacts": [{"email": "a@b.co"}]},
                              token=token)
    assert status == 429 and headers["rateLimit-limit"] == "20"
    assert runner.stats()["responses_429"] == 2


def test_bulk_own_bucket_option(make):
    runner, sandbox = make(limits=True, bulk_shares_contacts_limit=False, rate_limits={"contacts": 2, "other": 10})
    token = auth(runner.url)
    runner.call(setattr, sandbox.api.limiter, "clock", FrozenClock())
    assert [http("GET", runner.url, "/data/contacts/x@example.com", token=token)[0] for _ in range(3)] == [404, 404, 429]
    status, _, _ = http("POST", runner.url, "/data/contacts/bulk", {"contacts": [{"email": "a@b.co"}]}, token=token)
    assert status == 207


def test_rest_faults(make):
    runner, sandbox = make()
    token = auth(runner.url)
    runner.script("contacts_bulk", throttle(retry_after=3), error(503), reset(), delay(0.01))
    body = {"contacts": [{"email": "a@example.com"}]}
    status, headers, answer = http("POST", runner.url, "/data/contacts/bulk", body, token=token)
    assert status == 429 and answer == {"message": "API rate limit exceeded"} and headers["rateLimit-reset"] == "3"
    status, _, answer = http("POST", runner.url, "/data/contacts/bulk", body, token=token)
    assert status == 503 and "<html>" in answer
    with pytest.raises(aiohttp.ClientError):
        http("POST", runner.url, "/data/contacts/bulk", body, token=token)
    assert runner.stats()["contacts"] == 0  # the reset came before the write
    assert http("POST", runner.url, "/data/contacts/bulk", body, token=token)[0] == 207
    assert runner.stats()["faults"] == {"throttle": 1, "error": 1, "reset": 1, "delay": 1}


def test_reset_forgets_everything(make):
    runner, sandbox = make(insert_allowed=True)
    import_file(runner, sandbox, "sandbox_contacts_m.csv", "email\na@example.com\n")
    auth(runner.url)
    runner.reset()
    stats = runner.stats()
    assert stats["contacts"] == 0 and stats["requests"] == 0 and stats["files_received"] == []
    assert listdir(sandbox, "/imports/reports") == [] and listdir(sandbox, "/imports/processed") == []


def test_options_are_checked():
    with pytest.raises(ValueError):
        SplioOptions(separator='"')
    with pytest.raises(ValueError):
        SplioOptions(unique_key="cellphone")
    with pytest.raises(ValueError):
        SplioOptions(drop_dir="/imports/../x")
    with pytest.raises(ValueError):
        SplioSandbox(KEY, custom_fields={"x": "boolean"})
    with pytest.raises(ValueError):
        SplioSandbox([])
    assert isinstance(build_sandbox("splio", api_key=KEY, poll_interval=None), SplioSandbox)


# ---------------------------------------------------------------- command line
def _read_lines(proc: subprocess.Popen, count: int, timeout: float = 20.0) -> list[str]:
    """The first `count` lines of stdout (read in a thread: a text pipe buffers past select())."""
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: [lines.put(proc.stdout.readline()) for _ in range(count)], daemon=True).start()
    try:
        return [lines.get(timeout=timeout) for _ in range(count)]
    except queue.Empty:
        raise AssertionError("the sandbox did not print its banner") from None


def test_module_entry_point_serves_sftp_and_api_and_stops_on_sigterm():
    env = {**os.environ, "SPLIO_SFTP_PW": PASSWORD}
    args = [sys.executable, "-m", "dinsync.sandbox", "splio", "--sftp-port", "0", "--http-port", "0",
            "--api-key", KEY, "--sftp-user", USER, "--sftp-password-env", "SPLIO_SFTP_PW", "--insert-allowed",
            "--poll-interval", "0.05"]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        line, host_line, settings_line = _read_lines(proc, 3)
        match = re.fullmatch(r"listening sftp://127\.0\.0\.1:(\d+) (http://127\.0\.0\.1:\d+)\n", line)
        assert match, line
        assert host_line.startswith(f"known_hosts [127.0.0.1]:{match.group(1)} ssh-ed25519 ")
        # what dinsync.yml must say to reach it: a README example's `universe: acme` is refused here
        assert settings_line == (f"dinsync.yml: universe: sandbox, sftp.username: {USER}, sftp.directory: {DROP}, "
                                 "sftp.reports_directory: /imports/reports; imports create unknown contacts "
                                 "(mode: insert or update)\n")
        known_hosts = asyncssh.import_known_hosts(host_line.split(" ", 1)[1])

        async def drop() -> None:
            async with asyncssh.connect("127.0.0.1", int(match.group(1)), username=USER, password=PASSWORD,
                                        known_hosts=known_hosts, agent_path=None, client_keys=None) as conn:
                async with conn.start_sftp_client() as sftp:
                    async with sftp.open(f"{DROP}/sandbox_contacts_cli.csv.part", "wb") as f:
                        await f.write(b"email\ncli@example.com\n")
                    await sftp.posix_rename(f"{DROP}/sandbox_contacts_cli.csv.part", f"{DROP}/sandbox_contacts_cli.csv")
        asyncio.run(drop())
        url = match.group(2)
        token = auth(url)
        deadline = time.monotonic() + 30
        while http("GET", url, "/data/contacts/cli@example.com", token=token)[0] != 200:
            assert time.monotonic() < deadline, "the file was never imported"
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
        assert proc.returncode == 0, err
        assert KEY not in out + err + line and PASSWORD not in out + err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_module_entry_point_requires_an_sftp_credential():
    proc = subprocess.run([sys.executable, "-m", "dinsync.sandbox", "splio", "--api-key", KEY,
                           "--sftp-password-env", "DINSYNC_TEST_UNSET_VARIABLE"],
                          capture_output=True, text=True, timeout=30,
                          env={k: v for k, v in os.environ.items() if k != "DINSYNC_TEST_UNSET_VARIABLE"})
    assert proc.returncode == 2 and "DINSYNC_TEST_UNSET_VARIABLE" in proc.stderr
