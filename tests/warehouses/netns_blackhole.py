"""A real blackhole for tests: a network whose packets vanish without a reset (a NAT or firewall
dropping a connection), which a loopback proxy cannot make (the proxy's kernel acknowledges what
the client sends and answers its keepalive probes).

Two network namespaces joined by a veth pair: the client's (`client`) and the server's, where a
forwarder listens on SERVER_IP and passes each connection to a Unix socket (PostgreSQL's). `cut()`
sets the server's end of the pair down: the client's kernel then discards what it sends, without an
error (its end has no carrier: the noop qdisc drops the packets as sent), as the network of a dropped
connection does; `restore()` lifts it. netem (`tc qdisc ... netem loss 100%`) would do the same
where the kernel has it; this one needs only `ip` and root.

`python -m tests.warehouses.netns_blackhole forward HOST PORT UNIX_PATH` is the forwarder."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading

CLIENT_IP, SERVER_IP = "127.77.0.1", "127.77.0.2"  # loopback addresses (dinsync's http:// allows them)


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True)


def unavailable_reason() -> str | None:
    """Why this machine cannot make one (not root, `ip netns add` refused), or None."""
    name = f"dinsync_bh_probe{os.getpid()}"
    try:
        _ip("netns", "add", name)
    except (OSError, subprocess.CalledProcessError) as exc:
        return f"`ip netns add` is not permitted here: {getattr(exc, 'stderr', None) or exc}"
    _ip("netns", "del", name)
    return None


class Blackhole:
    def __init__(self, unix_path: str, port: int):
        tag = f"{os.getpid() % 100000}{threading.get_ident() % 100}"
        self.client, self.server = f"dinsync_bh_c{tag}", f"dinsync_bh_s{tag}"
        self.client_if, self.server_if = f"bhc{tag}"[:15], f"bhs{tag}"[:15]
        self.port = port
        self.forwarder: subprocess.Popen | None = None
        _ip("netns", "add", self.client)
        try:
            _ip("netns", "add", self.server)
            self._wire(unix_path)
        except BaseException:
            self.close()
            raise

    def _wire(self, unix_path: str) -> None:
        _ip("link", "add", self.client_if, "netns", self.client, "type", "veth",
            "peer", "name", self.server_if, "netns", self.server)
        for ns, dev, ip in ((self.client, self.client_if, CLIENT_IP), (self.server, self.server_if, SERVER_IP)):
            _ip("-n", ns, "link", "set", "lo", "up")
            # 127/8 on the veth: the kernel's own loopback route keeps 127.0.0.1 only
            self.exec(ns, "sysctl", "-qw", "net.ipv4.conf.all.route_localnet=1", f"net.ipv4.conf.{dev}.route_localnet=1")
            _ip("-n", ns, "route", "del", "local", "127.0.0.0/8", "dev", "lo", "table", "local")
            _ip("-n", ns, "addr", "add", f"{ip}/24", "dev", dev)
            _ip("-n", ns, "link", "set", dev, "up")
        self._neighbours()
        repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        self.forwarder = subprocess.Popen(
            ["ip", "netns", "exec", self.server, sys.executable, "-m", "tests.warehouses.netns_blackhole",
             "forward", SERVER_IP, str(self.port), unix_path],
            cwd=repo, stdout=subprocess.PIPE, text=True)
        assert self.forwarder.stdout.readline().strip() == "listening"

    def _neighbours(self) -> None:
        """Fixed link addresses: without them a cut link fails ARP, and the client's kernel reports
        'No route to host' at once, which a dropped connection never does."""
        def mac(ns, dev):
            out = subprocess.run(["ip", "-n", ns, "-br", "link", "show", dev], check=True, capture_output=True,
                                 text=True).stdout.split()
            return out[2]
        _ip("-n", self.client, "neigh", "replace", SERVER_IP, "lladdr", mac(self.server, self.server_if),
            "dev", self.client_if, "nud", "permanent")
        _ip("-n", self.server, "neigh", "replace", CLIENT_IP, "lladdr", mac(self.client, self.client_if),
            "dev", self.server_if, "nud", "permanent")

    @staticmethod
    def exec(ns: str, *argv: str) -> None:
        subprocess.run(["ip", "netns", "exec", ns, *argv], check=True, capture_output=True)

    def in_client(self, argv: list[str], **kwargs) -> subprocess.Popen:
        """A process in the client's namespace (it reaches the server at SERVER_IP:port only)."""
        return subprocess.Popen(["ip", "netns", "exec", self.client, *argv], **kwargs)

    def cut(self) -> None:
        _ip("-n", self.server, "link", "set", self.server_if, "down")

    def restore(self) -> None:
        _ip("-n", self.server, "link", "set", self.server_if, "up")
        self._neighbours()

    def close(self) -> None:
        if self.forwarder is not None:
            self.forwarder.kill()
            self.forwarder.wait()
        for ns in (self.client, self.server):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)


def _pipe(src: socket.socket, dst: socket.socket) -> None:
    try:
        while data := src.recv(65536):
            dst.sendall(data)
    except OSError:
        pass
    for s in (src, dst):
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


def forward(host: str, port: int, unix_path: str) -> None:
    server = socket.create_server((host, port))
    print("listening", flush=True)
    while True:
        conn, _ = server.accept()
        upstream = socket.socket(socket.AF_UNIX)
        upstream.connect(unix_path)
        for a, b in ((conn, upstream), (upstream, conn)):
            threading.Thread(target=_pipe, args=(a, b), daemon=True).start()


if __name__ == "__main__" and sys.argv[1:2] == ["forward"]:
    forward(sys.argv[2], int(sys.argv[3]), sys.argv[4])
