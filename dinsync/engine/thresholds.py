"""Sync warnings: the thresholds of a sync (`thresholds:` in its file) checked at the end of a run.

A breach adds a warning to the run, which makes its status `warning` (kept in the run log, shown
by `dinsync status`, sent to notification channels on a change of state). Checks that are not
configured are off, except the rejected share (5% by default).
"""
from __future__ import annotations

from typing import Any

from ..errors import RunSummary


def sync_warnings(th: Any, s: RunSummary, *, mode: str, sendable: int, previous_segment_rows: int | None,
                  elapsed_seconds: float) -> list[str]:
    """The warnings a finished run earns. `th`: the sync's Thresholds; `previous_segment_rows`: the
    segment size of the last successful run (None when there is none)."""
    warnings = []
    bad = s.rejected + s.not_found
    if sendable and bad and 100.0 * bad / sendable > th.max_rejected_pct:
        warnings.append(f"{bad} of {sendable} rows ({100.0 * bad / sendable:.1f}%) were rejected or not found "
                        f"(threshold {th.max_rejected_pct}%)")
    if mode == "update" and th.max_not_found is not None and s.not_found > th.max_not_found:
        warnings.append(f"{s.not_found} rows were not found in the destination (update mode; threshold "
                        f"{th.max_not_found})")
    if th.warn_on_zero_rows and s.segment_rows == 0:
        warnings.append("the model returned no rows (warn_on_zero_rows)")
    if th.max_segment_drop_pct is not None and previous_segment_rows:
        drop = 100.0 * (previous_segment_rows - s.segment_rows) / previous_segment_rows
        if drop > th.max_segment_drop_pct:
            warnings.append(f"the segment fell from {previous_segment_rows} to {s.segment_rows} rows ({drop:.1f}% "
                            f"since the last successful run; threshold {th.max_segment_drop_pct}%)")
    if th.max_run_minutes is not None and elapsed_seconds > 60.0 * th.max_run_minutes:
        warnings.append(f"the run took {elapsed_seconds / 60.0:.1f} minutes (threshold {th.max_run_minutes})")
    return warnings
