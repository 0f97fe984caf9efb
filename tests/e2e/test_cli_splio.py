"""Splio end to end through the CLI, on both transports, against the Splio sandbox on 127.0.0.1:
a real asyncssh SFTP server with an importer that writes reports, and the REST API."""
from __future__ import annotations

import asyncio
import os
import time
import tracemalloc

import aiohttp
import asyncssh
import orjson
import pytest

from dinsync.destinations.base import Delivered, Request
from dinsync.destinations.splio.settings import SftpSettings
from dinsync.destinations.splio.sftp import SftpTransport
from dinsync.destinations.splio.values import CsvChunk
from dinsync.errors import DestinationUnreachableError
from dinsync.sandbox.faults import error, reset, respond, throttle
from tests.e2e.splio_project import (API_KEY, CUSTOM_FIELDS, FIELDS, SFTP_PASSWORD, SplioProject, expected_contact,
                                     make_sandbox, subset)
from tests.spec_validation import validate_splio_request


@pytest.fixture(scope="module")
def client_key() -> asyncssh.SSHKey:
    return asyncssh.generate_private_key("ssh-ed25519")


@pytest.fixture
def splio_requests(monkeypatch):
    """(method, path, body) of every HTTP request the client sends; validated against Splio's spec."""
    seen: list[tuple[str, str, bytes | None]] = []
    original = aiohttp.ClientSession.request

    def request(self, method, url, **kwargs):
        u = str(url)
        seen.append((method, "/" + u.split("/", 3)[3], kwargs.get("data")))
        return original(self, method, url, **kwargs)

    monkeypatch.setattr(aiohttp.ClientSession, "request", request)
    yield seen
    for method, path, body in seen:
        validate_splio_request(method, path, body)


@pytest.fixture
def make_project(tmp_path, client_key, monkeypatch):
    monkeypatch.setenv("DINSYNC_CHECKPOINT_SECONDS", "0")
    monkeypatch.setenv("DINSYNC_OUTCOME_TIMEOUT_SECONDS", "20")
    threads = []

    def make(**options) -> SplioProject:
        thread, sandbox = make_sandbox(client_key, **options)
        threads.append(thread)
        return SplioProject(tmp_path / f"proj{len(threads)}", thread, sandbox)

    yield make
    for thread in threads:
        thread.stop()


def expected(ids, api: bool = False) -> dict[str, dict]:
    return {f"user{i}@example.com": expected_contact(i, api) for i in ids}


def held(p: SplioProject) -> dict[str, dict]:
    return {email: subset(c) for email, c in p.contacts().items()}


# --- SFTP -----------------------------------------------------------------------------------------
def test_sftp_first_sync_noop_changed_only_and_rows_leaving(make_project):
    p = make_project(insert_allowed=True)
    p.configure(transport="sftp", mode="insert")
    p.seed(30)
    first = p.sync()
    [run] = first["runs"]
    assert first["exit_code"] == 0, first["output"]
    assert (run["status"], run["added"], run["acknowledged"], run["pending"]) == ("success", 30, 30, 0)
    assert held(p) == expected(range(1, 31))
    assert len(p.snapshot()) == 30
    [name] = p.stats()["files_received"]
    assert name.startswith("sandbox_contacts_splio_people_") and name.endswith("_0001.csv")

    noop = p.sync()["runs"][0]
    assert (noop["sent"], noop["status"]) == (0, "success")
    assert len(p.stats()["files_received"]) == 1  # nothing uploaded

    p.sql("update main.people set plan = 'pro' where id <= 3")
    p.sql("delete from main.people where id = 30")
    third = p.sync()["runs"][0]
    assert (third["changed"], third["removed"], third["acknowledged"]) == (3, 1, 3)
    last = p.stats()["files_received"][-1]
    assert p.sandbox.report(last)["columns"] == ["email", "plan"]  # changed fields only
    assert p.contact("user1@example.com")["custom_fields"]["plan"] == "pro"
    assert subset(p.contact("user4@example.com")) == expected_contact(4)
    assert p.contact("user30@example.com") is not None  # not deleted in Splio
    assert "user30@example.com" not in p.snapshot()
    assert not [n for n in p.drop_folder()], "files left in the drop folder"


def test_sftp_update_mode_updates_existing_contacts_only(make_project):
    p = make_project(insert_allowed=False)
    p.thread.call(p.sandbox.seed, *[{"email": f"user{i}@example.com", "firstname": "old"} for i in range(1, 11)])
    p.configure(transport="sftp", mode="update", max_rejected_pct=60)
    p.seed(20)
    data = p.sync()
    [run] = data["runs"]
    assert (run["status"], run["acknowledged"], run["not_found"]) == ("success", 10, 10), data["output"]
    assert set(p.contacts()) == {f"user{i}@example.com" for i in range(1, 11)}
    assert p.contact("user2@example.com")["firstname"] == "Name 2"
    assert p.snapshot() == {f"user{i}@example.com" for i in range(1, 11)}
    reasons = {k: (s, r) for k, s, r in p.rejections()}
    status, reason = reasons["user15@example.com"]
    assert status == "not_found" and "does not create contacts" in reason
    again = p.sync()["runs"][0]  # not-found rows are tried again
    assert (again["sent"], again["not_found"]) == (10, 10)


def test_sftp_update_mode_on_an_account_that_inserts_fails_loudly(make_project):
    p = make_project(insert_allowed=True)
    p.thread.call(p.sandbox.seed, *[{"email": f"user{i}@example.com", "firstname": "old"} for i in (1, 2)])
    p.configure(transport="sftp", mode="update")
    p.seed(5)
    data = p.sync()
    assert data["exit_code"] == 1
    assert "update mode" in data["output"] and "allows inserts" in data["output"]
    assert p.snapshot() == {"user1@example.com", "user2@example.com"}  # updated: acknowledged
    created = {k: (s, r) for k, s, r in p.rejections() if s == "failed"}
    assert set(created) == {f"user{i}@example.com" for i in (3, 4, 5)}
    assert all("update mode" in r for _, r in created.values())
    # as the error says: the created contacts' rows are sent again (they exist now: updated)
    again = p.sync()["runs"][0]
    assert (again["status"], again["sent"], again["acknowledged"]) == ("success", 3, 3)
    assert p.snapshot() == {f"user{i}@example.com" for i in range(1, 6)}


def test_sftp_update_mode_creation_reported_after_the_run_fails_the_run_that_reads_it(make_project, monkeypatch):
    """Reports come on Splio's schedule: the one showing contacts created in update mode often
    arrives after the run stopped waiting. The next run reads it from the token and must fail as
    the run itself would have (it ended `success`, the created rows acknowledged)."""
    p = make_project(insert_allowed=True)
    p.thread.call(p.sandbox.seed, *[{"email": f"user{i}@example.com", "firstname": "old"} for i in (1, 2)])
    p.configure(transport="sftp", mode="update")
    p.seed(5)
    monkeypatch.setenv("DINSYNC_OUTCOME_TIMEOUT_SECONDS", "0.3")
    p.thread.call(setattr, p.sandbox.sftp_faults, "importer_delay", 1.5)
    first = p.sync()["runs"][0]
    assert (first["status"], first["pending"]) == ("warning", 5)
    for _ in range(200):  # imported after the run: users 3 to 5 created
        if p.stats()["files_processed"]:
            break
        time.sleep(0.05)
    assert len(p.contacts()) == 5
    p.thread.call(setattr, p.sandbox.sftp_faults, "importer_delay", 0.0)
    monkeypatch.setenv("DINSYNC_OUTCOME_TIMEOUT_SECONDS", "20")
    data = p.sync()
    assert data["exit_code"] == 1, data["output"]
    assert "update mode" in data["output"] and "allows inserts" in data["output"]
    assert data["runs"][0]["sent"] == 0  # stopped before sending: the account creates contacts
    assert p.snapshot() == {"user1@example.com", "user2@example.com"}
    created = {k: (s, r) for k, s, r in p.rejections() if s == "failed"}
    assert set(created) == {f"user{i}@example.com" for i in (3, 4, 5)}
    assert all("update mode" in r for _, r in created.values())
    again = p.sync()["runs"][0]  # once: the report's rows are settled, the created ones sent again
    assert (again["status"], again["sent"], again["acknowledged"]) == ("success", 3, 3)
    assert p.snapshot() == {f"user{i}@example.com" for i in range(1, 6)}


