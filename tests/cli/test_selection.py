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


def test_an_argument_that_matches_nothing_is_named_as_written_not_as_select():
    # `dinsync pause 'zz*'` has no --select: the message named an option the user never gave
    with pytest.raises(ConfigError) as exc:
        select_syncs(SYNCS, ["zz*", "tag:x,yy*"], named=["zz*"])
    assert [i.message for i in exc.value.issues] == [
        "zz* matches no sync", "--select tag:x matches no sync", "--select yy* matches no sync"]



@pytest.mark.parametrize("select", [[""], [" "], [","], ["", " , "]])
def test_a_selection_that_names_nothing_is_an_error_not_every_sync(select):
    # `dinsync sync --select "$SYNCS"` with SYNCS unset must not run every sync
    with pytest.raises(ConfigError) as exc:
        select_syncs(SYNCS, select)
    [issue] = exc.value.issues
    assert issue.message == "--select names no sync (it is empty)"
    assert "leave out --select" in issue.hint and "iterable_users" in issue.hint
    assert select_syncs(SYNCS, ["iterable_users,"]).names == ["iterable_users"]  # a stray comma is harmless
    assert select_syncs(SYNCS, [], [""]).names == ["attio_companies", "iterable_leads", "iterable_users"]

# --- dbt-style methods: tag:, model: -------------------------------------------------------------

def ns(**kw):
    return SimpleNamespace(**{"enabled": True, "tags": (), **kw})


TAGGED = {"iterable_active": ns(model="active"), "attio_active": ns(model="active", tags=("crm",)),
          "iterable_churned": ns(model="churned", tags=("crm", "weekly_crm")),
          "iterable_plain": ns(model="plain"), "iterable_old": ns(model="active", enabled=False)}
MODELS = {"active": SimpleNamespace(tags=("daily",), dbt_models=("active_customers",)),
          "churned": SimpleNamespace(tags=("weekly",), dbt_models=("churned_customers",)),
          "plain": SimpleNamespace(tags=(), dbt_models=())}


def pick(select=None, exclude=None, **kw):
    return select_syncs(TAGGED, select, exclude, models=MODELS, **kw)


def test_tag_selects_sync_tags_and_the_dbt_models_tags():
    assert pick(["tag:daily"]).names == ["attio_active", "iterable_active"]  # from the dbt model; not the disabled one
    assert pick(["tag:crm"]).names == ["attio_active", "iterable_churned"]  # from the sync files
    assert pick(["tag:*crm"]).names == ["attio_active", "iterable_churned"]  # globs
    assert pick(["tag:daily"], include_disabled=True).names == ["attio_active", "iterable_active", "iterable_old"]
    assert pick(["tag:weekly,iterable_plain"]).names == ["iterable_churned", "iterable_plain"]  # a union


def test_model_selects_by_dinsync_or_dbt_model_name():
    assert pick(["model:active"]).names == ["attio_active", "iterable_active"]
    assert pick(["model:churned_customers"]).names == ["iterable_churned"]
    assert pick(["model:*_customers"]).names == ["attio_active", "iterable_active", "iterable_churned"]


def test_exclude_takes_the_same_forms():
    assert pick(None, ["tag:daily"]).names == ["iterable_churned", "iterable_plain"]
    assert pick(["tag:crm"], ["model:churned"]).names == ["attio_active"]
    assert pick(None, ["tag:nothing"]).notes == ["--exclude tag:nothing matches no sync"]


@pytest.mark.parametrize("item, core", [("+tag:daily", "tag:daily"), ("2+tag:daily", "tag:daily"),
                                        ("@model:active", "model:active"), ("tag:daily+", "tag:daily"),
                                        ("model:active+1", "model:active"), ("+active", "active")])
def test_graph_operators_are_refused_with_the_dbt_then_dinsync_hint(item, core):
    with pytest.raises(ConfigError) as exc:
        pick([item])
    [issue] = exc.value.issues
    assert issue.message == f"graph operators (+, @) are not supported: {item!r}"
    assert f"`dbt build --select {item}`" in issue.hint and f"without the operator: `{core}`" in issue.hint


def test_method_errors_are_configuration_errors_with_hints():
    with pytest.raises(ConfigError) as exc:
        pick(["tag:hourly", "model:nope", "path:models/x", "tag:", "+active"])
    got = [(i.message, i.hint) for i in exc.value.issues]
    assert ("unknown selector method 'path' in 'path:models/x'", "use a sync name or glob, tag:NAME or model:NAME") in got
    assert ("selector 'tag:' names nothing", "write tag:NAME") in got
    assert any(m.startswith("graph operators (+, @) are not supported") for m, _ in got)
    with pytest.raises(ConfigError) as exc:
        pick(["tag:hourly", "model:nope"])
    assert [(i.message, i.hint) for i in exc.value.issues] == [
        ("--select tag:hourly matches no sync", "tags: crm, daily, weekly, weekly_crm"),
        ("--select model:nope matches no sync", "models: active, active_customers, churned, churned_customers, plain")]
    with pytest.raises(ConfigError) as exc:
        select_syncs({"a": ns(model="m", tags=("x",), enabled=False)}, ["tag:x"], models={})
    assert exc.value.issues[0].hint == "it only matches disabled syncs (a); name one to run it"
