"""Crash soak of the destinations other than Iterable: `kill_soak.py --destination attio|attentive|splio|splio-api`.

Each destination's sandbox (the same classes `python -m dinsync.sandbox` serves, with their API rules,
limits off, some latency and, over HTTP, some connection resets after the write was applied) runs on
127.0.0.1 in a thread of this process, so that what it holds can be read in full (Attentive's standard
attributes and Splio's drop folder have no public read path); `dinsync sync` runs as a subprocess on a
DuckDB project (the e2e tests' projects: tests/e2e/*_project.py) and is killed with SIGKILL. A round:

  1. first-sync rounds (`--churn 0`): a fresh project and an emptied sandbox; churn rounds (`--churn K`):
     K x 10% of the rows of the model the previous round converged on get new values;
  2. `dinsync sync` killed at the round's moment (`--moments`, taken in turn):
       random      a seeded random share (5-95%) of an unkilled run's time
       pending     while an outcome is awaited (Splio SFTP: a file uploaded and not imported yet;
                   Attentive: a bulk job not finished; elsewhere: as random)
       ack         right after the platform applied something the client has not read yet (a Splio
                   import report written, an Attio/Attentive/Splio-API write answered: the next request)
       checkpoint  right after the state file changed while sending (a checkpoint commit under way)
       final       once the platform holds every row (the run's last commit and its record)
       plan        0-0.3 s after the state file first changed (state tables created, the plan built)
  3. checked after the kill: every key the killed run committed (snapshot rows newer than before it)
     is held by the platform with the model's values, per field as the platform stores them;
  4. `dinsync sync` again: it must succeed (no failed rows), the platform must then hold exactly the
     model's rows (nobody twice, nobody created where the sync updates only), the snapshot every key and
     `pend_<sync>` nothing; Splio: no `.part` or unimported file left in the drop folder;
  5. a third run must write nothing (no acknowledged row, no write request, no file).
`--update-mode` (attio, attio-companies, splio, splio-api, with `--churn`): after the first sync, the sync is switched to
`mode: update` (lookups, then writes by record id).
`--unsettled-first` (Splio SFTP, Attentive): before the killed run, a run whose outcome timeout
(0.2 s) ends it before its import reports or bulk jobs: the killed run starts by reading them.
`--full-refresh` (with `--churn`): the killed run is `dinsync sync --full-refresh`, the re-run a plain one.
`--revert` (with `--churn`): every other round, the model goes back to the values delivered before the
killed run before it is run again (the rows the killed run may have written must be written back).

    python benchmarks/kill_soak.py --destination attio --rows 3000 --rounds 20 --seed 1 [--churn 3]
"""
from __future__ import annotations

import json
import logging
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import duckdb  # noqa: E402

logging.getLogger("aiohttp").setLevel(logging.CRITICAL)  # the sandbox's reset connections

MOMENTS = ("random", "pending", "ack", "checkpoint", "final", "plan")
ENV = {"DINSYNC_CHECKPOINT_ROWS": "100", "DINSYNC_CHECKPOINT_SECONDS": "0.2", "DINSYNC_BATCH_ROWS": "200",
       "DINSYNC_OUTCOME_TIMEOUT_SECONDS": "120", "PYTHONPATH": str(ROOT)}


