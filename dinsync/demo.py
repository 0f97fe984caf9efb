"""`dinsync demo`: an offline tour on the embedded defaults.

Builds a sample DuckDB warehouse, starts the Iterable sandbox on 127.0.0.1, syncs, changes the
data (updates, deletions, new customers), syncs again and shows that only the changes travelled.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import textwrap
from pathlib import Path
from typing import Callable

from .errors import DinsyncError, ExitCode
from .terminal import plural

DEMO_KEY_ENV = "DINSYNC_DEMO_ITERABLE_KEY"

DINSYNC_YML = """\
version: 1
warehouse:
  type: duckdb
  path: warehouse.duckdb
state_schema: dinsync
destinations:
  iterable:
    type: iterable
    api_key: ${{env:{env}}}
    region: us
    base_url: {base_url}     # the local Iterable sandbox
    concurrency: 4
"""

MODEL_SQL = """\
-- primary_key: customer_id
-- model_type: user
select customer_id, email, first_name, plan, lifetime_value, signed_up_on
from main.customers
where not churned
"""

SYNC_YML = """\
model: active_customers
destination: iterable
service: users
mode: upsert
match:
  column: email
  field: email
fields:
  first_name: firstName
  plan: plan
  lifetime_value: ltv
  signed_up_on: signupDate
thresholds:
  max_rejected_pct: 5
  fail_on_warning: false
"""

SEED_SQL = """
create or replace table main.customers as
select
  i as customer_id,
  'customer' || i || '@example.com' as email,
  ['Ada', 'Grace', 'Linus', 'Barbara', 'Ken', 'Margaret'][1 + i % 6] || ' ' || i as first_name,
  ['free', 'pro', 'team'][1 + i % 3] as plan,
  round((i * 37 % 1000) / 7.0, 2) as lifetime_value,
  date '2024-01-01' + cast(i % 600 as integer) as signed_up_on,
  false as churned
from range(1, {rows} + 1) t(i);
-- a few rows a real model would have: a NULL key and a malformed email
insert into main.customers values
  ({rows} + 1, null, 'No Email', 'free', 0, date '2024-02-02', false),
  ({rows} + 2, 'not-an-email', 'Bad Email', 'free', 0, date '2024-02-02', false);
"""

CHANGE_SQL = """
update main.customers set plan = 'enterprise' where customer_id % 50 = 0;       -- 2% change plan
update main.customers set churned = true where customer_id % 200 = 7;          -- 0.5% leave the segment
insert into main.customers
select i, 'newcomer' || i || '@example.com', 'New ' || i, 'free', 0, date '2026-11-25', false
from range({rows} + 100, {rows} + 125) t(i);                                   -- 25 new customers
"""


MARKER = ".dinsync-demo.json"  # in a folder the demo created: what it wrote, to know it again
DEMO_FILES = ("dinsync.yml", "models/active_customers.sql", "syncs/iterable_customers.yml")
WAREHOUSE_FILES = ("warehouse.duckdb", "warehouse.duckdb.wal")  # recreated by every demo run
# The Attio step (dinsync/demo_attio.py) runs its own small project in a subfolder.
ATTIO_DIR = "attio"
ATTIO_FILES = tuple(f"{ATTIO_DIR}/{rel}" for rel in ("dinsync.yml", "models/companies.sql", "models/people.sql",
                                                    "syncs/attio_companies.yml", "syncs/attio_people.yml"))
ATTIO_ROWS = 50  # people (and 5 companies): Attio allows 25 writes/s, so the step takes a few seconds


class DemoFolderError(DinsyncError):
    """The demo folder holds files the demo did not write: refuse unless --force."""

    exit_code = ExitCode.USAGE


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def foreign_entries(path: Path) -> list[str]:
    """What in `path` the demo did not write (or the user changed since): [] means the demo may
    use the folder. A folder without the demo's marker is foreign unless empty."""
    if not path.exists():
        return []
    if not path.is_dir():
        return [path.name]
    try:
        marker = json.loads((path / MARKER).read_text())
        written = dict(marker["files"])
    except (OSError, ValueError, KeyError, TypeError):
        written = {}
    allowed = (set(written) | set(WAREHOUSE_FILES) | {MARKER, "models", "syncs"}
               | {f"{ATTIO_DIR}/{rel}" for rel in WAREHOUSE_FILES} | {ATTIO_DIR, f"{ATTIO_DIR}/models", f"{ATTIO_DIR}/syncs"})
    foreign = []
    for entry in sorted(path.rglob("*")):
        rel = entry.relative_to(path).as_posix()
        if rel not in allowed:
            foreign.append(rel)
        elif rel in written and (not entry.is_file() or _digest(entry) != written[rel]):
            foreign.append(rel + " (changed since the demo wrote it)")
    if not written and not foreign and any(path.iterdir()):
        foreign.extend(f"{entry.name} (no demo marker)" for entry in sorted(path.iterdir()))
    return foreign


