"""A sync's configuration: syncs/<name>.yml as `SyncFile`, validated into a `SyncConfig`.

Its mapped fields (`FieldMap`), match, thresholds, tags and schedule (`Schedule`: a cron
expression or an interval, `parse_every`, in a time zone).
"""
from __future__ import annotations

import datetime
import math
import re
from pathlib import Path
from typing import Annotated, Any, ClassVar, Mapping

from pydantic import Field, field_validator, model_validator

from ..destinations.base import SyncSpec
from .base_models import NAME_PATTERN, FieldType, SyncMode, _Config, _Located
from .yamlfile import PATTERN_WORDS


class FieldMap(_Located):
    """One mapped field: model column -> destination field, with an optional type; `custom`
    maps to a custom attribute of platforms that keep those apart (Attentive, Splio)."""

    example: ClassVar[str] = "- {column: first_name, field: firstName} (or, without the dashes, first_name: firstName)"
    column: str = Field(min_length=1)
    field: str = Field(min_length=1)
    type: FieldType = "auto"
    custom: bool = False


class Thresholds(_Config):
    example: ClassVar[str] = "thresholds: {max_rejected_pct: 5, max_duplicate_pct: 5}"
    max_rejected_pct: float = Field(default=5.0, ge=0, le=100)  # above: the run is a "warning"
    max_duplicate_pct: float = Field(default=5.0, ge=0, le=100)  # above: fail before sending
    # a share of the rows delivered before whose values changed; above: fail before sending (a broken
    # transform overwriting the audience), unless `sync --force`; off unless set
    max_changed_pct: float | None = Field(default=None, ge=0, le=100)
    max_removed_pct: float | None = Field(default=None, ge=0, le=100)  # ... that left the model; as above
    fail_on_warning: bool = True  # a warning run exits non-zero
    # --- sync warnings (dinsync.engine.thresholds); each is off unless set
    max_not_found: int | None = Field(default=None, ge=0)  # update mode: more rows not found -> warning
    max_segment_drop_pct: float | None = Field(default=None, ge=0, le=100)  # vs the last successful run
    warn_on_zero_rows: bool = False  # the model returned no row
    max_run_minutes: float | None = Field(default=None, gt=0)  # a run lasting longer -> warning
    # a boolean is no threshold (Settings refuses it: `max_segment_drop_pct: false`, meant as off,
    # was read as 0); its message says what leaving the key out does
    unset_means: ClassVar[str] = "turn it off"


class MatchSpec(_Config):
    example: ClassVar[str] = "match: {column: email, field: email}"
    column: str = Field(min_length=1)
    field: str = Field(min_length=1)


def _fields_as_list(value: Any) -> Any:
    """`fields` as a mapping {column: field or {field, type, custom}} or a list of
    {column, field, type, custom} -> list."""
    if value is None:
        return []
    if isinstance(value, Mapping):
        return [{"column": column, **field} if isinstance(field, Mapping) else {"column": column, "field": field}
                for column, field in value.items()]
    return value


_RANDOM_CRON_PART = re.compile(r"^[rR](\(\d+-\d+\))?(/\d+)?$")


def _valid_cron(value: str | None) -> str | None:
    if value is None:
        return value
    from croniter import croniter  # only when a schedule is set (keeps start-up light)

    # croniter also takes a sixth field (seconds) and a seventh (year): `0 6 * * * *` would run
    # every second of 06:00. A schedule is five fields, or a macro such as @daily.
    # croniter's `R` is a random value drawn again for each next slot (`R 6 * * *` ran twice one day
    # and not at all another): no cron has it, like `H`, which croniter refuses without a hash id.
    random_field = any(_RANDOM_CRON_PART.match(part) for field in value.split() for part in field.split(","))
    if (not croniter.is_valid(value) or random_field
            or (len(value.split()) != 5 and not value.strip().startswith("@"))):
        raise ValueError(f"invalid cron expression {value!r} "
                         "(five fields: minute hour day-of-month month day-of-week, e.g. '0 6 * * *')")
    from croniter import CroniterBadDateError

    try:
        croniter(value, datetime.datetime(2000, 1, 1)).get_next(datetime.datetime)
    except CroniterBadDateError:  # e.g. 0 6 31 2 *: `serve` would fail looking for its next slot
        raise ValueError(f"cron expression {value!r} never fires (no such date)") from None
    return value


MAX_EVERY_SECONDS = 3650 * 86400
_EVERY = re.compile(r"^\s*(?:(\d+)\s*d)?\s*(?:(\d+)\s*h)?\s*(?:(\d+)\s*m)?\s*(?:(\d+)\s*s)?\s*$")


