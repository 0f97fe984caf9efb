"""A rate-limit pace shared by the processes of this machine, through a small locked file.

Two `dinsync sync` processes sending to one token at once (an orchestrator running a task per
sync, two cron entries that overlap) each paced themselves at the platform's whole rate: together
twice what it allows, and a 429 for every request over it. `shared_pace` shares a pace between the
threads of one process; this file shares its state (the next start's time, the window of recent
starts, a 429's pause) with the other processes: each take of a start slot reads it and writes it
back under an exclusive `flock`, 10-100 microseconds a request.

Times are `time.monotonic()`, which on Linux is the system's CLOCK_MONOTONIC, the same in every
process until the machine restarts; the file carries the boot's id, and a file from another boot
(a folder that survived the restart) is read as empty. Elsewhere than Linux nothing is shared.

The folder is `DINSYNC_PACE_DIR`, else `/dev/shm/dinsync-paces-<uid>` (memory, gone at restart),
else the temporary folder's; it must belong to the user and be theirs alone (0700), else nothing
is shared: another user's file could stop our sending with a forged pause.
"""
from __future__ import annotations

import fcntl
import hashlib
import math
import os
import struct
import sys
import tempfile
from pathlib import Path

_MAGIC = b"dsnpace1"
_HEADER = struct.Struct("<8s16sddI")  # magic, boot id, next start (GCRA's tat), paused until, window length
MAX_WINDOW = 4096  # starts kept (a window is max(burst, ceil(rate)) long)


class PaceState:
    """What processes share of a pace: `tat` (the next start's theoretical time), `paused_until`
    and `window`, the times of the last starts, oldest first."""

    __slots__ = ("tat", "paused_until", "window")

    def __init__(self, tat: float = -math.inf, paused_until: float = -math.inf, window: list[float] | None = None):
        self.tat, self.paused_until, self.window = tat, paused_until, window or []


def _time(t: float) -> bool:
    """Whether `t` is a time a pace writes: a clock time, or -inf for none yet."""
    return math.isfinite(t) or t == -math.inf


def _boot_id() -> bytes | None:
    try:
        text = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        return bytes.fromhex(text.replace("-", ""))[:16].ljust(16, b"\0")
    except (OSError, ValueError):
        return None


def pace_dir() -> Path | None:
    """The folder of this user's pace files (created), or None when it cannot be private."""
    return _pace_folder()[0]


def unshared_reason() -> str | None:
    """Why this process's paces cannot be shared with the other processes of this machine (for a
    note: each then paces alone at the platform's whole rate), or None when they can be, or where
    nothing is shared (not Linux)."""
    if not sys.platform.startswith("linux") or _boot_id() is None:
        return None
    folder, why = _pace_folder()
    if folder is not None and not os.access(folder, os.W_OK):
        why = f"{folder} cannot be written"
    if why is None:
        return None
    return (f"rate-limit paces are not shared with other dinsync processes of this machine ({why}): two "
            "at once may each send at the platform's whole rate; DINSYNC_PACE_DIR names the folder, which "
            "must be this user's alone (mode 0700)")


def _pace_folder() -> tuple[Path | None, str | None]:
    """(the folder of this user's pace files, created; None and why when it cannot be private)."""
    import stat

    chosen = os.environ.get("DINSYNC_PACE_DIR")
    if chosen:
        folder = Path(chosen)
    else:
        base = Path("/dev/shm") if Path("/dev/shm").is_dir() and os.access("/dev/shm", os.W_OK) \
            else Path(tempfile.gettempdir())
        folder = base / f"dinsync-paces-{os.getuid()}"
    try:
        folder.mkdir(mode=0o700, parents=bool(chosen), exist_ok=True)
        st = os.lstat(folder)
    except OSError as exc:
        return None, f"cannot create {folder}: {exc.strerror or exc}"
    if not stat.S_ISDIR(st.st_mode):
        return None, f"{folder} is a link or a file, not a folder"
    if st.st_uid != os.getuid():
        return None, f"{folder} belongs to another user"
    if st.st_mode & 0o077:
        return None, f"{folder} is open to other users (mode {stat.S_IMODE(st.st_mode):04o})"
    return folder, None