def test_sftp_insert_creates_again_a_contact_deleted_in_splio_with_every_field(make_project):
    """A changed row whose contact was deleted in Splio goes in a file of its changed columns only:
    the import creates the contact with those alone. That row is `not_found` once (not acknowledged:
    the snapshot would say its other fields are in Splio) and the next run sends it whole, so the
    contact gets every field, as over the API. Before, the partial contact was acknowledged and its
    other fields were never sent again."""
    p = make_project(insert_allowed=True)
    p.configure(transport="sftp", mode="insert")
    p.seed(10)
    assert p.sync()["runs"][0]["acknowledged"] == 10
    assert p.thread.call(p.sandbox.store.delete, "user4@example.com")
    p.sql("update main.people set plan = 'pro' where id in (4, 5)")
    second = p.sync()["runs"][0]
    assert (second["sent"], second["acknowledged"], second["not_found"]) == (2, 1, 1), second
    [(status, reason)] = [(s, r) for k, s, r in p.rejections() if k == "user4@example.com"]
    assert status == "not_found" and "only the columns" in reason
    third = p.sync()["runs"][0]
    assert (third["sent"], third["acknowledged"], third["not_found"]) == (1, 1, 0), third
    want = expected_contact(4)
    assert subset(p.contact("user4@example.com")) == {**want, "custom_fields": {**want["custom_fields"], "plan": "pro"}}
    assert p.sync()["runs"][0]["sent"] == 0


def test_sftp_insert_mode_on_an_update_only_account_reports_not_found(make_project):
    p = make_project(insert_allowed=False)
    p.configure(transport="sftp", mode="insert", max_rejected_pct=100)
    p.seed(3)
    run = p.sync()["runs"][0]
    assert (run["not_found"], run["acknowledged"]) == (3, 0)
    assert all("allow inserts" in r for _, _, r in p.rejections())


def test_sftp_hostile_values(make_project):
    p = make_project(insert_allowed=True)
    p.configure(transport="sftp", mode="insert")
    p.seed(8)
    hostile = {1: "semi;colon", 2: 'quo"te ""x""', 3: "emoji 😀 中文 é", 4: "x" * 1_000_000, 5: "multi\nline",
               6: "cr\ronly"}
    for i, v in hostile.items():
        p.sql("update main.people set plan = ? where id = ?", v, i)
    p.sql("update main.people set first_name = repeat('n', 300) where id = 7")  # Splio: max 255
    p.sql("update main.people set plan = 'nul' || chr(0) || 'byte' where id = 8")  # never written raw into a file
    data = p.sync()
    run = data["runs"][0]
    assert (run["acknowledged"], run["rejected"]) == (4, 4), data["output"]
    for i in (1, 2, 3, 4):
        assert p.contact(f"user{i}@example.com")["custom_fields"]["plan"] == hostile[i]
    assert p.contact("user5@example.com") is None and p.contact("user7@example.com") is None
    reasons = {k: r for k, _, r in p.rejections()}
    assert "line break" in reasons["user5@example.com"] and "line break" in reasons["user6@example.com"]
    assert reasons["user7@example.com"].startswith('field "firstname": 300 characters, over the 255 Splio accepts')
    assert reasons["user8@example.com"].startswith('field "plan": the value contains a NUL character')
    assert p.contact("user8@example.com") is None
    assert p.stats()["files_rejected"] == {}  # no line break ever reached a file


def test_sftp_private_key_login_and_file_size_cap(make_project, client_key, tmp_path):
    p = make_project(insert_allowed=True)
    p.env["SPLIO_SFTP_KEY"] = client_key.export_private_key().decode()
    p.configure(transport="sftp", mode="insert", credential="private_key: ${env:SPLIO_SFTP_KEY}", max_rows=7)
    p.seed(20)
    run = p.sync()["runs"][0]
    assert (run["status"], run["acknowledged"], run["requests"]) == ("success", 20, 3)
    assert len(p.stats()["files_processed"]) == 3
    assert p.stats()["sftp_logins"].get("password", 0) == 0
    assert held(p) == expected(range(1, 21))


def test_sftp_private_key_with_a_passphrase(make_project, client_key):
    """ssh-keygen's default: an OpenSSH key encrypted with a passphrase (bcrypt KDF). A wrong
    passphrase says so, and shows neither the passphrase nor the key."""
    p = make_project(insert_allowed=True)
    p.env["SPLIO_SFTP_KEY"] = client_key.export_private_key(passphrase="key-pass-8c2e41").decode()
    p.env["SPLIO_SFTP_KEY_PASSPHRASE"] = "wrong-pass-5a7d09"
    p.configure(transport="sftp", mode="insert", credential="private_key: ${env:SPLIO_SFTP_KEY}\n"
                "      private_key_passphrase: ${env:SPLIO_SFTP_KEY_PASSPHRASE}")
    p.seed(5)
    data = p.sync()
    assert data["exit_code"] == 1
    assert "cannot load sftp.private_key: incorrect passphrase" in data["output"].lower()
    assert "wrong-pass-5a7d09" not in data["output"] and "BEGIN OPENSSH" not in data["output"]
    p.env["SPLIO_SFTP_KEY_PASSPHRASE"] = "key-pass-8c2e41"
    run = p.sync()["runs"][0]
    assert (run["status"], run["acknowledged"]) == ("success", 5), run["error"]
    assert p.stats()["sftp_logins"].get("password", 0) == 0


def test_sftp_wrong_password_is_a_clear_error_and_nothing_is_committed(make_project):
    p = make_project(insert_allowed=True)
    p.env["SPLIO_SFTP_PASSWORD"] = "wrong-password-123"
    p.configure(transport="sftp")
    p.seed(5)
    data = p.sync()
    assert data["exit_code"] == 1
    assert "login refused for user 'dinsync'" in data["output"]
    assert "wrong-password-123" not in data["output"]
    assert p.snapshot() == set() and p.stats()["files_received"] == []
    [(status, error)] = p.sql("select status, error from dinsync.runs")
    assert status == "failed" and "login refused" in error


def test_sftp_a_sync_paused_for_its_login_stays_paused_until_the_login_works(make_project):
    """A run refused by the SFTP login pauses the sync (culprit credentials), but the check that
    lifts the pause asked nothing over SFTP: every next `dinsync sync` said "resumed: its checks
    pass again", ran, failed and paused the sync again (channels heard paused, resumed, paused),
    and `dinsync validate` said OK. The pre-flight check logs in and finds the folders."""
    p = make_project(insert_allowed=True)
    p.env["SPLIO_SFTP_PASSWORD"] = "wrong-password-123"
    p.configure(transport="sftp")
    p.seed(5)
    assert p.sync()["exit_code"] == 1
    again = p.sync()
    assert again["exit_code"] == 1, again["output"]
    [run] = again["runs"]
    assert run["status"] == "paused" and "login refused for user 'dinsync'" in run["error"], run
    assert [r[0] for r in p.sql("select status from dinsync.runs")] == ["failed"]
    assert [r[0] for r in p.sql("select event from dinsync.events order by event_at")] == ["paused"]
    checked = p.cli("validate")
    assert checked.exit_code == 3 and "login refused for user 'dinsync'" in checked.stdout, checked.stdout
    assert "wrong-password-123" not in again["output"] + checked.stdout
    p.env["SPLIO_SFTP_PASSWORD"] = SFTP_PASSWORD
    fixed = p.sync()
    assert fixed["exit_code"] == 0 and fixed["runs"][0]["acknowledged"] == 5, fixed["output"]


@pytest.mark.parametrize("known_hosts", ["other key", "missing file"])
def test_sftp_unknown_host_key_is_never_trusted(make_project, tmp_path, known_hosts):
    p = make_project(insert_allowed=True)
    path = tmp_path / "kh"
    if known_hosts == "other key":
        other = asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode()
        path.write_text(f"[127.0.0.1]:{p.sandbox.sftp_port} {other}")
    p.configure(transport="sftp", known_hosts=path)
    p.seed(5)
    data = p.sync()
    assert data["exit_code"] == 1
    assert "ssh-keyscan" in data["output"] and str(path) in data["output"]
    assert p.snapshot() == set()
    assert p.stats()["sftp_uploads"] == {}


def test_sftp_connection_dropped_mid_upload_is_retried_from_the_spool(make_project):
    p = make_project(insert_allowed=True)
    p.configure(transport="sftp")
    p.seed(50)
    p.thread.call(p.sandbox.sftp_faults.drop_upload_after, 100)
    run = p.sync()["runs"][0]
    assert (run["status"], run["acknowledged"]) == ("success", 50)
    stats = p.stats()
    assert stats["sftp_uploads"]["dropped"] == 1 and len(stats["files_processed"]) == 1
    assert held(p) == expected(range(1, 51))
    assert p.drop_folder() == []  # the partial upload was overwritten, then renamed


