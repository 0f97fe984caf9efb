"""A destination plugin written from the README alone (no settings model, its own `Transport`),
whose transport answers wrongly: nothing the plugin did not acknowledge for the records it was
given may enter the snapshot, and a record it says nothing of is not lost silently."""
from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

import duckdb
import pytest
from typer.testing import CliRunner

from dinsync import destinations
from dinsync.cli import app

PLUGIN = '''
import json
import os
from dinsync.destinations.base import (Delivered, Destination, KeySpec, Prepared, RecordResult, Rejection,
                                       Request, ServiceSpec, TransportStats)


def hangs(hook, key=None):
    """JUDGE_HANGS names a hook (`hook:key`: for that key's request only) that never returns."""
    return os.environ.get("JUDGE_HANGS") in (hook, f"{hook}:{key}")


async def forever():
    import asyncio
    await asyncio.sleep(3600)


class Transport:
    """Answers from JUDGE_ANSWERS: {key sent: {"ok": [...], "failed": [...]}}; default: ok."""

    def __init__(self):
        self.requests = 0

    async def __aenter__(self):
        if hangs("__aenter__"):
            await forever()
        return self

    async def __aexit__(self, *exc):
        pass

    async def deliver(self, request):
        self.requests += 1
        if hangs("deliver", request.keys[0]):
            await forever()
        mutates = json.loads(os.environ.get("JUDGE_MUTATES", "{}")).get(request.keys[0])
        if mutates is not None:  # the request's own list of keys, changed and answered as acknowledged
            request.keys.pop()
            request.keys.extend(mutates)
            return Delivered(request.keys, [])
        answer = json.loads(os.environ.get("JUDGE_ANSWERS", "{}")).get(request.keys[0])
        if answer is None:
            return Delivered(list(request.keys), [])
        if "pending" in answer:
            return Delivered([], [], {answer["pending"]: list(request.keys)})
        return Delivered(answer.get("ok", []), [RecordResult(k, answer.get("status", "failed"), "boom")
                                                     for k in answer.get("failed", [])])

    async def settle(self, pending, timeout):
        import json
        if hangs("settle"):
            await forever()
        told = json.loads(os.environ.get("JUDGE_SETTLED", "null"))
        if told is None:
            return Delivered([], [], dict(pending))
        return Delivered(told.get("ok", []), [RecordResult(k, "rejected", "refused later") for k in told.get("rejected", [])])

    def ready(self):
        return Delivered([], [])

    async def resolve(self, tokens):
        import json
        if hangs("resolve"):
            await forever()
        told = json.loads(os.environ.get("JUDGE_SETTLED", "null")) or {}
        return Delivered(told.get("ok", []), [RecordResult(k, "rejected", "refused later") for k in told.get("rejected", [])])

    def transport_stats(self):
        return TransportStats(requests=self.requests)


class OneByOne(Destination):
    type_name = "onebyone"
    services = {"people": ServiceSpec(name="people", key_fields={"email": KeySpec("email")}, modes=("upsert",))}
    base_urls = {"default": "https://example.invalid"}

    def make_transport(self, options):
        return Transport()

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if os.environ.get("JUDGE_RAISES") == "init":
            raise RuntimeError("no luck")
        if hangs("__init__"):
            import time
            time.sleep(float(os.environ.get("JUDGE_HANG_SECONDS", "10")))

    def prepare(self, frame, sync):
        if os.environ.get("JUDGE_RAISES") == "prepare":
            raise ValueError("no luck")
        if hangs("prepare"):  # (a loop that never ends, in the test's time)
            import time
            time.sleep(float(os.environ.get("JUDGE_HANG_SECONDS", "10")))
        keys = frame["_key"].to_list()
        refused = [Rejection(k, "refused by prepare") for k in keys if k == "p1@example.com"]
        return Prepared([Request("w", "POST", "", b"{}", [k]) for k in keys if k != "p1@example.com"], refused)


    async def begin_run(self, transport, sync):
        if hangs("begin_run"):
            await forever()

    async def finish_run(self, transport, sync):
        if hangs("finish_run"):
            await forever()


DESTINATIONS = [OneByOne]
'''


