"""A pace shared by processes through a locked file (dinsync.sender.pacefile): two `dinsync sync`
processes sending to one token pace as one. Two open files of one path stand for two processes
here (flock excludes open files, not processes); the CLI test is in tests/e2e/test_shared_pace.py."""
from __future__ import annotations

import asyncio
import math
import os

import pytest

from dinsync.sender import pacefile
from dinsync.sender.pacefile import PaceFile
from dinsync.sender.ratelimit import FakeClock, RateLimiter, _Pace

BOOT = b"b" * 16


def opened(path, boot=BOOT) -> PaceFile:
    return PaceFile(path, pacefile._open(path), boot)


def two_paces(tmp_path, clock, rate=5.0):
    path = tmp_path / "x.pace"
    return [_Pace(rate, 1, 1.0, 0.0, clock, opened(path)) for _ in range(2)]


def test_two_processes_sharing_a_pace_file_start_at_its_rate_together(tmp_path):
    clock = FakeClock()
    a, b = (RateLimiter(5.0, 1, headroom=1.0, clock=clock, pace=p) for p in two_paces(tmp_path, clock))
    starts = []

    async def send(limiter, n):
        for _ in range(n):
            await limiter.acquire()
            starts.append(clock.now())

    async def main():
        await asyncio.gather(send(a, 10), send(b, 10))

    asyncio.run(main())
    starts.sort()
    gaps = [round(y - x, 6) for x, y in zip(starts, starts[1:])]
    assert len(starts) == 20 and min(gaps) >= 0.2 - 1e-6, gaps  # one start every 1/5 s, both senders together
    assert max(sum(1 for t in starts if s <= t < s + 1) for s in starts) == 5


def test_alone_each_would_start_at_the_whole_rate():
    """What sharing prevents: two paces of their own (before) let 2 x 5 starts into a second."""
    clock = FakeClock()
    a, b = (_Pace(5.0, 1, 1.0, 0.0, clock) for _ in range(2))
    taken = [p.try_take(0.0)[0] for p in (a, b)]
    assert all(slot is not None for slot in taken)  # both at t=0: 2 starts where 1 may go


def test_a_429_pause_reaches_the_other_process(tmp_path):
    clock = FakeClock()
    a, b = two_paces(tmp_path, clock)
    a.pause_until(600.0)  # a Retry-After: 600 answered to the other process
    slot, wait = b.try_take(0.0)
    assert slot is None and wait == pytest.approx(600.0)


def test_a_late_start_moves_its_slot_for_every_process(tmp_path):
    clock = FakeClock()
    a, b = (_Pace(5.0, 1, 1.0, 0.0, clock, opened(tmp_path / "x.pace")) for _ in range(2))
    slots = [a.try_take(0.2 * i)[0] for i in range(5)]  # a full window: 5 starts 0.2 s apart
    RateLimiter.started(slots[0], 0.15)  # the first left 150 ms late
    slot, wait = b.try_take(1.0)
    assert slot is None and wait == pytest.approx(0.15)  # the window counts it from when it left


def test_a_file_of_another_boot_or_garbage_is_read_as_empty(tmp_path):
    path = tmp_path / "x.pace"
    old = opened(path, boot=b"o" * 16)
    old.write(1e9, 1e9, [1e9])  # a pause from before a restart: its clock is not ours
    assert opened(path).read() is None
    path.write_bytes(b"not a pace file at all" * 10)
    assert opened(path).read() is None
    clock = FakeClock()
    pace = _Pace(5.0, 1, 1.0, 0.0, clock, opened(path))
    assert pace.try_take(0.0)[0] is not None


@pytest.mark.parametrize("tat, paused, window", [
    (math.nan, -math.inf, []),  # every take let through: no pace at all, for every process
    (math.inf, -math.inf, []),  # no take ever: a sync sending nothing until killed
    (1e300, -math.inf, []),
    (-math.inf, math.nan, []),  # no 429's pause could be set any more (t > nan is false)
    (-math.inf, math.inf, []),
    (0.0, -math.inf, [math.nan] * 5),
    (0.0, -math.inf, [1e300] * 5),
], ids=["nan-next", "inf-next", "far-next", "nan-pause", "inf-pause", "nan-window", "far-window"])
def test_a_file_whose_times_are_no_paces_is_rebuilt(tmp_path, tat, paused, window):
    """A pace file of the right boot whose times no pace writes (corrupted in place): a NaN next
    start let every process start at once, a next start at infinity (or far ahead) held a sync
    sending nothing until it was killed (58 s of `dinsync sync` with 4 rows, then SIGTERM), a NaN
    pause kept every later 429's pause from being set; and each process wrote it back as it read
    it. Such a file is read as empty, and the next write makes it a pace's again."""
    path = tmp_path / "x.pace"
    opened(path).write(tat, paused, window)
    clock = FakeClock()
    pace = _Pace(5.0, 1, 1.0, 0.0, clock, opened(path))
    assert pace.try_take(0.0)[0] is not None
    assert pace.try_take(0.0) == (None, pytest.approx(0.2))  # paced at its rate
    pace.pause_until(600.0)
    other = _Pace(5.0, 1, 1.0, 0.0, clock, opened(path))
    assert other.try_take(1.0) == (None, pytest.approx(599.0))  # the file holds a pace's state again


