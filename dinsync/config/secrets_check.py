"""Credentials in a project's configuration: what is refused as one written in the file, and what
is masked in all output once the project is loaded.

The loader refuses a destination's secret setting, a notification channel's webhook URL, a URL
with `user:password@` or a warehouse password written in dinsync.yml instead of taken from
`${env:NAME}`, and a variable set but empty (helpers here, checks in `loader.py`). Once a project
loads, `_register_secrets` registers every secret value with `dinsync.redaction`, with the parts
of it an answer may echo alone (a Basic token, a URL's password, path or query token).
"""
from __future__ import annotations

import re
from typing import Any, Container, Iterable, Iterator

from pydantic import BaseModel, SecretStr

from .. import redaction
from ..errors import ConfigIssue
from .models import CHANNEL_SECRET_KEYS, Project
from .yamlfile import YamlDoc, _show_path

# Secret settings of a destination whose value may instead be the path of a file holding the secret
# (Splio's sftp.private_key: "the key itself or a file path"): written in the file, a path is fine.
_SECRET_OR_PATH_KEYS = ("private_key",)
# A URL with a password in it (`https://user:password@host`): written in dinsync.yml, the password
# would live in git; a `base_url` or a webhook's `url` was taken as it was
_URL_PASSWORD = re.compile(r"^[a-z][a-z0-9+.-]*://[^/?#@\s:]*:[^/?#\s]+@", re.IGNORECASE)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")  # no credential sent in a header or URL holds one


def _secret_settings(settings: Any, at: tuple = ()) -> Iterable[tuple[tuple, str]]:
    """(key path, value) of every SecretStr in a destination's validated settings, nested ones too."""
    for key, value in settings:
        if isinstance(value, SecretStr):
            yield at + (key,), value.get_secret_value()
        elif isinstance(value, BaseModel):
            yield from _secret_settings(value, at + (key,))


def _looks_like_key_text(value: str) -> bool:
    return "\n" in value.strip() or "PRIVATE KEY" in value or value.lstrip().startswith("-----")


