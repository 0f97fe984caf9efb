"""Reading Splio import reports (the format the sandbox's importer writes) into per-row results."""
from __future__ import annotations

import tracemalloc

import orjson
import pytest

from dinsync.destinations.splio.reports import ReportError, parse_report, report_results

FILE = "acme_contacts_people_20261201T120000Z_0a1b2c3d_0001.csv"


def report(status="processed", rows=(), reason=None, **extra) -> bytes:
    return orjson.dumps({"report_version": 1, "file": FILE, "universe": "acme", "status": status,
                         "reason": reason, "insert_allowed": True, "rows": list(rows), **extra})


def statuses(delivered) -> dict[str, str]:
    return {**{k: "ok" for k in delivered.ok}, **{r.key: r.status for r in delivered.problems}}


def row(line, email, status, code="", message=""):
    return {"line": line, "email": email, "status": status, "code": code, "message": message}


def test_each_row_status_becomes_a_record_result():
    data = report(rows=[row(2, "a@x.com", "inserted"), row(3, "b@x.com", "updated"),
                        row(4, "c@x.com", "not_found", "not_found", "no contact"),
                        row(5, "d@x.com", "rejected", "wrong_email", "d@x.com is not a valid email address")])
    results, created = report_results(parse_report(data, FILE), ["a@x.com", "b@x.com", "c@x.com", "d@x.com"], {},
                                      "insert")
    by_key = {r.key: r for r in results.problems}
    assert statuses(results) == {"a@x.com": "ok", "b@x.com": "ok", "c@x.com": "not_found", "d@x.com": "rejected"}
    assert created == 1
    assert "line 5" in by_key["d@x.com"].reason and "wrong_email" in by_key["d@x.com"].reason
    assert "allow inserts" in by_key["c@x.com"].reason  # insert mode, import not allowed to create


def test_a_contact_created_in_update_mode_fails_its_row():
    """Update mode: the account's import should not create contacts. A created row is not
    acknowledged (the transport fails the run, and the next run sends the row again), whether the
    file's keys are known (this run) or not (a later run reading the report from its token)."""
    data = report(rows=[row(2, "a@x.com", "inserted"), row(3, "b@x.com", "updated")])
    for keys in (["a@x.com", "b@x.com"], None):
        results, created = report_results(parse_report(data, FILE), keys, {}, "update")
        assert statuses(results) == {"a@x.com": "failed", "b@x.com": "ok"} and created == 1
        [problem] = results.problems
        assert f"{FILE} line 2" in problem.reason and "update mode" in problem.reason


def test_splio_messages_quoting_a_huge_value_are_cut_in_reasons():
    # Splio's message may quote the refused value: a 1 MB language made a 1 MB rejection reason
    # (the HTTP path cuts reasons in the sender; report files do not pass through it).
    huge = "x" * 1_000_000
    data = report(rows=[row(2, "a@x.com", "rejected", "wrong_value", f"language '{huge}' is not one of ar, br"),
                        row(3, "b@x.com", "rejected", "wrong_" + huge, "short")])
    results, _ = report_results(parse_report(data, FILE), ["a@x.com", "b@x.com"], {}, "insert")
    reasons = {r.key: r.reason for r in results.problems}
    assert reasons["a@x.com"].startswith(f"Splio import ({FILE} line 2): wrong_value: language 'xxx")
    assert all(len(reason) <= 500 for reason in reasons.values())
    whole = report(status="rejected", reason={"code": "unknown_column", "message": f"column {huge} is unknown"})
    results, _ = report_results(parse_report(whole, FILE), ["a@x.com"], {}, "insert")
    assert len(results.problems[0].reason) <= 500 and "unknown_column: column xxx" in results.problems[0].reason


def test_rows_missing_from_the_report_fail():
    data = report(rows=[row(2, "a@x.com", "updated")])
    results, _ = report_results(parse_report(data, FILE), ["a@x.com", "b@x.com"], {}, "update")
    assert statuses(results) == {"a@x.com": "ok", "b@x.com": "failed"}


