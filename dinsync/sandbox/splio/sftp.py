"""The SFTP side of the Splio sandbox: a real asyncssh server on 127.0.0.1.

* Host key: ed25519, generated per sandbox (or loaded from `host_key`); `known_hosts_line()` gives
  the line a client pins (`[127.0.0.1]:PORT ssh-ed25519 AAAA...`).
* Users: password and/or public-key auth per user (`SplioOptions.sftp_users`, `add_user`).
* Each session is chrooted in the sandbox's SFTP root. The client may list and read everything
  there, but write, rename and remove only files directly in the drop folder (as an import drop
  box would allow); mkdir, rmdir and links are refused.
* The importer skips a file while an SFTP handle has it open for writing.
* A plain SFTP rename never replaces an existing file (SFTP v3 says so, and OpenSSH's server
  refuses); only the `posix-rename@openssh.com` extension does.

Faults (`SftpFaults`, reached as `sandbox.sftp_faults`):
* `drop_upload_after(n, times)`: the next upload(s) get their first `n` bytes written, then the
  server drops the connection (the partial file stays, as on real servers);
* `refuse_logins(times)` / `refuse_auth = True`: logins fail as with a wrong password;
* `importer_delay`: seconds the importer waits before each file (a slow importer);
* `reject_next_file(reason, times)`: the next file(s) are rejected (reason code `injected`);
* `refuse_posix_rename = True`: the server lacks the posix-rename extension (answers "operation
  unsupported"), as some servers do: clients fall back to a plain rename;
* `drop_after_rename(times)`: the next rename(s) are applied, then the connection drops before the
  answer (the client cannot tell whether the file was renamed);
* `refuse_remove = True`: the drop folder allows uploads and renames but no removal (permission
  denied), as upload-only drop boxes do.
"""
from __future__ import annotations

import asyncio
import hmac
import os
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any, Iterable

from ...lazy_imports import asyncssh_module
from .importer import Importer

asyncssh = asyncssh_module()

_WRITE_FLAGS = asyncssh.FXF_WRITE | asyncssh.FXF_APPEND | asyncssh.FXF_CREAT | asyncssh.FXF_TRUNC | asyncssh.FXF_EXCL
_WRITE_ACCESS = asyncssh.ACE4_WRITE_DATA | asyncssh.ACE4_APPEND_DATA
_CREATING = (asyncssh.FXF_CREATE_NEW, asyncssh.FXF_CREATE_TRUNCATE, asyncssh.FXF_OPEN_OR_CREATE,
             asyncssh.FXF_TRUNCATE_EXISTING)


@dataclass
class SftpFaults:
    """Faults of the SFTP server and the importer; change them on the sandbox's loop."""

    importer_delay: float = 0.0
    refuse_auth: bool = False
    refuse_posix_rename: bool = False
    refuse_remove: bool = False
    injected: Counter = field(default_factory=Counter, init=False)
    _drops: deque = field(default_factory=deque, init=False, repr=False)
    _rejections: deque = field(default_factory=deque, init=False, repr=False)
    _refused_uploads: deque = field(default_factory=deque, init=False, repr=False)
    # faults armed `times` times, by kind (the kind `injected` counts them under): drop_after_rename,
    # refuse_read, stall_upload, refuse_login
    _armed: Counter = field(default_factory=Counter, init=False, repr=False)

    def _take(self, kind: str, counted: bool = True) -> bool:
        """Whether a fault of `kind` is armed; if so, one is used (and counted in `injected`)."""
        if self._armed[kind] <= 0:
            return False
        self._armed[kind] -= 1
        if counted:
            self.injected[kind] += 1
        return True

    def drop_upload_after(self, nbytes: int, times: int = 1) -> None:
        """The next `times` uploads: write `nbytes` bytes, then drop the connection."""
        if nbytes < 0:
            raise ValueError("nbytes must be >= 0")
        self._drops.extend([nbytes] * times)

    def drop_after_rename(self, times: int = 1) -> None:
        """The next `times` renames: applied, then the connection drops before the answer."""
        self._armed["drop_after_rename"] += times

    def next_rename_dropped(self) -> bool:
        return self._take("drop_after_rename")

    def refuse_reads(self, times: int = 1) -> None:
        """The next `times` files opened for reading (import reports) answer permission denied."""
        self._armed["refuse_read"] += times

    def next_read_refused(self) -> bool:
        return self._take("refuse_read")

    def stall_uploads(self, times: int = 1) -> None:
        """The next `times` uploads: the first write is never answered (a server stuck on its disk),
        while the connection stays up and answers keepalives."""
        self._armed["stall_upload"] += times

    def next_write_stalled(self) -> bool:
        return self._take("stall_upload")

    def refuse_uploads(self, kind: str = "permission", times: int = 1) -> None:
        """The next `times` uploads are refused when opened: "permission" (the drop folder refuses
        writes: SSH_FX_PERMISSION_DENIED) or "disk_full" (OpenSSH's answer to ENOSPC: SSH_FX_FAILURE)."""
        if kind not in ("permission", "disk_full"):
            raise ValueError("kind must be 'permission' or 'disk_full'")
        self._refused_uploads.extend([kind] * times)

    def next_upload_refusal(self) -> Exception | None:
        if not self._refused_uploads:
            return None
        kind = self._refused_uploads.popleft()
        self.injected["refuse_upload"] += 1
        if kind == "permission":
            return asyncssh.SFTPPermissionDenied("Permission denied")
        return asyncssh.SFTPFailure("No space left on device")

    def refuse_logins(self, times: int = 1) -> None:
        """The next `times` connections cannot log in, whatever their credentials."""
        self._armed["refuse_login"] += times

    def reject_next_file(self, reason: str = "rejected by an injected fault", times: int = 1) -> None:
        self._rejections.extend([reason] * times)

    def next_upload_limit(self) -> int | None:
        return self._drops.popleft() if self._drops else None

    def next_login_refused(self) -> bool:
        return self.refuse_auth or self._take("refuse_login", counted=False)

    def next_file_rejection(self) -> str | None:
        if self._rejections:
            self.injected["reject_file"] += 1
            return self._rejections.popleft()
        return None

    def pending(self) -> int:
        return len(self._drops) + len(self._rejections) + len(self._refused_uploads) + sum(self._armed.values())

    def clear(self) -> None:
        self.importer_delay = 0.0
        self.refuse_auth = False
        self.refuse_posix_rename = False
        self.refuse_remove = False
        self.injected.clear()
        self._drops.clear()
        self._rejections.clear()
        self._refused_uploads.clear()
        self._armed.clear()


