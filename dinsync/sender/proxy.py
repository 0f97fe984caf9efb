"""The proxy the environment names for a URL: `HTTPS_PROXY` / `HTTP_PROXY` (or lower case), unless
`NO_PROXY` lists the host, as curl and the warehouses' drivers read them.

aiohttp's own `trust_env` is not used: it also sends the `~/.netrc` entry of a host (or its
`default` entry, for any host) as Basic credentials, a password of the user's handed to the API,
and a request already carrying an `Authorization` header (Attio's, Attentive's) then fails. A
loopback address (a sandbox, which a key may reach over plain http://) is never reached through a proxy.
"""
from __future__ import annotations

import base64
import ipaddress
from urllib.request import getproxies_environment, proxy_bypass_environment

from yarl import URL

from dinsync import redaction


def proxy_for(url: URL | str) -> dict:
    """The `proxy` argument of an aiohttp request to `url` (empty: go direct)."""
    url = URL(url) if isinstance(url, str) else url
    host = url.host
    if not host or _loopback(host):
        return {}
    proxies = getproxies_environment()
    proxy = proxies.get(url.scheme or "")
    if not proxy or proxy_bypass_environment(host, proxies):
        return {}
    if "://" not in proxy:  # `HTTPS_PROXY=proxy:3128`, as curl reads it
        proxy = "http://" + proxy
    try:
        proxy_url = URL(proxy)
        if proxy_url.scheme not in ("http", "https") or not proxy_url.host:
            raise ValueError("an http:// or https:// proxy with a host is needed (SOCKS is not supported)")
    except ValueError as exc:  # (its value is not quoted: it may hold the proxy's password)
        raise ValueError(f"{url.scheme.upper()}_PROXY is not a proxy dinsync can use: {exc}") from None
    if proxy_url.user is not None:  # aiohttp sends them as Proxy-Authorization (CONNECT's for https)
        token = base64.b64encode(f"{proxy_url.user}:{proxy_url.password or ''}".encode("latin1", "replace")).decode()
        redaction.register(proxy_url.password, token, partial=True)  # never shown in a reason
    return {"proxy": proxy_url}


def _loopback(host: str) -> bool:
    if host.lower().rstrip(".") in ("localhost", "localhost.localdomain") or host.lower().endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(host.strip("[]").split("%", 1)[0])
    except ValueError:
        return False
    # 0.0.0.0 and :: reach this machine too, and the configuration lets http:// carry a key to them
    return address.is_loopback or address.is_unspecified