@pytest.mark.parametrize("posix_rename", [False, True])
def test_sftp_connection_dropped_after_the_rename_is_a_delivered_file(make_project, posix_rename):
    """The rename was applied, its answer lost. The retry must not upload the file again: without
    posix-rename the plain rename then finds the name taken (4 attempts: the run failed and its rows
    were sent again, while Splio imported the file); with it, the file was uploaded and renamed
    twice (Splio's importer may take both)."""
    p = make_project(insert_allowed=True)
    p.configure(transport="sftp")
    p.seed(50)
    p.thread.call(setattr, p.sandbox.sftp_faults, "refuse_posix_rename", not posix_rename)
    p.thread.call(p.sandbox.sftp_faults.drop_after_rename, 1)
    data = p.sync()
    run = data["runs"][0]
    assert (data["exit_code"], run["status"], run["acknowledged"]) == (0, "success", 50), data["output"]
    stats = p.stats()
    assert stats["sftp_faults"] == {"drop_after_rename": 1}
    assert stats["sftp_uploads"]["opened"] == 1 and len(stats["files_received"]) == 1
    assert held(p) == expected(range(1, 51)) and p.drop_folder() == []
    assert p.sync()["runs"][0]["sent"] == 0


def report_polling_settings(p, poll_seconds: float, **extra) -> SftpSettings:
    """The project's SFTP server, its import reports polled every `poll_seconds`."""
    return SftpSettings(host="127.0.0.1", port=p.sandbox.sftp_port, username="dinsync", password=SFTP_PASSWORD,
                        known_hosts=str(p.known_hosts), directory="/imports/contacts",
                        reports_directory="/imports/reports", poll_seconds=poll_seconds, **extra)


async def deliver_one_file(transport) -> str:
    """One contact delivered in one file, closed: the file's name, whose report is then awaited."""
    await transport.begin("people", "insert")
    name = transport._name(1)
    await transport.deliver(Request("sftp_file", "WRITE", "", b"a@example.com\n", ["a@example.com"],
                                    context=CsvChunk(("email",), ["a@example.com"])))
    await transport.close_files()
    return name


@pytest.mark.parametrize("there", [b"email\nsomeone@example.com\n", b"email\na@example.com\n"])
def test_sftp_a_plain_rename_onto_a_taken_name_compares_the_files(make_project, there):
    """A plain rename (no posix-rename) refused because the name is taken: by a file that is not
    ours, the rows fail at once with that reason (not 4 attempts ending "Failure") and the other
    file stays as it is; by our very bytes (an attempt whose answer was lost), the file is
    delivered. No `.part` of ours is left behind either way."""
    p = make_project(insert_allowed=True, poll_interval=None)
    p.thread.call(setattr, p.sandbox.sftp_faults, "refuse_posix_rename", True)
    settings = report_polling_settings(p, poll_seconds=0.05)
    folder = p.sandbox.root / "imports" / "contacts"

    async def upload():
        async with SftpTransport(settings, "sandbox", password=SFTP_PASSWORD) as transport:
            await transport.begin("people", "insert")
            name = transport._name(1)
            (folder / name).write_bytes(there)
            body = b"a@example.com\n"
            await transport.deliver(Request("sftp_file", "WRITE", "", body, ["a@example.com"],
                                            context=CsvChunk(("email",), ["a@example.com"])))
            settled = await transport.settle({name: ["a@example.com"]}, 0.1)
            return name, settled, transport.upload_retries

    name, settled, retries = asyncio.run(upload())
    assert retries == 0 and p.stats()["sftp_uploads"]["opened"] == 1
    assert os.listdir(folder) == [name] and (folder / name).read_bytes() == there
    if b"someone" in there:
        [problem] = settled.problems
        assert (problem.key, problem.status) == ("a@example.com", "failed") and not settled.ok
        assert "already holds a different file named" in problem.reason and name in problem.reason
    else:  # delivered: its report is awaited
        assert settled.pending == {f"{name}/insert": ["a@example.com"]} and not settled.problems


def test_sftp_a_server_gone_while_its_reports_are_awaited_stops_the_wait(make_project, monkeypatch):
    """Once the file is delivered the SFTP server stops answering (a blackhole, a network cut): the
    wait for its import report stops once no poll has reached the server for DINSYNC_OUTAGE_SECONDS,
    a transient error naming the server, the rows pending for the next run. Before: the run polled
    the gone server until the outcome timeout (600 s by default, measured through a network namespace
    whose link went down: 602 s) and ended a `warning` blaming "an import still being processed"."""
    monkeypatch.setenv("DINSYNC_OUTAGE_SECONDS", "0.5")
    p = make_project(insert_allowed=True, poll_interval=None)  # (no report is ever written)
    settings = report_polling_settings(p, poll_seconds=0.05)

    async def deliver_then_lose_the_server():
        async with SftpTransport(settings, "sandbox", password=SFTP_PASSWORD, stall_seconds=2) as transport:
            name = await deliver_one_file(transport)
            p.thread.call(p.sandbox.sftp.stop)
            await transport._disconnect()  # (the session went with the network: new ones are not answered)
            return name, await transport.settle({name: ["a@example.com"]}, 8.0)

    name, settled = asyncio.run(deliver_then_lose_the_server())
    assert settled.pending == {f"{name}/insert": ["a@example.com"]} and not settled.problems
    assert isinstance(settled.error, DestinationUnreachableError), settled.error
    assert f"127.0.0.1:{p.sandbox.sftp_port}" in str(settled.error) and "next run" in str(settled.error)


def test_sftp_one_failed_poll_of_a_slow_poller_does_not_end_the_wait(make_project, monkeypatch):
    """poll_seconds over DINSYNC_OUTAGE_SECONDS (reports polled once a minute, the bound 30 s): the
    silence was counted from the last poll answered, so the first poll that failed (a connection
    reset; the next one gets through) ended the wait, the run failed as "answered no poll of the
    import reports for 60 s". It counts from the first poll not answered."""
    monkeypatch.setenv("DINSYNC_OUTAGE_SECONDS", "0.5")
    p = make_project(insert_allowed=True, poll_interval=None)
    settings = report_polling_settings(p, poll_seconds=0.7)
    polls = []

    async def outcomes(name, mode, known):  # no report yet, a reset, then the report
        polls.append(name)
        if len(polls) == 2:
            raise ConnectionError(f"reading the report of {name} failed after 1 attempt(s): ConnectionResetError")
        return Delivered(["a@example.com"], []) if len(polls) == 3 else None

    async def deliver_then_poll():
        async with SftpTransport(settings, "sandbox", password=SFTP_PASSWORD, stall_seconds=2) as transport:
            name = await deliver_one_file(transport)
            transport._outcomes = outcomes
            return await transport.settle({name: ["a@example.com"]}, 8.0)

    settled = asyncio.run(deliver_then_poll())
    assert settled.error is None, settled.error
    assert (settled.ok, settled.pending, len(polls)) == (["a@example.com"], {}, 3)


def test_sftp_upload_that_keeps_failing_commits_nothing_and_is_resent_next_run(make_project):
    p = make_project(insert_allowed=True)
    p.configure(transport="sftp", sftp_extra="      upload_attempts: 2\n")
    p.seed(50)
    p.thread.call(p.sandbox.sftp_faults.drop_upload_after, 100, 10)  # more drops than upload attempts
    data = p.sync()
    run = data["runs"][0]
    assert (data["exit_code"], run["failed"], run["acknowledged"]) == (1, 50, 0)
    assert p.snapshot() == set() and p.stats()["files_received"] == []  # no partial file imported
    p.thread.call(p.sandbox.sftp_faults.clear)
    again = p.sync()["runs"][0]
    assert (again["status"], again["acknowledged"]) == ("success", 50)
    assert held(p) == expected(range(1, 51))
    assert p.drop_folder() == []  # the .part left behind was swept


# A drop folder that refuses a file (permission denied, or the disk full: SSH_FX_FAILURE) fails
# that file's rows with the server's reason: counted failed, listed by `dinsync rejections`, sent
# again by the next run. A refused permission used to stop the run with the file's rows counted
# neither failed nor pending, none listed, and stashed as awaiting the report of a file that never
# reached Splio ("20 rows still awaited", said the next run).
@pytest.mark.parametrize("kind, reason", [("permission", "Permission denied"),
                                          ("disk_full", "No space left on device")])
