"""Sync warnings: the thresholds of a sync (`thresholds:` in its file) checked at the end of a run.

A breach adds a warning to the run, which makes its status `warning` (kept in the run log, shown
by `dinsync status`, sent to notification channels on a change of state). Checks that are not
configured are off, except the rejected share (5% by default).
"""
from __future__ import annotations

from typing import Any, Callable

from ..errors import RunSummary
from ..terminal import plural


def mass_change(th: Any, stats: Any, sync: str, undelivered: Callable[[], int] = lambda: 0) -> str | None:
    """What a plan would change or remove over `max_changed_pct` / `max_removed_pct` of the rows
    delivered before (the snapshot's keys: changed + unchanged + removed, but for the
    `undelivered()` parked rows the plan counts unchanged, which the platform never got); None
    within them, when they are off, or for a first sync. Such a run fails before sending and
    commits nothing: a broken transform (a column gone NULL, a join that lost its matches) would
    otherwise overwrite the audience at the platform, and a model gone empty or a key rewritten
    (every key removed, and as many added: new records at the platform) would empty the snapshot,
    all of it sent again once the model is back."""
    limits = (th.max_changed_pct, th.max_removed_pct)
    if stats.first_sync or limits == (None, None) or not (stats.changed or stats.removed):
        return None
    touched = stats.changed + stats.removed
    base = max(touched, touched + stats.unchanged - undelivered())
    over = []
    for count, limit, verb, setting in ((stats.changed, th.max_changed_pct, "change", "max_changed_pct"),
                                        (stats.removed, th.max_removed_pct, "leave the model", "max_removed_pct")):
        if limit is not None and 100.0 * count / base > limit:
            over.append(f"{count:,} of the {plural(base, 'row')} delivered before would {verb} "
                        f"({100.0 * count / base:.1f}%), over the {limit:g}% {setting} of sync {sync}")
    return "; ".join(over) or None


def mass_change_hint(sync: str) -> str:
    return (f"if the change is meant (a field newly mapped, a transform changed on purpose, rows that left for good), "
            f"`dinsync sync {sync} --force` runs it; otherwise fix the model and run again (nothing was sent)")


def sync_warnings(th: Any, s: RunSummary, *, mode: str, sendable: int, previous_segment_rows: int | None,
                  elapsed_seconds: float, withheld_duplicates: int = 0) -> list[str]:
    """The warnings a finished run earns. `th`: the sync's Thresholds; `previous_segment_rows`: the
    segment size (rows with a key) of the last successful run (None when there is none);
    `withheld_duplicates`: keys withheld while sending because the destination reads them as one
    record with another key (counted in `s.duplicate_keys`, not in `s.rejected`)."""
    warnings = []
    if withheld_duplicates:  # withheld like the model's duplicated keys, which warn under the limit
        pct = 100.0 * withheld_duplicates / s.segment_rows if s.segment_rows else 100.0
        limit = th.max_duplicate_pct
        warnings.append(f"{plural(withheld_duplicates, 'key')} ({pct:.1f}% of the model's rows) "
                        f"{'was' if withheld_duplicates == 1 else 'were'} withheld as duplicates: the destination "
                        f"reads each as one record with another key ({'within' if pct <= limit else 'over'} "
                        f"the {limit:g}% max_duplicate_pct; `dinsync rejections {s.sync} --status duplicate` "
                        f"lists them; they are sent once the model holds one key per record)")
    bad = s.rejected + s.not_found
    if sendable and bad and 100.0 * bad / sendable > th.max_rejected_pct:
        warnings.append(f"{bad} of {sendable} rows ({100.0 * bad / sendable:.1f}%) were rejected or not found "
                        f"(threshold {th.max_rejected_pct}%)")
    if mode == "update" and th.max_not_found is not None and s.not_found > th.max_not_found:
        warnings.append(f"{s.not_found} rows were not found in the destination (update mode; threshold "
                        f"{th.max_not_found})")
    warnings += segment_warnings(th, s.segment_rows, s.null_keys, previous_segment_rows)
    if th.max_run_minutes is not None and elapsed_seconds > 60.0 * th.max_run_minutes:
        warnings.append(run_time_warning(elapsed_seconds, th.max_run_minutes))
    return warnings


def segment_warnings(th: Any, segment_rows: int, null_keys: int, previous_segment_rows: int | None) -> list[str]:
    """The warnings of the segment's size (`warn_on_zero_rows`, `max_segment_drop_pct`): a run's,
    and those `dinsync plan` foretells from its own counts."""
    warnings = []
    # the segment is the rows with a key: a key column gone NULL (a dbt bug) empties it as surely as
    # a model gone empty, and every delivered key is planned removed
    keyed = max(0, segment_rows - null_keys)
    if th.warn_on_zero_rows and segment_rows == 0:
        warnings.append("the model returned no rows (warn_on_zero_rows)")
    elif th.warn_on_zero_rows and keyed == 0:
        warnings.append(f"the model returned {plural(segment_rows, 'row')}, none with a key (warn_on_zero_rows)")
    if th.max_segment_drop_pct is not None and previous_segment_rows:
        drop = 100.0 * (previous_segment_rows - keyed) / previous_segment_rows
        if drop > th.max_segment_drop_pct:
            rows, keyless = "rows", ""
            if null_keys:
                rows = "rows with a key"
                keyless = f"; {plural(null_keys, 'row')} {'has' if null_keys == 1 else 'have'} a NULL or empty key"
            warnings.append(f"the segment fell from {previous_segment_rows} to {keyed} {rows} ({drop:.1f}% "
                            f"since the last successful run; threshold {th.max_segment_drop_pct}%{keyless})")
    return warnings


SECONDS_UNDER_MINUTES = 3  # thresholds under this many minutes are told in seconds


def run_time_warning(elapsed_seconds: float, max_run_minutes: float) -> str:
    """`max_run_minutes` breached: the run's time and the threshold in one unit, seconds for a
    threshold under a few minutes (a run of 40 s over a threshold of 0.5 was "0.7 minutes", and
    one of 0.6 s "0.0 minutes"), with enough decimals to show the run took longer."""
    if max_run_minutes < SECONDS_UNDER_MINUTES:
        took, limit, unit = elapsed_seconds, 60.0 * max_run_minutes, "seconds"
        key = f", max_run_minutes {_number(max_run_minutes)}"
    else:
        took, limit, unit, key = elapsed_seconds / 60.0, float(max_run_minutes), "minutes", ""
    digits = next((d for d in range(1, 7) if f"{took:.{d}f}" != f"{limit:.{d}f}"), 6)
    return f"the run took {took:.{digits}f} {unit} (threshold {_number(limit)} {unit}{key})"


def _number(value: float) -> str:
    """A threshold as written, without an exponent: 30, 7.5, 0.6, 0.0006."""
    text = f"{value:.6f}".rstrip("0").rstrip(".")
    return text if text and abs(float(text) - value) <= 0.01 * value else f"{value:.2g}"
