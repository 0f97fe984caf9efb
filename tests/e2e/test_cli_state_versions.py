"""State tables an older or a newer dinsync left, through the CLI."""
from __future__ import annotations

import json

import pytest

from dinsync.errors import ExitCode
from dinsync.state import LAYOUT_VERSION


def state_rows(project) -> dict[str, list]:
    return {t: sorted(map(repr, project.sql(f"select * from dinsync.{t}")))
            for t in ("meta", "runs", "rejections", "locks", "sync_state", "events", "snap_iterable_users")}


@pytest.mark.parametrize("command", [["sync"], ["plan"], ["status"], ["runs", "iterable_users"],
                                     ["rejections", "iterable_users"], ["pause", "iterable_users"],
                                     ["resume", "iterable_users"], ["validate", "--offline"]])
def test_state_of_a_newer_layout_is_refused_saying_to_upgrade_and_left_untouched(project, empty_redactor, command):
    """A state schema a newer dinsync migrated (a colleague's upgraded CI, say) was reported as
    `unexpected error: RuntimeError: ...` with the hint to set DINSYNC_DEBUG for a traceback (exit
    1), and `pause`/`resume` said the state tables could not be read, to check the warehouse."""
    assert project.sync()["exit_code"] == 0
    project.sql(f"update dinsync.meta set value = '{LAYOUT_VERSION + 1}' where key = 'layout_version'")
    before = state_rows(project)
    result = project.cli(*command)
    assert result.exit_code == ExitCode.CONFIG_ERROR, result.output
    payload = json.loads(result.stdout)
    text = json.dumps(payload)
    assert f"layout version {LAYOUT_VERSION + 1}" in text and "newer than this dinsync" in text, text
    assert "upgrade dinsync" in text and "unexpected error" not in text and "DINSYNC_DEBUG" not in text, text
    assert state_rows(project) == before
