"""Requests as they leave dinsync, read off the socket: a recording reverse proxy on 127.0.0.1.

`WireRecorder(target)` is served by a `SandboxThread` like a sandbox; point a destination's
`base_url` at its URL and every request is kept as received (method, the raw request target with
its escapes, headers, body bytes) before being passed on to `target` (a sandbox) and its answer
passed back. `check_wire` holds what was captured to the platform's rules that a recorder patched
into aiohttp cannot see: the bytes are strict JSON (no NaN/Infinity, no repeated key, UTF-8), the
headers (content type, credential header shape), and the path as escaped on the wire.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import aiohttp
import orjson
from aiohttp import web
from multidict import CIMultiDict

from tests.spec_validation import request_json

HOP = {"host", "content-length", "transfer-encoding", "connection", "keep-alive"}


@dataclass
class Captured:
    method: str
    target: str  # path and query as written on the request line
    headers: CIMultiDict
    body: bytes


# What the proxy answers instead of passing a request on, the first time it sees that request
# (method, target, body): the judged platforms sit behind such a proxy. "reset after" passes the
# request on, then drops the connection without its answer (the write was applied).
FAULTS = ("429 seconds", "429 date", "502 html", "503 html retry-after", "reset", "reset after")
HTML = b"<html><head><title>502 Bad Gateway</title></head><body><center><h1>502 Bad Gateway</h1></center></body></html>"


class WireRecorder:
    def __init__(self, target: str, faults: tuple[str, ...] = ()):
        self.target = target.rstrip("/")
        self.captured: list[Captured] = []
        self.faults = faults  # cycled over, one per request first seen
        self.faulted: dict[tuple[str, str, bytes], str] = {}
        self.url: str | None = None
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None

    async def start(self, port: int = 0) -> str:
        app = web.Application(client_max_size=64 * 2**20)
        app.router.add_route("*", "/{tail:.*}", self._forward)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", port)
        await site.start()
        self._session = aiohttp.ClientSession(auto_decompress=False)
        self.url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}"
        return self.url

    async def stop(self) -> None:
        if self._session is not None:
            await self._session.close()
        if self._runner is not None:
            await self._runner.cleanup()

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.captured.append(Captured(request.method, request.raw_path, CIMultiDict(request.headers), body))
        seen = (request.method, request.raw_path, body)
        fault = None
        if self.faults and seen not in self.faulted:
            fault = self.faulted[seen] = self.faults[len(self.faulted) % len(self.faults)]
        if fault == "429 seconds":
            return web.Response(status=429, headers={"Retry-After": "1"}, text="Too Many Requests")
        if fault == "429 date":
            from email.utils import formatdate

            return web.Response(status=429, headers={"Retry-After": formatdate(time.time() + 2, usegmt=True)},
                                text="Too Many Requests")
        if fault in ("502 html", "503 html retry-after"):
            headers = {"Retry-After": "1"} if fault.endswith("retry-after") else {}
            return web.Response(status=int(fault[:3]), body=HTML, content_type="text/html", headers=headers)
        if fault == "reset":
            request.transport.abort()
            raise ConnectionResetError("fault: reset")
        answer = await self._pass_on(request, body)
        if fault == "reset after":
            request.transport.abort()
            raise ConnectionResetError("fault: reset after the request was applied")
        return answer

    async def _pass_on(self, request: web.Request, body: bytes) -> web.Response:
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP}
        async with self._session.request(request.method, self.target + request.raw_path, headers=headers,
                                         data=body or None, allow_redirects=False,
                                         skip_auto_headers=("Content-Type",)) as answer:
            # links the answer gives to the target (Attentive's results file) lead through the proxy too
            payload = (await answer.read()).replace(self.target.encode(), self.url.encode())
            out = {k: v for k, v in answer.headers.items() if k.lower() not in HOP}
            return web.Response(status=answer.status, headers=out, body=payload)


def strict_json(body: bytes):
    """The body parsed as RFC 8259 JSON: UTF-8, no NaN or Infinity, no object repeating a key, no
    lone surrogate escape (orjson refuses those)."""
    orjson.loads(body)
    return request_json(body)


def check_wire(captured: list[Captured], *, prefix: str, validate: Callable[[str, str, bytes | None], None],
               auth: Callable[[CIMultiDict, Captured], None]) -> int:
    """Validate every captured request under `prefix`; the number validated."""
    count = 0
    for c in captured:
        if not c.target.startswith(prefix):
            continue
        where = f"{c.method} {c.target[:200]}"
        if c.body:
            strict_json(c.body)
            kind = c.headers.get("Content-Type", "")
            assert kind.split(";")[0].strip().lower() == "application/json", f"{where}: Content-Type {kind!r}"
            charset = kind.partition("charset=")[2].strip().lower()
            assert charset in ("", "utf-8"), f"{where}: charset {charset!r}"
        else:
            assert c.method in ("GET", "DELETE", "HEAD"), f"{where}: a {c.method} without a body"
        auth(c.headers, c)
        validate(c.method, c.target, c.body or None)
        count += 1
    return count
