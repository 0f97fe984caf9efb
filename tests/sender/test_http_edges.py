"""HttpSender at HTTP's edges: proxies from the environment, odd but valid answers, huge bodies."""
from __future__ import annotations

import asyncio
import base64

import orjson
import pytest
from aiohttp import web
from yarl import URL

from dinsync.sender import HttpSender, RetryPolicy
from dinsync.sender.proxy import proxy_for

from .test_http_sender import FAST, SECRET, FakeDestination, Server, batch, destination, run, statuses

ONCE = RetryPolicy(max_attempts=1)

PROXY_VARS = ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY", "REQUEST_METHOD")


@pytest.fixture
def no_env_proxy(monkeypatch):
    for name in PROXY_VARS:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    return monkeypatch


def test_requests_go_through_the_proxy_the_environment_names(no_env_proxy, tmp_path):
    """HTTP_PROXY/HTTPS_PROXY were ignored: behind a company's egress proxy every request timed out
    (the warehouses' drivers honour them). A ~/.netrc entry is not sent along (aiohttp's trust_env
    would send its `default` login to the API, and fail a request carrying Authorization)."""
    netrc = tmp_path / "netrc"
    netrc.write_text("default login me password netrc-pw\n")
    netrc.chmod(0o600)
    no_env_proxy.setenv("NETRC", str(netrc))

    async def main():
        async with Server() as proxy:
            host, port = URL(proxy.url).host, URL(proxy.url).port
            no_env_proxy.setenv("HTTP_PROXY", f"http://corp:pr%40xy-pw@{host}:{port}")
            dest = FakeDestination("http://api.example.invalid", {"api_key": SECRET})
            async with HttpSender(dest, retry_policy=FAST, connect_timeout=5) as s:
                return proxy, await s.send(batch(["a", "b"]))

    proxy, results = run(main())
    assert statuses(results) == {"a": "ok", "b": "ok"}
    (hit,) = proxy.hits
    assert hit.headers["Host"] == "api.example.invalid" and hit.keys == ["a", "b"]
    assert hit.headers["Proxy-Authorization"] == "Basic " + base64.b64encode(b"corp:pr@xy-pw").decode()
    assert hit.headers["Authorization"] == f"Bearer {SECRET}"  # the destination's, not netrc's


def test_no_proxy_and_loopback_addresses_go_direct(no_env_proxy):
    no_env_proxy.setenv("HTTPS_PROXY", "proxy.corp:3128")
    no_env_proxy.setenv("NO_PROXY", "internal.example,.eu.iterable.com")
    assert proxy_for("https://api.iterable.com/api") == {"proxy": URL("http://proxy.corp:3128")}
    assert proxy_for("https://api.eu.iterable.com/api") == {}
    assert proxy_for("https://internal.example/x") == {}
    assert proxy_for("http://api.iterable.com/api") == {}  # HTTPS_PROXY only: http:// goes direct
    no_env_proxy.setenv("HTTP_PROXY", "http://proxy.corp:3128")
    for local in ("http://127.0.0.1:8765", "http://[::1]:8765", "http://localhost:8765", "http://0.0.0.0:8765"):
        assert proxy_for(local) == {}  # a sandbox on this machine is never proxied (a key in clear text)


@pytest.mark.parametrize("value", ["socks5://corp:pw-7f3e@127.0.0.1:1080", "http://proxy.corp:port", "http://[bad"])
def test_a_proxy_that_cannot_be_used_is_named_not_tried(no_env_proxy, value):
    """A SOCKS proxy was spoken to as an HTTP one (every attempt refused, retried to the end), an
    unreadable one failed the rows as 'invalid request: Invalid URL: ...', naming no variable."""
    no_env_proxy.setenv("HTTPS_PROXY", value)

    async def main():
        dest = FakeDestination("https://api.example.invalid", {"api_key": SECRET})
        async with HttpSender(dest, retry_policy=FAST) as s:
            return s, await s.send(batch(["a"]))

    s, (result,) = run(main())
    assert result.status == "failed" and s.stats.requests == 1
    assert result.reason.startswith("failed after 1 attempt(s): invalid request: HTTPS_PROXY is not a proxy dinsync "
                                    "can use: "), result.reason
    assert "pw-7f3e" not in result.reason


