"""A loopback webhook receiver (aiohttp on 127.0.0.1) that records what it gets and answers from
a script of statuses per path (then 200 "ok", as Slack's incoming webhooks answer)."""
from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from dinsync.sandbox import SandboxThread


class Receiver:
    def __init__(self):
        self.received: list[dict[str, Any]] = []
        self.scripts: dict[str, list[tuple[int, dict[str, str]]]] = {}
        self._runner: web.AppRunner | None = None

    async def start(self, port: int = 0) -> str:
        app = web.Application()
        app.router.add_post("/{path:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", port)
        await site.start()
        port = self._runner.addresses[0][1]
        return f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.Response:
        raw = await request.read()
        self.received.append({"path": request.path, "headers": dict(request.headers), "raw": raw,
                              "json": json.loads(raw)})
        script = self.scripts.get(request.path)
        if script:
            status, headers, *text = script.pop(0)  # (status, headers[, body text])
            return web.Response(status=status, text=text[0] if text else "nope", headers=headers)
        return web.Response(text="ok")


def start_receiver() -> tuple[Receiver, SandboxThread]:
    receiver = Receiver()
    thread = SandboxThread(receiver)
    thread.start()
    return receiver, thread