@dataclass
class SftpUser:
    password: str | None = None
    public_keys: list[asyncssh.SSHKey] = field(default_factory=list)


def _public_key(key: Any) -> asyncssh.SSHKey:
    if isinstance(key, asyncssh.SSHKey):
        return key
    return asyncssh.import_public_key(key)


class SftpServer:
    """The SSH listener, its users and host key; files go to `importer`."""

    def __init__(self, importer: Importer, faults: SftpFaults, host_key: str | None = None):
        self.importer = importer
        self.faults = faults
        self.host_key = (asyncssh.read_private_key(host_key) if host_key
                         else asyncssh.generate_private_key("ssh-ed25519"))
        self.users: dict[str, SftpUser] = {}
        self.logins: Counter = Counter()  # password / publickey / refused / failed
        self.uploads: Counter = Counter()  # opened / completed / dropped
        self.port: int | None = None
        self._acceptor: asyncssh.SSHAcceptor | None = None

    def add_user(self, name: str, password: str | None = None, public_keys: Iterable[Any] = ()) -> None:
        keys = [_public_key(k) for k in public_keys]
        if not name or not (password or keys):
            raise ValueError("an SFTP user needs a name and a password or public keys")
        self.users[name] = SftpUser(password, keys)

    @property
    def host_public_key(self) -> str:
        """`ssh-ed25519 AAAA...` (no comment)."""
        return " ".join(self.host_key.export_public_key("openssh").decode().split()[:2])

    def known_hosts_line(self) -> str:
        return f"[127.0.0.1]:{self.port} {self.host_public_key}"

    async def start(self, port: int = 0) -> int:
        self._acceptor = await asyncssh.listen(
            "127.0.0.1", port, server_host_keys=[self.host_key], server_factory=lambda: _SshServer(self),
            sftp_factory=lambda chan: _SftpSession(chan, self), allow_scp=False, login_timeout=30)
        self.port = self._acceptor.sockets[0].getsockname()[1]
        return self.port

    async def stop(self) -> None:
        if self._acceptor is not None:
            self._acceptor.close()
            await self._acceptor.wait_closed()
            self._acceptor = None

    # ---- auth, called by _SshServer
    def check_password(self, refused: bool, username: str, password: str) -> bool:
        user = self.users.get(username)
        ok = (not refused and user is not None and user.password is not None
              and hmac.compare_digest(user.password.encode(), password.encode()))
        self.logins["password" if ok else ("refused" if refused else "failed")] += 1
        return ok

    def check_key(self, refused: bool, username: str, key: asyncssh.SSHKey) -> bool:
        user = self.users.get(username)
        ok = not refused and user is not None and any(k.public_data == key.public_data for k in user.public_keys)
        if not ok:
            self.logins["refused" if refused else "failed"] += 1
        return ok


class _SshServer(asyncssh.SSHServer):
    def __init__(self, server: SftpServer):
        self._server = server
        self._refused = False

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        self._refused = self._server.faults.next_login_refused()
        if self._refused:
            self._server.faults.injected["refuse_auth"] += 1

    def begin_auth(self, username: str) -> bool:
        return True

    def password_auth_supported(self) -> bool:
        return True

    def validate_password(self, username: str, password: str) -> bool:
        return self._server.check_password(self._refused, username, password)

    def public_key_auth_supported(self) -> bool:
        return True

    def validate_public_key(self, username: str, key: asyncssh.SSHKey) -> bool:
        return self._server.check_key(self._refused, username, key)

    def auth_completed(self) -> None:
        self._server.logins["ok"] += 1


@dataclass
class _Upload:
    path: str
    limit: int | None
    dropped: bool = False