def prepare_folder(path: Path, force: bool) -> None:
    if path.exists() and not path.is_dir():  # --force never replaces a file by the demo's folder
        raise DemoFolderError(f"{path} is a file, not a folder", hint="pass another --path")
    # nor a folder by one of its files, or a file by one of its folders (as `init`)
    files = (*DEMO_FILES, *WAREHOUSE_FILES, MARKER, *ATTIO_FILES, *(f"{ATTIO_DIR}/{rel}" for rel in WAREHOUSE_FILES))
    folders = {rel.rsplit("/", 1)[0] for rel in files if "/" in rel} | {ATTIO_DIR}
    in_the_way = sorted([rel for rel in files if (path / rel).is_dir()]
                        + [rel for rel in folders if (path / rel).exists() and not (path / rel).is_dir()])
    if in_the_way:
        raise DemoFolderError(f"{path} has folders where the demo's files go, or files where its folders go: "
                              f"{', '.join(in_the_way)}; nothing was written", hint="pass another --path")
    foreign = foreign_entries(path)
    if foreign and not force:
        shown = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
        raise DemoFolderError(
            f"{path} holds files the demo did not create: {shown}",
            hint="pass another --path (the demo writes a project there and deletes its warehouse.duckdb), "
                 "or --force to overwrite them")
    try:
        (path / "models").mkdir(parents=True, exist_ok=True)
        (path / "syncs").mkdir(exist_ok=True)
    except OSError as exc:  # a folder the user cannot write to: one clear line, not "unexpected error"
        raise DemoFolderError(f"cannot write {exc.filename or path}: {exc.strerror or exc}",
                              hint="pass a --path you can write to") from exc


def write_own(path: Path, text: str) -> None:
    """Write one of the demo's files; a symbolic link there (let through by --force) is replaced,
    never written through: the file it points to is outside the demo's folder."""
    if path.is_symlink():
        path.unlink()
    try:
        path.write_text(text)
    except OSError as exc:  # a full disk, say: one clear line naming the file, and no file cut short
        with contextlib.suppress(OSError):
            path.unlink()
        raise DemoFolderError(f"cannot write {path}: {exc.strerror or exc}",
                              hint="free some space, or pass a --path you can write to") from exc


def write_files(path: Path, files: dict[str, str]) -> None:
    """Write the demo's files and the marker that lists them (with their digests)."""
    for rel, text in files.items():
        write_own(path / rel, text)
    write_marker(path, list(files))


def write_marker(path: Path, written: list[str]) -> None:
    write_own(path / MARKER, json.dumps(
        {"created_by": "dinsync demo", "files": {rel: _digest(path / rel) for rel in written if (path / rel).is_file()}},
        indent=2) + "\n")


