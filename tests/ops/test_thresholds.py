"""The sync warnings a finished run earns (dinsync.engine.thresholds.sync_warnings)."""
from __future__ import annotations

from dinsync.config.models import Thresholds
from dinsync.engine.thresholds import sync_warnings
from dinsync.errors import RunSummary


def warnings(th: Thresholds, *, mode="upsert", sendable=100, previous=None, elapsed=1.0, **counts) -> list[str]:
    return sync_warnings(th, RunSummary(sync="s", run_id="r", **counts), mode=mode, sendable=sendable,
                         previous_segment_rows=previous, elapsed_seconds=elapsed)


def test_defaults_warn_on_the_rejected_share_only():
    th = Thresholds()
    assert warnings(th, segment_rows=0, previous=1000, elapsed=1e6, not_found=50, mode="update", sendable=0) == []
    assert warnings(th, rejected=5, sendable=100) == []
    assert warnings(th, rejected=4, not_found=2, sendable=100) == \
        ["6 of 100 rows (6.0%) were rejected or not found (threshold 5.0%)"]


def test_each_threshold_on_its_own():
    assert warnings(Thresholds(max_not_found=3), mode="update", not_found=4, sendable=1000) == \
        ["4 rows were not found in the destination (update mode; threshold 3)"]
    assert warnings(Thresholds(max_not_found=3), mode="upsert", not_found=4, sendable=1000) == []
    assert warnings(Thresholds(max_not_found=3), mode="update", not_found=3, sendable=1000) == []
    drop = Thresholds(max_segment_drop_pct=25)
    assert warnings(drop, segment_rows=74, previous=100) == \
        ["the segment fell from 100 to 74 rows (26.0% since the last successful run; threshold 25.0%)"]
    assert warnings(drop, segment_rows=75, previous=100) == []
    assert warnings(drop, segment_rows=500, previous=100) == []  # growth is not a drop
    assert warnings(drop, segment_rows=0, previous=None) == []  # no successful run yet
    assert warnings(Thresholds(warn_on_zero_rows=True), segment_rows=0, sendable=0) == \
        ["the model returned no rows (warn_on_zero_rows)"]
    assert warnings(Thresholds(max_run_minutes=30), elapsed=30 * 60 + 1) == \
        ["the run took 30.02 minutes (threshold 30 minutes)"]
    assert warnings(Thresholds(max_run_minutes=30), elapsed=45 * 60) == \
        ["the run took 45.0 minutes (threshold 30 minutes)"]
    assert warnings(Thresholds(max_run_minutes=30), elapsed=30 * 60) == []


def test_rows_without_a_key_are_not_part_of_the_segment():
    """A key column gone NULL is a drop (the keyless rows counted in the segment kept it whole) and
    a model of keyless rows only returned nothing to sync."""
    drop = Thresholds(max_segment_drop_pct=25)
    assert warnings(drop, segment_rows=100, null_keys=100, previous=100) == \
        ["the segment fell from 100 to 0 rows with a key (100.0% since the last successful run; threshold 25.0%; "
         "100 rows have a NULL or empty key)"]
    assert warnings(drop, segment_rows=101, null_keys=1, previous=100) == []
    assert warnings(Thresholds(warn_on_zero_rows=True), segment_rows=3, null_keys=3, sendable=0) == \
        ["the model returned 3 rows, none with a key (warn_on_zero_rows)"]
    assert warnings(Thresholds(warn_on_zero_rows=True), segment_rows=3, null_keys=2, sendable=1) == []


def test_a_short_run_time_threshold_is_told_in_seconds():
    """Under a few minutes, the run's time and the threshold are in seconds (a run of 0.7 s over
    max_run_minutes 0.01 used to read "the run took 0.0 minutes (threshold 0.01)")."""
    assert warnings(Thresholds(max_run_minutes=0.01), elapsed=0.7) == \
        ["the run took 0.7 seconds (threshold 0.6 seconds, max_run_minutes 0.01)"]
    assert warnings(Thresholds(max_run_minutes=0.01), elapsed=0.6) == []
    assert warnings(Thresholds(max_run_minutes=0.5), elapsed=40) == \
        ["the run took 40.0 seconds (threshold 30 seconds, max_run_minutes 0.5)"]
    assert warnings(Thresholds(max_run_minutes=0.00001), elapsed=0.25) == \
        ["the run took 0.2 seconds (threshold 0.0006 seconds, max_run_minutes 0.00001)"]  # no "1e-05"
    # as many decimals as it takes to show the run took longer
    assert warnings(Thresholds(max_run_minutes=1), elapsed=60.04) == \
        ["the run took 60.04 seconds (threshold 60 seconds, max_run_minutes 1)"]
