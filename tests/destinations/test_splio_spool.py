"""The SFTP transport's local spool (contact rows as CSV) does not outlive a killed run: the next
transport of any sync removes the spool folders of dinsync processes that are gone (and that were
not written for SPOOL_IDLE_SECONDS)."""
from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time

from dinsync.destinations.splio.settings import SftpSettings
from dinsync.destinations.splio.sftp import SPOOL_IDLE_SECONDS, SPOOL_PREFIX, SftpTransport, sweep_dead_spools
from dinsync.state.process import read_stat


def dead_process() -> tuple[int, int]:
    """(pid, start time) of a process that has exited (and been reaped)."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    stat = read_stat(proc.pid)
    assert stat is not None
    proc.kill()
    proc.wait()
    return proc.pid, stat.start_time


def test_spools_of_dead_processes_are_removed_and_live_ones_kept(tmp_path, monkeypatch):
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path))
    pid, start = dead_process()
    dead = tmp_path / f"{SPOOL_PREFIX}{pid}-{start}-abc_123"
    (dead / "sub").mkdir(parents=True)
    (dead / "contacts_0001.csv").write_text("email\na@example.com\n")
    me = os.getpid()
    alive = tmp_path / f"{SPOOL_PREFIX}{me}-{read_stat(me).start_time}-xyz"
    alive.mkdir()
    reused = tmp_path / f"{SPOOL_PREFIX}{me}-{read_stat(me).start_time + 1}-old"  # this PID, another process
    reused.mkdir()
    other = tmp_path / f"{SPOOL_PREFIX}unrelated"  # not a name of ours: left alone
    other.mkdir()
    recent = tmp_path / f"{SPOOL_PREFIX}{pid}-{start}-recent"  # dead holder, but written a moment ago
    recent.mkdir()
    idle = time.time() - SPOOL_IDLE_SECONDS - 60
    for folder in (dead, alive, reused, other):
        os.utime(folder, (idle, idle))

    settings = SftpSettings(host="127.0.0.1", port=1, username="u", password="p",
                            known_hosts=str(tmp_path / "known_hosts"), reports_directory="/r")

    async def enter() -> list[str]:
        async with SftpTransport(settings, "sandbox", password="p") as transport:
            return sorted(p.name for p in tmp_path.iterdir() if p != transport._spool)

    left = asyncio.run(enter())
    assert left == sorted([alive.name, other.name, recent.name])  # the dead one and the reused PID's are gone
    assert not dead.exists() and not reused.exists()
    assert sweep_dead_spools(str(tmp_path)) == []  # the transport removed its own on leaving
    os.utime(recent, (idle, idle))
    assert sweep_dead_spools(str(tmp_path)) == [recent.name]  # once idle long enough
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([alive.name, other.name])


def _transport(tmp_path, **file_name) -> SftpTransport:
    settings = SftpSettings(host="127.0.0.1", port=1, username="u", password="p",
                            known_hosts=str(tmp_path / "known_hosts"), reports_directory="/r", **file_name)
    transport = SftpTransport(settings, "sandbox", password="p")
    transport.sync = "people"
    return transport


def _stamp(offset: float) -> str:
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(time.time() + offset))


def test_a_run_names_its_files_after_a_waiting_file_of_the_same_second(tmp_path):
    """The previous run's file, still waiting, carries this second's stamp and a run tag that sorts
    after any: this run waits for the next second so an importer taking files in name order
    imports the older values first."""
    transport = _transport(tmp_path)
    waiting = f"sandbox_contacts_people_{_stamp(0)}_ffffffff_0001.csv"
    asyncio.run(transport._stamp_after([waiting]))
    assert transport._name(1) > waiting
    assert transport.stamp > waiting.split("_")[3]


def test_nothing_waiting_or_no_stamp_in_the_name_means_no_wait(tmp_path, monkeypatch):
    async def no_sleep(seconds: float) -> None:
        raise AssertionError(f"waited {seconds} s")

    monkeypatch.setattr("dinsync.destinations.splio.sftp.asyncio.sleep", no_sleep)
    transport = _transport(tmp_path)
    before = transport.stamp
    asyncio.run(transport._stamp_after([]))
    assert transport.stamp == before
    older = f"sandbox_contacts_people_{_stamp(-5)}_ffffffff_0001.csv"
    asyncio.run(transport._stamp_after([older]))  # already sorts after it
    untimed = _transport(tmp_path, file_name="{universe}_{sync}_{run}_{seq}.csv")
    asyncio.run(untimed._stamp_after(["sandbox_people_ffffffff_0001.csv"]))  # waiting cannot order it


def test_a_waiting_file_stamped_by_a_clock_far_ahead_is_waited_for_at_most_max_wait(tmp_path):
    transport = _transport(tmp_path)
    ahead = f"sandbox_contacts_people_{_stamp(3600)}_00000000_0001.csv"
    started = time.monotonic()
    asyncio.run(transport._stamp_after([ahead], max_wait=0.5))
    assert 0.4 < time.monotonic() - started < 5.0 and transport._name(1) < ahead  # not an hour
