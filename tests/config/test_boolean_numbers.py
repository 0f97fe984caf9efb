"""Numeric settings refuse booleans: pydantic's lax mode read `concurrency: true` as 1 and
`timeout_seconds: false` as 0 (a number nobody wrote), where a number was meant."""
from __future__ import annotations

import typing

import pytest
from pydantic import BaseModel, ValidationError

from dinsync.config import models
from dinsync.destinations.attentive.destination import AttentiveSettings
from dinsync.destinations.attio.destination import AttioSettings
from dinsync.destinations.iterable import IterableSettings
from dinsync.destinations.splio.settings import SftpSettings, SplioSettings
from tests.config.test_loader import ENV, PROJECT_YML, make, only_issue


def _classes(base: type) -> list[type]:
    found = []
    for sub in base.__subclasses__():
        found += [sub] + _classes(sub)
    return found


SETTINGS = [IterableSettings, AttioSettings, AttentiveSettings, SplioSettings, SftpSettings]


def _kinds(annotation) -> set:
    """The plain types an annotation accepts (through Optional, unions and Annotated); a mapping's
    values as ("values", type)."""
    args, origin = typing.get_args(annotation), typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _kinds(args[0])
    if origin is dict:
        return {("values", k) for k in _kinds(args[1])} if args else {dict}
    if args:
        return set().union(*(_kinds(a) for a in args))
    return {origin or annotation}


def _numeric_fields() -> list[tuple[type, str, bool]]:
    """(model, field, whether it is a mapping of numbers) of every numeric setting."""
    fields = []
    for cls in sorted(set(_classes(models._Config)) | set(SETTINGS), key=lambda c: c.__name__):
        cls.model_rebuild()
        for name, info in cls.model_fields.items():
            kinds = _kinds(info.annotation)
            values = {k[1] for k in kinds if isinstance(k, tuple)}
            if values & {int, float} and bool not in values:
                fields.append((cls, name, True))
            elif kinds & {int, float} and bool not in kinds:
                fields.append((cls, name, False))
    return fields


NUMERIC = _numeric_fields()


def test_the_numeric_settings_are_found():
    names = {f"{cls.__name__}.{name}" for cls, name, _ in NUMERIC}
    assert {"DestinationOptions.concurrency", "DestinationOptions.rate_limits", "IterableSettings.bulk_max_users",
            "SftpSettings.port", "DuckDBConfig.threads", "Thresholds.max_not_found"} <= names, names


@pytest.mark.parametrize("cls, name, mapping", NUMERIC, ids=[f"{c.__name__}.{n}" for c, n, _ in NUMERIC])
@pytest.mark.parametrize("value", [True, False])
def test_a_numeric_setting_refuses_a_boolean(cls: type[BaseModel], name: str, mapping: bool, value: bool):
    with pytest.raises(ValidationError) as info:
        cls.model_validate({name: {"users": value} if mapping else value})
    mine = [e for e in info.value.errors() if e["loc"][:1] == (name,)]
    assert mine, f"{cls.__name__}.{name}: {value} was accepted"


def test_concurrency_true_is_a_configuration_error_at_its_line(tmp_path):
    issue = only_issue(make(tmp_path, dinsync_dot_yml=PROJECT_YML + "    concurrency: true\n"), ENV)
    assert issue.line == 10
    assert issue.message.startswith("destinations.iterable.concurrency: expected a number, got true"), issue.message
    issue = only_issue(make(tmp_path, dinsync_dot_yml=PROJECT_YML + "    rate_limits: {bulk_update: false}\n"), ENV)
    assert "expected a number, got false" in issue.message, issue.message
    issue = only_issue(make(tmp_path, dinsync_dot_yml=PROJECT_YML + "    bulk_max_users: true\n"), ENV)
    assert issue.line == 10 and "expected a number, got true" in issue.message, issue.message


def test_concurrency_true_names_the_platforms_own_default(tmp_path):
    """Iterable's sockets default to 48 (the README's `# concurrency: 48`), not the generic 8: the
    hint told a user to leave the key out "to keep the default, 8"."""
    issue = only_issue(make(tmp_path, dinsync_dot_yml=PROJECT_YML + "    concurrency: true\n"), ENV)
    assert issue.message.endswith("(leave the key out to keep the default, 48)"), issue.message
