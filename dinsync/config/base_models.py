"""The base of the configuration models, and what several of them share.

`_Config` (every model forbids unknown keys and is frozen), `_Located` (a model that remembers the
source lines of its keys), the names and their patterns, the field types and sync modes, and the
check that a URL carrying a credential is not plain http:// to another machine (`refuse_cleartext`:
warehouses, destinations and notification channels).
"""
from __future__ import annotations

import re
from typing import Annotated, ClassVar, Literal

from pydantic import AfterValidator, ConfigDict, PrivateAttr

from ..destinations.settings import Settings

NAME_PATTERN = r"^[A-Za-z0-9_]+$"  # sync, model and destination names
IDENTIFIER_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"  # SQL identifiers we create (state schema)
# (checked with re.fullmatch: `$` alone also matches before a final line break)



def _check_name(value: str) -> str:
    if not re.fullmatch(NAME_PATTERN, value):
        raise ValueError(f"invalid name {value!r}: use ASCII letters, digits and underscores only")
    return value


Name = Annotated[str, AfterValidator(_check_name)]
FieldType = Literal["auto", "string", "integer", "number", "boolean", "date", "datetime", "email", "phone", "json"]
SyncMode = Literal["upsert", "update", "insert"]  # each destination service declares which it supports
ModelType = Literal["user", "custom"]


class _Config(Settings):
    # defer_build: a model's validator is built when first used, so the many models a run does
    # not need (other warehouses' and channels' settings) cost nothing at start-up
    # allow_inf_nan=False: `.inf` is no setting (null says "unlimited" where that is meant), and an
    # infinite rate limit or timeout only failed later, inside a run
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True, allow_inf_nan=False)
    # (warehouse configs) schemas the warehouse keeps for itself, as lower-case globs: no state_schema
    reserved_schemas: ClassVar[tuple[str, ...]] = ("information_schema",)


class _Located(_Config):
    """A config object that remembers the source lines of its keys."""

    _lines: dict[str, int] = PrivateAttr(default_factory=dict)

    def line(self, key: str) -> int | None:
        """1-based line of `key` (e.g. "match.column") in the object's file, if known."""
        return self._lines.get(key)


def cleartext_remote(url: str) -> bool:
    """Whether `url` is plain http:// to another machine than this one: credentials sent with
    it would cross the network unencrypted (http:// is for loopback: sandboxes, tests, tunnels)."""
    import ipaddress
    from urllib.parse import urlsplit

    if not url.lower().startswith("http://"):
        return False
    try:
        host = (urlsplit(url).hostname or "").rstrip(".")
    except ValueError:
        return True
    if host == "localhost" or host.endswith(".localhost"):
        return False
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return True
    # 0.0.0.0 and :: reach this machine too (Linux connects them to the loopback)
    return not (address.is_loopback or address.is_unspecified)


def refuse_cleartext(url: str, what: str, fix: str = "use https://") -> None:
    """A ValueError when `url` is plain http:// to another machine (`cleartext_remote`): `what`,
    the credential sent with it, would cross the network in clear text."""
    if cleartext_remote(url):
        raise ValueError(f"http:// only reaches this machine (127.0.0.1, localhost, ::1): {what} would cross the "
                         f"network in clear text; {fix}")
