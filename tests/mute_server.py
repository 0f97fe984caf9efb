"""A TCP server on 127.0.0.1 that accepts every connection, reads what comes and never answers (a
hung server, a gateway that blackholes), served from a thread of its own for CLI tests."""
from __future__ import annotations

import socket
import threading


class MuteServer:
    """`with MuteServer() as mute: mute.url`; `accepted`: connections taken (one per HTTP attempt)."""

    def __init__(self):
        self.accepted = 0
        self._open: list[socket.socket] = []
        self._lock = threading.Lock()

    def __enter__(self) -> "MuteServer":
        self._sock = socket.create_server(("127.0.0.1", 0))
        self._sock.settimeout(0.05)  # (a blocked accept() is not woken by close() on Linux: polled)
        self._closing = threading.Event()
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}"
        self._thread = threading.Thread(target=self._accept, name="mute-server", daemon=True)
        self._thread.start()
        return self

    def _accept(self) -> None:
        while not self._closing.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:  # closed
                return
            with self._lock:
                self.accepted += 1
                self._open.append(conn)  # kept open, never read from or answered: the client's timeout ends it

    def __exit__(self, *exc: object) -> None:
        self._closing.set()
        self._thread.join(5)
        self._sock.close()
        with self._lock:
            for conn in self._open:
                conn.close()
