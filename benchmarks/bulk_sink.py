"""A fast Iterable-shaped bulk sink for throughput benchmarks, in its own process.

`python benchmarks/bulk_sink.py --port 0` prints `listening http://127.0.0.1:PORT`, then answers
`POST /api/users/bulkUpdate` like Iterable does when every user is accepted: it parses the body,
checks the `Api-Key` header and that each user has an `email` and `dataFields`, remembers which
emails it received, and answers `{"successCount": n, "failCount": 0, ...}`. `GET /stats` returns
the counts (requests, users received, distinct emails), `GET /emails` the distinct emails (sorted),
`POST /reset` forgets everything. It enforces no rate limit and keeps no
profiles, so it is not the bottleneck the full sandbox (dinsync/sandbox) would be; correctness
against Iterable's rules is the sandbox's and the tests' job.
"""
from __future__ import annotations

import argparse
import asyncio
import gc
import signal

import orjson
from aiohttp import web

KEY = "bench-key-0123456789"


class Sink:
    def __init__(self) -> None:
        self.requests = 0
        self.users = 0
        self.emails: set[str] = set()

    async def bulk(self, request: web.Request) -> web.Response:
        if request.headers.get("Api-Key") != KEY:
            return web.json_response({"msg": "Invalid API key", "code": "BadApiKey", "params": None}, status=401)
        body = orjson.loads(await request.read())
        users = body["users"]
        for user in users:
            if not isinstance(user.get("email"), str) or not isinstance(user.get("dataFields"), dict):
                return web.json_response({"msg": "bad user", "code": "BadParams", "params": None}, status=400)
            self.emails.add(user["email"])
        self.requests += 1
        self.users += len(users)
        return web.Response(body=orjson.dumps({"successCount": len(users), "failCount": 0, "createdFields": [],
                                               "filteredOutFields": [], "failedUpdates": {}}),
                            content_type="application/json")

    async def stats(self, request: web.Request) -> web.Response:
        return web.json_response({"requests": self.requests, "users": self.users, "distinct": len(self.emails)})

    async def emails_received(self, request: web.Request) -> web.Response:
        return web.Response(body=orjson.dumps(sorted(self.emails)), content_type="application/json")

    async def reset(self, request: web.Request) -> web.Response:
        self.__init__()
        return web.json_response({})


async def serve(port: int) -> None:
    sink = Sink()
    app = web.Application(client_max_size=8 * 1024 * 1024)
    app.router.add_post("/api/users/bulkUpdate", sink.bulk)
    app.router.add_get("/stats", sink.stats)
    app.router.add_get("/emails", sink.emails_received)
    app.router.add_post("/reset", sink.reset)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    print(f"listening http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    gc.freeze()
    await stop.wait()
    await runner.cleanup()


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=0)
    asyncio.run(serve(ap.parse_args().port))
