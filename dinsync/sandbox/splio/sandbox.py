"""One emulated Splio universe: the SFTP import drop box and the REST API over one contact store."""
from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import tempfile
import weakref
from dataclasses import replace
from pathlib import Path
from typing import Any, Iterable, Mapping

from aiohttp import web

from ..faults import Faults
from ..loopback import base_url, listen
from .api import SplioApi
from .contacts import ContactStore, CustomFields
from .importer import REPORT_SUFFIX, Importer
from .options import SplioOptions
from .sftp import SftpFaults, SftpServer


class SplioSandbox:
    """`await start(http_port)` serves the API on 127.0.0.1:http_port and SFTP on `options.sftp_port`.

        sandbox = SplioSandbox("api-key", sftp_users={"dinsync": {"password": "pw"}}, insert_allowed=True)
        with SandboxThread(sandbox) as runner:     # runner.url is the API; sandbox.sftp_port the SFTP port
            ...
            runner.call(sandbox.process_now)       # import dropped files now (the poller also does)
    """

    def __init__(self, api_keys: str | list[str] | tuple[str, ...] = ("sandbox-key",), *,
                 options: SplioOptions | None = None, faults: Faults | None = None,
                 sftp_faults: SftpFaults | None = None, **overrides: Any):
        keys = [api_keys] if isinstance(api_keys, str) else list(api_keys)
        if not keys or not all(keys):
            raise ValueError("at least one non-empty API key is required")
        self.options = replace(options or SplioOptions(), **overrides)
        self.faults = faults if faults is not None else Faults()
        self.sftp_faults = sftp_faults if sftp_faults is not None else SftpFaults()
        self.store = ContactStore(CustomFields(self.options.custom_fields), self.options.lowercase_emails)
        work = Path(tempfile.mkdtemp(prefix="dinsync-splio-"))
        root = Path(self.options.root) if self.options.root else work / "root"
        root.mkdir(parents=True, exist_ok=True)
        self._remove_work = weakref.finalize(self, shutil.rmtree, work, True)
        self.importer = Importer(root, work / "incoming", self.options, self.store, self.sftp_faults)
        self.sftp = SftpServer(self.importer, self.sftp_faults, self.options.host_key)
        for name, user in self.options.sftp_users.items():
            self.sftp.add_user(name, user.get("password"), user.get("public_keys", ()))
        self.api = SplioApi(keys, self.options, self.store, self.faults)
        self._runner: web.AppRunner | None = None
        self._poller: asyncio.Task | None = None
        self.url: str | None = None
        self.sftp_url: str | None = None

    def __repr__(self) -> str:  # never show keys or passwords
        return f"SplioSandbox(url={self.url!r}, sftp_url={self.sftp_url!r}, universe={self.options.universe!r})"

    # ---------------------------------------------------------------- lifecycle
    async def start(self, port: int = 0) -> str:
        """Listen on 127.0.0.1 (HTTP on `port`, SFTP on options.sftp_port; 0: ephemeral); returns the API URL."""
        if not self._remove_work.alive:
            raise RuntimeError("a stopped Splio sandbox cannot start again; build a new one")
        runner = await listen(self.api.app(), port)
        try:
            sftp_port = await self.sftp.start(self.options.sftp_port)
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self.url = base_url(runner)
        self.sftp_url = f"sftp://127.0.0.1:{sftp_port}"
        if self.options.poll_interval:
            self._poller = asyncio.create_task(self.importer.run_forever(self.options.poll_interval))
        return self.url

    async def stop(self) -> None:
        """Stop both servers and remove the temporary SFTP root (a `root` option is left in place)."""
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller
            self._poller = None
        await self.sftp.stop()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        self._remove_work()

    @property
    def urls(self) -> list[str]:
        """What `serve` prints after `listening`: the SFTP URL, then the API URL."""
        return [u for u in (self.sftp_url, self.url) if u]

    def banner_lines(self) -> list[str]:
        """The host key line, then what dinsync.yml must say to reach this universe."""
        o = self.options
        imports = ("imports create unknown contacts (mode: insert or update)" if o.insert_allowed else
                   "imports only update contacts (mode: update; --insert-allowed for mode: insert)")
        return [f"known_hosts {self.known_hosts_line()}",
                f"dinsync.yml: universe: {o.universe}, sftp.username: {', '.join(o.sftp_users) or '(none)'}, "
                f"sftp.directory: {o.drop_dir}, sftp.reports_directory: {o.reports_dir}; {imports}"]

    @property
    def sftp_port(self) -> int | None:
        return self.sftp.port

    def known_hosts_line(self) -> str:
        """`[127.0.0.1]:PORT ssh-ed25519 AAAA...`, for asyncssh.import_known_hosts or a known_hosts file."""
        return self.sftp.known_hosts_line()

    @property
    def host_public_key(self) -> str:
        return self.sftp.host_public_key

    @property
    def root(self) -> Path:
        """The SFTP root folder on the local disk (the chroot of every session)."""
        return self.importer.root

    # ---------------------------------------------------------------- set-up for tests
    def add_sftp_user(self, name: str, password: str | None = None, public_keys: Iterable[Any] = ()) -> None:
        self.sftp.add_user(name, password, public_keys)

    def add_custom_field(self, name: str, kind: str, field_id: int | None = None) -> int:
        return self.store.fields.add(name, kind, field_id).id

    def seed(self, *contacts: Mapping[str, Any]) -> None:
        """Add contacts: {"email", "firstname", ..., custom field names: values} (validated as Splio would)."""
        for contact in contacts:
            self.store.seed(contact)

    def advance_time(self, seconds: float) -> None:
        """Move the token clock forward (to expire JWTs without waiting)."""
        self.api.time_offset += seconds

    async def process_now(self) -> list[dict]:
        """Import every complete file in the drop folder now; returns the reports written."""
        return await self.importer.process_now()

    # ---------------------------------------------------------------- inspection
    def contact(self, email: str) -> dict | None:
        """A copy of one contact: system fields, `custom_fields` by name, `lists`."""
        rec = self.store.get(email)
        return self.store.snapshot(rec) if rec is not None else None

    def contacts(self) -> dict[str, dict]:
        return {email: self.store.snapshot(rec) for email, rec in self.store.by_email.items()}

    def report(self, file_name: str) -> dict | None:
        """The last report of a file, as written to the reports folder."""
        return self.importer.reports.get(file_name)

    def report_path(self, file_name: str) -> str:
        """The report's path as an SFTP client sees it."""
        return f"{self.options.reports_dir.rstrip('/')}/{file_name}{REPORT_SUFFIX}"

    def stats(self) -> dict:
        counters = self.store.counters
        return {
            "contacts": len(self.store),
            "created": {s: counters[(s, "created")] for s in ("api", "sftp", "seed")},
            "updated": {s: counters[(s, "updated")] for s in ("api", "sftp", "seed")},
            "requests": sum(self.api.requests.values()),
            "requests_by_endpoint": dict(self.api.requests),
            "responses_by_endpoint": {f"{e} {s}": n for (e, s), n in sorted(self.api.statuses.items())},
            "responses_429": self.api.responses_429,
            "tokens_issued": self.api.tokens_issued,
            "faults": dict(self.faults.injected),
            "sftp_faults": dict(self.sftp_faults.injected),
            "sftp_logins": dict(self.sftp.logins),
            "sftp_uploads": dict(self.sftp.uploads),
            "files_received": list(self.importer.received),
            "files_processed": list(self.importer.processed),
            "files_rejected": dict(self.importer.rejected),
            "importer_errors": self.importer.errors,
        }

    def reset(self) -> None:
        """Forget contacts, counters, logs, file history and faults, and empty the SFTP folders."""
        self.store.clear()
        self.api.reset()
        self.faults.clear()
        self.sftp_faults.clear()
        self.sftp.logins.clear()
        self.sftp.uploads.clear()
        self.importer.clear()
        for folder in (self.importer.drop, self.importer.reports_dir, self.importer.processed_dir):
            for entry in os.scandir(folder):
                if entry.is_file(follow_symlinks=False) and entry.path not in self.importer.open_for_write:
                    os.remove(entry.path)
