"""The Attio step for `dinsync demo` (`dinsync.demo_attio.run_attio_demo_step`)."""
from __future__ import annotations

import pytest

from dinsync.demo_attio import run_attio_demo_step
from dinsync.errors import DinsyncError


def test_attio_demo_step_syncs_companies_then_people_and_only_changes(tmp_path, monkeypatch, attio_requests):
    monkeypatch.delenv("DINSYNC_DEMO_ATTIO_TOKEN", raising=False)
    lines: list[str] = []
    report = run_attio_demo_step(tmp_path / "attio", rows=30, say=lines.append)
    runs = {(r["step"], r["sync"]): r for r in report["runs"]}
    assert runs[("first sync", "attio_companies")]["acknowledged"] == 3
    assert runs[("first sync", "attio_people")]["acknowledged"] == 30
    people = runs[("after changes", "attio_people")]
    # person10..19 move to "team" (11, 14 and 17 already are), person20..29 leave the model
    assert (people["changed"], people["removed"], people["added"]) == (7, 10, 1)
    assert (people["acknowledged"], people["rejected"]) == (7, 1)  # the newcomer's plan is unknown to Attio
    assert runs[("after changes", "attio_companies")]["sent"] == 0
    assert report["sandbox"]["records"] == {"people": 30, "companies": 3}
    # (429s: the pacing is measured by benchmarks/bench_attio.py; a loaded test machine can bunch
    # requests at the sandbox, and a 429 is then retried, which the counts above already cover)
    assert all(run["status"] in ("success", "warning") for run in runs.values())
    sample = report["sample"]
    assert sample["email_addresses"] == ["person1@company2.example"] and sample["plan"] == "pro"
    assert sample["name"] == {"first_name": "Grace", "last_name": "Person 1", "full_name": "Grace Person 1"} and sample["company"]
    assert any("rejected 'newcomer@company1.example'" in line and "enterprise" in line for line in lines)
    # run again in the same folder: allowed (the demo wrote it); a user's project is never overwritten
    assert run_attio_demo_step(tmp_path / "attio", rows=10)["runs"]
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "dinsync.yml").write_text("version: 1\n")
    with pytest.raises(DinsyncError, match="not overwriting"):
        run_attio_demo_step(mine)
    assert (mine / "dinsync.yml").read_text() == "version: 1\n"