def test_sftp_a_file_the_drop_folder_refuses_fails_its_rows_with_the_reason(make_project, kind, reason):
    p = make_project(insert_allowed=True)
    p.configure(transport="sftp", sftp_extra="      upload_attempts: 2\n")
    p.seed(20)
    p.thread.call(p.sandbox.sftp_faults.refuse_uploads, kind, 2)
    data = p.sync()
    run = data["runs"][0]
    assert (data["exit_code"], run["sent"], run["failed"], run["pending"], run["acknowledged"]) == (1, 20, 20, 0, 0)
    assert reason in run["error"]
    assert p.snapshot() == set() and p.stats()["files_received"] == []
    assert p.sql("select count(*) from dinsync.pend_splio_people") == [(0,)]
    assert p.sql("select count(*) from dinsync.rejections where status = 'failed' and reason like ?",
                 f"%{reason}%") == [(20,)]
    again = p.sync()
    assert again["runs"][0]["acknowledged"] == 20 and "still awaited" not in again["output"]
    assert held(p) == expected(range(1, 21))


# A server stuck on a write (its disk, an NFS mount) while the connection stays up and answers SSH
# keepalives: the upload is given up once the server has not answered for `timeout_seconds`, and
# tried again on a new connection. The run used to wait for that answer forever.
def test_sftp_a_server_that_stops_answering_mid_upload_is_given_up_then_retried(make_project):
    p = make_project(insert_allowed=True)
    p.configure(transport="sftp", extra="    timeout_seconds: 2\n")
    p.seed(20)
    p.thread.call(p.sandbox.sftp_faults.stall_uploads, 1)
    data = p.sync()
    run = data["runs"][0]
    assert (data["exit_code"], run["acknowledged"], run["failed"]) == (0, 20, 0)
    assert p.stats()["sftp_faults"]["stall_upload"] == 1
    assert "Traceback" not in data["output"] and "never retrieved" not in data["output"]
    assert held(p) == expected(range(1, 21))


# A report the server refuses to let us read (permission denied) fails the run with that reason and
# the hint, but the file was delivered: its rows stay pending (counted so), and once the report can
# be read the next run settles them without sending them again. The run used to count them neither
# pending nor failed.
def test_sftp_a_report_that_cannot_be_read_leaves_its_rows_pending(make_project):
    p = make_project(insert_allowed=True)
    p.configure(transport="sftp")
    p.seed(20)
    p.thread.call(p.sandbox.sftp_faults.refuse_reads, 1)
    data = p.sync()
    run = data["runs"][0]
    assert (data["exit_code"], run["sent"], run["pending"], run["failed"], run["acknowledged"]) == (1, 20, 20, 0, 0)
    assert "Permission denied" in run["error"] and "sftp.reports_directory" in run["hint"]
    assert p.snapshot() == set()
    again = p.sync()["runs"][0]
    assert (again["status"], again["acknowledged"], again["sent"]) == ("success", 20, 0)
    assert len(p.stats()["files_received"]) == 1
    assert held(p) == expected(range(1, 21))


def test_sftp_rejected_import_fails_its_rows_then_they_are_resent(make_project):
    p = make_project(insert_allowed=True)
    p.configure(transport="sftp")
    p.seed(10)
    p.thread.call(p.sandbox.sftp_faults.reject_next_file, "the import queue is closed")
    data = p.sync()
    run = data["runs"][0]
    assert (data["exit_code"], run["failed"], run["acknowledged"]) == (1, 10, 0)
    [(_, status, reason)] = p.sql("select key, status, reason from dinsync.rejections limit 1")
    assert status == "failed" and "skipped the whole file" in reason and "the import queue is closed" in reason
    again = p.sync()["runs"][0]
    assert (again["status"], again["acknowledged"]) == ("success", 10)


def test_sftp_unknown_custom_column_skips_the_file_with_a_reason(make_project):
    p = make_project(insert_allowed=True)
    p.configure(transport="sftp", fields=FIELDS[:1] + ("  plan: {field: plann, custom: true}",))
    p.seed(4)
    data = p.sync()
    assert data["exit_code"] == 1
    reasons = {r for _, _, r in p.rejections()}
    assert len(reasons) == 1 and "unknown_column" in reasons.pop()
    # the run's error gives an example of why, as for rows an HTTP platform could not take: it
    # said only "4 rows could not be delivered (after retries): ..." (the reason came later, in
    # the import report, and never reached the run's message)
    error = data["runs"][0]["error"]
    assert "4 rows could not be delivered" in error and "unknown_column" in error, error


def test_sftp_a_run_says_when_it_waits_for_the_import_reports(make_project):
    """The wait for import reports (or bulk jobs) may last minutes after the last "sent N/N rows,
    0 acknowledged" line: the run says what it waits for, in logs and beside --json alike."""
    p = make_project(insert_allowed=True)
    p.configure(transport="sftp")
    p.seed(6)
    data = p.sync()
    assert data["runs"][0]["acknowledged"] == 6
    assert ("splio_people: note: waiting for the destination's outcome of 6 rows sent (an import report, bulk "
            "jobs), at most 20 s") in data["output"]  # (the fixture's DINSYNC_OUTCOME_TIMEOUT_SECONDS)
    p.sql("update main.people set plan = 'pro' where id = 1")
    assert "waiting for the destination's outcome of 1 row sent" in p.sync()["output"]
    assert "waiting for" not in p.sync()["output"]  # nothing sent


def test_sftp_outcome_late_then_resolved_from_the_token(make_project, monkeypatch):
    p = make_project(insert_allowed=True)
    p.configure(transport="sftp")
    p.seed(6)
    monkeypatch.setenv("DINSYNC_OUTCOME_TIMEOUT_SECONDS", "0.3")
    p.thread.call(setattr, p.sandbox.sftp_faults, "importer_delay", 1.5)
    data = p.sync()
    run = data["runs"][0]
    assert (data["exit_code"], run["status"], run["pending"], run["acknowledged"]) == (4, "warning", 6, 0)
    assert any("next run reads their outcome" in w for w in run["warnings"]) and p.snapshot() == set()
    [token] = p.stats()["files_received"] or [None]
    assert token is not None

    async def resolve():  # a later run reads the outcome from the token alone
        settings = SftpSettings(host="127.0.0.1", port=p.sandbox.sftp_port, username="dinsync",
                                password=SFTP_PASSWORD, known_hosts=str(p.known_hosts),
                                reports_directory="/imports/reports")
        async with SftpTransport(settings, "sandbox", password=SFTP_PASSWORD) as transport:
            transport.mode = "insert"  # the sync's (begin_run sets it): created contacts are ok
            for _ in range(100):
                found = await transport.resolve([token])
                if found.ok or found.problems:
                    return found
                await asyncio.sleep(0.05)
        return None

    results = asyncio.run(resolve())
    assert results is not None and not results.problems
    assert set(results.ok) == {f"user{i}@example.com" for i in range(1, 7)}
    p.thread.call(setattr, p.sandbox.sftp_faults, "importer_delay", 0.0)
    monkeypatch.setenv("DINSYNC_OUTCOME_TIMEOUT_SECONDS", "20")
    again = p.sync()["runs"][0]  # the next run reads the outcome under the stashed token: nothing resent
    assert (again["status"], again["sent"], again["acknowledged"], again["pending"]) == ("success", 0, 6, 0)
    assert p.snapshot() == {f"user{i}@example.com" for i in range(1, 7)}
    assert p.stats()["files_received"] == [token]
    assert p.sync()["runs"][0]["sent"] == 0



