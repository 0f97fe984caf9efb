"""A TCP proxy to PostgreSQL on 127.0.0.1 (an ephemeral port) that a test switches between:
- forwarding (`forward()`);
- a blackhole (`blackhole()`): nothing forwarded either way any more, every socket kept open, as
  a NAT or firewall dropping a connection's packets looks from the client. (On loopback the proxy's
  kernel still acknowledges what fits its receive buffer, `rcvbuf`; beyond it the client's data
  stays unacknowledged, as the packets of a dropped connection do.)
- silent (`silent = True`): new connections are accepted and never answered, counted in
  `silent_connects`, as a host that does not answer (libpq waits for connect_timeout); `cut()`
  resets the connections forwarded so far; `cut_after`: bytes that, once a client sends them, cut
  every connection and make the proxy silent (a host going away mid-run).
"""
from __future__ import annotations

import select
import socket
import struct
import threading


class PgProxy:
    def __init__(self, target: tuple[str, int] = ("127.0.0.1", 5432), rcvbuf: int | None = None):
        self.target = target
        self.forwarding, self.silent = True, False
        self.cut_after: bytes | None = None
        self.connects = self.silent_connects = 0
        self._pairs: list[tuple[socket.socket, socket.socket]] = []
        self._held: list[socket.socket] = []
        self._stopped = threading.Event()
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if rcvbuf:  # (set on the listener: accepted sockets inherit it, window scaling included)
            self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def dsn(self, **extra) -> str:
        parts = {"host": "127.0.0.1", "port": self.port, "dbname": "test", **extra}
        return " ".join(f"{k}={v}" for k, v in parts.items())

    def forward(self) -> None:
        self.forwarding = True

    def blackhole(self) -> None:
        self.forwarding = False

    def cut(self) -> None:
        """Reset every connection forwarded so far (SO_LINGER 0: an RST, not a FIN)."""
        pairs, self._pairs = self._pairs, []
        for pair in pairs:
            for s in pair:
                try:
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    s.close()
                except OSError:
                    pass

    def _accept(self) -> None:
        while not self._stopped.is_set():
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if self.silent:
                self.silent_connects += 1
                self._held.append(client)
                continue
            self.connects += 1
            try:
                server = socket.create_connection(self.target)
            except OSError:
                client.close()
                continue
            self._pairs.append((client, server))
            for src, dst, watch in ((client, server, True), (server, client, False)):
                threading.Thread(target=self._pump, args=(src, dst, watch), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, watch: bool) -> None:
        try:
            while not self._stopped.is_set():
                if not self.forwarding:
                    self._stopped.wait(0.05)
                    continue
                if not select.select([src], [], [], 0.05)[0]:
                    continue
                data = src.recv(65536)
                if not data:
                    break
                if watch and self.cut_after is not None and self.cut_after in data:
                    self.silent = True
                    self.cut()
                    break
                dst.sendall(data)
        except (OSError, ValueError):  # (a socket cut meanwhile: its fileno is -1)
            pass
        for s in (src, dst):
            try:
                s.close()
            except OSError:
                pass

    def stop(self) -> None:
        self._stopped.set()
        self.listener.close()
        self.cut()
        for s in self._held:
            s.close()
