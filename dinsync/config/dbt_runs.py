"""What dbt's last run did to each node: `<target path>/run_results.json`.

The manifest says what the dbt project's files are; it is written by every dbt command, also by
a `dbt build` that failed to build some models (their relations keep the data of an earlier
build) and by `dbt parse` alone. run_results.json says, per node, how dbt's last run, build,
seed or snapshot ended: `error` (the model failed), `skipped` (a node upstream failed) or `fail`
(a data test found rows: `dbt build` skips what reads the model), `partial success` (a microbatch
model some of whose batches failed: its relation lacks their rows; dbt skips what reads it and
`dbt retry` runs them again); and whether it built models (and snapshots) with
`--empty` (no rows) or `--sample` (a sample of them): dinsync then refuses to read the relation as
if dbt had built it. `dbt parse` does not rewrite the file, so a failure is remembered until a
later run builds the node.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

RESULTS = "run_results.json"
# "fail": a data test (severity error) found rows; "partial success": a microbatch model's batches failed
NOT_BUILT = ("error", "skipped", "fail", "partial success")


@dataclass
class RunResults:
    command: str  # build, run, seed, snapshot, compile...
    generated_at: str
    failed: dict[str, tuple[str, str]]  # unique_id -> (status, message) of nodes not built
    # why the file could not be read (empty, cut short: dbt writes it in place, at the end of a
    # command), where it exists: what dbt's last run built is then unknown
    unreadable: str | None = None

    def describe(self, unique_id: str, subject: str) -> str | None:
        """Why dbt did not build `unique_id` (called `subject` in the message), or None."""
        found = self.failed.get(unique_id)
        if found is None:
            return None
        status, message = found
        message = " ".join(message.split())
        message = message if len(message) <= 200 else message[:197] + "..."
        if status == "empty":
            done = f"built {subject} with --empty (a dry run: no rows, or an incremental model's earlier ones)"
        elif status == "sample":
            done = f"built {subject} with --sample (the rows of {message} only)"
        elif status == "partial success":  # message: "PARTIAL SUCCESS (2/3)", batches built / run
            done = f"built only some batches of {subject} ({message or status}: the failed batches' rows are missing)"
        elif status == "skipped" and "fail_fast" in message:  # dbt build --fail-fast: "Skipping due to fail_fast"
            done = f"skipped {subject} (--fail-fast stopped the run at its first failure)"
        elif status == "skipped":
            done = f"skipped {subject} (a node upstream of it failed)"
        else:
            done = f"failed for {subject}" + (f": {message}" if message else "")
        return f"dbt's last {self.command} ({RESULTS}, {self.generated_at}) {done}"


_cache: dict[tuple[str, int, int], RunResults | None] = {}


def read_run_results(target: Path) -> RunResults | None:
    """The nodes dbt's last run did not build (None without run_results.json, or with one not
    shaped as dbt writes it; `unreadable` set for one that cannot be read or parsed)."""
    import orjson

    path = target / RESULTS
    try:
        stat = path.stat()
    except OSError:
        return None
    key = (str(path), stat.st_mtime_ns, stat.st_size)
    if key in _cache:
        return _cache[key]
    try:
        data = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError) as exc:  # empty, cut short: not a run that failed nothing
        results = RunResults("run", "?", {}, unreadable=str(exc) or type(exc).__name__)
    else:
        results = _results_of(data)
    _cache.clear()
    _cache[key] = results
    return results


def _results_of(data: object) -> RunResults | None:
    """The results in run_results.json's parsed `data` (None: not shaped as dbt writes it)."""
    try:
        meta, args = data.get("metadata") or {}, data.get("args") or {}
        failed = {r["unique_id"]: (r["status"], r.get("message") or "") for r in data.get("results") or []
                  if isinstance(r, dict) and r.get("status") in NOT_BUILT and isinstance(r.get("unique_id"), str)}
        # `--empty` builds each model from empty inputs (no rows); `--sample` from a time sample
        sample = args.get("sample")  # {"start": ..., "end": ...} in dbt 1.10+
        if isinstance(sample, dict):
            sample = f"{sample.get('start')} to {sample.get('end')}"
        partial = ("empty", "") if args.get("empty") is True else ("sample", str(sample)) if sample else None
        if partial:  # models, and snapshots: from empty inputs, `hard_deletes: invalidate` ends every row
            failed.update({r["unique_id"]: partial for r in data.get("results") or []
                           if isinstance(r, dict) and r.get("status") == "success"
                           and str(r.get("unique_id")).startswith(("model.", "snapshot."))})
        return RunResults(str(args.get("which") or "run"), str(meta.get("generated_at") or "?"), failed)
    except (ValueError, AttributeError, TypeError):
        return None  # not dbt's file: the manifest's checks still apply
