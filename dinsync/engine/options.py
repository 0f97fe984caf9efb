"""Tuning knobs of a run (defaults suit production; tests and operators override them)."""
from __future__ import annotations

import os
from dataclasses import dataclass, fields


@dataclass
class EngineOptions:
    batch_rows: int = 10_000  # rows per Arrow batch read from the plan (20k: ~30-50 MB more at peak for ~0.1 s less at 1M rows)
    checkpoint_rows: int = 50_000  # commit acknowledged rows at least this often (a first sync: whole blocks, see commits.py) ...
    checkpoint_seconds: float = 5.0  # ... or this often
    queue_requests: int | None = None  # bounded request queue (default 4 x concurrency)
    lock_ttl_seconds: float = 900.0  # a lock not refreshed for this long is taken over
    heartbeat_seconds: float = 60.0  # how often a run refreshes its lock, whatever it is doing
    grace_seconds: float = 20.0  # on SIGTERM/SIGINT: how long requests in flight may finish
    outcome_timeout_seconds: float = 600.0  # how long a run waits for pending outcomes (imports, bulk jobs)
    pending_days: float = 7.0  # outcomes not read after this long are given up (those rows are sent again)

    @classmethod
    def from_env(cls) -> "EngineOptions":
        """Every field may be set as DINSYNC_<FIELD> (e.g. DINSYNC_CHECKPOINT_ROWS=300)."""
        opts = cls()
        for f in fields(cls):
            value = os.environ.get("DINSYNC_" + f.name.upper())
            if value:
                cast = int if f.name in ("batch_rows", "checkpoint_rows", "queue_requests") else float
                try:
                    setattr(opts, f.name, cast(value))
                except ValueError:
                    from ..errors import env_setting_error

                    kind = "a whole number" if cast is int else "a number"
                    raise env_setting_error(f"DINSYNC_{f.name.upper()}", kind, value, getattr(cls, f.name)) from None
        return opts
