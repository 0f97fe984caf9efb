"""Requests prepared and not yet answered hold at most about QUEUE_BYTES of bodies (plus one
request), whatever the number of sender tasks: each task (one per socket: Iterable's 48) holds the
request it waits to send, and the queue and the tasks bounded them in number only, so wide rows
(4 MB bulk bodies) kept ~0.6 GB of requests at once. (Rows per request, their order and the
answers are unchanged: tests/e2e/test_cli_iterable.py.)"""
from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from types import SimpleNamespace

import polars as pl

from dinsync.destinations.base import Delivered, Prepared, Request
from dinsync.engine import pipeline as pipeline_module
from dinsync.engine.pipeline import Pipeline

BODY = 300
REQUESTS = 16


class Wide:
    """A destination whose every request carries a BODY-byte body, one row each."""

    def prepare(self, frame, spec):
        return Prepared([Request("bulk", "POST", "/bulk", b"x" * BODY, [k]) for k in frame["_key"].to_list()])


class Held:
    """A transport that answers nothing until `release` is set; counts the requests it was handed."""

    def __init__(self):
        self.started = 0
        self.release = asyncio.Event()

    async def deliver(self, request):
        self.started += 1
        await self.release.wait()
        return Delivered(list(request.keys), [])


class Commits:
    failed = threading.Event()  # (never set: no commit fails here)

    def acknowledged(self, keys):
        pass

    async def checkpoint(self, force=False):
        pass


def test_requests_waiting_to_be_sent_hold_at_most_the_byte_budget(monkeypatch):
    monkeypatch.setattr(pipeline_module, "QUEUE_BYTES", 1000, raising=False)

    async def main():
        transport = Held()
        p = Pipeline(planner=None, destination=Wide(), service=None, spec=None, mapping=None, transport=transport,
                     checkpointer=Commits(), summary=SimpleNamespace(sent=0, acknowledged=0), options=None,
                     stop=SimpleNamespace(requested=False), lock=SimpleNamespace(lost=asyncio.Event()),
                     progress=lambda *a: None, redact=lambda text: text, concurrency=REQUESTS)
        queue: asyncio.Queue = asyncio.Queue(maxsize=32)
        workers = [asyncio.create_task(p._worker(queue)) for _ in range(REQUESTS)]
        rows = pl.DataFrame({"_key": [f"k{i}" for i in range(REQUESTS)]})
        with concurrent.futures.ThreadPoolExecutor(1) as ex:
            producer = asyncio.create_task(p._enqueue(rows, queue, asyncio.get_running_loop(), ex))
            while transport.started == 0:  # prepare() runs on the executor's thread
                if producer.done():  # (it failed: its error, not a wait for ever)
                    producer.result()
                    raise AssertionError("every request was prepared and none was sent")
                await asyncio.sleep(0.01)
            for _ in range(200):  # everything else happens on this loop: let it settle
                await asyncio.sleep(0)
            held = transport.started + queue.qsize()
            transport.release.set()
            await producer
            for _ in workers:
                await queue.put(None)
            await asyncio.gather(*workers)
        return held, p.s.acknowledged

    held, acknowledged = asyncio.run(main())
    assert held * BODY <= 1000 + BODY, f"{held} requests of {BODY} bytes held at once"
    assert acknowledged == REQUESTS
