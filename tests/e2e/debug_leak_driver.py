"""Run `dinsync sync` (argv after the script) in this process with a toy destination: Iterable whose
token check (an async `auth_headers`) raises a plain exception quoting the 401 body, and the
sandbox echoes the API key in that body. Used by test_cli_output.py in a subprocess, so the test
sees every byte the process writes."""
from __future__ import annotations

import sys

import aiohttp

from dinsync.destinations.iterable import IterableDestination


class TokenCheckingIterable(IterableDestination):
    async def auth_headers(self):
        headers = super().auth_headers()
        async with aiohttp.ClientSession() as session:
            async with session.get(self.base_url + "/api/users/getFields", headers=headers) as resp:
                body = await resp.read()
                if resp.status != 200:
                    raise RuntimeError(f"key check refused: HTTP {resp.status} {body!r}")
        return headers


def registry():
    return {"iterable": TokenCheckingIterable}


if __name__ == "__main__":
    import dinsync.config.loader

    dinsync.config.loader.registry = registry
    from dinsync import cli

    sys.argv = ["dinsync", *sys.argv[1:]]
    cli.main()
