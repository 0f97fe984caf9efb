"""Loopback proxies to the test PostgreSQL that behave as a connection pooler (PgBouncer) does, so
the tests need no pooler installed. `StartupProxy` treats the startup packet's `options` parameter
as PgBouncer does: `refuse` it ("unsupported startup parameter: options", its default before 1.20;
`refuse-setting`: "... in options: <a setting>", 1.20+) or `drop` it (`ignore_startup_parameters =
options`), then relays everything unchanged. `TransactionPool` runs each client's consecutive
transactions on two server sessions in turn (transaction pooling).
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
        assert mode in ("refuse", "refuse-setting", "drop")
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
            if b"options" in params and self.mode.startswith("refuse"):
                # PgBouncer before 1.20; 1.20+ (Neon's, Supabase's poolers) name a setting it does not track
                said = (b"unsupported startup parameter: options" if self.mode == "refuse" else
                        b"unsupported startup parameter in options: parallel_setup_cost")
                fields = b"SFATAL\0VFATAL\0C08P01\0M" + said + b"\0\0"
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


def _message(sock: socket.socket) -> bytes:
    """One protocol message (type byte, length, body), whole."""
    head = _read(sock, 5)
    return head + _read(sock, struct.unpack("!I", head[1:])[0] - 4)


class TransactionPool:
    """A loopback proxy emulating a pooler in transaction mode: each client gets two server
    sessions, and after every transaction (a ReadyForQuery saying idle) its next statements go to
    the other one, as PgBouncer may hand it another server session. The startup packet (its
    `options` included) goes to both, as a role's defaults would apply to both."""

    def __init__(self, upstream: tuple[str, int] = ("127.0.0.1", 5432)):
        self.upstream = upstream
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.switches = 0  # transactions after which a client's next ones went to its other session
        self._sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def dsn(self) -> str:
        return f"host=127.0.0.1 port={self.port} dbname=test sslmode=disable gssencmode=disable"

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
                code = struct.unpack("!I", body[:4])[0]
                if code in (SSL_REQUEST, GSSENC_REQUEST):
                    client.sendall(b"N")
                    continue
                if code == CANCEL_REQUEST:  # (to the first session only)
                    with socket.create_connection(self.upstream) as upstream:
                        upstream.sendall(struct.pack("!I", length) + body)
                    client.close()
                    return
                break
            sessions = [socket.create_connection(self.upstream) for _ in range(2)]
            self._sockets += sessions
            for s in (client, *sessions):  # (each message is sent alone: no wait for an ACK)
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            for s in sessions:
                s.sendall(struct.pack("!I", length) + body)
            while (m := _message(sessions[1]))[:1] != b"Z":  # the second's start, unseen by the client
                if m[:1] == b"E":
                    raise ConnectionError("the second session failed to start")
            current = [0]
            lock = threading.Lock()

            def relay(i: int) -> None:
                try:
                    while True:
                        m = _message(sessions[i])
                        if m[:1] == b"Z" and m[5:6] == b"I":  # idle: the transaction is over
                            with lock:
                                current[0] = 1 - i
                                self.switches += 1
                        client.sendall(m)
                except (OSError, ConnectionError):
                    client.close()

            for i in (0, 1):
                threading.Thread(target=relay, args=(i,), daemon=True).start()
            while True:
                m = _message(client)
                if m[:1] == b"X":  # Terminate: both sessions end
                    for s in sessions:
                        s.sendall(m)
                    return
                with lock:
                    target = sessions[current[0]]
                target.sendall(m)
        except (OSError, ConnectionError):
            pass
        finally:
            client.close()

    def close(self) -> None:
        self.server.close()
        for s in self._sockets:
            try:
                s.close()
            except OSError:
                pass