def test_a_huge_error_page_is_read_only_as_far_as_its_reason_needs():
    """A gateway's 50 MB error page was read whole by every request in flight (48 sockets of
    Iterable: gigabytes) to quote 500 characters of it; its start, with the key echoed, still
    gives the reason, masked and cut short."""
    written = []

    async def huge(request, hit):
        resp = web.StreamResponse(status=500, headers={"Content-Type": "text/plain",
                                                       "Content-Length": str(50 * 2**20)})
        await resp.prepare(request)
        sent = 0
        try:
            await resp.write(f"upstream refused Api-Key {SECRET}\n".encode().ljust(2**16, b"x"))
            sent += 2**16
            while sent < 50 * 2**20:
                await resp.write(b"x" * 2**16)
                sent += 2**16
        except (ConnectionError, RuntimeError):
            pass
        written.append(sent)
        return resp

    async def main():
        async with Server(huge) as srv, HttpSender(destination(srv), retry_policy=ONCE) as s:
            results = await s.send(batch(["a"]))
            await asyncio.sleep(0.2)  # the handler's write fails once the client has closed
            return results

    (result,) = run(main())
    assert result.status == "failed" and result.reason.startswith("failed after 1 attempt(s): HTTP 500: upstream")
    assert SECRET not in result.reason and "***" in result.reason and len(result.reason) <= 500
    assert written and max(written) < 20 * 2**20  # the client stopped reading (socket buffers aside)


def test_an_answer_opening_with_a_byte_order_mark_is_read():
    """A UTF-8 BOM before the JSON (some gateways and Windows stacks add one; RFC 8259 lets a reader
    ignore it, as Python's json and requests do) made every answer unreadable: every row failed,
    every run. It is dropped before the destination reads the answer."""
    async def bom(request, hit):
        return web.Response(body=b"\xef\xbb\xbf" + orjson.dumps({"failed": {"b": "invalid email"}}),
                            content_type="application/json", charset="utf-8")

    async def main():
        async with Server(bom) as srv, HttpSender(destination(srv), retry_policy=ONCE) as s:
            return await s.send(batch(["a", "b"]))

    results = run(main())
    assert statuses(results) == {"a": "ok", "b": "rejected"}, results
    assert results[1].reason == "invalid email"


def test_splios_authentication_goes_through_the_proxy_too(no_env_proxy):
    """`POST /authenticate`, which Splio's API sender sends itself, went direct past the proxy."""
    from dinsync.destinations.base import TransportOptions
    from dinsync.destinations.splio import SplioDestination

    from ..destinations.test_splio_api import bulk, jwt

    async def splio(request, hit):
        if request.path == "/authenticate":  # (hit.path: the absolute URL a proxy is sent)
            return web.json_response({"token": jwt({"iat": 0, "exp": 3600})})
        return web.json_response({"items": [{"contact_id": "a@x.com", "code": 201}]}, status=207)

    async def main():
        async with Server(splio) as proxy:
            no_env_proxy.setenv("HTTP_PROXY", proxy.url)
            dest = SplioDestination("http://splio.example.invalid", {"api_key": "splio-key-5e4d3c2b1a"},
                                    {"transport": "api"})
            async with dest.make_transport(TransportOptions(retry_policy=ONCE)) as sender:
                return proxy, await sender.deliver(bulk(["a@x.com"]))

    proxy, delivered = run(main())
    assert (delivered.ok, delivered.problems) == (["a@x.com"], []), delivered.problems
    assert [h.path for h in proxy.hits] == [
        "http://splio.example.invalid/authenticate", "http://splio.example.invalid/data/contacts/bulk"]


