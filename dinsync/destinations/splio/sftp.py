"""Splio's automatic contact imports: CSV files dropped over SFTP, outcomes read from import reports.

A run writes its rows into local spool files (one per set of columns sent, see values.csv_chunks),
each capped at `max_rows_per_file` rows (Splio: 200K lines) and `max_file_bytes`. A full file is
uploaded under a temporary name (`<name>.part`, which importers ignore) and renamed when complete,
so Splio never sees half a file; an upload cut off is retried from the spool (`upload_attempts`),
and a `.part` left behind by a dropped connection or a killed run is removed by the next run of the
same sync (begin_run: the sync's lock says no other run of it is writing). A rename whose answer
was lost is not redone: the retry finds the `.part` gone (renamed: delivered, even if Splio's
importer took the file already) or still there (uploaded again); a plain SFTP rename (servers
without the posix-rename extension) refused because the name is taken is delivered if that file
holds our bytes, and fails the file's rows otherwise (the other file is left alone).

Every row is `pending` with its file's token (`<file name>/<mode>`, the sync's mode when it wrote
the file) until the file's import report says what became of it (`settle` in the run, `resolve`
from a later run). Either way, a report showing contacts created by a file written in update mode
fails the run (update_mode_error); one written in insert mode, read after the sync switched to
update mode, created them as it was meant to.

SSH: asyncssh, password or private-key login, the server's host key checked against the
configured known_hosts file (an unknown or different key is an error that says how to add it);
~/.ssh/config, agents and default keys are not used, so what dinsync.yml says is what happens.
"""
from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import re
import shutil
import string
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

from ...errors import DestinationAuthError, DestinationUnreachableError, DinsyncError
from ...lazy_imports import asyncssh_module
from ...sender.breaker import OutageLimits, Silence
from ...state.process import holder_id, holder_is_dead, parse_holder
from ..base import Delivered, RecordResult, Request, TransportStats
from .reports import REPORT_SUFFIX, ReportError, parse_report, report_results
from .settings import SftpSettings, file_name_fields
from .values import CsvChunk, csv_header

asyncssh = asyncssh_module()

PART = ".part"
_NAME_PATTERNS = {"stamp": r"\d{8}T\d{6}Z", "run": r"[0-9a-f]{8}", "seq": r"\d{4,}"}


class UpdateModeInsertError(DinsyncError):
    """The account's import created contacts while the sync is in update mode."""


def file_token(name: str, mode: str) -> str:
    """The pending token of a file: its name and the mode it was written in (a name holds no `/`)."""
    return f"{name}/{mode}"


def parse_file_token(token: str) -> tuple[str, str | None] | None:
    """(file name, mode it was written in) of a token; the mode is None for a token of an older
    version (the name alone). None for a token that names no file of the drop folder."""
    name, _, mode = token.partition("/")
    if not name or (_ and mode not in ("insert", "update")):
        return None
    return name, (mode or None)


def update_mode_error(sync: str, created: Mapping[str, int]) -> UpdateModeInsertError | None:
    """The run's error when import reports (file name -> contacts created) show creations in update
    mode, whether the report came within the run (`settle`) or later (`resolve`): reports come on
    Splio's schedule, so a late one is the common case and must fail a run too. The created rows
    are `failed` (reports.row_result): not committed, sent again by the next run."""
    if not created:
        return None
    total = sum(created.values())
    return UpdateModeInsertError(
        f"Splio created {total} contacts from {', '.join(sorted(created))} although sync {sync!r} is in update "
        "mode: the account's SFTP import configuration allows inserts. Those contacts exist now; their rows are "
        f"not committed (`dinsync rejections {sync}` lists them) and the next run sends them again",
        hint="ask Splio to make this import update-only, or set `mode: insert` in the sync")


SPOOL_PREFIX = "dinsync-splio-"
_SPOOL_NAME = re.compile(re.escape(SPOOL_PREFIX) + r"(\d+)-(\d+)-[A-Za-z0-9_]+")