def test_sftp_a_file_sent_in_insert_mode_read_after_the_switch_to_update_is_no_insert_error(make_project,
                                                                                             monkeypatch):
    """A file written while the sync was in insert mode, whose report a run reads after the sync
    switched to update mode (the account's import made update-only meanwhile): the contacts it
    created were meant to be. Before, that run failed before sending anything ("Splio created 5
    contacts ... although sync 'splio_people' is in update mode: the account's SFTP import
    configuration allows inserts"), and the rows, acknowledged, were sent again."""
    monkeypatch.setenv("DINSYNC_OUTCOME_TIMEOUT_SECONDS", "0.3")
    p = make_project(insert_allowed=True, poll_interval=None)
    p.configure(transport="sftp", mode="insert")
    p.seed(5)
    run = p.sync()["runs"][0]
    assert (run["status"], run["pending"]) == ("warning", 5), run
    p.thread.call(p.sandbox.process_now)  # imported once the run stopped waiting: 5 contacts created
    p.thread.call(setattr, p.sandbox.options, "insert_allowed", False)
    p.configure(transport="sftp", mode="update")
    data = p.sync()
    run = data["runs"][0]
    assert (data["exit_code"], run["status"], run["error"]) == (0, "success", None), run
    assert (run["acknowledged"], run["sent"]) == (5, 0), run
    assert p.snapshot() == {f"user{i}@example.com" for i in range(1, 6)}
    # a file written in update mode whose report shows creations still fails the run, as it did
    p.thread.call(setattr, p.sandbox.options, "insert_allowed", True)
    p.sql("insert into main.people select 6, 'user6@example.com', 'N', 'L', '+33612345606', 'fr', 'free', 6, 9.0, "
          "timestamp '2024-01-31 10:00:00'")
    run = p.sync()["runs"][0]
    assert run["pending"] == 1, run
    p.thread.call(p.sandbox.process_now)
    run = p.sync()["runs"][0]
    assert run["status"] == "failed" and "although sync 'splio_people' is in update mode" in run["error"], run

def test_sftp_an_older_files_outcome_does_not_settle_rows_sent_again_since(make_project, monkeypatch):
    """Two runs whose imports were still awaited, the model changed in between: the first file's
    report (the old values, imported) must not commit a row the second file carries again (new
    values, not imported yet): if that file then failed, the snapshot would say the new values were
    delivered and no run would send them. Here the second run sends all but users 2 and 3 (their keys
    are duplicated in the model meanwhile), so both files are awaited when the third run starts."""
    p = make_project(insert_allowed=True, poll_interval=None)  # files are imported on demand only
    p.configure(transport="sftp")
    p.seed(100)
    monkeypatch.setenv("DINSYNC_OUTCOME_TIMEOUT_SECONDS", "0.3")
    first = p.sync()["runs"][0]
    assert (first["status"], first["pending"], first["acknowledged"]) == ("warning", 100, 0)
    p.sql("update main.people set plan = 'enterprise' where id = 1")
    p.sql("insert into main.people select * replace (id + 100 as id) from main.people where id in (2, 3)")
    second = p.sync()["runs"][0]
    assert (second["sent"], second["pending"]) == (98, 98)
    p.sql("delete from main.people where id > 100")
    folder = p.sandbox.root / "imports" / "contacts"
    # the first run's file holds 100 rows, the second's 98 (names order by second, then by a random
    # run tag, so two runs within one second can sort either way)
    lines = {name: (folder / name).read_text().count("\n") for name in p.drop_folder()}
    old, new = sorted(lines, key=lines.get, reverse=True)
    assert lines[old] > lines[new]
    p.thread.call(p.sandbox.importer._process, old)  # only the first file is imported
    assert p.contact("user1@example.com")["custom_fields"]["plan"] == "free"
    third = p.sync()["runs"][0]  # reads the first file's report: users 2 and 3 are delivered
    assert third["acknowledged"] == 2
    assert p.snapshot() == {"user2@example.com", "user3@example.com"}  # not user 1: Splio holds "free"
    p.thread.call(p.sandbox.process_now)  # the later files are imported too
    monkeypatch.setenv("DINSYNC_OUTCOME_TIMEOUT_SECONDS", "20")
    last = p.sync()["runs"][0]
    assert last["status"] == "success" and p.snapshot() == {f"user{i}@example.com" for i in range(1, 101)}
    assert p.contact("user1@example.com")["custom_fields"]["plan"] == "enterprise"
    assert p.sync()["runs"][0]["sent"] == 0



def test_sftp_a_run_files_sort_after_the_waiting_files_of_the_previous_run(make_project, monkeypatch):
    """Two runs within a second, both files awaiting import: the sandbox imports in name order, so
    the second run's file (the new value) must sort last, or the first file would put the old
    value back after dinsync saw both imports succeed."""
    p = make_project(insert_allowed=True, poll_interval=None)
    p.configure(transport="sftp")
    p.seed(5)
    monkeypatch.setenv("DINSYNC_OUTCOME_TIMEOUT_SECONDS", "0.1")
    assert p.sync()["runs"][0]["pending"] == 5
    p.sql("update main.people set plan = 'enterprise' where id = 1")
    assert p.sync()["runs"][0]["pending"] == 5  # awaited rows are sent again, user 1 with its new value
    first, second = p.drop_folder()
    folder = p.sandbox.root / "imports" / "contacts"
    assert "enterprise" in (folder / second).read_text() and "enterprise" not in (folder / first).read_text()
    p.thread.call(p.sandbox.process_now)
    assert p.contact("user1@example.com")["custom_fields"]["plan"] == "enterprise"
    monkeypatch.setenv("DINSYNC_OUTCOME_TIMEOUT_SECONDS", "20")
    run = p.sync()["runs"][0]
    assert (run["status"], run["acknowledged"], run["sent"]) == ("success", 5, 0)


# --- API ------------------------------------------------------------------------------------------
def test_api_insert_first_sync_noop_changed_only_and_rows_leaving(make_project, splio_requests):
    p = make_project()
    p.configure(transport="api", mode="insert")
    p.seed(30)
    data = p.sync()
    run = data["runs"][0]
    assert (run["status"], run["acknowledged"]) == ("success", 30), data["output"]
    assert held(p) == expected(range(1, 31), api=True)
    methods = [(m, path.split("?")[0]) for m, path, _ in splio_requests]
    assert methods.count(("POST", "/data/contacts/bulk")) == 1 and methods.count(("POST", "/authenticate")) == 1

    assert p.sync()["runs"][0]["sent"] == 0
    splio_requests.clear()
    p.sql("update main.people set plan = 'pro', visits = 99 where id <= 3")
    p.sql("delete from main.people where id = 30")
    third = p.sync()["runs"][0]
    assert (third["changed"], third["removed"], third["acknowledged"]) == (3, 1, 3)
    patches = [(path, body) for m, path, body in splio_requests if m == "PATCH"]
    assert len(patches) == 3 and all(b'"firstname"' not in body for _, body in patches)  # changed fields only
    assert p.contact("user2@example.com")["custom_fields"] == {**expected_contact(2, api=True)["custom_fields"],
                                                               "plan": "pro", "visits": "99"}
    assert p.contact("user30@example.com") is not None and "user30@example.com" not in p.snapshot()


def test_api_a_new_timezone_sends_the_datetimes_for_every_row(make_project, splio_requests):
    """`timezone` (the universe's zone, that UTC datetimes are written in) changes what Splio receives
    for values that did not change: as with a field's new `type:`, every contact must get the new
    form. Before, the next run sent nothing: Splio kept each datetime in the old zone until that
    row's value changed, so contacts held datetimes of two zones."""
    p = make_project()
    p.configure(transport="api", mode="insert")
    (p.root / "models" / "people.sql").write_text(
        "-- primary_key: id\n-- model_type: user\nselect id, email, first_name, last_name, phone, lang, plan, visits, "
        "ltv, timezone('UTC', signup) as signup from main.people\n")
    p.seed(5)
    assert p.sync()["runs"][0]["acknowledged"] == 5
    assert p.contact("user3@example.com")["custom_fields"]["signup"] == "2024-02-03 10:00:00"
    p.configure(transport="api", mode="insert", extra="    timezone: Europe/Paris\n")
    notes = orjson.loads(p.cli("plan").stdout)["plans"][0]["notes"]
    assert notes == ["sync splio_people's destination writes values in another form since its last run (timezone "
                     "none -> Europe/Paris): the next sync sends plan, visits, ltv, signup for every row (this "
                     "plan does not count that)"], notes  # (custom fields without type: may hold ISO datetimes)
    splio_requests.clear()
    run = p.sync()["runs"][0]
    assert (run["status"], run["changed"], run["acknowledged"]) == ("success", 5, 5), run
    patches = [orjson.loads(body) for m, _, body in splio_requests if m == "PATCH"]
    assert len(patches) == 5 and all(set(b) == {"custom_fields"} for b in patches), patches
    assert p.contact("user3@example.com")["custom_fields"]["signup"] == "2024-02-03 11:00:00"
    assert p.sync()["runs"][0]["sent"] == 0  # once
    p.configure(transport="api", mode="insert", extra="    timezone: Europe/Paris\n    timeout_seconds: 20\n")
    assert p.sync()["runs"][0]["sent"] == 0  # another setting: nothing to send