def test_attentives_results_files_are_fetched_through_the_proxy(no_env_proxy):
    """A bulk job's results file (a pre-signed link, fetched on a session of its own) went direct
    past the proxy: behind one, every job's rows stayed pending until the outcome timeout."""
    from dinsync.destinations.attentive import AttentiveDestination
    from dinsync.destinations.base import TransportOptions

    async def results(request, hit):
        return web.Response(text='{"email": "a@x.com", "status": "SUCCESS"}\n')

    async def main():
        async with Server(results) as proxy:
            no_env_proxy.setenv("HTTP_PROXY", proxy.url)
            dest = AttentiveDestination("http://127.0.0.1:9", {"api_key": "attn-key-5e4d3c2b1a"}, {})
            async with dest.make_transport(TransportOptions(retry_policy=ONCE)) as transport:
                return proxy, await transport._results_file("http://files.example.invalid/job-1.jsonl?sig=x")

    proxy, lines = run(main())
    assert lines == [{"email": "a@x.com", "status": "SUCCESS"}]
    assert [h.path for h in proxy.hits] == ["http://files.example.invalid/job-1.jsonl?sig=x"]


def test_a_proxys_credentials_never_show_in_a_reason(no_env_proxy):
    """A proxy answering 502 with the request's Proxy-Authorization echoed (and its URL named):
    neither the password nor its Basic token shows in the rows' reason."""
    async def echo(request, hit):
        return web.Response(status=502, text=f"bad gateway; you sent {request.headers.get('Proxy-Authorization')}"
                                             f" via http://corp:S3cret-proxy-pw@proxy")

    async def main():
        async with Server(echo) as proxy:
            host, port = URL(proxy.url).host, URL(proxy.url).port
            no_env_proxy.setenv("HTTP_PROXY", f"http://corp:S3cret-proxy-pw@{host}:{port}")
            dest = FakeDestination("http://api.example.invalid", {"api_key": SECRET})
            async with HttpSender(dest, retry_policy=ONCE) as s:
                return await s.send(batch(["a"]))

    (result,) = run(main())
    token = base64.b64encode(b"corp:S3cret-proxy-pw").decode()
    assert result.status == "failed" and "HTTP 502: bad gateway; you sent Basic ***" in result.reason, result.reason
    assert "S3cret-proxy-pw" not in result.reason and token not in result.reason