def _spool_prefix() -> str:
    """`dinsync-splio-<pid>-<start time>-`: whose spool folder it is (see sweep_dead_spools)."""
    _, pid, start = parse_holder(holder_id())
    return f"{SPOOL_PREFIX}{pid}-{start or 0}-"


# A spool folder is removed only when untouched for this long too: a process in another PID
# namespace sharing the temporary folder (containers) looks dead from here.
SPOOL_IDLE_SECONDS = 600.0


def sweep_dead_spools(root: str | None = None) -> list[str]:
    """Remove the spool folders (contact rows in CSV) of dinsync processes of this user that died
    without removing them (kill -9, power loss) and were not written for SPOOL_IDLE_SECONDS; a
    folder whose process still runs is kept, as are folders named otherwise. Returns the names
    removed."""
    import socket

    base = Path(root or tempfile.gettempdir())
    host, removed = socket.gethostname(), []
    try:
        entries = list(base.iterdir())
    except OSError:
        return removed
    for entry in entries:
        m = _SPOOL_NAME.fullmatch(entry.name)
        if m is None:
            continue
        try:
            st = entry.lstat()
        except OSError:
            continue
        if not entry.is_dir() or entry.is_symlink() or (hasattr(os, "getuid") and st.st_uid != os.getuid()):
            continue
        if time.time() - st.st_mtime < SPOOL_IDLE_SECONDS:
            continue
        holder = f"{host}:{m[1]}:{m[2]}" if m[2] != "0" else f"{host}:{m[1]}"
        if holder_is_dead(holder):
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry.name)
    return removed


SPOOL_HINT = ("the temporary folder (TMPDIR) must be writable, its disk not full, and a file of "
              "sftp.max_file_bytes within the file size limit (ulimit -f)")


@dataclass
class _File:
    name: str  # final name in the drop folder
    header: tuple[str, ...]
    path: Path  # local spool file
    handle: object | None
    rows: int = 0
    size: int = 0
    keys: list[str] = field(default_factory=list)
    id_to_key: dict[str, str] = field(default_factory=dict)
    state: str = "open"  # open | uploaded | failed | settled
    reason: str | None = None


class _Refused(DinsyncError):
    """The server refused an operation on a path (no such file, permission denied): not retried."""


class _NameTaken(Exception):
    """The drop folder holds another file under the name of the one being uploaded."""


async def _same_file(sftp: asyncssh.SFTPClient, remote: str, local: Path, progressed=lambda: None) -> bool:
    """Whether `remote` holds exactly the bytes of `local` (size, then SHA-256 of a read-back): a
    plain rename refused because its target exists may have met our own file, left by an attempt
    whose answer was lost (e.g. a server whose rename copies, cut off midway). Reads the file back
    only in that rare case. A file that vanishes meanwhile is taken as ours: the importer took it,
    and the name carries this run's random tag."""
    mine, theirs = hashlib.sha256(), hashlib.sha256()
    try:
        if (await sftp.stat(remote)).size != local.stat().st_size:
            return False
        with local.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                mine.update(block)
        async with sftp.open(remote, "rb") as handle:
            while block := await handle.read(1 << 20):
                theirs.update(block)
                progressed()  # (each block is an answer: see SftpTransport._watched)
    except asyncssh.SFTPNoSuchFile:
        return True
    return mine.digest() == theirs.digest()


def _stamp() -> str:
    """`{stamp}` of file names: UTC, to the second (its form is `_NAME_PATTERNS["stamp"]`)."""
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())


def _quote_host(host: str, port: int) -> str:
    return host if port == 22 else f"[{host}]:{port}"


