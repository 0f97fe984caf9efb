"""A loopback proxy to the test PostgreSQL that treats the startup packet's `options` parameter as
a connection pooler does (PgBouncer): `refuse` it ("unsupported startup parameter: options", its
default) or `drop` it (`ignore_startup_parameters = options`). Everything after the startup packet
is relayed unchanged, so the tests need no pooler installed.
"""
from __future__ import annotations

import socket
import struct
import threading

CANCEL_REQUEST, SSL_REQUEST, GSSENC_REQUEST = 80877102, 80877103, 80877104


def _read(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError("closed")
        data += chunk
    return data


def _pump(src: socket.socket, dst: socket.socket) -> None:
    try:
        while chunk := src.recv(65536):
            dst.sendall(chunk)
    except OSError:
        pass
    finally:
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class StartupProxy:
    def __init__(self, mode: str, upstream: tuple[str, int] = ("127.0.0.1", 5432)):
        assert mode in ("refuse", "drop")
        self.mode = mode
        self.upstream = upstream
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.startups: list[dict[str, str]] = []  # the parameters of each startup packet received
        self._sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def dsn(self, **extra: str) -> str:
        return " ".join([f"host=127.0.0.1 port={self.port} dbname=test sslmode=disable gssencmode=disable",
                         *(f"{k}={v}" for k, v in extra.items())])

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            self._sockets.append(client)
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        try:
            while True:
                length = struct.unpack("!I", _read(client, 4))[0]
                body = _read(client, length - 4)
                if struct.unpack("!I", body[:4])[0] in (SSL_REQUEST, GSSENC_REQUEST):
                    client.sendall(b"N")
                    continue
                break
            if struct.unpack("!I", body[:4])[0] == CANCEL_REQUEST:
                with socket.create_connection(self.upstream) as upstream:
                    upstream.sendall(struct.pack("!I", length) + body)
                client.close()
                return
            version, words = body[:4], body[4:].split(b"\0")
            params = dict(zip(words[0:-2:2], words[1:-2:2]))
            self.startups.append({k.decode(): v.decode() for k, v in params.items()})
            if b"options" in params and self.mode == "refuse":
                fields = b"SFATAL\0VFATAL\0C08P01\0Munsupported startup parameter: options\0\0"
                client.sendall(b"E" + struct.pack("!I", len(fields) + 4) + fields)
                client.close()
                return
            params.pop(b"options", None)
            packet = version + b"".join(k + b"\0" + v + b"\0" for k, v in params.items()) + b"\0"
            upstream = socket.create_connection(self.upstream)
            self._sockets.append(upstream)
            upstream.sendall(struct.pack("!I", len(packet) + 4) + packet)
        except (OSError, ConnectionError):
            client.close()
            return
        threading.Thread(target=_pump, args=(upstream, client), daemon=True).start()
        _pump(client, upstream)

    def close(self) -> None:
        self.server.close()
        for s in self._sockets:
            try:
                s.close()
            except OSError:
                pass