def test_api_insert_falls_back_to_patch_for_existing_contacts(make_project, splio_requests):
    p = make_project()
    p.thread.call(p.sandbox.seed, *[{"email": f"user{i}@example.com", "firstname": "old"} for i in range(1, 6)])
    p.configure(transport="api", mode="insert")
    p.seed(20)
    run = p.sync()["runs"][0]
    assert (run["status"], run["acknowledged"]) == ("success", 20)
    assert held(p) == expected(range(1, 21), api=True)
    stats = p.stats()
    assert stats["created"]["api"] == 15 and stats["updated"]["api"] == 5


def test_api_insert_creates_again_a_contact_deleted_in_splio(make_project, splio_requests):
    """A changed row whose contact was deleted in Splio: its PATCH finds nothing (404, not_found);
    the next run sends the row whole, so it is created again with every field (before, it was
    PATCHed and `not_found` on every run)."""
    p = make_project()
    p.configure(transport="api", mode="insert")
    p.seed(10)
    assert p.sync()["runs"][0]["acknowledged"] == 10
    assert p.thread.call(p.sandbox.store.delete, "user4@example.com")
    p.sql("update main.people set plan = 'pro' where id = 4")
    second = p.sync()["runs"][0]
    assert (second["sent"], second["not_found"], second["acknowledged"]) == (1, 1, 0), second
    third = p.sync()["runs"][0]
    assert (third["sent"], third["acknowledged"], third["not_found"]) == (1, 1, 0), third
    contact = p.contact("user4@example.com")
    assert contact is not None and subset(contact) == subset({**expected_contact(4, api=True), "custom_fields": {
        **expected_contact(4, api=True)["custom_fields"], "plan": "pro"}})
    assert p.sync()["runs"][0]["sent"] == 0


def test_api_update_mode_never_creates(make_project, splio_requests):
    p = make_project()
    p.thread.call(p.sandbox.seed, *[{"email": f"user{i}@example.com"} for i in range(1, 11)])
    p.configure(transport="api", mode="update", max_rejected_pct=60)
    p.seed(20)
    run = p.sync()["runs"][0]
    assert (run["status"], run["acknowledged"], run["not_found"]) == ("success", 10, 10)
    assert len(p.contacts()) == 10 and p.stats()["requests_by_endpoint"].get("contacts_bulk", 0) == 0
    assert held(p) == expected(range(1, 11), api=True)


def test_api_update_mode_unknown_contacts_answered_400_are_not_found(make_project, splio_requests):
    """PATCH's answer for an unknown contact is not documented (its sub-resources answer 404); a server
    answering Splio's envelope `Contact not found for given identifier.` with 400 had the 10 unknown
    contacts parked as rejected: not looked for again until their rows changed."""
    p = make_project(unknown_contact_status=400)
    p.thread.call(p.sandbox.seed, *[{"email": f"user{i}@example.com"} for i in range(1, 11)])
    p.configure(transport="api", mode="update", max_rejected_pct=60)
    p.seed(20)
    run = p.sync()["runs"][0]
    assert (run["status"], run["acknowledged"], run["not_found"], run["rejected"]) == ("success", 10, 10, 0)
    p.thread.call(p.sandbox.seed, {"email": "user11@example.com"})
    run = p.sync()["runs"][0]  # tried again, as update mode's not_found rows are: the new contact is written
    assert (run["sent"], run["acknowledged"], run["not_found"]) == (10, 1, 9)
    assert p.contact("user11@example.com")["firstname"] == "Name 11"


def _one_bad_contact_of_40(make_project, error_index_base: int = 0):
    """A first API sync (insert mode) of 40 contacts, user17's language refused by Splio: the
    project, after checking that only user17 was rejected and the 39 others created."""
    p = make_project()
    p.configure(transport="api", mode="insert")
    p.sandbox.options.error_index_base = error_index_base
    p.seed(40)
    p.sql("update main.people set lang = 'xx' where id = 17")
    run = p.sync()["runs"][0]
    assert (run["acknowledged"], run["rejected"]) == (39, 1)
    [(key, status, reason)] = p.rejections()
    assert key == "user17@example.com" and status == "rejected" and "language 'xx'" in reason
    assert len(p.contacts()) == 39
    return p


def test_api_one_bad_contact_does_not_sink_the_batch(make_project, splio_requests):
    p = _one_bad_contact_of_40(make_project)
    # Splio's 400 names contacts[16]: it is sent alone (refused: rejected), the 39 others together
    assert p.stats()["requests_by_endpoint"]["contacts_bulk"] == 3


def test_api_a_bulk_error_counting_contacts_from_1_parks_no_innocent_contact(make_project, splio_requests):
    # the base of contacts[N] is not documented: a server counting from 1 names the contact after
    # the bad one, which is delivered when sent alone; the bad one is found among the rest
    p = _one_bad_contact_of_40(make_project, error_index_base=1)
    assert p.contact("user18@example.com") is not None


def test_api_names_over_255_characters_are_rejected_before_sending(make_project, splio_requests):
    """Splio stores firstname and lastname up to 255 characters: a longer one made Splio refuse the
    whole bulk (3 requests for one bad contact of 40, one more per bad contact); refused before
    sending, the 38 others go in one request and the two rows are parked with a reason naming
    their field, until they change."""
    p = make_project()
    p.configure(transport="api", mode="insert")
    p.seed(40)
    p.sql("update main.people set last_name = repeat('é', 256) where id = 9")
    p.sql("update main.people set first_name = repeat('😀', 300) where id = 30")
    p.sql("update main.people set first_name = repeat('😀', 255) where id = 31")  # fits: counted in characters
    run = p.sync()["runs"][0]
    assert (run["acknowledged"], run["rejected"], run["parked"]) == (38, 2, 2)
    assert p.stats()["requests_by_endpoint"]["contacts_bulk"] == 1
    assert {k: r for k, _, r in p.rejections()} == {
        "user9@example.com": 'field "lastname": 256 characters, over the 255 Splio accepts (shorten it in the model)',
        "user30@example.com": 'field "firstname": 300 characters, over the 255 Splio accepts (shorten it in the model)'}
    assert p.contact("user31@example.com")["firstname"] == "😀" * 255 and p.contact("user9@example.com") is None
    p.sql("update main.people set last_name = 'Short' where id = 9")
    run = p.sync()["runs"][0]
    assert (run["acknowledged"], run["rejected"]) == (1, 0) and p.contact("user9@example.com")["lastname"] == "Short"


def test_api_hostile_values(make_project, splio_requests):
    p = make_project()
    p.configure(transport="api", mode="insert")
    p.seed(6)
    hostile = {1: "semi;colon", 2: 'quo"te', 3: "emoji 😀 中文", 4: "x" * 1_000_000, 5: "multi\nline\r\n"}
    for i, v in hostile.items():
        p.sql("update main.people set plan = ? where id = ?", v, i)
    run = p.sync()["runs"][0]
    assert (run["status"], run["acknowledged"]) == ("success", 6)
    for i, v in hostile.items():
        assert p.contact(f"user{i}@example.com")["custom_fields"]["plan"] == v


def test_api_keys_needing_escaping_reach_their_contact(make_project, splio_requests):
    """Emails holding `/ + % ? # '` are PATCHed at `/data/contacts/<escaped email>` (a `/` as %2F,
    a `+` as %2B: one path segment, never read as a space) and every request follows Splio's spec
    (the validator matched `a%2Fb@...` against the spec after decoding the whole path, so a `/`
    in an email split the segment and a valid request failed the check)."""
    p = make_project()
    p.configure(transport="api", mode="insert")
    p.seed(5)
    keys = {1: "a/b@example.com", 2: "a+b@example.com", 3: "a%b@example.com", 4: "a?b#c@example.com",
            5: "o'brien@example.com"}
    for i, k in keys.items():
        p.sql("update main.people set email = ? where id = ?", k, i)
    assert p.sync()["runs"][0]["acknowledged"] == 5
    p.sql("update main.people set plan = 'pro'")
    splio_requests.clear()
    run = p.sync()["runs"][0]
    assert (run["changed"], run["acknowledged"]) == (5, 5), run
    patched = sorted(path for m, path, _ in splio_requests if m == "PATCH")
    assert patched == ["/data/contacts/a%25b@example.com", "/data/contacts/a%2Bb@example.com",
                       "/data/contacts/a%2Fb@example.com", "/data/contacts/a%3Fb%23c@example.com",
                       "/data/contacts/o%27brien@example.com"]
    assert {k: p.contact(k)["custom_fields"]["plan"] for k in keys.values()} == dict.fromkeys(keys.values(), "pro")


