"""The Splio keys of a destination in dinsync.yml (validated with pydantic; secrets are SecretStr)."""
from __future__ import annotations

import re
import string
from typing import Literal

from pydantic import ConfigDict, Field, SecretStr, field_validator, model_validator

from ..settings import Settings

FILE_NAME_FIELDS = {"universe", "sync", "stamp", "run", "seq"}
DEFAULT_FILE_NAME = "{universe}_contacts_{sync}_{stamp}_{run}_{seq}.csv"
# Splio: "Please limit the size of your file to 200K lines": header + 199,999 rows.
MAX_FILE_LINES = 200_000


def file_name_fields(template: str) -> set[str]:
    """The placeholders a file-name template uses (ValueError for a malformed one)."""
    return {f for _, f, _, _ in string.Formatter().parse(template) if f is not None}


class SftpSettings(Settings):
    """`sftp:` of a Splio destination: the automatic-import drop box Splio's project manager set up."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)  # `.inf` is no poll interval or timeout
    host: str = Field(min_length=1)
    port: int = Field(22, ge=1, le=65535)
    username: str = Field(min_length=1)
    password: SecretStr | None = None
    private_key: SecretStr | None = None  # the key itself (OpenSSH/PEM text, e.g. from ${env:...}) or a file path
    private_key_passphrase: SecretStr | None = None
    known_hosts: str = "~/.ssh/known_hosts"  # a known_hosts file; the host key must be in it
    directory: str = "/imports/contacts"  # where import files are dropped
    reports_directory: str = "/imports/reports"  # where Splio leaves `<file>.report.json`
    file_name: str = DEFAULT_FILE_NAME
    separator: str = ";"
    max_rows_per_file: int = Field(MAX_FILE_LINES - 1, ge=1, le=MAX_FILE_LINES - 1)
    max_file_bytes: int = Field(256 * 1024 * 1024, ge=1024)
    poll_seconds: float = Field(2.0, gt=0)  # how often reports are looked for
    connect_timeout_seconds: float = Field(30.0, gt=0)
    upload_attempts: int = Field(4, ge=1, le=20)

    @model_validator(mode="after")
    def _one_credential(self) -> "SftpSettings":
        if (self.password is None) == (self.private_key is None):
            raise ValueError("set exactly one of sftp.password and sftp.private_key")
        return self

    @field_validator("directory", "reports_directory")
    @classmethod
    def _absolute(cls, value: str) -> str:
        if not value.startswith("/") or ".." in value.split("/"):
            raise ValueError("must be an absolute path without '..'")
        return value.rstrip("/") or "/"

    @field_validator("separator")
    @classmethod
    def _separator(cls, value: str) -> str:
        if len(value) != 1 or value in "\"\r\n":
            raise ValueError("must be one character, not a quote or a line break")
        return value

    @field_validator("file_name")
    @classmethod
    def _file_name(cls, value: str) -> str:
        try:
            names = file_name_fields(value)
        except ValueError as exc:
            raise ValueError(f"invalid template: {exc}") from None
        unknown = names - FILE_NAME_FIELDS
        # the values are text ({seq} already zero-padded): `{seq:06d}` failed every run's first file
        styled = [f"{{{f}{'!' + c if c else ''}{':' + spec if spec else ''}}}"
                  for _, f, spec, c in string.Formatter().parse(value) if f in FILE_NAME_FIELDS and (spec or c)]
        if styled:
            raise ValueError(f"placeholders take no format spec or conversion ({', '.join(styled)}): {{seq}} is "
                             "written with 4 digits (0001), {stamp} as 20250101T060000Z")
        if unknown:
            raise ValueError(f"unknown placeholder(s) {sorted(unknown)}; use {sorted(FILE_NAME_FIELDS)}")
        if not {"sync", "run", "seq"} <= names:
            raise ValueError("must contain {sync}, {run} and {seq} (file names must be unique and tell the sync)")
        if "/" in value or value.startswith(".") or not re.fullmatch(r"[^\s]+", value):
            raise ValueError("must be a plain file name (no '/', no spaces, not starting with '.')")
        return value


# The cellphone form each transport documents: file imports `0033XXXXXXXXX` (Datahub contacts
# columns, as Splio shows numbers); the contacts API `+331122334455` (its request examples).
CELLPHONE_FORMATS = {"sftp": "00", "api": "e164"}


class SplioSettings(Settings):
    """Splio-specific keys of a destination in dinsync.yml."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)  # `.inf` is no poll interval or timeout
    transport: Literal["sftp", "api"] = "sftp"
    universe: str | None = Field(None, pattern=r"^[A-Za-z0-9_.-]+$")  # the universe's name (file names)
    sftp: SftpSettings | None = None
    api_key: SecretStr | None = None
    # 0033612345678 (as Splio shows numbers) or +33612345678; unset: the transport's documented form
    cellphone_format: Literal["00", "e164"] | None = None
    timezone: str | None = None  # IANA zone of the universe: UTC datetimes are written in it
    bulk_max_contacts: int = Field(1000, ge=1, le=1000)
    token_max_age_seconds: float = Field(3000.0, ge=60)  # Splio: "authenticate every 50 minutes"

    @model_validator(mode="after")
    def _transport_needs(self) -> "SplioSettings":
        if self.transport == "sftp":
            if self.sftp is None:
                raise ValueError("transport sftp needs an `sftp:` section (host, username, password or "
                                 "private_key, known_hosts, directory)")
            if not self.universe:
                raise ValueError("transport sftp needs `universe` (Splio's import file names start with it)")
            # Splio: "Filenames must indicate the universe" (the rest of the rule is not public)
            if "universe" not in file_name_fields(self.sftp.file_name) and self.universe not in self.sftp.file_name:
                raise ValueError("sftp.file_name must indicate the universe ({universe} or its name): Splio skips "
                                 "import files whose names do not")
        if self.transport == "api" and self.api_key is None:
            raise ValueError("transport api needs api_key (e.g. api_key: ${env:SPLIO_API_KEY})")
        return self

    @property
    def cellphone_text_format(self) -> str:
        """How cellphones are written: `cellphone_format`, else the form the transport documents."""
        return self.cellphone_format or CELLPHONE_FORMATS[self.transport]

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str | None) -> str | None:
        if value is None:
            return value
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r} (an IANA name such as Europe/Paris)") from None
        return value