class SftpTransport:
    """The `Transport` of `transport: sftp` (see the module docstring)."""

    def __init__(self, settings: SftpSettings, universe: str, *, password: str | None = None,
                 private_key: str | None = None, passphrase: str | None = None, rows_per_request: int = 5000,
                 stall_seconds: float = 30.0):
        self.settings = settings
        # an SFTP operation is given up (and retried on a new connection) once the server has not
        # answered for this long: a server stuck on a write keeps the connection and its keepalives up
        self.stall_seconds = stall_seconds
        self._progress_at = 0.0
        self.universe = universe
        self._password = password
        self._private_key = private_key
        self._passphrase = passphrase
        self.rows_per_request = rows_per_request
        self.sync = "sync"
        self.mode = "update"
        self.fields: frozenset[str] | None = None  # every mapped column (None: not known)
        self.run_tag = uuid.uuid4().hex[:8]
        self.stamp = _stamp()
        self._seq = 0
        self._open: dict[tuple[str, ...], _File] = {}
        self._files: dict[str, _File] = {}
        self._spool: Path | None = None
        self._conn: asyncssh.SSHClientConnection | None = None
        self._sftp: asyncssh.SFTPClient | None = None
        self._lock = asyncio.Lock()  # one writer / one uploader at a time
        self.uploads = 0
        self.upload_retries = 0
        self.swept: list[str] = []
        self.waiting: list[str] = []  # this sync's files still in the drop folder at begin
        self.created: dict[str, int] = {}  # update mode: file -> contacts its report says were created

    # --- lifecycle -------------------------------------------------------------------------
    async def __aenter__(self) -> "SftpTransport":
        sweep_dead_spools()
        try:
            self._spool = Path(tempfile.mkdtemp(prefix=_spool_prefix()))
        except OSError as exc:
            raise DinsyncError(f"Splio SFTP: could not create a local spool folder in {tempfile.gettempdir()} "
                               f"({exc.strerror or exc})", hint=SPOOL_HINT) from None
        return self

    async def __aexit__(self, *exc: object) -> None:
        for f in self._open.values():  # an unfinished file is never handed over
            if f.handle is not None:
                with contextlib.suppress(OSError):
                    f.handle.close()
        self._open.clear()
        await self._disconnect()
        if self._spool is not None:
            shutil.rmtree(self._spool, ignore_errors=True)
            self._spool = None

    async def begin(self, sync: str, mode: str, fields: Sequence[str] | None = None) -> None:
        """Start of a run: remember the sync (and its mapped columns, to tell a file of changed
        columns only from a whole one), remove its stale `.part` files, and name this run's files
        after those of earlier runs still waiting to be imported."""
        self.sync, self.mode = sync, mode
        self.fields = frozenset(fields) if fields is not None else None
        await self.sweep()
        await self._stamp_after(self.waiting)

    async def _stamp_after(self, waiting: Sequence[str], *, max_wait: float = 3.0) -> None:
        """An importer takes files in name order (or in upload order, which matches it), so this
        run's files must sort after every file of this sync still waiting: otherwise a file of
        the previous run, uploaded in the same second and with a run tag that sorts later, would
        be imported after this run's and put its older values back. The stamp has one-second
        resolution, so when needed this waits for the next second (at most `max_wait` seconds:
        a waiting name stamped further ahead comes from a clock that is not this one)."""
        if "stamp" not in file_name_fields(self.settings.file_name) or not waiting:
            return
        latest = max(waiting)
        deadline = time.monotonic() + max_wait
        while self._name(1) <= latest and time.monotonic() < deadline:
            await asyncio.sleep(1.0 - time.time() % 1.0 + 0.01)
            self.stamp = _stamp()

    # --- SSH ------------------------------------------------------------------------------
    def _where(self) -> str:
        return f"{self.settings.host}:{self.settings.port}"

    def _known_hosts(self):
        path = Path(os.path.expanduser(self.settings.known_hosts))
        entry = _quote_host(self.settings.host, self.settings.port)
        add = (f"add the server's key after checking its fingerprint with Splio, e.g. "
               f"`ssh-keyscan -p {self.settings.port} {self.settings.host} >> {self.settings.known_hosts}`")
        if not path.is_file():
            raise DestinationAuthError(f"Splio SFTP: known_hosts file {self.settings.known_hosts} not found; the "
                                       f"host key of {entry} cannot be checked", hint=add)
        try:
            return asyncssh.read_known_hosts(str(path))
        except (OSError, ValueError) as exc:
            raise DestinationAuthError(f"Splio SFTP: cannot read known_hosts {self.settings.known_hosts}: {exc}",
                                       hint=add) from None

    def _client_key(self):
        text = self._private_key or ""
        try:
            if "-----BEGIN" in text:
                return asyncssh.import_private_key(text, self._passphrase)
            return asyncssh.read_private_key(os.path.expanduser(text), self._passphrase)
        except (OSError, asyncssh.KeyImportError, ValueError) as exc:
            # asyncssh's reason ("Incorrect passphrase") names neither key nor passphrase; an OSError's
            # text names the path, which may be the key's text taken for one: only its strerror
            why = exc.strerror if isinstance(exc, OSError) else str(exc)
            raise DestinationAuthError(f"Splio SFTP: cannot load sftp.private_key: {why or type(exc).__name__}",
                                       hint="give the key itself (OpenSSH or PEM text) or a readable file path, "
                                            "and private_key_passphrase if it is encrypted") from None

    async def _client(self) -> asyncssh.SFTPClient:
        if self._sftp is not None:
            return self._sftp
        s = self.settings
        key = self._client_key() if self._private_key else None
        try:
            conn = await asyncssh.connect(
                s.host, s.port, username=s.username, password=self._password if key is None else None,
                client_keys=[key] if key is not None else None, known_hosts=self._known_hosts(),
                agent_path=None, config=[], connect_timeout=s.connect_timeout_seconds,
                login_timeout=s.connect_timeout_seconds, keepalive_interval=30,
                preferred_auth="publickey" if key is not None else "password,keyboard-interactive")
        except asyncssh.HostKeyNotVerifiable as exc:
            raise DestinationAuthError(
                f"Splio SFTP: the host key of {_quote_host(s.host, s.port)} is not in {s.known_hosts} or differs "
                f"from it ({exc.reason}); nothing was sent",
                hint=f"if the server is Splio's, add its key after checking the fingerprint with Splio: "
                     f"`ssh-keyscan -p {s.port} {s.host} >> {s.known_hosts}`") from None
        except asyncssh.PermissionDenied:
            raise DestinationAuthError(
                f"Splio SFTP: login refused for user {s.username!r} on {self._where()}",
                hint="check sftp.username and sftp.password / sftp.private_key") from None
        except (asyncssh.Error, OSError, asyncio.TimeoutError) as exc:
            raise ConnectionError(f"cannot connect to {self._where()}: {type(exc).__name__}: {exc}") from None
        try:
            self._sftp = await conn.start_sftp_client()
        except (asyncssh.Error, OSError) as exc:
            conn.close()
            raise ConnectionError(f"SFTP session refused by {self._where()}: {exc}") from None
        self._conn = conn
        return self._sftp

    async def _disconnect(self) -> None:
        sftp, conn = self._sftp, self._conn
        self._sftp = self._conn = None
        if sftp is not None:
            sftp.exit()
        if conn is not None:
            conn.close()
            try:
                await asyncio.wait_for(conn.wait_closed(), 5)
            except (asyncio.TimeoutError, asyncssh.Error, OSError):
                pass

    async def _with_client(self, action, what: str, attempts: int = 3):
        """Run `action(sftp)`, reconnecting on a dropped connection (auth errors are not retried).
        Attempts without an answer (a connection or login timed out, refused, cut, an operation
        stalled) stop once the server has answered nothing for DINSYNC_OUTAGE_SECONDS after the
        first of them (an attempt that connected or wrote a block before it was cut starts that count
        again), with 2 tried, as the HTTP sender's breaker does for a lone request (a server
        that accepts and never answers held the pre-flight check for 3 connect timeouts: ~92 s at
        the default 30 s, an upload for 4)."""
        loop = asyncio.get_running_loop()
        silence = Silence(OutageLimits.from_env().silent_seconds)
        last: BaseException | None = None
        tried = 0
        for attempt in range(attempts):
            if attempt:
                await asyncio.sleep(min(8.0, 0.5 * 2 ** (attempt - 1)))
            tried += 1
            began = loop.time()
            try:
                return await self._watched(action(await self._client()), what)
            except asyncssh.SFTPError as exc:
                if exc.code in (asyncssh.FX_NO_SUCH_FILE, asyncssh.FX_PERMISSION_DENIED):
                    raise _Refused(f"Splio SFTP on {self._where()}: {what}: {exc.reason}",
                                   hint="check sftp.directory and sftp.reports_directory with Splio") from None
                last = exc
                silence.answered()
                await self._disconnect()
            except (ConnectionError, asyncssh.Error, OSError, asyncio.TimeoutError) as exc:
                last = exc
                await self._disconnect()
                now = loop.time()
                # (a connection made or a block written during the attempt: the server answered until
                # it was cut, and its silence, if any, begins now)
                if self._progress_at > began:
                    silence.answered()
                silence.unanswered(now)
                if tried >= OutageLimits.retried_attempts and silence.over(now):
                    break
        raise ConnectionError(f"{what} failed after {tried} attempt(s): {type(last).__name__}: {last}")

    def _progressed(self, *_: object) -> None:
        """The server answered (a block of an upload written): the watchdog's clock starts again."""
        self._progress_at = asyncio.get_running_loop().time()

    async def _watched(self, action, what: str):
        """Await `action`, cancelled once the server has not answered for `stall_seconds` (an upload
        reports each block written through `_progressed`): until 2026-12-06 a server that stopped
        answering a write, its connection up, held the run forever."""
        loop = asyncio.get_running_loop()
        task = asyncio.ensure_future(action)
        self._progress_at = loop.time()
        try:
            while True:
                left = self._progress_at + self.stall_seconds - loop.time()
                if left <= 0:
                    raise asyncio.TimeoutError(f"{what}: no answer from the server for {self.stall_seconds:g} s")
                done, _ = await asyncio.wait({task}, timeout=left)
                if done:
                    return task.result()
        finally:
            if not task.done():
                task.cancel()
                if self._conn is not None:  # its requests in flight end with the connection, never answered
                    self._conn.abort()
                await asyncio.wait({task}, timeout=5)
                if task.done() and not task.cancelled():
                    task.exception()  # (it ended with the connection: retrieved, never logged as lost)

    async def check_access(self) -> None:
        """Log in and find the drop and reports folders, writing nothing: the pre-flight check over
        SFTP, so that `dinsync validate` and the check of a sync paused for its credentials see a
        refused login or host key (a check asking nothing lifted such a pause before every run)."""
        async def run(sftp: asyncssh.SFTPClient) -> None:
            for folder in (self.settings.directory, self.settings.reports_directory):
                if not await sftp.isdir(folder):
                    raise asyncssh.SFTPNoSuchFile(f"no folder {folder}")

        try:
            await self._with_client(run, f"finding {self.settings.directory} and {self.settings.reports_directory}")
        except ConnectionError as exc:  # refused, reset or timed out after the retries: an outage (or a
            # wrong host or port) that `validate` reports as unchecked, exit 1, as an API it cannot reach
            raise DestinationUnreachableError(f"Splio SFTP: {exc}", hint="check sftp.host and sftp.port, and that "
                                              "the server accepts connections from this machine") from None

    # --- file names -----------------------------------------------------------------------
    def _file_name(self) -> str:
        self._seq += 1
        return self._name(self._seq)

    def _name(self, seq: int) -> str:
        return self.settings.file_name.format(universe=self.universe, sync=self.sync, stamp=self.stamp,
                                              run=self.run_tag, seq=f"{seq:04d}")

    def own_file(self) -> re.Pattern:
        """Matches names of this sync's files (any run), `.part` or not."""
        parts = []
        for literal, name, _, _ in string.Formatter().parse(self.settings.file_name):
            parts.append(re.escape(literal))
            if name == "universe":
                parts.append(re.escape(self.universe))
            elif name == "sync":
                parts.append(re.escape(self.sync))
            elif name is not None:
                parts.append(_NAME_PATTERNS[name])
        return re.compile("".join(parts) + f"(?:{re.escape(PART)})?$")

    async def sweep(self) -> list[str]:
        """Remove this sync's `.part` files left by dropped uploads or killed runs (and note its
        complete files still waiting to be imported in `waiting`). One the server refuses to remove
        (a drop box allowing no removal) is left: it must not stop this run's own uploads."""
        pattern = self.own_file()

        async def run(sftp: asyncssh.SFTPClient) -> list[str]:
            removed, self.waiting = [], []
            if not await sftp.isdir(self.settings.reports_directory):
                raise asyncssh.SFTPNoSuchFile(f"no folder {self.settings.reports_directory}")
            for name in await sftp.listdir(self.settings.directory):
                if not pattern.match(name):
                    continue
                if not name.endswith(PART):
                    self.waiting.append(name)
                    continue
                try:
                    await sftp.remove(f"{self.settings.directory}/{name}")
                    removed.append(name)
                except asyncssh.SFTPNoSuchFile:
                    pass
                except asyncssh.SFTPPermissionDenied:
                    pass  # an upload-only drop box: the .part stays (importers skip it), our files go on
            return removed

        try:
            self.swept = await self._with_client(run, f"listing {self.settings.directory}")
        except ConnectionError as exc:
            raise DinsyncError(f"Splio SFTP: {exc}", hint="check sftp.host and sftp.port, and that the server "
                               "accepts connections from this machine") from None
        return self.swept

    # --- writing --------------------------------------------------------------------------
    def _new_file(self, header: tuple[str, ...]) -> _File:
        assert self._spool is not None, "SftpTransport used outside `async with`"
        name = self._file_name()
        f = _File(name, header, self._spool / name, None)
        self._open[header] = f
        self._files[name] = f
        try:
            f.handle = f.path.open("wb")
        except OSError as exc:
            self._spool_failed(f, exc)
            return f
        head = csv_header(header, self.settings.separator)
        self._write(f, head)
        f.size = len(head)
        return f

    def _write(self, f: _File, data: bytes) -> None:
        if f.state == "failed":
            return
        try:
            f.handle.write(data)
        except OSError as exc:
            self._spool_failed(f, exc)

    def _spool_failed(self, f: _File, exc: OSError) -> None:
        """The spool file could not be written (the disk full, a file size limit): it is never
        uploaded, and its rows fail with the reason, as a file the drop folder refuses (they are
        sent again by the next run); the next rows of its columns go to a new file. It used to stop
        the run as an unexpected error ("OSError: [Errno 27] File too large")."""
        f.state = "failed"
        f.reason = (f"Splio SFTP: could not write {f.name} to the local spool folder {self._spool} "
                    f"({exc.strerror or exc}) ({SPOOL_HINT})")
        if f.handle is not None:
            handle, f.handle = f.handle, None
            with contextlib.suppress(OSError):
                handle.close()
        with contextlib.suppress(OSError):
            f.path.unlink(missing_ok=True)
        if self._open.get(f.header) is f:
            del self._open[f.header]

    async def deliver(self, request: Request) -> Delivered:
        chunk: CsvChunk = request.context
        body = request.body or b""
        s = self.settings
        async with self._lock:
            f = self._open.get(chunk.header)
            if f is not None and (f.rows + len(request.keys) > s.max_rows_per_file or f.size + len(body) > s.max_file_bytes):
                await self._finish(f)
                f = None
            if f is None:
                f = self._new_file(chunk.header)
            self._write(f, body)
            f.rows += len(request.keys)
            f.size += len(body)
            f.keys.extend(request.keys)
            for i, k in zip(chunk.ids, request.keys):
                if i != k:
                    f.id_to_key[i] = k
            token = file_token(f.name, self.mode)
            if f.rows >= s.max_rows_per_file:
                await self._finish(f)
        return Delivered([], [], {token: list(request.keys)})

    async def close_files(self) -> None:
        """Upload every file still open (end of the run)."""
        async with self._lock:
            for f in list(self._open.values()):
                await self._finish(f)

    async def _finish(self, f: _File) -> None:
        """Close the spool file and upload it (temporary name, then rename). Caller holds the lock."""
        if f.state == "failed":
            return  # never uploaded: see _spool_failed
        self._open.pop(f.header, None)
        if f.handle is not None:
            try:
                f.handle.close()  # writes what the buffer still held
            except OSError as exc:
                self._spool_failed(f, exc)
                return
            f.handle = None
        final = f"{self.settings.directory}/{f.name}"
        part = final + PART

        attempts = 0
        renaming = False  # a rename was sent whose answer did not come (a dropped connection)

        async def upload(sftp: asyncssh.SFTPClient) -> None:
            nonlocal attempts, renaming
            attempts += 1
            if renaming and not await sftp.exists(part):
                return  # the rename was applied (Splio's importer may have taken the file already)
            renaming = False
            await sftp.put(str(f.path), part, progress_handler=self._progressed)
            renaming = True
            try:
                await sftp.posix_rename(part, final)
            except asyncssh.SFTPOpUnsupported:
                try:
                    await sftp.rename(part, final)  # SFTP v3: fails if `final` exists
                except (asyncssh.SFTPFailure, asyncssh.SFTPFileAlreadyExists):
                    renaming = False
                    if not await sftp.exists(final):
                        raise
                    if not await _same_file(sftp, final, f.path, self._progressed):
                        raise _NameTaken(f"{self.settings.directory} already holds a different file named "
                                         f"{f.name}; it was left alone and this file not uploaded") from None
                    await sftp.remove(part)  # ours: delivered by an attempt whose answer was lost
            renaming = False

        try:
            await self._with_client(upload, f"uploading {f.name}", attempts=self.settings.upload_attempts)
        except (ConnectionError, _NameTaken) as exc:
            f.state, f.reason = "failed", f"Splio SFTP: {exc}"
            await self._remove_quietly(part)
        except _Refused as exc:
            # the drop folder refused this file (permission denied, or gone): its rows fail with the
            # server's reason, as a file that could not be uploaded (it stopped the run with its rows
            # counted neither failed nor pending, stashed as awaiting a report that never comes)
            f.state, f.reason = "failed", f"{exc.message} ({exc.hint})"
            await self._remove_quietly(part)
        else:
            f.state = "uploaded"
            self.uploads += 1
        self.upload_retries += max(0, attempts - 1)
        f.path.unlink(missing_ok=True)

    async def _remove_quietly(self, path: str) -> None:
        """Best effort: a `.part` left here is removed by the next run's sweep."""
        try:
            sftp = await asyncio.wait_for(self._client(), self.settings.connect_timeout_seconds)
            await sftp.remove(path)
        except (DinsyncError, ConnectionError, asyncssh.Error, OSError, asyncio.TimeoutError):
            await self._disconnect()

    # --- outcomes -------------------------------------------------------------------------
    def _report_path(self, name: str) -> str:
        return f"{self.settings.reports_directory}/{name}{REPORT_SUFFIX}"

    async def _read_report(self, name: str) -> bytes | None:
        async def read(sftp: asyncssh.SFTPClient) -> bytes | None:
            try:
                async with sftp.open(self._report_path(name), "rb") as handle:
                    return await handle.read()
            except asyncssh.SFTPNoSuchFile:
                return None

        return await self._with_client(read, f"reading the report of {name}", attempts=1)

    async def settle(self, pending: Mapping[str, Sequence[str]], timeout: float) -> Delivered:
        await self.close_files()
        results = Delivered([], [])
        for f in self._files.values():
            if f.state == "failed":
                results.problems += [RecordResult(k, "failed", f.reason) for k in f.keys]
                f.state = "settled"
        deadline = time.monotonic() + timeout
        refused: _Refused | None = None
        # a server that answers no poll for the outage bound is gone (a network cut, a blackhole):
        # the wait stops, its rows stay pending; until 2026-12-07 it was polled to the deadline
        # (600 s) and the run ended a warning blaming "an import still being processed". The
        # silence counts from the first poll not answered, not from the last one answered: with
        # poll_seconds over the bound, one failed poll was silence enough to end the wait.
        silence = Silence(OutageLimits.from_env().silent_seconds)
        gone: DestinationUnreachableError | None = None
        while True:
            waiting = [f for f in self._files.values() if f.state == "uploaded"]
            for f in waiting:
                asked = time.monotonic()
                try:
                    found = await self._outcomes(f.name, self.mode, f)
                except ConnectionError as exc:
                    silence.unanswered(asked)
                    if silence.over(time.monotonic()):
                        gone = DestinationUnreachableError(
                            f"Splio SFTP on {self._where()} answered no poll of the import reports for "
                            f"{silence.lasted(time.monotonic()):.0f} s ({exc}): the outcomes of the files sent "
                            "are read by the next run", hint="run the sync again once the server answers")
                    break  # else try again at the next poll
                except _Refused as exc:
                    # (a report we may not read: the run fails saying so, its files' rows stay
                    # pending, read by the next run; raised here, the run counted them nowhere)
                    refused = exc
                    break
                silence.answered()
                if found is None:
                    continue
                results.merge(found)
                f.state = "settled"
            if refused is not None or gone is not None \
                    or not any(f.state == "uploaded" for f in self._files.values()) or time.monotonic() >= deadline:
                break
            await asyncio.sleep(min(self.settings.poll_seconds, max(0.0, deadline - time.monotonic())))
        results.pending = {file_token(f.name, self.mode): list(f.keys)
                           for f in self._files.values() if f.state == "uploaded"}
        results.error = update_mode_error(self.sync, self.created) or refused or gone
        return results

    async def _outcomes(self, name: str, mode: str, known: _File | None) -> Delivered | None:
        """The outcomes of file `name`'s rows (written in `mode`; `known`: this transport's file of
        that name, its keys) from its import report, or None while it has none or one not readable
        yet (e.g. being written by a non-atomic writer: read again at the next poll). The report is
        read and parsed here so that it goes before the next file's is read: kept by the caller's
        loop until then (~400 bytes a row parsed), two reports of 200K rows were held at once at
        the peak of a 1M-row run."""
        data = await self._read_report(name)
        if data is None:
            return None
        try:
            report = parse_report(data, name)
        except ReportError:
            return None
        columns = known.header if known else report.columns
        found, created = report_results(report, known.keys if known else None, known.id_to_key if known else {},
                                        mode, self._partial(columns))
        self._note_created(name, created, mode)
        return found

    def _note_created(self, name: str, created: int, mode: str) -> None:
        if created and mode == "update":
            self.created[name] = created

    async def resolve(self, tokens: Sequence[str]) -> Delivered:
        """Outcomes of earlier runs' files, from their tokens (file_token), each read in the mode its
        file was written in (a token of an older version: the sync's mode now)."""
        out = Delivered([], [])
        for token in dict.fromkeys(tokens):
            parsed = parse_file_token(token)
            if parsed is None:
                continue
            name, mode = parsed[0], parsed[1] or self.mode
            try:
                found = await self._outcomes(name, mode, self._files.get(name))
            except ConnectionError:
                continue
            if found is not None:
                out.merge(found)
        out.error = update_mode_error(self.sync, self.created)  # every file this transport read so far
        return out

    def _partial(self, columns: Sequence[str] | None) -> bool:
        """Whether a file of these columns (its header) leaves out a mapped column: a changed
        row's file, whose `inserted` contact (deleted in Splio since) got only those columns."""
        return self.fields is not None and columns is not None and not self.fields <= set(columns)

    def ready(self) -> Delivered:
        """Outcomes are read when settling (nothing arrives on its own meanwhile)."""
        return Delivered([], [])

    def transport_stats(self) -> TransportStats:
        return TransportStats(requests=self.uploads)