def _texts(value: Any, path: tuple = ()) -> Iterator[tuple[tuple, str]]:
    """Every string of a parsed YAML document, with its key path (keys and list indexes)."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _texts(item, path + (key,))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _texts(item, path + (index,))
    elif isinstance(value, str):
        yield path, value


def _register_secrets(project: Project, env_values: Iterable[str] = ()) -> None:
    """Every secret setting (also one written in the file, not taken from the environment) is
    masked in all output from now on (see `dinsync.redaction`). `env_values`: the values substituted
    for `${env:NAME}` (a channel URL given whole so is a credential, see `_url_tokens`)."""
    env_values = set(env_values)
    redaction.register(*(v.get_secret_value() for _, v in project.warehouse if isinstance(v, SecretStr)),
                       partial=True)
    for destination in project.destinations.values():
        redaction.register(*destination.credentials().values(), _basic_auth(destination.base_url),
                           _url_password(destination.base_url), partial=True)
    for channel in project.notifications:  # webhook URLs and headers may carry tokens
        urls = [v.get_secret_value() for _, v in channel if isinstance(v, SecretStr)]
        redaction.register(*urls, *map(_basic_auth, urls), *map(_url_password, urls), partial=True)
        redaction.register(*_url_tokens(channel, env_values))
        named, long_values = _query_secrets(channel)
        redaction.register(*named, partial=True)
        redaction.register(*long_values)  # (whole only: the start of `engineering-alerts` is no secret)
        headers = [v.get_secret_value() for name, v in getattr(channel, "headers", {}).items()
                   if _credential_header(name) or v.get_secret_value() in env_values]
        # and the token of `Bearer <token>` alone, whose start an answer may echo; not the scheme
        # word before it (`Bearer`, `Basic`), which masked as a secret garbled every text naming it
        redaction.register(*headers, *(word for value in headers for word in _credential_words(value)), partial=True)


# Header names whose values are credentials even when written in the file (`Authorization: Bearer
# ...`); any other header's is one only when it comes from `${env:NAME}`: a literal `X-Source:
# dinsync` registered as a secret masked every "dinsync" of every message (`*** runs SYNC`).
_CREDENTIAL_HEADER = re.compile(r"authorization|cookie|token|key|secret|auth|sign|pass|session|api|bearer|jwt",
                                re.IGNORECASE)


def _credential_header(name: str) -> bool:
    return _CREDENTIAL_HEADER.search(name) is not None


def _credential_words(value: str) -> list[str]:
    """The words of a header value that may be credentials: all but the first of several (an
    authentication scheme, `Bearer <token>`, `Basic <base64>`: the scheme is no secret)."""
    words = value.split()
    return words[1:] if len(words) > 1 else words


def url_credential(url: str) -> str | None:
    """What credential a channel's URL carries, as masked (see `_register_secrets`): its
    `user:password@`, sent as Basic credentials, or a query parameter whose name says credential
    (`?token=`, Azure Functions' `?code=`); None when none."""
    from urllib.parse import parse_qsl, urlsplit

    if _has_userinfo(url):
        return "the URL's user:password@ (sent as Basic credentials)"
    try:
        names = [k for k, _ in parse_qsl(urlsplit(url).query)]
    except ValueError:
        return None
    named = next((k for k in names if _credential_header(k) or _CREDENTIAL_QUERY.match(k)), None)
    return None if named is None else f"the URL's token (query parameter {named!r})"


def _has_userinfo(url: str | None) -> bool:
    """Whether `url` names a user or a password before its host (`https://user:pw@host`)."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url or "")
        return parts.username is not None or parts.password is not None
    except ValueError:
        return False


def _basic_auth(url: str | None) -> str | None:
    """The `Authorization: Basic` token a URL's `user:password@` is sent as (aiohttp's encoding):
    a server echoing that header shows it, and it decodes to the password."""
    import base64
    from urllib.parse import unquote, urlsplit

    try:
        parts = urlsplit(url or "")
        if parts.username is None:  # (`https://token@host` is sent too, as `token:`)
            return None
        login = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
        return base64.b64encode(login.encode("latin1")).decode()
    except (ValueError, UnicodeEncodeError):  # no URL, or credentials aiohttp cannot send either
        return None


def _url_password(url: str | None) -> str | None:
    """The password of a URL's `user:password@` (as sent, percent-decoded): an answer may name it
    alone, which neither the URL nor its Basic token (`_basic_auth`) matches."""
    from urllib.parse import unquote, urlsplit

    try:
        password = urlsplit(url or "").password
    except ValueError:
        return None
    return unquote(password) if password else None


def _empty_env_values(doc: YamlDoc, under: tuple) -> list[tuple]:
    """The paths under `under` whose `${env:NAME}` value is set but empty (not one whose variable is
    not set, or not UTF-8: that is its own issue, which said "not set" before "set but empty")."""
    return [p for p in sorted(doc.env_paths, key=str)
            if p[:len(under)] == under and p not in doc.missing_env_paths and _value_at(doc.data, p) == ""]


def _empty_value_issue(doc: YamlDoc, path: tuple) -> ConfigIssue:
    names = doc.env_names.get(path, [])
    return doc.issue(path, f"{_show_path(path)} is empty",
                     f"environment variable {names[0]} is set but empty: export {names[0]}=<the value>"
                     if len(names) == 1 else "set it, e.g. from an environment variable: ${env:NAME}")


def _value_at(node: Any, path: tuple) -> Any:
    """The value at `path` in parsed YAML (None where there is none)."""
    for key in path:
        if isinstance(node, dict):
            node = node.get(key)
        elif isinstance(node, list) and isinstance(key, int) and 0 <= key < len(node):
            node = node[key]
        else:
            return None
    return node


def _url_tokens(channel: Any, env_values: Container[str] = ()) -> list[str]:
    """The parts of a channel's URLs an answer may echo without the rest (`Cannot POST /services/...`):
    the query, and the path of a URL that is the credential itself: Slack's (its path is the token),
    and one given whole as `${env:NAME}` (one of `env_values`), as webhook URLs whose path holds the
    token are (Zapier's /hooks/catch/<id>/<token>/, Discord's, Teams')."""
    from urllib.parse import urlsplit

    tokens = []
    for key, value in channel:
        if isinstance(value, SecretStr):
            parts = urlsplit(value.get_secret_value())
            tokens.append(parts.query)
            if key in CHANNEL_SECRET_KEYS.get(channel.type, ()) or value.get_secret_value() in env_values:
                # (also without its trailing slash: servers quote the path they routed)
                tokens += [parts.path + (f"?{parts.query}" if parts.query else ""), parts.path, parts.path.rstrip("/")]
                # and its token-like segments alone, which an answer may name without the rest
                # (`no hook <token>`); short ones (`services`, an id `123456`) stay readable
                tokens += [s for s in parts.path.split("/") if _long_token(s)]
    return [t for t in tokens if t.strip("/")]


# Query parameters whose values are credentials, besides the names `_CREDENTIAL_HEADER` matches:
# Azure Functions' `code`, a signature's `sig`
_CREDENTIAL_QUERY = re.compile(r"^(code|sig)$", re.IGNORECASE)
_TOKEN_CHARS = 16  # a query value or path segment this long (no whitespace) is taken for a token


def _long_token(text: str) -> bool:
    return len(text) >= _TOKEN_CHARS and not any(c.isspace() for c in text)


def _query_secrets(channel: Any) -> tuple[list[str], list[str]]:
    """The values of a channel URL's query parameters that are credentials on their own: an answer
    may name one alone (`invalid token <it>`, or the parameters echoed back), which the query
    masked whole (`_url_tokens`) does not match. A parameter's value is one when its name says
    credential (as a header's: `token`, `key`, `sig`, `code` ...) or when it is token-like and
    long; `channel=ops` stays readable. (values of credential names, other long values)"""
    from urllib.parse import parse_qsl, urlsplit

    named, long_values = [], []
    for _, value in channel:
        if isinstance(value, SecretStr):
            try:
                pairs = parse_qsl(urlsplit(value.get_secret_value()).query, keep_blank_values=False)
            except ValueError:
                continue
            for k, v in pairs:
                if _credential_header(k) or _CREDENTIAL_QUERY.match(k):
                    named.append(v)
                elif _long_token(v):
                    long_values.append(v)
    return named, long_values