def test_api_429_and_5xx_bursts_are_retried(make_project, splio_requests):
    p = make_project()
    p.configure(transport="api", mode="update", extra="    timeout_seconds: 5\n")
    p.thread.call(p.sandbox.seed, *[{"email": f"user{i}@example.com"} for i in range(1, 41)])
    p.seed(40)
    p.thread.script("contacts_patch", throttle(retry_after=None), times=3)
    p.thread.script("contacts_patch", error(503), times=3)
    p.thread.script("contacts_patch", reset(), times=2)
    run = p.sync()["runs"][0]
    assert (run["status"], run["acknowledged"], run["failed"]) == ("success", 40, 0)
    assert run["throttled"] >= 3
    stats = p.stats()
    assert stats["responses_429"] >= 3 and stats["faults"]["error"] == 3 and stats["faults"]["reset"] == 2
    assert held(p) == expected(range(1, 41), api=True)



def test_api_a_proxys_400_or_404_page_is_not_splios_word_on_the_contact(make_project, splio_requests):
    # An HTML 400 (a proxy's page) once parked the row until its values changed, and an HTML 404 (a
    # gateway's unknown route) reported a contact that exists as not found: both now fail the row,
    # which the next run sends again.
    p = make_project()
    p.configure(transport="api", mode="insert")
    p.seed(4)
    assert p.sync()["runs"][0]["acknowledged"] == 4
    p.sql("update main.people set plan = 'pro' where id <= 2")
    page = "<html><head><title>{0}</title></head><body><h1>{0}</h1><hr>nginx</body></html>"
    p.thread.script("contacts_patch", respond(400, page.format("400 Bad Request"), {"Content-Type": "text/html"}))
    p.thread.script("contacts_patch", respond(404, page.format("404 Not Found"), {"Content-Type": "text/html"}))
    second = p.sync()
    run = second["runs"][0]
    assert (run["status"], run["failed"], run["rejected"], run["not_found"], run["parked"]) == \
        ("failed", 2, 0, 0, 0), second["output"]
    assert {(k, s) for k, s, _ in p.rejections()} == {("user1@example.com", "failed"), ("user2@example.com", "failed")}
    third = p.sync()["runs"][0]
    assert (third["status"], third["sent"], third["acknowledged"]) == ("success", 2, 2)
    assert [p.contact(f"user{i}@example.com")["custom_fields"]["plan"] for i in (1, 2)] == ["pro", "pro"]


def test_api_a_bulk_item_answered_429_is_sent_again_by_the_next_run_not_parked(make_project, splio_requests):
    # A 207 item with a "try again" code (429) parked its row as a content rejection: the contact
    # was never created and no later run sent it. It is failed now, and the next run creates it.
    p = make_project()
    p.configure(transport="api", mode="insert")
    p.seed(2)
    items = [{"contact_id": "user1@example.com", "code": 429, "description": "Too many requests"},
             {"contact_id": "user2@example.com", "code": 500, "description": "Internal error"}]
    p.thread.script("contacts_bulk", respond(207, {"time": 1, "errors": 2, "status": None, "items": items}))
    run = p.sync()["runs"][0]
    assert (run["failed"], run["rejected"], run["parked"]) == (2, 0, 0), run
    assert {(k, s) for k, s, _ in p.rejections()} == {("user1@example.com", "failed"), ("user2@example.com", "failed")}
    second = p.sync()["runs"][0]
    assert (second["status"], second["sent"], second["acknowledged"]) == ("success", 2, 2)
    assert p.contact("user1@example.com") is not None


def test_api_a_200_without_splios_contact_is_not_an_acknowledgement(make_project, splio_requests):
    # Something between dinsync and Splio answering 200 with no contact (an empty body, a cut or
    # unreadable JSON) never showed that Splio edited it: such rows entered the snapshot with values
    # Splio never got, and no later run sent them. They are sent again now.
    p = make_project()
    p.configure(transport="api", mode="insert")
    p.seed(4)
    assert p.sync()["runs"][0]["acknowledged"] == 4
    p.sql("update main.people set plan = 'pro' where id <= 3")
    for body in (b"", b"{not json", b"null"):
        p.thread.script("contacts_patch", respond(200, body, {"Content-Type": "application/json"}))
    run = p.sync()["runs"][0]
    assert (run["status"], run["acknowledged"], run["failed"], run["parked"]) == ("success", 3, 0, 0), run
    assert p.stats()["faults"]["respond"] == 3
    assert [p.contact(f"user{i}@example.com")["custom_fields"]["plan"] for i in (1, 2, 3)] == ["pro"] * 3
    assert p.sync()["runs"][0]["sent"] == 0


@pytest.mark.parametrize("retry_after", ["seconds", "http-date"])
def test_api_a_429_on_authenticate_is_waited_out(make_project, splio_requests, retry_after):
    # POST /authenticate runs while a request's headers are built: its 429 was retried after the
    # sender's short backoff (0.2-0.5 s), ignoring the Retry-After / rateLimit-reset it carried.
    import email.utils
    import time

    p = make_project()
    p.configure(transport="api", mode="insert")
    p.seed(3)
    until = float(int(time.time()) + 6)  # an HTTP date has 1-second resolution
    value = "2" if retry_after == "seconds" else email.utils.formatdate(until, usegmt=True)
    p.thread.script("authenticate", respond(429, {"message": "API rate limit exceeded"}, {"Retry-After": value}))
    run = p.sync()["runs"][0]
    assert (run["status"], run["acknowledged"]) == ("success", 3)
    log = [r for r in p.thread.call(lambda: list(p.sandbox.api.log)) if r.endpoint == "authenticate"]
    assert [r.status for r in log] == [429, 200]
    if retry_after == "seconds":
        assert log[1].ts - log[0].ts >= 2.0
    else:
        assert log[0].ts < until <= log[1].ts


# A 503 with Retry-After (a proxy or a maintenance page: "unavailable for that long", RFC 9110)
# answered to POST /authenticate is waited out as on any other request: it was asked again after
# the sender's short backoff, against the server's word.
def test_api_a_503_with_retry_after_on_authenticate_is_waited_out(make_project, splio_requests):
    p = make_project()
    p.configure(transport="api", mode="insert")
    p.seed(3)
    p.thread.script("authenticate", respond(503, "<html><body>maintenance</body></html>",
                                            {"Retry-After": "2", "Content-Type": "text/html"}))
    run = p.sync()["runs"][0]
    assert (run["status"], run["acknowledged"]) == ("success", 3)
    log = [r for r in p.thread.call(lambda: list(p.sandbox.api.log)) if r.endpoint == "authenticate"]
    assert [r.status for r in log] == [503, 200]
    assert log[1].ts - log[0].ts >= 2.0


def test_api_rate_limit_holds_under_20_per_second(make_project, splio_requests):
    p = make_project()
    p.configure(transport="api", mode="update")
    p.thread.call(p.sandbox.seed, *[{"email": f"user{i}@example.com"} for i in range(1, 61)])
    p.seed(60)
    run = p.sync()["runs"][0]
    assert (run["status"], run["acknowledged"]) == ("success", 60)
    assert run["request_rates"]["contacts"] <= 20.0


def test_api_reads_the_field_list_without_query_parameters_splio_does_not_list(make_project, splio_requests):
    """Splio's Swagger lists no query parameter on `GET /data/fields/contacts`: dinsync asked
    `?per_page=1000&page_number=1` first, so a server held to the spec refused the pre-flight
    check's read and every API sync failed before sending. The list is read as documented; pages
    are asked for only when the answer counts more fields than it holds."""
    p = make_project(fields_list_query="refused")
    p.configure(transport="api", mode="insert")
    p.seed(5)
    data = p.sync()
    run = data["runs"][0]
    assert (run["status"], run["acknowledged"]) == ("success", 5), data["output"]
    reads = [path for m, path, _ in splio_requests if path.startswith("/data/fields/")]
    assert reads == ["/data/fields/contacts"]