class Project:
    def __init__(self, root: Path, monkeypatch):
        self.root = root
        (root / "models").mkdir(parents=True)
        (root / "syncs").mkdir()
        (root / "plugin").mkdir()
        (root / "plugin" / "judge_plugin.py").write_text(PLUGIN)
        monkeypatch.syspath_prepend(str(root / "plugin"))
        monkeypatch.setenv("DINSYNC_DESTINATION_MODULES", "judge_plugin")
        sys.modules.pop("judge_plugin", None)  # another test's version of it
        destinations._plugins.cache_clear()
        (root / "dinsync.yml").write_text(textwrap.dedent("""\
            version: 1
            warehouse: {type: duckdb, path: warehouse.duckdb}
            destinations:
              one: {type: onebyone, concurrency: 1}
            """))
        (root / "models" / "people.sql").write_text("-- primary_key: id\nselect id, email, name from main.people\n")
        (root / "syncs" / "people.yml").write_text(textwrap.dedent("""\
            model: people
            destination: one
            service: people
            mode: upsert
            match: {column: email, field: email}
            fields: {name: name}
            thresholds: {max_rejected_pct: 90}
            """))
        self.sql("create table main.people as select i as id, 'p' || i || '@example.com' as email, "
                 "'N' || i as name from range(1, 6) t(i)")

    def sql(self, statement: str):
        con = duckdb.connect(str(self.root / "warehouse.duckdb"))
        try:
            cur = con.execute(statement)
            return cur.fetchall() if cur.description else None
        finally:
            con.close()

    def sync(self) -> dict:
        sys.modules.pop("judge_plugin", None)  # (rewritten by some tests)
        destinations._plugins.cache_clear()
        result = CliRunner().invoke(app, ["--project-dir", str(self.root), "--json", "sync"], catch_exceptions=False)
        data = json.loads(result.stdout)
        assert "runs" in data, data
        data["run"], = data["runs"]
        data["exit_code"] = result.exit_code
        return data

    def acknowledged(self) -> set[str]:
        return {k for k, in self.sql("select _key from dinsync.snap_people where _pfp is null")}


@pytest.fixture
def project(tmp_path, monkeypatch):
    yield Project(tmp_path / "proj", monkeypatch)
    sys.modules.pop("judge_plugin", None)
    destinations._plugins.cache_clear()


def test_a_plugin_without_a_settings_model_syncs(project):
    """The base class's settings_model is None; such a plugin was an 'unexpected error: ValidationError'."""
    data = project.sync()
    assert data["exit_code"] == 0, data
    assert (data["run"]["sent"], data["run"]["acknowledged"], data["run"]["rejected"]) == (4, 4, 1)
    assert project.acknowledged() == {f"p{i}@example.com" for i in range(2, 6)}


def test_a_plugin_key_not_configured_is_refused(project):
    (project.root / "dinsync.yml").write_text(project.root.joinpath("dinsync.yml").read_text()
                                              .replace("concurrency: 1}", "concurrency: 1, colour: blue}"))
    result = CliRunner().invoke(app, ["--project-dir", str(project.root), "--json", "validate"])
    assert result.exit_code == 3
    assert "unknown key destinations.one.colour" in result.stdout


def test_acknowledgements_of_records_a_request_did_not_carry_commit_nothing(project, monkeypatch):
    """The request of p2 acknowledges p3 too, whose own request fails, and the row prepare()
    refused and a key of no row: before, p3 entered the snapshot (never delivered, never sent again)
    and `acknowledged` exceeded `sent`."""
    monkeypatch.setenv("JUDGE_ANSWERS", json.dumps({
        "p2@example.com": {"ok": ["p2@example.com", "p3@example.com", "p1@example.com", "nobody@example.com"]},
        "p3@example.com": {"failed": ["p3@example.com"]},
    }))
    run = project.sync()["run"]
    assert (run["sent"], run["acknowledged"], run["failed"], run["rejected"]) == (4, 3, 1, 1)
    assert project.acknowledged() == {"p2@example.com", "p4@example.com", "p5@example.com"}
    assert project.sql("select _pfp is not null from dinsync.snap_people where _key = 'p1@example.com'") == [(True,)]


def test_a_record_the_transport_says_nothing_of_fails_and_is_sent_again(project, monkeypatch):
    """Before, p4's row got neither an outcome nor a rejection row: the run said success with 3
    of 4 rows acknowledged and nothing about the fourth."""
    monkeypatch.setenv("JUDGE_ANSWERS", json.dumps({"p4@example.com": {"ok": []}}))
    data = project.sync()
    run = data["run"]
    assert (run["status"], run["sent"], run["acknowledged"], run["failed"]) == ("failed", 4, 3, 1)
    assert data["exit_code"] == 1
    assert "no outcome" in run["error"]
    assert project.sql("select key, status from dinsync.rejections where status = 'failed'") == [
        ("p4@example.com", "failed")]
    assert "p4@example.com" not in project.acknowledged()
    monkeypatch.delenv("JUDGE_ANSWERS")
    again = project.sync()["run"]
    assert (again["added"], again["acknowledged"]) == (1, 1)


