"""Where every sandbox listens: 127.0.0.1 only, never another interface."""
from __future__ import annotations

from aiohttp import web


async def listen(app: web.Application, port: int = 0) -> web.AppRunner:
    """Serve `app` on 127.0.0.1:`port` (0: an ephemeral port); nothing is left listening when it
    fails. The base URL is `base_url(runner)`."""
    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1.0)
    await runner.setup()
    try:
        await web.TCPSite(runner, "127.0.0.1", port).start()
    except BaseException:
        await runner.cleanup()
        raise
    return runner


def base_url(runner: web.AppRunner) -> str:
    return f"http://127.0.0.1:{runner.addresses[0][1]}"


class LoopbackServer:
    """An HTTP sandbox on 127.0.0.1 only: a subclass builds its `app()`."""

    _runner: web.AppRunner | None = None
    url: str | None = None

    def app(self) -> web.Application:
        raise NotImplementedError

    async def start(self, port: int = 0) -> str:
        """Listen on 127.0.0.1 (port 0: ephemeral); returns the base URL."""
        self._runner = await listen(self.app(), port)
        self.url = base_url(self._runner)
        return self.url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
