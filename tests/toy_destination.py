"""A toy destination that proves the engine's interfaces without HTTP: an "outbox".

Records are written as JSON-lines files into a folder (written as `*.part`, renamed when complete,
so a reader never sees half a file). A separate processor (`OutboxProcessor`, standing for the
platform) picks complete files up, applies them to its store and writes a result file per input
file. Until then every record of a file is *pending*; the transport settles pending records from
the result files (later in the run, or in a later run from the file name as token).

The processor rejects records whose fields hold the text REJECT_ME (a per-record content rejection).
Registered for subprocess runs through `DINSYNC_DESTINATION_MODULES=tests.toy_destination`.
"""
from __future__ import annotations

import asyncio
import os
import threading
import time
import uuid
from pathlib import Path
from typing import Mapping, Sequence

import orjson
from pydantic import BaseModel, ConfigDict, Field

from dinsync.destinations.base import (
    Delivered,
    Destination,
    KeySpec,
    Prepared,
    RecordResult,
    Request,
    ServiceSpec,
    SyncSpec,
    TransportOptions,
    TransportStats,
)
from dinsync.mapping import batches_by_size

REJECT_MARKER = "REJECT_ME"


class OutboxSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    directory: str
    rows_per_file: int = Field(500, ge=1)
    poll_seconds: float = Field(0.02, gt=0)


class OutboxTransport:
    """Files in a folder, outcomes from result files next to them."""

    def __init__(self, directory: Path, rows_per_file: int, poll_seconds: float):
        self.dir = directory
        self.rows_per_file = rows_per_file
        self.poll = poll_seconds
        self.files = 0
        self._current: tuple[Path, object] | None = None
        self._rows = 0
        self.prefix = "outbox"

    async def __aenter__(self) -> "OutboxTransport":
        self.dir.mkdir(parents=True, exist_ok=True)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._current is not None:  # an unfinished file is never handed over
            path, handle = self._current
            handle.close()
            path.unlink(missing_ok=True)
            self._current = None

    async def deliver(self, request: Request) -> Delivered:
        if self._current is None:
            name = f"{self.prefix}-{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:8]}.jsonl"
            part = self.dir / (name + ".part")
            self._current = (part, part.open("wb"))
        part, handle = self._current
        token = part.name[: -len(".part")]
        handle.write(request.body)
        self._rows += len(request.keys)
        if self._rows >= self.rows_per_file:
            self._finish_file()
        return Delivered([], [], {token: list(request.keys)})

    def _finish_file(self) -> None:
        if self._current is None:
            return
        part, handle = self._current
        handle.flush()
        os.fsync(handle.fileno())
        handle.close()
        os.replace(part, part.with_suffix(""))  # complete: visible to the processor
        self._current, self._rows = None, 0
        self.files += 1

    def sweep(self, prefix: str) -> None:
        """Unfinished files of this sync's earlier runs (killed mid-file): the sync's lock says
        no other run of it is writing, so they are dead; their rows were never acknowledged."""
        self.prefix = prefix
        for part in self.dir.glob(f"{prefix}-*.jsonl.part"):
            part.unlink(missing_ok=True)

    async def close_files(self) -> None:
        self._finish_file()

    async def settle(self, pending: Mapping[str, Sequence[str]], timeout: float) -> Delivered:
        self._finish_file()
        deadline = time.monotonic() + timeout
        waiting = set(pending)
        out = Delivered([], [])
        while waiting:
            for token in sorted(waiting):
                if self._read_result(token, out):
                    waiting.discard(token)
            if not waiting or time.monotonic() >= deadline:
                break
            await asyncio.sleep(self.poll)
        out.pending = {token: list(pending[token]) for token in waiting}
        return out

    async def resolve(self, tokens: Sequence[str]) -> Delivered:
        out = Delivered([], [])
        for token in tokens:
            self._read_result(token, out)
        return out

    def _read_result(self, token: str, out: Delivered) -> bool:
        path = self.dir / "results" / (token + ".json")
        if not path.exists():
            return False
        for r in orjson.loads(path.read_bytes())["records"]:
            if r["status"] == "ok":
                out.ok.append(r["key"])
            else:
                out.problems.append(RecordResult(r["key"], r["status"], r.get("reason"), r.get("field")))
        return True

    def ready(self) -> Delivered:
        """Outcomes are read when settling (nothing arrives on its own meanwhile)."""
        return Delivered([], [])

    def transport_stats(self) -> TransportStats:
        return TransportStats(requests=self.files)