def test_a_record_said_both_acknowledged_and_failed_is_not_committed(project, monkeypatch):
    monkeypatch.setenv("JUDGE_ANSWERS", json.dumps({"p5@example.com": {"ok": ["p5@example.com", "p5@example.com"],
                                                                         "failed": ["p5@example.com"]}}))
    run = project.sync()["run"]
    assert (run["acknowledged"], run["failed"]) == (3, 1)
    assert "p5@example.com" not in project.acknowledged()


def test_a_record_given_a_status_that_is_none_of_the_documented_ones_fails_and_is_sent_again(project, monkeypatch):
    """Before, p4's "OK!" (neither ok, rejected, not_found nor failed) was counted nowhere: the run
    said success, sent 4 with 3 acknowledged, and no rejection row told of the fourth."""
    monkeypatch.setenv("JUDGE_ANSWERS", json.dumps({"p4@example.com": {"failed": ["p4@example.com"], "status": "OK!"}}))
    data = project.sync()
    run = data["run"]
    assert (run["status"], run["sent"], run["acknowledged"], run["failed"]) == ("failed", 4, 3, 1)
    assert data["exit_code"] == 1
    [(key, status, reason)] = project.sql("select key, status, reason from dinsync.rejections where status = 'failed'")
    assert (key, status) == ("p4@example.com", "failed")
    assert "'OK!'" in reason and "onebyone" in reason
    assert "p4@example.com" not in project.acknowledged()


def test_a_record_settled_both_acknowledged_and_refused_is_not_committed(project, monkeypatch):
    """Before, an outcome arriving later (settle) that said p4 both ok and rejected committed it:
    the acknowledgement was read first, and the refusal of a record no longer awaited was dropped."""
    monkeypatch.setenv("JUDGE_ANSWERS", json.dumps({"p4@example.com": {"pending": "job-1"}}))
    monkeypatch.setenv("JUDGE_SETTLED", json.dumps({"ok": ["p4@example.com"], "rejected": ["p4@example.com"]}))
    run = project.sync()["run"]
    assert (run["acknowledged"], run["rejected"], run["pending"]) == (3, 2, 0)
    assert "p4@example.com" not in project.acknowledged()


def test_a_record_resolved_by_a_later_run_both_acknowledged_and_refused_is_not_committed(project, monkeypatch):
    monkeypatch.setenv("JUDGE_ANSWERS", json.dumps({"p4@example.com": {"pending": "job-1"}}))
    assert project.sync()["run"]["pending"] == 1
    monkeypatch.setenv("JUDGE_SETTLED", json.dumps({"ok": ["p4@example.com"], "rejected": ["p4@example.com"]}))
    project.sync()
    assert "p4@example.com" not in project.acknowledged()
    assert project.sql("select count(*) from dinsync.rejections where key = 'p4@example.com' and status = 'rejected'") == [(1,)]


@pytest.mark.parametrize("hook", ["init", "prepare"])
def test_an_error_raised_by_a_plugin_names_the_plugin(project, monkeypatch, hook):
    """Before: `ValueError: no luck` (or `unexpected error: RuntimeError: no luck`), which of the
    installed plugins (or dinsync itself) raised it left to guess."""
    monkeypatch.setenv("JUDGE_RAISES", hook)
    data = project.sync()
    assert data["exit_code"] == 1
    assert "destination plugin onebyone (judge_plugin.OneByOne) raised" in data["run"]["error"], data["run"]["error"]
    assert "no luck" in data["run"]["error"]
    if hook != "init":  # (plan builds no request)
        return
    sys.modules.pop("judge_plugin", None)
    destinations._plugins.cache_clear()
    result = CliRunner().invoke(app, ["--project-dir", str(project.root), "plan"])
    assert "destination plugin onebyone (judge_plugin.OneByOne) raised" in result.output, result.output


def _validate(project) -> tuple[int, list[dict]]:
    sys.modules.pop("judge_plugin", None)  # rewritten by the test
    destinations._plugins.cache_clear()
    result = CliRunner().invoke(app, ["--project-dir", str(project.root), "--json", "validate"])
    return result.exit_code, json.loads(result.stdout).get("issues", [])