class Target:
    """What a round needs of one destination: its project, its sandbox, and how to read both."""

    sync_name = ""
    table = "main.people"

    def __init__(self, tmp: Path, rows: int):
        self.tmp, self.rows, self.n = tmp, rows, 0
        # reading every record of the sandbox: 1M Attio people took more than a minute
        self.read_timeout = max(60.0, rows / 5_000)

    # project -----------------------------------------------------------------------------------
    def sql(self, statement: str, *params):
        con = duckdb.connect(str(self.project.root / "warehouse.duckdb"))
        try:
            cur = con.execute(statement, list(params) if params else None)
            return cur.fetchall() if cur.description else None
        finally:
            con.close()

    def snapshot(self, after=None) -> tuple[set[str], int, int, object]:
        """(keys committed after `after`, snapshot rows, duplicated keys, newest _synced_at)."""
        snap = f"dinsync.snap_{self.sync_name}"
        try:
            newer = "_synced_at is not null" + (" and _synced_at > ?" if after is not None else "")
            keys = {k for (k,) in self.sql(f"select _key from {snap} where {newer}",
                                           *([after] if after is not None else []))}
            rows, dup, newest = self.sql(f"select count(*), count(*) - count(distinct _key), max(_synced_at) "
                                         f"from {snap} where _synced_at is not null")[0]
        except duckdb.CatalogException:
            return set(), 0, 0, None
        return keys, rows, dup, newest

    def pending(self) -> int:
        try:
            return self.sql(f"select count(*) from dinsync.pend_{self.sync_name}")[0][0]
        except duckdb.CatalogException:
            return 0

    timeout_override: str | None = None

    def env(self) -> dict:
        env = dict(os.environ, **ENV)
        if self.timeout_override is not None:
            env["DINSYNC_OUTCOME_TIMEOUT_SECONDS"] = self.timeout_override
        return env

    def start(self, *extra: str) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-m", "dinsync.cli", "--project-dir", str(self.project.root),
                                 "--json", "sync", *extra], env=self.env(), cwd=str(ROOT), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)

    def stats(self) -> dict:
        return self.thread.stats()

    def writes(self) -> int:
        raise NotImplementedError

    def churn(self, round_no: int, k: int) -> None:
        raise NotImplementedError

    # moments: predicates over the sandbox (None: fall back to random) ------------------------------
    def pending_moment(self) -> Callable[[], bool] | None:
        return None

    def ack_moment(self) -> Callable[[], bool]:
        start, target = self.writes(), None

        def reached() -> bool:
            nonlocal target
            w = self.writes()
            if target is None:
                target = start + random.randint(1, max(2, self.rows // 400))
            return w >= target
        return reached

    def final_moment(self) -> Callable[[], bool]:
        """Once the platform received a write for every row to send (`self.to_send`)."""
        start = self.writes()
        return lambda: self.writes() - start >= self.to_send

    def extra_problems(self, after_rerun: bool) -> list[str]:
        return []

    def state_problems(self) -> list[str]:
        """After the third run: no run left `running`, no lock held."""
        out = []
        try:
            running = self.sql("select count(*) from dinsync.runs where status = 'running'")[0][0]
            locks = self.sql("select count(*) from dinsync.locks")[0][0]
        except duckdb.CatalogException as exc:
            return [f"state tables: {exc}"]
        if running:
            out.append(f"{running} runs still recorded running")
        if locks:
            out.append(f"{locks} locks left")
        return out

    def close(self) -> None:
        self.thread.stop()


# --------------------------------------------------------------------------------------------------- Attio
class AttioTarget(Target):
    sync_name = "attio_people"

    def __init__(self, tmp: Path, rows: int):
        super().__init__(tmp, rows)
        from typer.testing import CliRunner

        from dinsync.sandbox import AttioSandbox, SandboxThread
        from tests.e2e.attio_project import CUSTOM_ATTRIBUTES, AttioProject

        self.token = "attio-soak-token-5d6e7f80"
        self.sandbox = AttioSandbox([self.token], custom_attributes=CUSTOM_ATTRIBUTES, limits=False)
        self.thread = SandboxThread(self.sandbox)
        self.thread.start()
        self._project = lambda root: AttioProject(root, self.thread.url, CliRunner())

    def fresh(self) -> None:
        self.thread.reset()
        self.n += 1
        self.project = self._project(self.tmp / f"p{self.n}")
        self.project.root.mkdir()
        self.project.write_config()
        self.project.write_sync()
        self.project.seed_people(self.rows)
        self.sql("update main.people set ltv = NULL where id % 13 = 0")  # NULL sends [], which clears
        self.project.seed_companies(3)
        self.thread.set_faults(latency=0.002, jitter=0.004, reset_after_apply_rate=0.03, seed=self.n)

    def env(self) -> dict:
        return dict(super().env(), ATTIO_TEST_TOKEN=self.token)

    def set_mode(self, mode: str) -> None:
        """Update mode: records looked up by batched queries, then written by record id."""
        self.project.write_sync(mode=mode)

    def writes(self) -> int:
        by = self.stats()["requests_by_endpoint"]
        return sum(by.get(e, 0) for e in ("assert", "create", "update_append", "update_overwrite"))

    def churn(self, round_no: int, k: int) -> None:
        self.sql(f"update main.people set first_name = case when id % 3 = 0 then NULL else 'Soak{round_no} ' || id "
                 f"end, ltv = ltv + {round_no + 1}, "
                 f"plan = case when plan = 'team' then 'pro' else 'team' end where id % 10 < {k}")

    def expected(self) -> dict:
        rows = self.sql("select email, first_name, plan, ltv from main.people")
        return {e: {"job_title": f, "plan": plan, "lifetime_value": ltv} for e, f, plan, ltv in rows}

    def held(self) -> dict:
        def read():
            out = []
            for record in self.sandbox.records("people"):
                values = self.sandbox.plain(record)
                out.append((values["email_addresses"],
                            {k: values.get(k) for k in ("job_title", "plan", "lifetime_value")}))
            return out
        people = self.thread.call(read, timeout=self.read_timeout)
        self.twice = [e for e, n in _counts(e for emails, _ in people for e in emails).items() if n > 1]
        return {emails[0]: values for emails, values in people if emails}

    def extra_problems(self, after_rerun: bool) -> list[str]:
        self.held()
        out = [f"{len(self.twice)} people twice (e.g. {self.twice[:2]})"] if self.twice else []
        if after_rerun and self.thread.call(self.sandbox.count, "people") != self.rows:
            out.append(f"{self.thread.call(self.sandbox.count, 'people')} people for {self.rows} rows")
        if self.thread.call(self.sandbox.count, "companies"):
            out.append("companies created by a people sync")
        return out


class AttioCompaniesTarget(AttioTarget):
    """Companies matched on `domains` (a multiselect matching attribute: the assert adds the value)."""

    sync_name = "attio_companies"
    table = "main.companies"

    def fresh(self) -> None:
        super().fresh()
        self.project.write_sync("attio_companies", model="companies", service="companies", match_column="domain",
                                match_field="domains", fields=("name: name", "employees: employees", "tier: tier"))
        self.project.seed_companies(self.rows)
        self.project.seed_people(3)

    def set_mode(self, mode: str) -> None:
        self.project.write_sync("attio_companies", model="companies", service="companies", match_column="domain",
                                match_field="domains", fields=("name: name", "employees: employees", "tier: tier"),
                                mode=mode)

    def churn(self, round_no: int, k: int) -> None:
        self.sql(f"update main.companies set name = 'Soak{round_no} ' || domain, employees = employees + "
                 f"{round_no + 1}, tier = case when tier = 'gold' then 'bronze' else 'gold' end "
                 f"where cast(regexp_extract(domain, '[0-9]+') as integer) % 10 < {k}")

    def expected(self) -> dict:
        rows = self.sql("select domain, name, employees, tier from main.companies")
        return {d: {"name": n, "employees": e, "tier": t} for d, n, e, t in rows}

    def held(self) -> dict:
        def read():
            out = []
            for record in self.sandbox.records("companies"):
                values = self.sandbox.plain(record)
                out.append((values["domains"], {k: values.get(k) for k in ("name", "employees", "tier")}))
            return out
        companies = self.thread.call(read, timeout=self.read_timeout)
        self.twice = [d for d, n in _counts(d for ds, _ in companies for d in ds).items() if n > 1]
        self.multi = [ds for ds, _ in companies if len(ds) != 1]
        return {ds[0]: values for ds, values in companies if ds}

    def extra_problems(self, after_rerun: bool) -> list[str]:
        self.held()
        out = [f"{len(self.twice)} companies twice (e.g. {self.twice[:2]})"] if self.twice else []
        if self.multi:
            out.append(f"{len(self.multi)} companies with several domains, e.g. {self.multi[0]}")
        n = self.thread.call(self.sandbox.count, "companies")
        if after_rerun and n != self.rows:
            out.append(f"{n} companies for {self.rows} rows")
        if self.thread.call(self.sandbox.count, "people"):
            out.append("people created by a companies sync")
        return out


class AttioBothTarget(AttioCompaniesTarget):
    """Two syncs of one project run by one `dinsync sync` (companies and people), keys prefixed."""

    def fresh(self) -> None:
        AttioTarget.fresh(self)
        people = (self.project.root / "syncs" / "attio_people.yml").read_text()
        super().set_mode("upsert")  # writes the companies sync (and removes the people one)
        (self.project.root / "syncs" / "attio_people.yml").write_text(people)
        self.project.seed_companies(self.rows // 2)

    def set_mode(self, mode: str) -> None:
        raise SystemExit("attio-both runs upserts only")

    def churn(self, round_no: int, k: int) -> None:
        AttioTarget.churn(self, round_no, k)
        AttioCompaniesTarget.churn(self, round_no, k)

    def snapshot(self, after=None):
        out, rows, dup, newest = set(), 0, 0, None
        for name in ("attio_people", "attio_companies"):
            self.sync_name = name
            keys, n, d, new = Target.snapshot(self, after)
            out |= {f"{name}:{k}" for k in keys}
            rows, dup = rows + n, dup + d
            newest = new if newest is None or (new is not None and new > newest) else newest
        return out, rows, dup, newest

    def pending(self) -> int:
        return 0

    def expected(self) -> dict:
        return {**{f"attio_people:{k}": v for k, v in AttioTarget.expected(self).items()},
                **{f"attio_companies:{k}": v for k, v in AttioCompaniesTarget.expected(self).items()}}

    def held(self) -> dict:
        people = {f"attio_people:{k}": v for k, v in AttioTarget.held(self).items()}
        twice = self.twice
        out = {**people, **{f"attio_companies:{k}": v for k, v in AttioCompaniesTarget.held(self).items()}}
        self.twice += twice
        return out

    def extra_problems(self, after_rerun: bool) -> list[str]:
        self.held()
        out = [f"{len(self.twice)} records twice (e.g. {self.twice[:2]})"] if self.twice else []
        for slug, n in (("people", self.rows), ("companies", self.rows // 2)):
            held = self.thread.call(self.sandbox.count, slug)
            if after_rerun and held != n:
                out.append(f"{held} {slug} for {n} rows")
        return out


def _counts(items) -> dict:
    out: dict = {}
    for i in items:
        out[i] = out.get(i, 0) + 1
    return out


# ----------------------------------------------------------------------------------------------- Attentive
class AttentiveTarget(Target):
    sync_name = "attentive_users"
    table = "main.customers"

    def __init__(self, tmp: Path, rows: int):
        super().__init__(tmp, rows)
        from dinsync.sandbox import AttentiveSandbox, SandboxThread
        from tests.e2e.attentive_project import ATTENTIVE_KEY

        self.key = ATTENTIVE_KEY
        self.sandbox = AttentiveSandbox([ATTENTIVE_KEY], limits=False, bulk_job_seconds=0.2)
        self.thread = SandboxThread(self.sandbox)
        self.thread.start()

    def fresh(self) -> None:
        from tests.e2e.attentive_project import AttentiveProject

        self.thread.reset()
        self.thread.call(self.sandbox.seed_subscribers, self.rows, timeout=120)
        self.n += 1
        self.project = AttentiveProject(self.tmp / f"p{self.n}", self.sandbox, self.thread, None)
        self.project.write(extra="    limits_enabled: false\n    concurrency: 4\n    bulk_max_users: 50\n")
        self.project.seed(self.rows)
        # and 2% more rows naming nobody Attentive knows: not_found on every run, never created
        extra = max(1, self.rows // 50)
        self.sql("insert into main.customers select i, 'subscriber' || i || '@example.com', NULL, 'Name ' || i, "
                 "'City 0', 'gold', NULL from range(?, ? + ?) t(i)", self.rows, self.rows, extra)
        self.thread.set_faults(latency=0.002, jitter=0.004, reset_after_apply_rate=0.02, seed=self.n)

    def env(self) -> dict:
        return dict(super().env(), ATTENTIVE_TEST_KEY=self.key)

    def writes(self) -> int:
        by = self.stats()["requests_by_endpoint"]
        return sum(by.get(e, 0) for e in ("postCustomAttributes", "postUserAttributes", "postBulkUserAttributes"))

    def churn(self, round_no: int, k: int) -> None:
        self.sql(f"update main.customers set first_name = 'Soak{round_no} ' || id, "
                 f"tier = case when tier = 'gold' then 'silver' else 'gold' end where id % 10 < {k}")

    def expected(self) -> dict:
        rows = self.sql("select email, first_name, city, tier from main.customers where id < ?", self.rows)
        return {e: ({"firstName": f, "location": {"city": c}}, {"Tier": t}) for e, f, c, t in rows}

    def held(self) -> dict:
        def read():
            return {s["email"]: (s["attributes"], s["custom"]) for s in self.sandbox.subscribers()}
        return self.thread.call(read, timeout=self.read_timeout)

    def final_moment(self):
        """Every row's v1 write received and as many bulk jobs completed as its rows need."""
        def counts():
            s = self.stats()
            return s["requests_by_endpoint"].get("postCustomAttributes", 0), s["jobs"].get("COMPLETED", 0)
        v1, jobs = counts()
        need = -(-self.to_send // 50)
        return lambda: (lambda c: c[0] - v1 >= self.to_send and c[1] - jobs >= need)(counts())

    def pending_moment(self):
        def reached() -> bool:
            jobs = self.stats()["jobs"]
            return any(status not in ("COMPLETED", "FAILED") for status in jobs) and jobs.get("COMPLETED", 0) > 0
        return reached

    def extra_problems(self, after_rerun: bool) -> list[str]:
        s = self.stats()
        out = []
        if s["created_users"]:
            out.append(f"{s['created_users']} subscribers created by an update-only sync")
        if s["opt_ins"]:
            out.append(f"{s['opt_ins']} subscriptions opted in by an attributes sync")
        if s["subscribers"] != self.rows:
            out.append(f"{s['subscribers']} subscribers for {self.rows}")
        return out


# --------------------------------------------------------------------------------------------------- Splio
class SplioTarget(Target):
    sync_name = "splio_people"

    def __init__(self, tmp: Path, rows: int, transport: str):
        super().__init__(tmp, rows)
        import asyncssh

        from tests.e2e.splio_project import make_sandbox

        self.transport = transport
        key = asyncssh.generate_private_key("ssh-ed25519")
        self.thread, self.sandbox = make_sandbox(key, insert_allowed=True, limits=False)

    def fresh(self) -> None:
        from tests.e2e.splio_project import SplioProject

        self.thread.reset()
        self.n += 1
        self.project = SplioProject(self.tmp / f"p{self.n}", self.thread, self.sandbox)
        self.thread.call(setattr, self.sandbox.options, "insert_allowed", True)
        self.set_mode("insert")
        if self.transport == "sftp":
            self.thread.call(setattr, self.sandbox.sftp_faults, "importer_delay", 0.05)
        else:
            self.thread.set_faults(latency=0.005, jitter=0.01, seed=self.n)
        self.project.seed(self.rows)
        self.sql("update main.people set last_name = NULL where id % 13 = 0")  # an empty cell / value clears
        # ~1% of the rows are refused by Splio (not a language code): rejected, parked, never sent again
        self.sql("update main.people set lang = 'zz' where id % 97 = 0")

    def set_mode(self, mode: str) -> None:
        """`update`: the import configuration (the sandbox's) no longer creates contacts either."""
        if self.transport == "sftp":
            self.project.configure(transport="sftp", mode=mode, max_rows=max(100, self.rows // 20))
        else:
            self.project.configure(transport="api", mode=mode,
                                   extra="    bulk_max_contacts: 100\n    rate_limits: {contacts: null, other: null}\n")
        self.thread.call(setattr, self.sandbox.options, "insert_allowed", mode == "insert")

    def env(self) -> dict:
        return dict(super().env(), **self.project.env)

    def writes(self) -> int:
        s = self.stats()
        if self.transport == "sftp":
            return len(s["files_received"])
        return sum(n for e, n in s["requests_by_endpoint"].items() if e in ("contacts_bulk", "contacts_patch",
                                                                               "contacts_create"))

    def churn(self, round_no: int, k: int) -> None:
        self.sql(f"update main.people set first_name = case when id % 3 = 0 then NULL else 'Soak{round_no} ' || id "
                 f"end, plan = case when plan = 'free' then 'pro' else 'free' end where id % 10 < {k} and lang <> 'zz'")

    def expected(self) -> dict:
        from tests.e2e.splio_project import expected_contact

        out = {}
        for i, email, first, last, plan in self.sql("select id, email, first_name, last_name, plan from main.people "
                                                    "where lang <> 'zz'"):
            c = expected_contact(i, api=self.transport == "api")
            c["firstname"], c["lastname"] = first or "", last or ""
            c["custom_fields"]["plan"] = plan
            out[email] = c
        return out

    def held(self) -> dict:
        from tests.e2e.splio_project import subset

        return {e: subset(c) for e, c in self.thread.call(self.sandbox.contacts, timeout=self.read_timeout).items()}

    def pending_moment(self):
        if self.transport != "sftp":
            return None

        def reached() -> bool:
            s = self.stats()
            return len(s["files_received"]) > len(s["files_processed"]) and len(s["files_processed"]) > 0
        return reached

    def final_moment(self):
        if self.transport == "api":
            start = self.writes()
            per = 100 if self.to_send == self.rows else 1  # first syncs: bulk creates; changes: PATCHes
            return lambda: self.writes() - start >= -(-self.to_send // per)
        start, files = len(self.stats()["files_processed"]), -(-self.to_send // max(100, self.rows // 20))
        return lambda: len(self.stats()["files_processed"]) - start >= files

    def ack_moment(self):
        if self.transport != "sftp":
            return super().ack_moment()
        start = len(self.stats()["files_processed"])
        return lambda: len(self.stats()["files_processed"]) > start

    def extra_problems(self, after_rerun: bool) -> list[str]:
        s = self.stats()
        out = []
        if s["importer_errors"]:
            out.append(f"importer errors {s['importer_errors']}")
        if s["files_rejected"]:
            out.append(f"files rejected {s['files_rejected']}")
        if after_rerun:
            if self.transport == "sftp":
                left = self.project.drop_folder()
                if left:
                    out.append(f"{len(left)} files left in the drop folder: {left[:3]}")
            good = self.sql("select count(*) from main.people where lang <> 'zz'")[0][0]
            if s["contacts"] != good:
                out.append(f"{s['contacts']} contacts for {good} rows Splio accepts")
            bad = {k for (k,) in self.sql("select email from main.people where lang = 'zz'")}
            parked = {k for (k,) in self.sql(f"select _key from dinsync.snap_{self.sync_name} where _synced_at is null")}
            if bad - parked:
                out.append(f"{len(bad - parked)} rows Splio refused are not parked, e.g. {sorted(bad - parked)[:1]}")
        return out


TARGETS = {"attio": AttioTarget, "attio-companies": AttioCompaniesTarget,
           "attio-both": AttioBothTarget, "attentive": AttentiveTarget,
           "splio": lambda tmp, rows: SplioTarget(tmp, rows, "sftp"),
           "splio-api": lambda tmp, rows: SplioTarget(tmp, rows, "api")}


# --------------------------------------------------------------------------------------------------- rounds
def run_to_end(t: Target) -> tuple[dict | None, str]:
    proc = t.start()
    out, err = proc.communicate(timeout=600)
    try:
        return json.loads(out)["runs"][0], err
    except (ValueError, KeyError, IndexError):
        return None, f"exit {proc.returncode}: {out[-1500:]} {err[-1500:]}"


def state_files(t: Target) -> tuple:
    out = []
    for name in ("warehouse.duckdb", "warehouse.duckdb.wal"):
        try:
            st = os.stat(t.project.root / name)
            out.append((st.st_size, st.st_mtime_ns))
        except FileNotFoundError:
            out.append(None)
    return tuple(out)


def kill_at(t: Target, proc: subprocess.Popen, moment: str, at: float, rng: random.Random) -> tuple[bool, str]:
    """SIGKILL `proc` at the moment; (whether it was still running, what moment was hit)."""
    started = time.monotonic()
    reached: Callable[[], bool] | None = None
    if moment == "pending":
        reached = t.pending_moment()
    elif moment == "ack":
        reached = t.ack_moment()
    elif moment == "final":
        reached = t.final_moment()
    elif moment == "plan":  # while the state is set up and the plan built: the state file changes, nothing sent
        first_writes, seen = t.writes(), state_files(t)
        delay = rng.uniform(0, 0.3)

        def reached() -> bool:
            if state_files(t) != seen:
                time.sleep(delay)
                return True
            return t.writes() > first_writes
    elif moment == "checkpoint":
        first_writes = t.writes()
        seen = None

        def reached() -> bool:
            nonlocal seen
            if t.writes() <= first_writes:
                return False
            now = state_files(t)
            if seen is None:
                seen = now
                return False
            return now != seen
    if reached is None:
        moment = "random"
        while time.monotonic() - started < at and proc.poll() is None:
            time.sleep(0.005)
    else:
        while proc.poll() is None and time.monotonic() - started < 300:
            try:
                if reached():
                    break
            except Exception:
                pass
            time.sleep(0.002 if moment in ("checkpoint", "ack") else 0.01)
        if moment == "final":
            time.sleep(rng.uniform(0, 0.5))  # into reading the last outcomes, the last commit, the run's record
    alive = proc.poll() is None
    proc.send_signal(signal.SIGKILL)
    out, err = proc.communicate()
    if not alive:
        try:
            run = json.loads(out)["runs"][0]
            print(f"  (the run ended before the kill: exit {proc.returncode}, {run['status']} {run['error'] or ''})")
        except (ValueError, KeyError, IndexError):
            print(f"  (the run ended before the kill: exit {proc.returncode}: {out.strip()[-300:]} {err.strip()[-600:]})")
    return alive, moment


def soak(args) -> None:
    rng = random.Random(args.seed)
    random.seed(args.seed)
    moments = args.moments.split(",") if args.moments else list(MOMENTS)
    broken = 0
    results: dict[str, list[int]] = {}
    with tempfile.TemporaryDirectory(prefix="dinsync-soak-") as tmp:
        t = TARGETS[args.destination](Path(tmp), args.rows)
        try:
            t.fresh()
            began = time.perf_counter()
            run, err = run_to_end(t)
            whole = time.perf_counter() - began
            if run is None or run["status"] != "success":
                raise SystemExit(f"the unkilled run failed: {run} {err}")
            if args.update_mode:  # the records exist now: the rounds update them
                t.set_mode("update")
            if args.churn:
                t.churn(-1, args.churn)
                began = time.perf_counter()
                run, err = run_to_end(t)
                if not args.full_refresh:  # (a full refresh takes as long as the first sync)
                    whole = time.perf_counter() - began
            print(f"{args.destination}: {'first sync' if not args.churn else f'{args.churn * 10}% churn'} of "
                  f"{args.rows:,} rows, unkilled {whole:.1f} s; moments {','.join(moments)}", flush=True)
            for round_no in range(args.rounds):
                moment = moments[round_no % len(moments)]
                revert = args.churn and args.revert and round_no % 2 == 1
                if args.churn:
                    t.sql(f"create or replace table main.soak_prev as select * from {t.table}")
                    t.churn(round_no, args.churn)
                    t.to_send = sum(1 for i in range(1, args.rows + 1) if i % 10 < args.churn)
                    if args.full_refresh:
                        t.to_send = args.rows
                else:
                    t.fresh()
                    t.to_send = args.rows
                problems, hits, alive, committed = [], [], True, set()
                if args.unsettled_first:  # a run that ends before its outcomes arrived (a warning)
                    t.timeout_override = "0.2"
                    first, err = run_to_end(t)
                    t.timeout_override = None
                    if first is None:
                        problems.append(f"short run: {err[-500:]}")
                    else:
                        hits.append(f"{first['status']}({t.pending()} pending)")
                for kill_no in range(args.kills):  # the run, then (--kills 2) its re-run, ... killed
                    _, _, _, before = t.snapshot()
                    at = rng.uniform(0.05, 0.95) * whole
                    proc = t.start(*(["--full-refresh"] if args.full_refresh and kill_no == 0 else []))
                    now_alive, hit = kill_at(t, proc, moments[(round_no + kill_no) % len(moments)], at, rng)
                    alive, hits = alive and now_alive, hits + [hit]
                    now, _, _, _ = t.snapshot(before)
                    committed |= now
                    stashed = t.pending()
                    want, held = t.expected(), t.held()
                    wrong = [k for k in now if held.get(k) != want.get(k)]
                    if wrong:
                        problems.append(f"kill {kill_no + 1}: {len(wrong)} committed keys not held as sent, e.g. "
                                        f"{wrong[0]}: held {held.get(wrong[0])} want {want.get(wrong[0])}")
                    problems += t.extra_problems(False)
                hit = "+".join(hits)
                if revert:  # the model goes back to what was delivered before the killed run
                    t.sql(f"create or replace table {t.table} as select * from main.soak_prev")
                    want = t.expected()
                rerun, err = run_to_end(t)
                if rerun is None or rerun["status"] != "success" or rerun.get("failed"):
                    problems.append(f"re-run: {rerun and {k: rerun.get(k) for k in ('status', 'error', 'failed', 'rejected', 'not_found')}} {err[-800:]}")
                held = t.held()
                want = t.expected()
                bad = [k for k in want if held.get(k) != want[k]]
                extra = set(held) - set(want)
                if bad or extra:
                    problems.append(f"after the re-run {len(bad)} rows differ (e.g. {bad[:1]} held "
                                    f"{held.get(bad[0]) if bad else None} want {want.get(bad[0]) if bad else None}), "
                                    f"{len(extra)} unknown records")
                keys, rows, dup, _ = t.snapshot()
                if rows != len(want) or dup or t.pending():
                    problems.append(f"snapshot {rows} rows ({dup} duplicated) for {len(want)}, {t.pending()} pending")
                problems += t.extra_problems(True)
                writes = t.writes()
                noop, err = run_to_end(t)
                if noop is None or noop["acknowledged"] or t.writes() != writes or noop["status"] != "success":
                    problems.append(f"third run: {noop and {k: noop.get(k) for k in ('status', 'acknowledged', 'error')}}"
                                    f" writes {t.writes() - writes} {err[-500:] if noop is None else ''}")
                problems += t.state_problems()
                ok = not problems
                broken += not ok
                results.setdefault(hit, [0, 0])[0 if ok else 1] += 1
                print(f"round {round_no}: {moment}->{hit}{' then reverted' if revert else ''}{'' if alive else ' (had finished)'}: {len(committed):,} "
                      f"committed by the killed run, {stashed:,} pending; re-run sent {rerun and rerun['sent']}, "
                      f"acknowledged {rerun and rerun['acknowledged']}  "
                      f"{'ok' if ok else 'BROKEN: ' + ' | '.join(problems)}", flush=True)
                if not ok and args.churn:  # start the next round from a converged state
                    t.fresh()
                    run_to_end(t)
        finally:
            t.close()
    summary = ", ".join(f"{m} {ok} ok/{bad} broken" for m, (ok, bad) in results.items())
    print(f"{args.destination}: {args.rounds - broken} of {args.rounds} rounds held every invariant ({summary})")
    sys.exit(1 if broken else 0)