def test_a_rejected_file_fails_every_row_with_the_reason():
    data = report("rejected", reason={"code": "unknown_column", "message": "unknown column 'plann'"})
    results, _ = report_results(parse_report(data, FILE), ["a@x.com", "b@x.com"], {}, "insert")
    assert [r.status for r in results.problems] == ["failed", "failed"] and results.ok == []
    assert "unknown_column: unknown column 'plann'" in results.problems[0].reason and FILE in results.problems[0].reason


def test_emails_as_written_map_back_to_plan_keys():
    data = report(rows=[row(2, "Ann@X.com", "updated")])
    results, _ = report_results(parse_report(data, FILE), ["k1"], {"Ann@X.com": "k1"}, "update")
    assert statuses(results) == {"k1": "ok"}


def test_without_the_file_keys_only_rows_of_the_report_are_resolved():
    data = report(rows=[row(2, "a@x.com", "updated"), row(3, "b@x.com", "rejected", "wrong_value", "too long")])
    results, _ = report_results(parse_report(data, FILE), None, {}, "update")
    assert statuses(results) == {"a@x.com": "ok", "b@x.com": "rejected"}
    rejected, _ = report_results(parse_report(report("rejected", reason={"code": "bom"}), FILE), None, {}, "update")
    assert statuses(rejected) == {}  # a whole-file rejection names no row: nothing can be told from the token alone


@pytest.mark.parametrize("data", [b"not json", b"[]", orjson.dumps({"status": "done"}),
                                  report(rows="nope"), report(file="other.csv")])
def test_unreadable_reports_are_refused(data):
    with pytest.raises(ReportError):
        parse_report(data, FILE)


def test_a_rejected_row_names_the_column_splio_refused():
    """`dinsync rejections` showed no field for a row an import report refused, where the API's
    answers name it: the field is the file's column the message names (a wrong email: the email),
    none when the message names no column, or several."""
    columns = ["email", "firstname", "language", "visits", "plan"]
    data = report(columns=columns, rows=[
        row(2, "a@x.com", "rejected", "wrong_value", "language 'french' is not one of ar, br, ca"),
        row(3, "b@x.com", "rejected", "wrong_type", "Custom field with id 4 and name visits must be of type int."),
        row(4, "c@x.com", "rejected", "wrong_email", "c@x.com is not a valid email address"),
        row(5, "d@x.com", "rejected", "wrong_value", "firstname is longer than 255 characters"),
        row(6, "e@x.com", "rejected", "field_count", "3 cells where the header has 5"),
        row(7, "f@x.com", "rejected", "wrong_value", "plan and visits disagree"),
        row(8, "g@x.com", "rejected", "wrong_value", "firstnames are not allowed")])
    results, _ = report_results(parse_report(data, FILE), [f"{c}@x.com" for c in "abcdefg"], {}, "insert")
    fields = {r.key: r.field for r in results.problems}
    assert fields == {"a@x.com": "language", "b@x.com": "visits", "c@x.com": "email", "d@x.com": "firstname",
                      "e@x.com": None, "f@x.com": None, "g@x.com": None}


def test_acknowledged_keys_hold_no_copy_of_their_text_from_the_report():
    """A run keeps its files' acknowledged keys until their outcomes are committed (every file of
    a 1M-row sync at once): until 2026-12-06 each was the report's own copy of the email (~70 bytes
    a key, beside the run's copy of the same key), where the file's key object costs a pointer."""
    n = 50_000
    keys = [f"user{i}@example.com" for i in range(n)]
    data = report(rows=[row(i + 2, k, "inserted") for i, k in enumerate(keys)])
    tracemalloc.start()
    try:
        parsed = parse_report(data, FILE)
        results, created = report_results(parsed, keys, {}, "insert")
        del parsed  # (what the run keeps of a file: its results)
        kept, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert sorted(results.ok) == sorted(keys) and results.problems == [] and created == n
    assert kept / n < 24, f"{kept / n:.0f} bytes kept a key"