def test_a_folder_others_can_write_is_not_used(tmp_path, monkeypatch):
    folder = tmp_path / "paces"
    folder.mkdir(mode=0o777)
    os.chmod(folder, 0o777)
    monkeypatch.setenv("DINSYNC_PACE_DIR", str(folder))
    assert pacefile.pace_dir() is None  # another user could forge a pause, or read nothing of ours
    os.chmod(folder, 0o700)
    assert pacefile.pace_dir() == folder
    assert PaceFile.open(("iterable", "http://127.0.0.1:1", "h", "bulkUpdate", 5.0, 1, 0.985)) is not None
    assert [p.suffix for p in folder.iterdir()] == [".pace"]
    assert (folder.stat().st_mode & 0o777, next(folder.iterdir()).stat().st_mode & 0o777) == (0o700, 0o600)


def test_a_failing_file_is_let_go_and_the_pace_goes_on_alone(tmp_path):
    class Failing(PaceFile):
        def lock(self):
            raise OSError(5, "Input/output error")

    clock = FakeClock()
    path = tmp_path / "x.pace"
    pace = _Pace(5.0, 1, 1.0, 0.0, clock, Failing(path, pacefile._open(path), BOOT))
    assert pace.try_take(0.0)[0] is not None and pace.file is None
    assert pace.try_take(0.0)[0] is None  # still paced, by itself


def test_a_process_alone_on_its_file_does_not_rebuild_its_window_at_each_start(tmp_path, monkeypatch):
    """Each take read the whole window back from the file into new slots, even when this process
    wrote it last: O(window) a request (107 us at 150/s, 660 us at 1,000/s, 2.7 ms at 4,096/s,
    against 2-5 us unshared). The window is taken from the file only when another process changed it."""
    path = tmp_path / "x.pace"
    a, b = (_Pace(150.0, 1, 1.0, 0.05, FakeClock(), opened(path)) for _ in range(2))
    adopted = []
    monkeypatch.setattr(_Pace, "_adopt", lambda self, state, real=_Pace._adopt: (adopted.append(self), real(self, state)))
    t, taken = 0.0, 0
    while taken < 300:
        slot, wait = a.try_take(t)
        taken += slot is not None
        t += max(wait, 0.0) + 1e-3
    assert adopted == []
    t += 2.0
    assert b.try_take(t)[0] is not None and adopted == [b]  # the other process reads it
    slot, wait = a.try_take(t)
    assert slot is None and wait > 0 and adopted == [b, a]  # and this one reads b's start back


def test_a_pace_let_go_closes_its_file_without_waiting_for_the_cycle_collector(tmp_path):
    """A pace whose window held its own slots (each naming the pace) was a reference cycle: let go
    after a run (see `_keep`), it kept its open file until a full collection."""
    import gc
    import weakref

    clock = FakeClock()
    pace = _Pace(5.0, 1, 1.0, 0.0, clock, opened(tmp_path / "x.pace"))
    slot = pace.try_take(0.0)[0]
    gone, fd = weakref.ref(pace), pace.file.fd
    gc.disable()
    try:
        del pace, slot
        assert gone() is None
        with pytest.raises(OSError):
            os.fstat(fd)  # closed
    finally:
        gc.enable()


def test_a_pace_folder_that_cannot_be_used_is_named_in_a_note(tmp_path, monkeypatch):
    """DINSYNC_PACE_DIR set to a folder made with a plain `mkdir` (mode 0755), or one that cannot be
    made: each process paced alone, at the platform's whole rate, and nothing said so."""
    folder = tmp_path / "paces"
    folder.mkdir()
    folder.chmod(0o755)
    monkeypatch.setenv("DINSYNC_PACE_DIR", str(folder))
    note = pacefile.unshared_reason()
    assert note is not None and f"{folder} is open to other users (mode 0755)" in note and "DINSYNC_PACE_DIR" in note
    (tmp_path / "afile").write_text("")
    monkeypatch.setenv("DINSYNC_PACE_DIR", str(tmp_path / "afile" / "paces"))
    assert f"cannot create {tmp_path / 'afile' / 'paces'}: Not a directory" in pacefile.unshared_reason()
    folder.chmod(0o700)
    monkeypatch.setenv("DINSYNC_PACE_DIR", str(folder))
    assert pacefile.unshared_reason() is None


def test_a_pace_file_that_is_not_the_users_alone_is_not_used(tmp_path, monkeypatch):
    """The folder is checked first, the file opened after: the owner of the folder's parent (a
    DINSYNC_PACE_DIR under a shared /tmp folder) could swap in a folder of theirs in between, whose
    file, theirs or anyone's to write, forged a pause that stopped every sync to the token (or no
    pace). The file opened is checked too (its descriptor): such a one is not used."""
    folder = tmp_path / "paces"
    folder.mkdir(mode=0o700)
    monkeypatch.setattr(pacefile, "pace_dir", lambda: folder)  # (checked; then swapped)
    key = ("iterable", "http://127.0.0.1:1", "h", "bulkUpdate", 5.0, 1, 0.985)
    opened_file = PaceFile.open(key)
    assert opened_file is not None
    path = opened_file.path
    opened_file.close()
    path.chmod(0o666)  # (as another account's, or anyone's to write)
    assert PaceFile.open(key) is None
    path.unlink()
    os.mkfifo(path)  # nor waited on
    assert PaceFile.open(key) is None