class _SftpSession(asyncssh.SFTPServer):
    """One SFTP session, chrooted in the sandbox root; writes only in the drop folder."""

    def __init__(self, chan: asyncssh.SSHServerChannel, server: SftpServer):
        super().__init__(chan, chroot=str(server.importer.root))
        self._server = server
        self._drop = os.fsencode(os.path.realpath(server.importer.drop))
        self._uploads: dict[int, _Upload] = {}

    def _require_writable(self, path: bytes) -> bytes:
        local = self.map_path(path)
        if os.path.dirname(local) != self._drop or not os.path.basename(local):
            raise asyncssh.SFTPPermissionDenied("Permission denied: only the drop folder is writable")
        refused = self._server.faults.next_upload_refusal()
        if refused is not None:
            raise refused
        return local

    def _opened(self, file_obj: Any, local: bytes) -> Any:
        path = os.fsdecode(local)
        self._uploads[id(file_obj)] = _Upload(path, self._server.faults.next_upload_limit())
        self._server.importer.open_for_write[path] += 1
        self._server.uploads["opened"] += 1
        return file_obj

    def open(self, path: bytes, pflags: int, attrs: asyncssh.SFTPAttrs) -> Any:
        if not pflags & _WRITE_FLAGS:
            if self._server.faults.next_read_refused():
                raise asyncssh.SFTPPermissionDenied("Permission denied")
            return super().open(path, pflags, attrs)
        local = self._require_writable(path)
        return self._opened(super().open(path, pflags, attrs), local)

    def open56(self, path: bytes, desired_access: int, flags: int, attrs: asyncssh.SFTPAttrs) -> Any:
        if not (desired_access & _WRITE_ACCESS or (flags & asyncssh.FXF_ACCESS_DISPOSITION) in _CREATING):
            return super().open56(path, desired_access, flags, attrs)
        local = self._require_writable(path)
        return self._opened(super().open56(path, desired_access, flags, attrs), local)

    def write(self, file_obj: Any, offset: int, data: bytes) -> Any:
        upload = self._uploads.get(id(file_obj))
        if upload is not None and self._server.faults.next_write_stalled():
            return asyncio.sleep(10**9)  # never answered (until the client gives up and disconnects)
        if upload is not None and upload.limit is not None and offset + len(data) > upload.limit:
            keep = max(0, upload.limit - offset)
            if keep:
                super().write(file_obj, offset, data[:keep])
            upload.limit = None
            upload.dropped = True
            self._server.faults.injected["drop_upload"] += 1
            self._server.uploads["dropped"] += 1
            self.connection.abort()
            raise asyncssh.SFTPConnectionLost("connection dropped by an injected fault")
        return super().write(file_obj, offset, data)

    def close(self, file_obj: Any) -> None:
        upload = self._uploads.pop(id(file_obj), None)
        try:
            super().close(file_obj)
        finally:
            if upload is not None:
                if not upload.dropped:
                    self._server.uploads["closed"] += 1
                counts = self._server.importer.open_for_write
                counts[upload.path] -= 1
                if counts[upload.path] <= 0:
                    del counts[upload.path]

    def remove(self, path: bytes) -> None:
        self._require_writable(path)
        if self._server.faults.refuse_remove:
            raise asyncssh.SFTPPermissionDenied("Permission denied: files cannot be removed here")
        super().remove(path)

    def rename(self, oldpath: bytes, newpath: bytes) -> None:
        self._require_writable(oldpath)
        if os.path.lexists(self._require_writable(newpath)):
            raise asyncssh.SFTPFailure("rename: the target exists")  # SFTP v3: never replaced
        super().rename(oldpath, newpath)
        self._renamed()

    def posix_rename(self, oldpath: bytes, newpath: bytes) -> None:
        if self._server.faults.refuse_posix_rename:
            raise asyncssh.SFTPOpUnsupported("posix-rename@openssh.com is not supported")
        self._require_writable(oldpath)
        self._require_writable(newpath)
        super().posix_rename(oldpath, newpath)
        self._renamed()

    def _renamed(self) -> None:
        if self._server.faults.next_rename_dropped():
            self.connection.abort()
            raise asyncssh.SFTPConnectionLost("connection dropped after the rename by an injected fault")

    def setstat(self, path: bytes, attrs: asyncssh.SFTPAttrs) -> None:
        self._require_writable(path)
        super().setstat(path, attrs)

    def lsetstat(self, path: bytes, attrs: asyncssh.SFTPAttrs) -> None:
        self._require_writable(path)
        super().lsetstat(path, attrs)

    def mkdir(self, path: bytes, attrs: asyncssh.SFTPAttrs) -> None:
        raise asyncssh.SFTPPermissionDenied("Permission denied")

    def rmdir(self, path: bytes) -> None:
        raise asyncssh.SFTPPermissionDenied("Permission denied")

    def symlink(self, oldpath: bytes, newpath: bytes) -> None:
        raise asyncssh.SFTPPermissionDenied("Permission denied")

    def link(self, oldpath: bytes, newpath: bytes) -> None:
        raise asyncssh.SFTPPermissionDenied("Permission denied")