class OutboxDestination(Destination):
    type_name = "outbox"
    services = {"records": ServiceSpec(name="records", key_fields={"email": KeySpec("email"), "id": KeySpec()},
                                       modes=("upsert",))}
    settings_model = OutboxSettings
    base_urls = {"local": "file://outbox"}

    def make_transport(self, options: TransportOptions) -> OutboxTransport:
        return OutboxTransport(Path(self.options["directory"]), int(self.options.get("rows_per_file", 500)),
                               float(self.options.get("poll_seconds", 0.02)))

    async def begin_run(self, transport: OutboxTransport, sync: SyncSpec) -> None:
        transport.sweep(f"outbox_{sync.name}")

    async def finish_run(self, transport: OutboxTransport, sync: SyncSpec) -> None:
        await transport.close_files()

    def prepare(self, frame, sync: SyncSpec) -> Prepared:
        import polars as pl

        lines = frame.select(
            pl.col("_key"),
            pl.concat_str([pl.lit('{"key":'), pl.struct(pl.col("_key").alias("k")).struct.json_encode()
                           .str.slice(5).str.head(-1), pl.lit(',"fields":'), pl.col("_json"), pl.lit("}\n")])
            .alias("_line"),
            pl.col("_bytes"),
        )
        requests = []
        keys, text = lines["_key"].to_list(), lines["_line"].to_list()
        for offset, length in batches_by_size(lines, 100, None):
            body = "".join(text[offset:offset + length]).encode()
            requests.append(Request("outbox", "WRITE", "", body, keys[offset:offset + length]))
        return Prepared(requests)


DESTINATIONS = [OutboxDestination]


class OutboxProcessor:
    """The platform side: applies complete files to `store` and writes result files."""

    def __init__(self, directory: Path, delay: float = 0.0):
        self.dir = Path(directory)
        self.delay = delay
        self.store: dict[str, dict] = {}
        self.processed: list[str] = []
        self.paused = threading.Event()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> "OutboxProcessor":
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "results").mkdir(exist_ok=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)

    def snapshot(self) -> dict[str, dict]:
        with self._lock:
            return {k: dict(v) for k, v in self.store.items()}

    def _loop(self) -> None:
        while not self._stop.wait(0.01):
            if self.paused.is_set():
                continue
            for path in sorted(self.dir.glob("*.jsonl")):
                self.process(path)

    def process(self, path: Path) -> None:
        if self.delay:
            time.sleep(self.delay)
        records = []
        with self._lock:
            for line in path.read_bytes().splitlines():
                item = orjson.loads(line)
                bad = [f for f, v in item["fields"].items() if v == REJECT_MARKER]
                if bad:
                    records.append({"key": item["key"], "status": "rejected", "reason": "outbox: value REJECT_ME",
                                    "field": bad[0]})
                    continue
                self.store.setdefault(item["key"], {}).update(item["fields"])
                records.append({"key": item["key"], "status": "ok"})
        result = self.dir / "results" / (path.name + ".json")
        tmp = result.with_suffix(".tmp")
        tmp.write_bytes(orjson.dumps({"file": path.name, "records": records}))
        os.replace(tmp, result)
        (self.dir / "done").mkdir(exist_ok=True)
        os.replace(path, self.dir / "done" / path.name)
        self.processed.append(path.name)