def test_api_field_list_pages_are_read_when_the_answer_holds_more(make_project, splio_requests):
    """A server that pages the list (100 a page by default in the sandbox, as Splio's example
    answer suggests): a custom field beyond the first page is still found."""
    extra = [{"id": 100 + i, "name": f"extra{i}", "type": "text"} for i in range(150)]
    p = make_project(custom_fields=list(CUSTOM_FIELDS) + extra)
    p.configure(transport="api", mode="insert", fields=FIELDS[:4] + ("  plan: {field: extra149, custom: true}",))
    p.seed(3)
    data = p.sync()
    run = data["runs"][0]
    assert (run["status"], run["acknowledged"]) == ("success", 3), data["output"]
    assert p.contact("user2@example.com")["custom_fields"] == {"extra149": "free"}
    reads = [path for m, path, _ in splio_requests if path.startswith("/data/fields/")]
    assert reads[0] == "/data/fields/contacts" and len(reads) >= 2


def test_api_unknown_custom_field_is_a_preflight_error(make_project):
    p = make_project()
    p.configure(transport="api", fields=FIELDS[:1] + ("  plan: {field: plann, custom: true}",))
    p.seed(3)
    result = p.cli("sync")
    assert result.exit_code == 3
    assert "Splio has no custom contact field 'plann'" in result.stdout and "did you mean 'plan'" in result.stdout
    assert p.stats()["requests_by_endpoint"].get("contacts_bulk", 0) == 0


def test_api_wrong_key_stops_the_run(make_project):
    p = make_project()
    p.env["SPLIO_TEST_API_KEY"] = "not-the-key-0000"
    p.configure(transport="api")
    p.seed(3)
    data = p.sync()
    assert data["exit_code"] == 1 and "refused the API key" in data["output"]
    assert "not-the-key-0000" not in data["output"] and p.snapshot() == set()


def test_api_token_renewed_when_it_expires(make_project, splio_requests):
    p = make_project(token_lifetime=1.0)
    p.configure(transport="api", mode="update", extra="    rate_limits: {contacts: 10}\n")
    p.thread.call(p.sandbox.seed, *[{"email": f"user{i}@example.com"} for i in range(1, 31)])
    p.seed(30)
    run = p.sync()["runs"][0]  # ~3 s at 10 PATCH/s with 1-second tokens
    assert (run["status"], run["acknowledged"]) == ("success", 30)
    assert p.stats()["tokens_issued"] >= 3


def test_sftp_sweeps_only_its_own_stale_part_files(make_project):
    p = make_project(insert_allowed=True)
    p.configure(transport="sftp")
    p.seed(3)
    drop = p.sandbox.root / "imports" / "contacts"
    mine = "sandbox_contacts_splio_people_20260101T000000Z_0a1b2c3d_0001.csv.part"
    others = ["sandbox_contacts_splio_people_vip_20260101T000000Z_0a1b2c3d_0001.csv.part",  # another sync
              "sandbox_contacts_splio_people_manual.csv.part"]  # not a dinsync name
    for name in [mine, *others]:
        (drop / name).write_bytes(b"email;plan\nhalf@example.com;fr")
    run = p.sync()["runs"][0]
    assert (run["status"], run["acknowledged"]) == ("success", 3)
    assert p.drop_folder() == sorted(others)


def test_sftp_stale_part_file_that_cannot_be_removed_does_not_stop_the_runs(make_project):
    # an upload-only drop box (uploads and renames, no removal): a .part left by a dropped upload
    # stays, and the next runs deliver their own files; the sweep's refused removal failed every
    # run before ("listing /imports/contacts: Permission denied"), until someone removed the file
    p = make_project(insert_allowed=True)
    p.configure(transport="sftp")
    p.seed(3)
    stale = "sandbox_contacts_splio_people_20260101T000000Z_0a1b2c3d_0001.csv.part"
    (p.sandbox.root / "imports" / "contacts" / stale).write_bytes(b"email;plan\nhalf@example.com;fr")
    p.thread.call(setattr, p.sandbox.sftp_faults, "refuse_remove", True)
    run = p.sync()["runs"][0]
    assert (run["status"], run["acknowledged"], run["error"]) == ("success", 3, None)
    assert held(p) == expected(range(1, 4)) and p.drop_folder() == [stale]


def test_sftp_wrong_directory_is_a_clear_error(make_project):
    p = make_project(insert_allowed=True)
    p.configure(transport="sftp")
    (p.root / "dinsync.yml").write_text((p.root / "dinsync.yml").read_text().replace(
        "directory: /imports/contacts", "directory: /imports/nowhere"))
    p.seed(2)
    data = p.sync()
    assert data["exit_code"] == 1 and "check sftp.directory" in data["output"]
    assert p.snapshot() == set()


def test_sftp_server_out_of_reach_leaves_validate_unchecked_not_a_config_error(make_project):
    """An SFTP server that cannot be reached (refused, reset, timed out, after the retries) is an
    outage like an API that cannot be reached: `validate` exits 1 (try again), not 3 (a file to
    fix), as the README says of a platform its pre-flight check cannot reach."""
    import socket

    p = make_project(insert_allowed=True)
    p.configure(transport="sftp")
    p.seed(2)
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    (p.root / "dinsync.yml").write_text((p.root / "dinsync.yml").read_text().replace(
        f"port: {p.sandbox.sftp_port}", f"port: {closed}"))
    checked = p.cli("validate")
    assert checked.exit_code == 1, (checked.exit_code, checked.stdout)
    assert f"127.0.0.1:{closed}" in checked.stdout and "check sftp.host and sftp.port" in checked.stdout
    assert SFTP_PASSWORD not in checked.stdout + checked.stderr


def test_plan_samples_are_the_texts_splio_receives_and_its_rejections(make_project):
    """Splio receives every value as text in its own forms (`2024-02-01 10:00:00` for a datetime,
    `0033612345601` for a cellphone in files) and refuses some values client-side (over 255
    characters, a line break in a file): `plan` showed the mapping's JSON values instead and
    those rows as if they would go out."""
    import json

    p = make_project(insert_allowed=True)
    p.configure(transport="sftp", mode="insert")
    p.seed(3)
    p.sql("update main.people set first_name = repeat('n', 300) where id = 2")
    p.sql("update main.people set plan = 'multi' || chr(10) || 'line' where id = 3")
    p.cli("plan", "--samples", "5")
    assert p.last.exit_code == 0, p.last.stdout
    rows = {r["key"]: r for r in json.loads(p.last.stdout)["plans"][0]["samples"]["added"]}
    one = rows["user1@example.com"]
    assert (one["fields"]["signup"], one["fields"]["cellphone"], one["fields"]["visits"]) == (
        "2024-02-01 10:00:00", "0033612345601", "1"), one
    assert one["rejected"] == []
    assert rows["user2@example.com"]["rejected"][0]["reason"].startswith(
        'field "firstname": 300 characters, over the 255 Splio accepts')
    assert "line break" in rows["user3@example.com"]["rejected"][0]["reason"]
    assert p.stats()["files_rejected"] == {} and not p.contacts()  # a preview: nothing written


def test_sftp_a_files_report_is_let_go_before_the_next_one_is_read(make_project):
    """A run reads its files' import reports one after the other (five of 200K rows at the end of a
    1M-row run). Until 2026-12-06 the last report read and parsed (~400 bytes a row) was still held
    while the next one was read and parsed: two reports at the run's peak of memory. What a file's
    outcomes keep once its report is read is a list of its keys."""
    p = make_project(insert_allowed=True, poll_interval=None)  # files imported on demand
    rows, files = 10_000, 3
    settings = report_polling_settings(p, poll_seconds=0.05, max_rows_per_file=rows)
    held: list[int] = []  # bytes traced as each report is read

    class Watched(SftpTransport):
        async def _read_report(self, name):
            held.append(tracemalloc.get_traced_memory()[0])
            return await super()._read_report(name)

    keys = [f"user{i}@example.com" for i in range(rows * files)]

    async def run():
        async with Watched(settings, "sandbox", password=SFTP_PASSWORD) as transport:
            await transport.begin("people", "insert", ["email"])
            for start in range(0, len(keys), 1000):
                part = keys[start:start + 1000]
                await transport.deliver(Request("sftp_file", "WRITE", "", "".join(f"{k}\n" for k in part).encode(),
                                                part, context=CsvChunk(("email",), part)))
            await transport.close_files()
            await asyncio.to_thread(p.thread.call, p.sandbox.process_now)
            tracemalloc.start()
            try:
                return await transport.settle({}, 20)
            finally:
                tracemalloc.stop()

    settled = asyncio.run(run())
    assert sorted(settled.ok) == sorted(keys) and not settled.problems and not settled.pending
    assert len(held) == files
    per_row = (held[-1] - held[0]) / (rows * (files - 1))  # kept of the files read before the last one
    assert per_row < 64, f"{per_row:.0f} bytes a row of the reports read before"
