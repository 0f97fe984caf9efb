"""Bulk jobs of `POST /v2/bulk/user/attributes`: PENDING -> IN_PROGRESS -> COMPLETED (or FAILED).

Records are applied when the job completes (not when it is submitted), in order, through the
same code as the single endpoint. The results file is JSON Lines, one line per submitted record,
in submission order (the format is undocumented; this is the sandbox's choice):

    {"index": 0, "request": <the record as sent>,
     "response": {"statusCode": 202, "body": {"success": true, "message": "..."}}}
    {"index": 1, "request": {...},
     "response": {"statusCode": 400, "body": {"error": {"id": 17, "message": "identifiers.phone ..."}}}}

i.e. each line is the request and the response the single endpoint would have given it.
`AttentiveOptions.results_order` ("reversed") and `results_index` (False) serve files laid out
otherwise, for clients that must not rely on this layout.
"""
from __future__ import annotations

import asyncio
import secrets
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable

import orjson

from .rules import ApiError, V2User

RESULTS_PATH = "/sandbox-downloads/bulk-jobs/{jobId}.jsonl"
STATUSES = ("PENDING", "IN_PROGRESS", "COMPLETED", "FAILED")


@dataclass
class BulkJob:
    id: str
    records: list[Any]                      # as sent
    parsed: list[V2User | ApiError]         # ApiError: refused at submission (bulk_validation="record")
    submitted: float
    signature: str = field(default_factory=lambda: secrets.token_urlsafe(16), repr=False)
    status: str = "PENDING"
    fail: bool = False
    results: list[dict] | None = None
    completed: float | None = None

    def status_body(self, origin: str, completed_status: str = "COMPLETED") -> dict:
        """The job's status answer; a completed job reports `completed_status` (with its `url`)."""
        status = completed_status if self.status == "COMPLETED" else self.status
        body: dict[str, Any] = {"bulkJobId": self.id, "status": status, "totalRecords": len(self.records)}
        if self.status == "COMPLETED":
            body["url"] = f"{origin}{RESULTS_PATH.format(jobId=self.id)}?signature={self.signature}"
        return body

    def results_file(self, order: str = "submitted", index: bool = True) -> bytes:
        """The `.jsonl`; `order` "reversed" and `index` False stand for a file whose layout differs
        from ours (its format is undocumented): lines in another order, without their `index`."""
        lines = list(self.results or ())
        if order == "reversed":
            lines.reverse()
        if not index:
            lines = [{k: v for k, v in line.items() if k != "index"} for line in lines]
        return b"".join(orjson.dumps(line) + b"\n" for line in lines)

    def summary(self) -> dict:
        """For tests: status, counts and the per-record status codes."""
        codes = [line["response"]["statusCode"] for line in self.results or ()]
        return {"bulkJobId": self.id, "status": self.status, "totalRecords": len(self.records),
                "statusCodes": codes}


class BulkJobs:
    """Jobs of one sandbox; `apply(record) -> (status, body)` writes one parsed record."""

    def __init__(self, apply: Callable[[V2User], tuple[int, dict]], error_body: Callable[[ApiError], dict]):
        self._apply = apply
        self._error_body = error_body
        self.jobs: dict[str, BulkJob] = {}
        self.fail_next = 0
        self._timers: list[asyncio.TimerHandle] = []

    def submit(self, records: list, parsed: list, pending_seconds: float, job_seconds: float) -> BulkJob:
        job = BulkJob(str(uuid.uuid4()), records, parsed, time.time())
        if self.fail_next > 0:
            self.fail_next -= 1
            job.fail = True
        self.jobs[job.id] = job
        loop = asyncio.get_running_loop()
        self._timers = [t for t in self._timers if not t.cancelled() and t.when() > loop.time()]
        self._timers.append(loop.call_later(pending_seconds, self._start, job))
        self._timers.append(loop.call_later(job_seconds, self._complete, job))
        return job

    def _start(self, job: BulkJob) -> None:
        if job.status == "PENDING":
            job.status = "IN_PROGRESS"

    def _complete(self, job: BulkJob) -> None:
        if job.status in ("COMPLETED", "FAILED"):
            return
        job.completed = time.time()
        if job.fail:
            job.status = "FAILED"
            return
        results = []
        for index, (record, parsed) in enumerate(zip(job.records, job.parsed)):
            if isinstance(parsed, ApiError):
                status, body = parsed.status, self._error_body(parsed)
            else:
                try:
                    status, body = self._apply(parsed)
                except ApiError as exc:
                    status, body = exc.status, self._error_body(exc)
            results.append({"index": index, "request": record, "response": {"statusCode": status, "body": body}})
        job.results = results
        job.status = "COMPLETED"

    def finish_all(self) -> None:
        """Complete every unfinished job now (tests that do not want to wait)."""
        for job in list(self.jobs.values()):
            self._start(job)
            self._complete(job)

    def cancel(self) -> None:
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()

    def clear(self) -> None:
        self.cancel()
        self.jobs.clear()
        self.fail_next = 0