def parse_every(value: Any) -> float:
    """An interval as seconds: `15m`, `1h30m`, `2d`, `90s` or a number of seconds."""
    if isinstance(value, bool):
        raise ValueError("an interval is a duration such as 15m, 1h30m, 2d or 90s")
    if isinstance(value, (int, float)):
        if not math.isfinite(value) or value != int(value):  # (1.5 would run every 1.5 s, shown as "every 1s")
            raise ValueError(f"invalid interval {value!r}: a number of seconds is a whole number (or a duration "
                             "such as 15m, 1h30m, 2d or 90s)")
        seconds = float(value)
    else:
        m = _EVERY.match(str(value))
        if not m or not any(m.groups()):
            raise ValueError(f"invalid interval {value!r} (a duration such as 15m, 1h30m, 2d or 90s)")
        d, h, mi, sec = (int(g or 0) for g in m.groups())
        seconds = float(((d * 24 + h) * 60 + mi) * 60 + sec)
    if seconds < 1:
        raise ValueError("an interval must be at least 1 second")
    if seconds > MAX_EVERY_SECONDS:  # (`serve` failed at start-up: OverflowError: date value out of range)
        raise ValueError(f"invalid interval {value!r}: at most 3650d (ten years; for rarer runs use a cron "
                         "schedule)")
    return seconds


def _valid_timezone(value: str) -> str:
    import zoneinfo

    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {value!r} (an IANA name such as UTC or Europe/Paris)") from None
    return value


class Schedule(_Config):
    """When `dinsync serve` runs a sync: a cron expression (in `timezone`, default UTC) or an
    interval (`every: 15m`). In a sync file: `schedule: "0 6 * * *"`, `schedule: {every: 15m}` or
    `schedule: {cron: "0 6 * * 1-5", timezone: Europe/Paris}`."""

    example: ClassVar[str] = ('schedule: "0 6 * * *" (cron, UTC), {every: 15m} or '
                              '{cron: "0 6 * * 1-5", timezone: Europe/Paris}')
    expected: ClassVar[str] = "a cron expression (text) or a mapping with every: or cron: (and timezone:)"
    cron: str | None = None
    every: float | None = None  # seconds
    timezone: str = "UTC"

    @model_validator(mode="before")
    @classmethod
    def _from_text(cls, value: Any) -> Any:
        return {"cron": value} if isinstance(value, str) else value

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str | None) -> str | None:
        return _valid_cron(value)

    @field_validator("every", mode="before")
    @classmethod
    def _every(cls, value: Any) -> Any:
        return None if value is None else parse_every(value)

    @field_validator("timezone")
    @classmethod
    def _tz(cls, value: str) -> str:
        return _valid_timezone(value)

    @model_validator(mode="after")
    def _one_kind(self):
        if (self.cron is None) == (self.every is None):
            raise ValueError("set one of cron (e.g. \"0 6 * * *\") or every (e.g. 15m)")
        if self.every is not None and "timezone" in self.model_fields_set and self.timezone != "UTC":
            # an interval counts from the last run's start: a time zone would silently do nothing
            raise ValueError("timezone applies to cron only (every: counts from the last run's start; "
                             "for a local time of day use e.g. {cron: \"0 6 * * *\", timezone: " + self.timezone + "})")
        return self

    def describe(self) -> str:
        if self.cron is not None:
            return f"cron {self.cron!r}" + ("" if self.timezone == "UTC" else f" ({self.timezone})")
        seconds = int(self.every or 0)
        parts = [(seconds // 86400, "d"), (seconds % 86400 // 3600, "h"), (seconds % 3600 // 60, "m"),
                 (seconds % 60, "s")]
        return "every " + "".join(f"{n}{u}" for n, u in parts if n)

def _tag_list(value: Any) -> Any:
    """`tags: daily` or `tags: [daily, crm]`."""
    return [value] if isinstance(value, str) else value


TAG_PATTERN = r"^[^\s,:]+$"
Tag = Annotated[str, Field(min_length=1, pattern=TAG_PATTERN)]
PATTERN_WORDS.update({TAG_PATTERN: "no spaces, commas or colons",
                      NAME_PATTERN: "ASCII letters, digits and underscores only"})


class SyncFile(_Config):
    """The schema of a syncs/<name>.yml file (turned into a SyncConfig by the loader)."""

    model: str = Field(min_length=1)
    destination: str = Field(min_length=1)
    service: str = Field(min_length=1)
    mode: SyncMode
    match: MatchSpec
    fields: list[FieldMap] = Field(default_factory=list)
    schedule: Schedule | None = None
    thresholds: Thresholds = Field(default_factory=Thresholds)
    enabled: bool = True
    tags: list[Tag] = Field(default_factory=list)  # for `--select tag:NAME`

    @field_validator("tags", mode="before")
    @classmethod
    def _tags(cls, value: Any) -> Any:
        return _tag_list(value)

    @field_validator("fields", mode="before")
    @classmethod
    def _list_fields(cls, value: Any) -> Any:
        return _fields_as_list(value)


class SyncConfig(_Located):
    """A validated sync. `name` is the file stem."""

    name: str
    path: Path
    model: str
    destination: str
    service: str
    mode: SyncMode
    match_column: str
    match_field: str
    fields: list[FieldMap]
    schedule: Schedule | None = None
    thresholds: Thresholds = Field(default_factory=Thresholds)
    enabled: bool = True
    tags: tuple[str, ...] = ()

    def spec(self) -> SyncSpec:
        """What the destination needs to know of this sync."""
        return SyncSpec(name=self.name, service=self.service, mode=self.mode, key_field=self.match_field,
                        fields=[f.field for f in self.fields], custom=[f.custom for f in self.fields])