def _gzip_bomb(expanded: int) -> bytes:
    """A gzip body of a few KB that expands to `expanded` bytes (JSON the destination would read)."""
    import zlib

    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    parts = [packer.compress(b'{"failed": {}, "pad": "')]
    parts += [packer.compress(b"0" * 2**20) for _ in range(expanded // 2**20)]
    parts += [packer.compress(b'"}'), packer.flush()]
    return b"".join(parts)


def test_a_huge_2xx_answer_is_not_read_whole(monkeypatch):
    """A 2xx was read whole: a proxy's or CDN's endless 200 (300 MB: 874 MB of RSS for one request)
    or a gzip bomb (1 MB expanding to 1 GB: 3.1 GB) took as much memory per request in flight. It
    is read up to MAX_ANSWER_BODY; a larger one is no platform's answer: not acknowledged, sent again."""
    import dinsync.sender.http as http

    monkeypatch.setattr(http, "MAX_ANSWER_BODY", 2**20, raising=False)
    written, seen = [], []

    class Recording(FakeDestination):
        def parse(self, request, status, headers, body):
            seen.append(len(body))
            return super().parse(request, status, headers, body)

    async def endless(request, hit):
        resp = web.StreamResponse(status=200, headers={"Content-Type": "application/json",
                                                       "Content-Length": str(64 * 2**20)})
        await resp.prepare(request)
        sent = 0
        try:
            await resp.write(b'{"failed": {}, "pad": "')
            while sent < 64 * 2**20:
                await resp.write(b"0" * 2**16)
                sent += 2**16
        except (ConnectionError, RuntimeError):
            pass
        written.append(sent)
        return resp

    bomb = _gzip_bomb(16 * 2**20)

    async def gzip_bomb(request, hit):
        return web.Response(body=bomb, headers={"Content-Type": "application/json", "Content-Encoding": "gzip"})

    async def main(handler):
        async with Server(handler) as srv, HttpSender(Recording(srv.url, {"api_key": SECRET}), retry_policy=ONCE) as s:
            results = await s.send(batch(["a", "b"]))
            await asyncio.sleep(0.2)  # the handler's write fails once the client has closed
            return results

    for handler in (endless, gzip_bomb):
        results = run(main(handler))
        assert statuses(results) == {"a": "failed", "b": "failed"}, (handler.__name__, results)
        assert "HTTP 200 answer over 1 MiB not read" in results[0].reason, results[0].reason
    assert not seen  # no part of either was handed to the destination as its answer
    assert written and max(written) < 16 * 2**20  # the client stopped reading (socket buffers aside)


def test_attentives_results_file_is_read_no_further_than_a_job_can_need(monkeypatch):
    """A job's results file has a line per record of one bulk request (256 at most, a 4 MB request):
    a link answering 40 MiB of tiny lines (a CDN's or a proxy's) was read and parsed whole, a dict a
    line (at the 64 MiB cap of any answer: 8 million dicts, gigabytes). It is given up past
    RESULTS_FILE_MAX, as an answer that is not the file."""
    from dinsync.destinations.attentive import AttentiveDestination
    from dinsync.destinations.base import TransportOptions

    monkeypatch.setattr("dinsync.destinations.attentive.transport.DOWNLOAD_ATTEMPTS", 1)
    line = b'{"a":1}\n'

    async def tiny_lines(request, hit):
        return web.Response(body=line * (40 * 2**20 // len(line)), content_type="application/x-ndjson")

    async def main():
        async with Server(tiny_lines) as files:
            dest = AttentiveDestination("http://127.0.0.1:9", {"api_key": "attn-key-5e4d3c2b1a"}, {})
            async with dest.make_transport(TransportOptions(retry_policy=ONCE)) as transport:
                return await transport._results_file(files.url + "/job-1.jsonl?sig=x")

    assert run(main()) is None


def test_a_destination_whose_answers_are_small_caps_them_lower(monkeypatch):
    """The cap of a 2xx answer is a platform's (Destination.max_answer_bytes), 64 MiB when it names
    none: 64 MiB a request in flight was ~3 GB at worst over Iterable's 48 sockets behind a hostile
    proxy, where its answers are a few MB at most (they list some of the users its 4 MB request sent)."""
    from dinsync.destinations.attentive import AttentiveDestination
    from dinsync.destinations.iterable import IterableDestination
    from dinsync.destinations.splio import SplioDestination
    from dinsync.sender.http import MAX_ANSWER_BODY

    class Small(FakeDestination):
        max_answer_bytes = 2**20

    async def long_answer(request, hit):
        return web.Response(body=b'{"failed": {}, "pad": "' + b"0" * (2 * 2**20) + b'"}',
                            content_type="application/json")

    async def main(dest_class):
        async with Server(long_answer) as srv, HttpSender(dest_class(srv.url, {"api_key": SECRET}),
                                                          retry_policy=ONCE) as s:
            return await s.send(batch(["a", "b"]))

    results = run(main(Small))
    assert statuses(results) == {"a": "failed", "b": "failed"}
    assert "HTTP 200 answer over 1 MiB not read" in results[0].reason, results[0].reason
    assert statuses(run(main(FakeDestination))) == {"a": "ok", "b": "ok"}  # 2 MiB: within the default
    for platform in (IterableDestination, SplioDestination, AttentiveDestination):
        assert 4 * 2**20 < platform.max_answer_bytes < MAX_ANSWER_BODY, platform
