"""Which syncs a command acts on (dinsync.selection)."""
from __future__ import annotations

from types import SimpleNamespace

import pytest

from dinsync.errors import ConfigError
from dinsync.selection import select_syncs

SYNCS = {"iterable_users": SimpleNamespace(enabled=True), "iterable_leads": SimpleNamespace(enabled=True),
         "iterable_legacy": SimpleNamespace(enabled=False), "attio_companies": SimpleNamespace(enabled=True)}


def test_default_is_every_enabled_sync():
    chosen = select_syncs(SYNCS)
    assert chosen.names == ["attio_companies", "iterable_leads", "iterable_users"] and chosen.notes == []
    assert "iterable_legacy" in select_syncs(SYNCS, include_disabled=True).names


def test_a_glob_never_selects_a_disabled_sync_a_name_does_with_a_note():
    assert select_syncs(SYNCS, ["iterable_*"]).names == ["iterable_leads", "iterable_users"]
    named = select_syncs(SYNCS, ["iterable_legacy"])
    assert named.names == ["iterable_legacy"]
    assert named.notes == ["sync iterable_legacy is disabled (enabled: false); running it because it was named"]
    with pytest.raises(ConfigError) as exc:
        select_syncs(SYNCS, ["*legacy"])
    assert "only matches disabled syncs (iterable_legacy)" in exc.value.issues[0].hint


def test_comma_lists_repeats_and_exclude():
    chosen = select_syncs(SYNCS, ["iterable_users,attio_*", "iterable_leads"], ["attio_companies"])
    assert chosen.names == ["iterable_leads", "iterable_users"]
    assert select_syncs(SYNCS, None, ["iterable_*,attio_companies"]).names == []
    assert select_syncs(SYNCS, None, ["iterable_*,attio_companies"]).notes == ["nothing to do: no sync is selected"]
    assert select_syncs(SYNCS, None, ["nope"]).notes == ["--exclude nope matches no sync"]


def test_every_item_must_select_something():
    with pytest.raises(ConfigError) as exc:
        select_syncs(SYNCS, ["iterable_user", "zz*", "attio_companies"])
    messages = [(i.message, i.hint) for i in exc.value.issues]
    assert messages[0][0] == "no sync named 'iterable_user'" and "did you mean 'iterable_users'?" in messages[0][1]
    assert messages[1][0] == "--select zz* matches no sync"
