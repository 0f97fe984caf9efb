"""Two `dinsync sync` processes sending to one Iterable key at once (an orchestrator's task per
sync, two cron entries that overlap) pace as one: together at the platform's rate, not twice it
(dinsync.sender.pacefile). The sandbox enforces Iterable's 5 bulkUpdate requests/s."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.e2e.conftest import Project

REQUESTS_EACH = 20  # bulkUpdate requests per process: 4 s alone at 5/s, 8 s together


def start_sync(project: Project) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "dinsync.cli", "--project-dir", str(project.root), "--json", "sync"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(os.environ))


@pytest.mark.slow
@pytest.mark.parametrize("shared", [True, False])
def test_two_processes_on_one_key_provoke_no_429(project, tmp_path, shared, monkeypatch):
    if not shared:  # what each did alone before: a pace folder of its own, as on two machines
        monkeypatch.setenv("DINSYNC_PACE_DIR", str(tmp_path / "paces-a"))
    other = Project(tmp_path / "other", project.base_url, project.runner)
    other.root.mkdir()
    extra = "    bulk_max_users: 2\n"
    for p in (project, other):
        p.write(destination_extra=extra)
        p.seed(2 * REQUESTS_EACH)
    procs = [start_sync(project)]
    if not shared:
        monkeypatch.setenv("DINSYNC_PACE_DIR", str(tmp_path / "paces-b"))
    procs.append(start_sync(other))
    outputs = [proc.communicate(timeout=120) for proc in procs]
    runs = [json.loads(out)["runs"][0] for out, _ in outputs]
    assert [r["acknowledged"] for r in runs] == [2 * REQUESTS_EACH] * 2, outputs  # every row delivered
    stats = project.thread.stats()
    assert stats["requests_by_endpoint"]["bulkUpdate"] >= 2 * REQUESTS_EACH
    if shared:
        assert stats["responses_429"] == 0 and sum(r["throttled"] for r in runs) == 0, stats
    else:
        assert stats["responses_429"] > 0, stats  # the case the shared pace exists for


def test_a_pace_folder_that_cannot_be_shared_is_noted(project, tmp_path, monkeypatch):
    """DINSYNC_PACE_DIR made with a plain `mkdir` (0755): the sync paced alone and said nothing, so
    two of them at once drew 429s with no hint why."""
    folder = tmp_path / "paces"
    folder.mkdir()
    folder.chmod(0o755)
    monkeypatch.setenv("DINSYNC_PACE_DIR", str(folder))
    project.write()
    project.seed(3)
    out, err = start_sync(project).communicate(timeout=120)
    assert json.loads(out)["runs"][0]["acknowledged"] == 3
    assert f"rate-limit paces are not shared with other dinsync processes of this machine ({folder} is open " \
           "to other users (mode 0755))" in " ".join(err.split()), err
    assert list(folder.iterdir()) == []
