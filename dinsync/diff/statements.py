"""The named statements of the diff: template in sql/ and the fixed context of each variant."""
from __future__ import annotations

from typing import Any

# statement name -> (template in sql/, fixed context)
STATEMENTS: dict[str, tuple[str, dict[str, Any]]] = {
    # state
    "create_schema": ("create_schema", {}),
    "create_snapshot": ("create_snapshot", {}),
    "add_snapshot_column": ("add_snapshot_column", {}),
    "forget_fingerprints": ("forget_fingerprints", {"keep_parked": False}),
    "forget_fingerprints_keep_parked": ("forget_fingerprints", {"keep_parked": True}),
    "forget_field": ("forget_field", {}),
    "forget_snapshot": ("forget_snapshot", {}),
    "forget_raw_keys": ("forget_raw_keys", {}),
    "backfill_key_hash": ("backfill_key_hash", {}),
    "snapshot_empty": ("snapshot_empty", {}),
    # first plan (empty snapshot) and full refresh
    "plan_all": ("plan_all", {"full_refresh": False}),
    "plan_all_full_refresh": ("plan_all", {"full_refresh": True}),
    "plan_all_duplicates": ("plan_all_duplicates", {}),
    "plan_all_mark_duplicates": ("plan_all_mark_duplicates", {}),
    "plan_all_withhold_duplicated": ("plan_all_withhold_duplicated", {}),
    # everyday plan
    "seg": ("seg", {}),
    "digest": ("digest", {"retry": False}),
    "digest_retry": ("digest", {"retry": True}),
    "cand_counts": ("cand_counts", {}),
    "buckets": ("buckets", {"retry": False}),
    "buckets_retry": ("buckets", {"retry": True}),
    "plan_empty": ("plan_empty", {}),
    "cand_all": ("cand", {"retry": False}),
    "cand_all_retry": ("cand", {"retry": True}),
    "cand_anomaly_count": ("cand_anomaly_count", {}),
    "cand_anomalies": ("cand_anomalies", {}),
    "cur": ("cur", {}),
    "prior": ("prior", {}),
    "plan": ("plan", {"retry": False}),
    "plan_retry": ("plan", {"retry": True}),
    "refresh_snapshot": ("refresh_snapshot", {}),
    "plan_stats": ("plan_stats", {}),
    # reading the plan
    "stream_sendable": ("stream_sendable", {}),
    "sample": ("sample", {}),
    "duplicates_sample": ("duplicates_sample", {}),
    "field_change_counts": ("field_change_counts", {}),
    "parked_count": ("parked_count", {"staying": False, "undelivered": False}),
    "parked_count_staying": ("parked_count", {"staying": True, "undelivered": False}),
    "parked_count_undelivered": ("parked_count", {"staying": True, "undelivered": True}),
    # commits
    "acked": ("acked", {}),
    "acked_rest": ("acked_rest", {}),
    "ack_count": ("ack_count", {}),
    "acked_positions": ("acked_positions", {}),
    "acked_replace_all": ("acked_replace_all", {}),
    "commit_delete": ("commit_delete", {}),
    "commit_insert": ("commit_insert", {}),
    "park_update": ("park_update", {}),
    "park_insert": ("park_insert", {"unfound": False}),
    "park_insert_unfound": ("park_insert", {"unfound": True}),
    "unsettle_stage": ("unsettle_stage", {"from_prior": False, "refresh": False}),
    "unsettle_stage_prior": ("unsettle_stage", {"from_prior": True, "refresh": False}),
    "unsettle_stage_refresh": ("unsettle_stage", {"from_prior": False, "refresh": True}),
    "unsettle_delete": ("unsettle_delete", {}),
    "unsettle_insert": ("unsettle_insert", {}),
    "removed_count": ("removed_count", {"in_parts": False}),
    "commit_removed": ("commit_removed", {"in_parts": False}),
    "removed_count_part": ("removed_count", {"in_parts": True}),
    "commit_removed_part": ("commit_removed", {"in_parts": True}),
    "cleanup_count": ("cleanup_count", {}),
    "commit_full_refresh_cleanup": ("commit_full_refresh_cleanup", {}),
    # records whose outcome arrives later (pending.py)
    "create_pending": ("create_pending", {}),
    "add_pending_column": ("add_pending_column", {}),
    "stash_delete": ("stash_delete", {}),
    "stash_insert": ("stash_insert", {}),
    "stash_tokens": ("stash_tokens", {}),
    "pending_ok_delete": ("pending_ok_delete", {}),
    "pending_ok_insert": ("pending_ok_insert", {}),
    "pending_park_update": ("pending_park_update", {}),
    "pending_park_insert": ("pending_park_insert", {}),
    "pending_forget": ("pending_forget", {}),
    "pending_forget_fingerprints": ("pending_forget_fingerprints", {}),
    "pending_forget_field": ("pending_forget_field", {}),
    "pending_forget_raw_keys": ("pending_forget_raw_keys", {}),
    "pending_tokens": ("pending_tokens", {}),
}
for _table in ("plan", "seg", "buckets", "cand", "cur", "prior", "ack", "acked", "unsettle", "tokens"):
    STATEMENTS[f"drop_{_table}"] = ("drop_table", {"target": _table})

# Statements that need a row-position column (Capabilities.row_position).
NEEDS_POSITION = {"acked_rest", "acked_positions", "acked_replace_all"}
# Statements of the scratch table of the model's hashes (Capabilities.segment_hashes).
NEEDS_SEGMENT_HASHES = {"seg", "drop_seg"}
# Statements that record a time (`param("now")`): the host's UTC clock, as the run log and the locks
# have it; the warehouse's CURRENT_TIMESTAMP is in its session's time zone (a PostgreSQL server's
# is the host's at initdb, DuckDB's the machine's), so `_synced_at` was local time there.
NEEDS_NOW = {"commit_insert", "stash_insert", "pending_ok_insert"}
# Statements with param() markers (bound when they run): sample (op, limit), duplicates_sample
# (limit), commit_removed_part (parts, part), NEEDS_NOW (now).