def test_a_plugin_claiming_a_built_in_type_is_a_configuration_error(project):
    """Before, the class was dropped without a word: a plugin meant to replace `iterable` was
    never used, and `type: iterable` silently ran the built-in one."""
    (project.root / "plugin" / "judge_plugin.py").write_text(
        PLUGIN + "\n\nclass Mine(OneByOne):\n    type_name = 'iterable'\n\n\nDESTINATIONS = [OneByOne, Mine]\n")
    code, [issue] = _validate(project)
    assert code == 3
    assert issue["message"] == ("destination plugin judge_plugin.Mine declares type_name 'iterable', a built-in "
                                "destination type: a plugin cannot replace it")
    assert (issue["file"], issue["line"]) == ("dinsync.yml", 4)


def test_two_plugins_with_one_type_name_are_a_configuration_error(project):
    """Before, the last one listed won without a word."""
    (project.root / "plugin" / "judge_plugin.py").write_text(
        PLUGIN + "\n\nclass Other(OneByOne):\n    pass\n\n\nDESTINATIONS = [OneByOne, Other]\n")
    code, [issue] = _validate(project)
    assert code == 3
    assert issue["message"] == ("destination plugins judge_plugin.OneByOne and judge_plugin.Other both declare "
                                "type_name 'onebyone'")


def test_a_preflight_hook_that_raises_is_reported_for_its_sync_by_validate(project):
    """Before, `dinsync validate` stopped with "unexpected error: KeyError: 'boom'" (exit 1), not
    saying which sync, and checked no other."""
    (project.root / "plugin" / "judge_plugin.py").write_text(
        PLUGIN + "\n\nasync def preflight(self, transport, sync):\n    raise KeyError('boom')\n\n\n"
                 "OneByOne.preflight = preflight\n")
    code, [issue] = _validate(project)
    assert code == 3
    assert issue["message"] == "pre-flight check of sync people failed: onebyone's preflight raised KeyError: 'boom'"
    assert issue["file"] == "syncs/people.yml"


def test_a_transport_with_only_the_methods_the_readme_names_runs(project):
    """The README names deliver, settle and resolve; a transport without `ready` and
    `transport_stats` (optional: nothing arrives between checkpoints, no request counted) had every
    row delivered and committed, then its run recorded failed: "AttributeError: ... 'transport_stats'"."""
    (project.root / "plugin" / "judge_plugin.py").write_text(
        PLUGIN + "\n\ndel Transport.ready, Transport.transport_stats\n")
    data = project.sync()
    assert (data["exit_code"], data["run"]["status"], data["run"]["acknowledged"], data["run"]["error"]) == (
        0, "success", 4, None)
    assert data["run"]["requests"] == 0


def test_a_row_prepare_neither_sends_nor_rejects_is_failed_not_ignored(project):
    """Before, a row prepare() left out (a plugin's bug) was in no count and no rejection: the run
    said success, and every run planned it again, silently."""
    (project.root / "plugin" / "judge_plugin.py").write_text(PLUGIN.replace(
        'if k != "p1@example.com"]', 'if k not in ("p1@example.com", "p3@example.com")]'))
    data = project.sync()
    run = data["run"]
    assert (run["status"], run["sent"], run["acknowledged"], run["rejected"], run["failed"]) == ("failed", 3, 3, 1, 1)
    assert project.sql("select key, reason from dinsync.rejections where status = 'failed'") == [
        ("p3@example.com", "the destination's prepare() made no request for this row and did not reject it")]
    assert "p3@example.com" not in project.acknowledged()


def test_a_plugin_that_changes_the_keys_of_the_request_it_was_given_commits_only_what_it_was_sent(project, monkeypatch):
    """A transport (or a parse()) may change the request it is handed: before, its answer was held
    to the keys as it left them, so p3 (whose own request failed), added to p2's list and
    acknowledged with it, entered the snapshot, and p4, taken out of its own, was neither
    acknowledged nor failed (sent 4, acknowledged 3, failed 0: a success run)."""
    monkeypatch.setenv("JUDGE_ANSWERS", json.dumps({"p3@example.com": {"failed": ["p3@example.com"]}}))
    monkeypatch.setenv("JUDGE_MUTATES", json.dumps({"p2@example.com": ["p2@example.com", "p3@example.com"],
                                                    "p4@example.com": []}))
    data = project.sync()
    run = data["run"]
    assert (run["sent"], run["acknowledged"], run["failed"]) == (4, 2, 2), run["error"]
    assert project.acknowledged() == {"p2@example.com", "p5@example.com"}
    assert sorted(k for k, in project.sql("select key from dinsync.rejections where status = 'failed'")) == [
        "p3@example.com", "p4@example.com"]


