"""On-disk cache of rendered SQL, so that an unchanged sync renders nothing (and imports neither
sqlglot nor Jinja2).

One JSON file per combination of inputs, named by a hash of all of them: the tool version, the
text of every template and of the renderer's own modules, the dialect's pseudo-function patterns,
the warehouse capabilities used, the mapping, the model SQL and the state schema. It holds the
checked model SQL and the statements rendered so far. Files are written atomically (a temporary
file renamed over the target, readable by this user only, in a folder created for this user only);
a missing, unreadable or corrupt file just means rendering again, and so does one that another
user owns or may write (its statements would run with this user's credentials). A `sql` folder that
is not this user's alone (a link, one another user owns or may write: created first in a shared
/tmp) is not used at all, and pruning removes only files named as the cache names them.

Location: $DINSYNC_CACHE_DIR, else $XDG_CACHE_HOME/dinsync, else ~/.cache/dinsync (a `sql`
folder inside). DINSYNC_CACHE_DIR set to an empty string turns the cache off, as does a user with
no home folder (no HOME and no passwd entry).
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import stat
import tempfile
from pathlib import Path
from typing import Any

FORMAT = 1
# least recently used files beyond this (plus one per sync of the project running: RenderCache's
# `room`) are removed when a new one is written
MAX_FILES = 256
_FILE_NAME = re.compile(r"[0-9a-f]{32}\.json")  # a cache file's name (cache_key's 32 hex digits)
_TEMP_NAME = re.compile(r"\.tmp-[0-9a-z_]+\.json")  # a save's temporary file (tempfile.mkstemp's)
# a temporary file older than this is a killed save's, not one under way: removed by the next save
STALE_TEMP_SECONDS = 3600.0


def cache_root() -> Path | None:
    env = os.environ.get("DINSYNC_CACHE_DIR")
    if env is not None:
        return Path(env) / "sql" if env.strip() else None
    xdg = os.environ.get("XDG_CACHE_HOME")
    if xdg:
        return Path(xdg) / "dinsync" / "sql"
    try:
        return Path.home() / ".cache" / "dinsync" / "sql"
    except RuntimeError:  # no HOME and no passwd entry (`env -i`, a container's arbitrary uid): no cache
        return None


_SOURCES: str | None = None


def sources_digest() -> str:
    """Hash of every input that lives in the package: templates and the renderer's modules."""
    global _SOURCES
    if _SOURCES is None:
        here = Path(__file__).resolve().parent
        h = hashlib.sha256()
        # (spec.py: the tables' names; column_forms.py: how mapped columns are read)
        modules = ("render.py", "dialects.py", "statements.py", "keys.py", "planner.py", "spec.py", "column_forms.py")
        files = sorted((here.parent / "sql").glob("*.sql")) + [here / n for n in modules]
        for path in files:
            h.update(path.name.encode())
            h.update(b"\0")
            h.update(path.read_bytes())
            h.update(b"\0")
        _SOURCES = h.hexdigest()
    return _SOURCES


def cache_key(inputs: dict[str, Any]) -> str:
    from .. import __version__

    blob = json.dumps({"format": FORMAT, "version": __version__, "sources": sources_digest(), **inputs},
                      sort_keys=True, default=str)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:32]


_DEFAULT = object()


def _ours(path: "Path | os.stat_result", kind=stat.S_ISREG) -> bool:
    """Whether `path` (or what an open file's `os.fstat` gave) is a regular file (or of `kind`:
    stat.S_ISDIR, the cache's folder; never a link) of this user that no one else may write. The
    statements a file holds are run against the warehouse with this user's credentials, and the
    folder is written and pruned: one planted or edited by another account (a shared
    DINSYNC_CACHE_DIR, say /tmp/...) must not be."""
    st = path if isinstance(path, os.stat_result) else os.stat(path, follow_symlinks=False)
    if not kind(st.st_mode) or st.st_mode & 0o022:
        return False
    return not hasattr(os, "getuid") or st.st_uid == os.getuid()


class RenderCache:
    """Rendered statements of one Planner, loaded at start and saved when something was added.
    root: the folder (default `cache_root()`); None keeps the cache in memory only. room: files kept
    beyond MAX_FILES, one per sync of the project (a file per sync: a project of more syncs than the
    cap pruned, at each file written, the file the next sync was about to read, and every run
    rendered every sync again)."""

    def __init__(self, key: str, root: Any = _DEFAULT, room: int = 0):
        self.root = cache_root() if root is _DEFAULT else root
        self.room = max(0, room)
        self.path = self.root / f"{key}.json" if self.root is not None else None
        self.entries: dict[str, str] = {}
        if self.path is not None:
            try:
                if not _ours(self.root, stat.S_ISDIR):
                    raise OSError("not a folder of this user that only this user can write")
                # the file read is the one checked (its descriptor's): a folder swapped between a
                # check by name and the read (by the owner of a shared DINSYNC_CACHE_DIR) is not
                # read from, nor a FIFO waited on
                fd = os.open(self.path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
                with os.fdopen(fd, "rb") as fh:
                    if not _ours(os.fstat(fh.fileno())):
                        raise OSError("not a file of this user that only this user can write")
                    data = json.loads(fh.read().decode("utf-8"))
                    with contextlib.suppress(OSError):  # read is used: pruned after the files unused longer
                        os.utime(fh.fileno())
                if isinstance(data, dict) and data.get("format") == FORMAT and isinstance(data.get("entries"), dict):
                    self.entries = {k: v for k, v in data["entries"].items()
                                    if isinstance(k, str) and isinstance(v, str)}
            except (OSError, ValueError):
                self.entries = {}

    def get(self, name: str) -> str | None:
        return self.entries.get(name)

    def put(self, name: str, value: str, save: bool = True) -> None:
        self.entries[name] = value
        if save:
            self._save()

    def save(self) -> None:
        self._save()

    def _save(self) -> None:
        if self.path is None:
            return
        try:
            self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
            if not _ours(self.root, stat.S_ISDIR):
                return  # (not ours alone: the SQL stays in memory)
            fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".json", dir=self.root)
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as fh:
                    json.dump({"format": FORMAT, "entries": self.entries}, fh)
                os.replace(tmp, self.path)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise
            self._prune()
        except OSError:
            pass  # a cache that cannot be written is no cache; rendering still works

    def _prune(self) -> None:
        files, temporary = [], []
        for p in self.root.iterdir():
            if _FILE_NAME.fullmatch(p.name):
                files.append(p)
            elif _TEMP_NAME.fullmatch(p.name):
                temporary.append(p)
        self._remove_stale(temporary)
        keep = MAX_FILES + self.room
        if len(files) <= keep:
            return
        files.sort(key=lambda p: p.stat().st_mtime)
        for p in files[: len(files) - keep]:
            with contextlib.suppress(OSError):
                if _ours(p):
                    p.unlink()

    @staticmethod
    def _remove_stale(temporary: list[Path]) -> None:
        """Remove the temporary files of saves killed before their rename (kill -9 mid-write: else
        kept for good), this user's own and older than STALE_TEMP_SECONDS (a newer one may be a
        save under way in another process)."""
        import time

        now = time.time()
        for p in temporary:
            with contextlib.suppress(OSError):
                st = os.stat(p, follow_symlinks=False)
                if _ours(st) and now - st.st_mtime > STALE_TEMP_SECONDS:
                    p.unlink()
