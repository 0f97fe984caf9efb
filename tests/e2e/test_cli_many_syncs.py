"""A project of many syncs (one per segment and destination): what each run costs per sync."""
from __future__ import annotations

import json

from tests.e2e.conftest import SYNC


def write_syncs(project, count: int) -> list[str]:
    """`count` syncs of the one model, each writing a field of its own (no shared-field resends)."""
    names = []
    for i in range(count):
        name = f"seg_{i:02d}"
        (project.root / "syncs" / f"{name}.yml").write_text(SYNC.format(
            mode="upsert", match_column="email", match_field="email",
            fields=f"  first_name: name{i}", max_rejected_pct=50))
        names.append(name)
    return names


def test_a_project_of_more_syncs_than_the_render_cache_held_renders_nothing_once_cached(project, monkeypatch, tmp_path):
    """The rendered-SQL cache kept its 256 newest files (one per sync) and pruned by the time each was
    written: in a project of 300 syncs every run pruned the files the syncs after it were about to
    read, so every no-op run rendered every statement of every sync again (24,000 renders, ~25% of
    its time). The cache now keeps a file per sync of the project beyond its 256, and a file read is
    as recent as one written."""
    from dinsync.diff import cache, planner

    monkeypatch.setenv("DINSYNC_CACHE_DIR", str(tmp_path / "own-cache"))
    monkeypatch.setattr(cache, "MAX_FILES", 4)  # as 256 is to 300 syncs
    (project.root / "syncs" / "iterable_users.yml").unlink()
    names = write_syncs(project, 10)
    rendered: list[str] = []
    original = planner.Planner._render_template

    def counted(self, statement, column=None):
        rendered.append(self.spec.sync)
        return original(self, statement, column)

    monkeypatch.setattr(planner.Planner, "_render_template", counted)
    first = project.sync()
    assert first["exit_code"] == 0 and [r["sync"] for r in first["runs"]] == names
    assert set(rendered) == set(names)
    rendered.clear()
    again = project.sync()
    assert again["exit_code"] == 0 and all(r["sent"] == 0 for r in again["runs"])
    assert rendered == []


def test_a_note_of_many_other_writers_names_a_few(project):
    """One sync per segment, all setting firstName on the same destination: after the first run of
    all of them each sync resends its rows once (see README, "Several syncs, the same records") and
    says which syncs wrote the field after it. Its note named every one: in a 300-sync project each
    of the 300 notes named ~150 syncs (2.8 KB a line, 850 KB of stderr a run)."""
    (project.root / "syncs" / "iterable_users.yml").unlink()
    for i in range(9):
        (project.root / "syncs" / f"seg_{i:02d}.yml").write_text(SYNC.format(
            mode="upsert", match_column="email", match_field="email",
            fields="  first_name: firstName", max_rejected_pct=50))
    assert project.sync()["exit_code"] == 0
    result = project.cli("sync", json_output=False)
    assert result.exit_code == 0, result.output
    note = next(line for line in result.output.splitlines() if line.startswith("seg_00: note:"))
    assert "syncs seg_01, seg_02, seg_03, seg_04, seg_05 and 3 more wrote firstName" in note, note


def test_a_typo_in_a_big_project_gets_a_short_hint(project):
    """`dinsync sync seg_07x` in a project of 300 syncs: the hint listed every sync
    (5 KB on one line); a sync file naming an unknown model listed all 150 models. Now the
    did-you-mean and the first 20, and how many more."""
    (project.root / "syncs" / "iterable_users.yml").unlink()
    write_syncs(project, 40)
    result = project.cli("sync", "seg_07x")
    assert result.exit_code == 3
    hint = json.loads(result.stdout)["issues"][0]["hint"]
    assert hint.startswith("did you mean 'seg_07'? syncs: seg_00, seg_01,") and hint.endswith("seg_19 and 20 more"), hint
    for i in range(30):
        (project.root / "models" / f"segment_{i:02d}.sql").write_text((project.root / "models" / "customers.sql").read_text())
    sync = project.root / "syncs" / "seg_00.yml"
    sync.write_text(sync.read_text().replace("model: customers", "model: segment_10x"))
    hint = json.loads(project.cli("validate", "--offline").stdout)["issues"][0]["hint"]
    assert hint.startswith("did you mean 'segment_10'? models: customers, segment_00,") and hint.endswith(" and 11 more"), hint


def test_the_syncs_that_did_not_succeed_among_many_are_named_at_the_end(project):
    """A sync failing among many: every other one runs and the exit code is 1, but its line was one
    among 300 on stdout, with nothing at the end to say which ones to look at."""
    (project.root / "syncs" / "iterable_users.yml").unlink()
    write_syncs(project, 12)
    (project.root / "models" / "dup.sql").write_text(
        "-- primary_key: id\n-- model_type: user\nselect id, 'dup@example.com' as email, first_name from main.customers\n")
    for name in ("seg_03", "seg_07"):
        path = project.root / "syncs" / f"{name}.yml"
        path.write_text(path.read_text().replace("model: customers", "model: dup"))
    result = project.cli("sync", json_output=False)
    assert result.exit_code == 1
    assert result.stdout.count(" success in ") == 10
    assert "note: 2 of 12 syncs did not succeed: failed: seg_03, seg_07" in " ".join(result.stderr.split())
    assert "did not succeed" not in project.cli("sync", "seg_00", "seg_01", json_output=False).stderr


def test_runs_without_a_sync_in_a_big_project_lists_a_few(project):
    """`dinsync runs` in a project of several syncs is a usage error listing them: all 300 (5.7 KB)."""
    (project.root / "syncs" / "iterable_users.yml").unlink()
    write_syncs(project, 30)
    for command in ("runs", "rejections"):
        result = project.cli(command)
        assert result.exit_code == 2
        assert json.loads(result.stdout)["hint"].endswith("seg_19 and 10 more")