@pytest.mark.parametrize("change", [
    "OneByOne.prepare = prepare_async",  # an async def where the README's hook is a def
    "OneByOne.begin_run = lambda self, transport, sync: None",  # a def where it is an async def
    "Transport.deliver = deliver_sync",
])
def test_a_hook_written_async_where_it_is_sync_or_the_reverse_works(project, change):
    """Before: 'AttributeError: 'coroutine' object has no attribute 'rejections'' (and a coroutine
    never awaited), or 'TypeError: object NoneType can't be used in 'await' expression', naming
    no plugin and no hook."""
    (project.root / "plugin" / "judge_plugin.py").write_text(PLUGIN + f'''

async def prepare_async(self, frame, sync):
    return Prepared([Request("w", "POST", "", b"{{}}", [k]) for k in frame["_key"].to_list()])


def deliver_sync(self, request):
    return Delivered(list(request.keys), [])


{change}
''')
    data = project.sync()
    assert (data["exit_code"], data["run"]["error"]) == (0, None), data["run"]["error"]
    assert len(project.acknowledged()) >= 4


def test_a_prepare_that_changes_the_frame_it_was_given_fails_only_the_rows_it_left_out(project):
    """prepare() may change the frame it is handed (Polars has in-place methods): the rows it left
    out were read from the frame as it left it, here without `_key`: 'unexpected error:
    ColumnNotFoundError' where p3 was to be failed and sent again."""
    (project.root / "plugin" / "judge_plugin.py").write_text(PLUGIN.replace(
        '        keys = frame["_key"].to_list()\n',
        '        keys = frame["_key"].to_list()\n        frame.drop_in_place("_key")\n').replace(
        'if k != "p1@example.com"]', 'if k not in ("p1@example.com", "p3@example.com")]'))
    data = project.sync()
    run = data["run"]
    assert (run["status"], run["sent"], run["acknowledged"], run["failed"]) == ("failed", 3, 3, 1), run["error"]
    assert project.sql("select key from dinsync.rejections where status = 'failed'") == [("p3@example.com",)]


def test_keys_a_request_carries_from_outside_the_frame_prepare_was_given_commit_nothing(project, monkeypatch):
    """prepare() (a plugin's) may put in its requests keys of rows it was not given: rows of an
    earlier batch (here the first row sent, whose own request failed) and keys of no row at all.
    Before, the transport's answer was held to the request's keys only: they were counted and
    handed to the snapshot's commit as acknowledged (sent 16, acknowledged 14, failed 2 for the 4
    rows sent, 1 refused)."""
    monkeypatch.setenv("DINSYNC_BATCH_ROWS", "2")
    monkeypatch.setenv("JUDGE_FAIL_FIRST", "1")
    (project.root / "plugin" / "judge_plugin.py").write_text(PLUGIN.replace(
        "    async def deliver(self, request):\n        self.requests += 1\n",
        "    async def deliver(self, request):\n        self.requests += 1\n"
        "        global FIRST\n"
        "        if FIRST is None and os.environ.get('JUDGE_FAIL_FIRST'):  # the first request sent fails\n"
        "            FIRST = request.keys[0]\n"
        "            return Delivered([], [RecordResult(FIRST, 'failed', 'boom')])\n").replace(
        "        return Prepared([Request(\"w\", \"POST\", \"\", b\"{}\", [k]) for k in keys if k != \"p1@example.com\"], refused)\n",
        "        carried = [*SEEN, 'ghost@example.com']  # earlier batches' rows, and a key of no row\n"
        "        SEEN.extend(keys)\n"
        "        return Prepared([Request('w', 'POST', '', b'{}', [k, *carried]) for k in keys if k != 'p1@example.com'],"
        " refused)\n") + "\nSEEN = []\nFIRST = None\n")
    sys.modules.pop("judge_plugin", None)
    destinations._plugins.cache_clear()
    result = CliRunner().invoke(app, ["--project-dir", str(project.root), "--json", "sync"], catch_exceptions=False)
    run, = json.loads(result.stdout)["runs"]
    assert (run["sent"], run["acknowledged"], run["failed"], run["rejected"]) == (4, 3, 1, 1), run
    failed, = [k for k, in project.sql("select key from dinsync.rejections where status = 'failed'")]
    assert failed not in project.acknowledged() and len(project.acknowledged()) == 3
    assert "ghost@example.com" not in project.acknowledged()
    notes = [line for line in result.stderr.splitlines() if "outside the rows" in line]
    assert len(notes) == 1 and "ghost@example.com" in notes[0], result.stderr
    monkeypatch.delenv("JUDGE_FAIL_FIRST")
    again = project.sync()["run"]
    assert (again["status"], again["sent"], again["acknowledged"]) == ("success", 1, 1), again