def run_demo(path: Path, rows: int, say: Callable[[str], None] | None = None, *, force: bool = False,
             note: Callable[[str], None] | None = None) -> dict:
    """Run the demo in `path`. Refuses (DemoFolderError) a folder holding anything the demo did
    not write, unless `force`. `say` prints the tour, `note` the engine's notes."""
    from .config import load_project
    from .engine import SyncRun
    from .report import run_from_summary, utcnow
    from .sandbox import IterableSandbox, SandboxThread
    from .state import StateStore
    from .warehouses import connect

    say = say or (lambda text: None)
    note = note or (lambda text: None)
    path = Path(path).resolve()
    prepare_folder(path, force)
    api_key = os.environ.get(DEMO_KEY_ENV) or "demo-" + secrets.token_hex(12)
    os.environ[DEMO_KEY_ENV] = api_key
    report: dict = {"project": str(path), "runs": []}
    sandbox = IterableSandbox(api_keys=[api_key])
    with SandboxThread(sandbox) as runner:
        base_url = runner.base_url
        write_files(path, {"dinsync.yml": DINSYNC_YML.format(env=DEMO_KEY_ENV, base_url=base_url),
                           "models/active_customers.sql": MODEL_SQL, "syncs/iterable_customers.yml": SYNC_YML})
        db = path / "warehouse.duckdb"
        for name in WAREHOUSE_FILES:
            (path / name).unlink(missing_ok=True)
        say(f"[bold]1.[/] sample warehouse {db} with {rows:,} customers and two bad rows (a NULL key, a "
            f"malformed email); Iterable sandbox at {base_url}")
        wh = connect("duckdb", path=str(db))
        wh.execute(SEED_SQL.format(rows=rows))
        previous = os.getcwd()
        os.chdir(path)
        shown: set[tuple[str, str]] = set()
        try:
            project = load_project(path)
            store = StateStore(wh, project.state_schema)

            def on_event(event: str, data: dict) -> None:
                if event == "note":
                    note(f"   note: {data.get('message', '')}")

            for step, title in ((2, "first sync: every customer is new"),
                                (4, "second sync: only what changed travels")):
                if step == 4:
                    say("[bold]3.[/] changing the warehouse: 2% change plan, 0.5% churn, 25 newcomers")
                    wh.execute(CHANGE_SQL.format(rows=rows))
                before = runner.call(lambda: sandbox.stats()["requests"])
                started = utcnow()
                summary = SyncRun(project, "iterable_customers", wh, progress=on_event).run()
                requests = runner.call(lambda: sandbox.stats()["requests"]) - before
                say(f"[bold]{step}.[/] {title}: [green]+{summary.added:,}[/] [yellow]~{summary.changed:,}[/] "
                    f"[red]-{summary.removed:,}[/] → sent {plural(summary.sent, 'row')} in "
                    f"{plural(requests, 'request')}, "
                    f"acknowledged {summary.acknowledged:,}, rejected {summary.rejected:,} "
                    f"({summary.seconds:.2f}s, status {summary.status})")
                # each rejection once: a row rejected again by the second run (unchanged) is not repeated
                for r in store.rejections(summary.run_id, limit=3):
                    if (r["key"], r["reason"]) not in shown:
                        shown.add((r["key"], r["reason"]))
                        # rows without a key are one `skipped` line, whose reason says so
                        say(f"   {r['reason']}" if r["key"] is None else f"   rejected {r['key']!r}: {r['reason']}")
                logged = next((r for r in store.last_runs("iterable_customers", limit=1)
                               if r["run_id"] == summary.run_id), None)
                report["runs"].append({"step": title, **run_from_summary(summary, logged, full_refresh=False,
                                                                          started_at=started)})
            users = runner.call(lambda: len(sandbox.users))
            report["sandbox_users"] = users
            say(f"[bold]5.[/] the sandbox now holds {users:,} users; run history: "
                f"`dinsync --project-dir {path} status`")
        finally:
            os.chdir(previous)
            wh.close()
    from .demo_attio import run_attio_demo_step

    try:
        report["attio"] = run_attio_demo_step(path / ATTIO_DIR, rows=ATTIO_ROWS, say=say, force=force)
    finally:  # the marker lists the Attio step's files too, so the next demo run knows them again
        write_marker(path, [*DEMO_FILES, *ATTIO_FILES])
    say(textwrap.dedent(f"""\
        Try it yourself: start `dinsync sandbox --port 8765` in another terminal, point base_url in
        {path / 'dinsync.yml'} at http://127.0.0.1:8765, export {DEMO_KEY_ENV}=sandbox-key and run
        `dinsync --project-dir {path} plan` / `sync` (that sandbox starts empty: dinsync notices the
        new base_url and sends it every row). (A demo folder whose files you edited is yours: the demo
        then refuses it without --force.)"""))
    return report
