"""Outcomes that arrive later (Attentive's bulk jobs, Splio's import reports) cost their own size,
not the number of records still pending: with bulk jobs lagging behind the writes (a run of 1M rows
at 256 rows a job, `lookup: new_rows`), every job handed over rebuilt every pending list, and the
run grew quadratic (0.4 s of a blocked event loop per job with 200,000 rows pending). The work is
counted here as hashes of the keys, never timed."""
from __future__ import annotations

import asyncio
import threading
import tracemalloc
from types import SimpleNamespace

from dinsync.destinations.base import Delivered, RecordResult, Request
from dinsync.engine.pipeline import Pipeline

ROWS_PER_JOB = 100
JOBS = 200
LAG = 100  # jobs written and not finished: 10,000 rows pending most of the run


class Key(str):
    hashes = 0

    def __hash__(self):
        Key.hashes += 1
        return str.__hash__(self)


class LaggingJobs:
    """Each write answers `pending` under its job's token; a job finishes LAG writes later (one
    handed over by `ready()` per write), its last row rejected."""

    def __init__(self):
        self.written: list[list[str]] = []
        self.finished: list[Delivered] = []

    async def deliver(self, request):
        self.written.append(list(request.keys))
        if len(self.written) > LAG:
            keys = self.written[len(self.written) - LAG - 1]
            self.finished.append(Delivered(keys[:-1], [RecordResult(keys[-1], "rejected", "bad")]))
        return Delivered([], [], {f"job{len(self.written)}": list(request.keys)})

    def ready(self):
        out = Delivered([], [])
        for d in self.finished:
            out.merge(d)
        self.finished = []
        return out


class Commits:
    def __init__(self):
        self.failed = threading.Event()  # (never set: no commit fails here)
        self.ok: list[str] = []
        self.problems: list[RecordResult] = []

    def acknowledged(self, keys):
        pass

    def pending(self, token, keys):
        pass

    def settled(self, ok, problems):
        self.ok += ok
        self.problems += problems

    def rejected(self, key, field, reason):
        pass

    async def checkpoint(self, force=False):
        pass


def _pipeline(transport, commits, summary) -> Pipeline:
    """A pipeline with only what `_worker` and `_settled` use: the transport, the commits, the summary."""
    return Pipeline(planner=None, destination=None, service=None, spec=None, mapping=None, transport=transport,
                    checkpointer=commits, summary=summary, options=None, stop=SimpleNamespace(requested=False),
                    lock=SimpleNamespace(lost=asyncio.Event()), progress=lambda *a: None, redact=lambda text: text,
                    concurrency=1)


def test_outcomes_of_lagging_jobs_cost_their_own_size_not_the_pending_rows():
    commits = Commits()
    summary = SimpleNamespace(sent=0, acknowledged=0, rejected=0, failed=0, not_found=0)
    p = _pipeline(LaggingJobs(), commits, summary)
    rows = JOBS * ROWS_PER_JOB

    async def main():
        queue: asyncio.Queue = asyncio.Queue()
        for j in range(JOBS):
            keys = [Key(f"user{j * ROWS_PER_JOB + i}@example.com") for i in range(ROWS_PER_JOB)]
            queue.put_nowait((Request("bulk", "POST", "/bulk", b"{}", keys), keys))
        queue.put_nowait(None)
        Key.hashes = 0
        await p._worker(queue)

    asyncio.run(main())
    # before: each job handed over hashed every pending key (~LAG x ROWS_PER_JOB): ~100 hashes a row
    assert Key.hashes <= 12 * rows, f"{Key.hashes} hashes of keys for {rows} rows"
    settled_jobs = JOBS - LAG
    assert len(commits.ok) == settled_jobs * (ROWS_PER_JOB - 1)
    assert len(commits.problems) == settled_jobs and summary.rejected == settled_jobs
    assert summary.acknowledged == len(commits.ok)
    p._compact()  # (as before the transport's settle(pending) at the end of the run)
    still = [k for keys in p.pending.values() for k in keys]
    assert sorted(still) == sorted(f"user{i}@example.com" for i in range(settled_jobs * ROWS_PER_JOB, rows))


class OneFile:
    """Every write pending under one file's token (Splio's SFTP imports), its outcome read at the end."""

    async def deliver(self, request):
        return Delivered([], [], {"file-1.csv/insert": list(request.keys)})


def test_a_files_outcomes_are_applied_without_copies_of_its_keys():
    """The outcomes of a run's files come at once at its end (1M rows over SFTP): applying them built
    a dict and a set of every key settled (~90 bytes a key beside what the run keeps, freed after
    but the process's peak), where a list of the acknowledged keys is all that must be handed on."""
    n = 50_000
    commits = Commits()
    summary = SimpleNamespace(sent=0, acknowledged=0, rejected=0, failed=0, not_found=0)
    p = _pipeline(OneFile(), commits, summary)
    keys = [f"user{i}@example.com" for i in range(n)]

    async def main():
        queue: asyncio.Queue = asyncio.Queue()
        for start in range(0, n, 5000):
            part = keys[start:start + 5000]
            queue.put_nowait((Request("import", "PUT", "/file", b"", part), part))
        queue.put_nowait(None)
        await p._worker(queue)

    asyncio.run(main())
    outcome = Delivered(list(keys[1:]), [RecordResult(keys[0], "rejected", "wrong_value")])
    tracemalloc.start()
    try:
        p._settled(outcome)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert (len(commits.ok), [r.key for r in commits.problems]) == (n - 1, [keys[0]])
    assert (summary.acknowledged, summary.rejected, len(p._token_of)) == (n - 1, 1, 0)
    assert peak / n < 32, f"{peak / n:.0f} bytes a key settled"