def _open(path: Path) -> int:
    """The pace file at `path`, opened (created 0600); OSError unless the file opened is this
    user's alone: checked on its descriptor, as the folder checked by `pace_dir` may have been
    swapped since by the owner of its parent (a forged pause would stop our sending)."""
    import stat

    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK, 0o600)
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode) or st.st_uid != os.getuid() or st.st_mode & 0o077:
        os.close(fd)
        raise OSError(f"{path} is not a file of this user's alone")
    return fd


class PaceFile:
    """The shared state of one pace (see the module). Call `lock()`/`read()`/`write()`/`unlock()`
    under the pace's own thread lock: `flock` excludes other open files, not other threads."""

    UNCHANGED = object()  # `read`: the file holds what this process last read or wrote

    def __init__(self, path: Path, fd: int, boot: bytes):
        self.path, self.fd, self.boot = path, fd, boot
        self.pid = os.getpid()
        self.seen = b""  # the file's bytes as this process last read or wrote them (see `read`)

    @classmethod
    def open(cls, key: tuple) -> "PaceFile | None":
        """The file of pace `key` (a repr-able tuple: the platform counter, its rate, burst and
        headroom), or None where processes cannot share one."""
        if not sys.platform.startswith("linux"):
            return None
        boot = _boot_id()
        folder = pace_dir() if boot is not None else None
        if folder is None:
            return None
        path = folder / (hashlib.sha256(repr(key).encode()).hexdigest()[:40] + ".pace")
        try:
            return cls(path, _open(path), boot)
        except OSError:
            return None

    def lock(self) -> None:
        if os.getpid() != self.pid:  # a forked child shares the parent's open file, and its flock
            self.close()
            self.fd, self.pid = _open(self.path), os.getpid()
        fcntl.flock(self.fd, fcntl.LOCK_EX)

    def unlock(self) -> None:
        fcntl.flock(self.fd, fcntl.LOCK_UN)

    def read(self) -> PaceState | None:
        """The state the processes left (None: none yet, or of another boot, or unreadable, or
        holding times no pace writes), or
        UNCHANGED when it is what this process last read or wrote: its own state is that one, and
        rebuilding the window from the file cost O(window) each request (660 us at 1,000/s)."""
        data = os.pread(self.fd, _HEADER.size, 0)
        if len(data) < _HEADER.size:
            return None
        magic, boot, tat, paused, n = _HEADER.unpack(data)
        if magic != _MAGIC or boot != self.boot or n > MAX_WINDOW:
            return None
        entries = os.pread(self.fd, 8 * n, _HEADER.size)
        if len(entries) < 8 * n:
            return None
        if data + entries == self.seen:
            return self.UNCHANGED
        window = list(struct.unpack(f"<{n}d", entries))
        if not (_time(tat) and _time(paused) and all(math.isfinite(t) for t in window)):
            return None  # no pace writes NaN or infinity ahead (a file corrupted in place)
        self.seen = data + entries
        return PaceState(tat, paused, window)

    def forget(self) -> None:
        """Read the file in full next time (`read` never answers UNCHANGED to the next call): this
        process's own state may no longer be what the file holds."""
        self.seen = b""

    def write(self, tat: float, paused_until: float, window: list[float]) -> None:
        window = window[-MAX_WINDOW:]
        data = _HEADER.pack(_MAGIC, self.boot, tat, paused_until, len(window))
        data += struct.pack(f"<{len(window)}d", *window)
        if data != self.seen:
            self.seen = b""  # (unknown should the write fail)
            os.pwrite(self.fd, data, 0)
            self.seen = data

    def close(self) -> None:
        fd, self.fd = self.fd, -1
        if fd >= 0:
            try:
                os.close(fd)
            except OSError:
                pass

    def __del__(self) -> None:
        self.close()
