"""A DNS server that does not answer, for one host name: its lookups block (up to 10 s) until the
block ends, then fail as a resolver gives up (EAI_AGAIN); other names resolve as usual."""
from __future__ import annotations

import contextlib
import socket
import threading
from typing import Iterator


@contextlib.contextmanager
def stalled_name_lookups(monkeypatch, host: str) -> Iterator[list[str]]:
    """Yields the names whose lookup is blocked right now (`host` while one waits)."""
    real, released, blocked = socket.getaddrinfo, threading.Event(), []

    def stalled(name, *args, **kwargs):
        if name == host:
            blocked.append(name)
            released.wait(10)
            blocked.remove(name)
            raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", stalled)
    try:
        yield blocked
    finally:
        released.set()
