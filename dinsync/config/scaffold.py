"""`dinsync init`: write a small working example project."""
from __future__ import annotations

from pathlib import Path

from ..errors import DinsyncError, ExitCode

PROJECT_YML = """\
# dinsync project: see README.md. Paths are relative to this folder; run dinsync from here.
version: 1

warehouse:
  type: duckdb
  path: warehouse.duckdb      # created by `dinsync init`; ":memory:" keeps nothing between runs
  threads: 2

state_schema: dinsync         # schema holding snapshots, run log, rejections and locks

destinations:
  iterable:
    type: iterable
    api_key: ${env:ITERABLE_API_KEY}   # read from the environment, never stored here
    region: us                         # us | eu
    # base_url: http://127.0.0.1:8765  # uncomment to send to the local sandbox (`dinsync sandbox`,
                                       # whose API key is sandbox-key)
    # rate_limits: {bulk_update: 5}    # requests per second per endpoint; null = unlimited
    concurrency: 8
    timeout_seconds: 30
"""

CUSTOMERS_CSV = """\
customer_id,email,first_name,last_name,plan,lifetime_value,signed_up_at,active
1,ada@example.com,Ada,Lovelace,pro,1250.50,2024-01-15,true
2,grace@example.com,Grace,Hopper,team,980.00,2024-02-03,true
3,alan@example.com,Alan,Turing,free,0.00,2024-03-21,false
4,katherine@example.com,Katherine,Johnson,pro,2310.75,2024-04-09,true
5,edsger@example.com,Edsger,Dijkstra,free,15.00,2024-05-30,true
"""

MODEL_SQL = """\
-- primary_key: customer_id
-- model_type: user
-- Active customers to keep in sync with Iterable. The CSV path is relative to the project
-- folder: dinsync runs with the project folder as its working directory.
select
    customer_id,
    lower(trim(email)) as email,
    first_name,
    last_name,
    plan,
    lifetime_value,
    signed_up_at
from read_csv('seeds/customers.csv')
where active
"""

SYNC_YML = """\
# Keep Iterable user profiles up to date with models/active_customers.sql.
model: active_customers
destination: iterable
service: users
mode: upsert                  # upsert: create or update | update: only existing users
match:
  column: email               # model column
  field: email                # Iterable identifier (email or userId)
fields:                       # model column -> Iterable field (or a mapping `column: field`)
  - {column: first_name, field: firstName}
  - {column: last_name, field: lastName}
  - {column: plan, field: plan}
  - {column: lifetime_value, field: lifetimeValue, type: number}
  - {column: signed_up_at, field: signedUpAt, type: date}
# schedule: "0 6 * * *"       # cron (UTC) or {every: 15m}: when `dinsync serve` runs it
thresholds:
  max_rejected_pct: 5         # more rejected rows than this share: the run is a warning
  max_duplicate_pct: 5        # more duplicated keys than this share: the run fails before sending
  # max_changed_pct: 50       # more of the rows delivered before changed: the run fails before sending
  # max_removed_pct: 50       # more of them left the model (an empty model, rewritten keys): the same
  fail_on_warning: true
enabled: true
"""

GITIGNORE = """\
*.duckdb
*.duckdb.wal
"""

README = """\
# dinsync project

An example reverse-ETL project: `models/active_customers.sql` selects active customers from
`seeds/customers.csv` (read by DuckDB), and `syncs/iterable_customers.yml` keeps their Iterable
profiles up to date.

Run dinsync from this folder: paths in `dinsync.yml` and in model SQL (such as
`read_csv('seeds/customers.csv')`) are relative to it.

```sh
export ITERABLE_API_KEY=...   # your Iterable server-side API key
dinsync sync iterable_customers
```

To try it without an Iterable account, run `dinsync sandbox` in another terminal (a local Iterable
on http://127.0.0.1:8765 that accepts the API key `sandbox-key`), uncomment `base_url` in
`dinsync.yml`, then `export ITERABLE_API_KEY=sandbox-key` and run the sync.

- `dinsync.yml`: the warehouse, where dinsync keeps its state, and the destinations.
  `${env:NAME}` takes a value from the environment (write `$${env:NAME}` for the literal text).
- `models/*.sql`: one SELECT each, headed by `-- primary_key: <column>` and optionally
  `-- model_type: user|custom`.
- `syncs/*.yml`: which model goes to which destination, the matching key and the field mapping.
"""

FILES: dict[str, str] = {
    "dinsync.yml": PROJECT_YML,
    "seeds/customers.csv": CUSTOMERS_CSV,
    "models/active_customers.sql": MODEL_SQL,
    "syncs/iterable_customers.yml": SYNC_YML,
    ".gitignore": GITIGNORE,
    "README.md": README,
}


class ScaffoldExistsError(DinsyncError):
    """`dinsync init` would overwrite files."""

    exit_code = ExitCode.USAGE


class ScaffoldWriteError(DinsyncError):
    """`dinsync init` cannot write its folder (permissions, a read-only file system): a usage error,
    as the folder is the command's argument."""

    exit_code = ExitCode.USAGE


def scaffold(root: Path, *, force: bool = False, warehouse: bool = False) -> list[Path]:
    """Write the example project into `root` (created if needed), and with `warehouse` its empty
    warehouse file (`scaffold_warehouse`); return the files written.

    Refuses (ScaffoldExistsError, nothing written) when any of the files exists, unless `force`, and
    always when a file stands where a folder goes (or a folder where a file goes), or when the
    warehouse's write-ahead log is there without it.
    """
    root = Path(root)
    targets = [root / name for name in FILES]
    folders = {root, *(p.parent for p in targets)}
    for folder in sorted(folders, key=lambda p: len(p.parts)):  # a file where a folder goes: never replaced
        if folder.exists() and not folder.is_dir():
            raise ScaffoldExistsError(f"{folder} is a file, not a folder; nothing was written",
                                      hint="pass another folder to `dinsync init`")
    folders_at_files = [p for p in [*targets, root / WAREHOUSE_FILE] if p.is_dir()]
    if folders_at_files:
        names = ", ".join(p.relative_to(root).as_posix() for p in folders_at_files)
        raise ScaffoldExistsError(f"{root} has folders where the project's files go: {names}; nothing was written",
                                  hint="pass another folder to `dinsync init`")
    wal = root / (WAREHOUSE_FILE + ".wal")  # a log without its database: DuckDB deletes it creating one
    if not (root / WAREHOUSE_FILE).exists() and (wal.exists() or wal.is_symlink()):
        raise ScaffoldExistsError(
            f"{root} has {wal.name} without {WAREHOUSE_FILE} (the log of a database's last changes); "
            "nothing was written", hint=f"creating {WAREHOUSE_FILE} would delete it: put back the database it "
            "belongs to, or move the log away")
    # a symbolic link counts even when what it points to does not exist: written through, the
    # file would land wherever it points, outside the project folder
    existing = [p for p in targets if p.exists() or p.is_symlink()]
    if existing and not force:
        names = ", ".join(p.relative_to(root).as_posix() for p in existing)
        raise ScaffoldExistsError(f"{root} already has {names}", hint="use --force to overwrite them")
    # what this call creates, removed again should a write fail (a full disk): else the next `init`,
    # space freed, refused them all as existing files
    created = [p for p in sorted(folders, key=lambda p: len(p.parts)) if not p.exists()]
    created += [p for p in targets if p not in existing]
    for path, text in zip(targets, FILES.values()):
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            if path.is_symlink():  # --force replaces the link, not the file it points to outside the project
                path.unlink()
            path.write_text(text, encoding="utf-8")
        except OSError as exc:  # a folder the user cannot write to: one clear line, not "unexpected error"
            _remove(created)
            raise ScaffoldWriteError(f"cannot write {exc.filename or path}: {exc.strerror or exc}",
                                      hint=f"pass `dinsync init` a folder you can write to{REMOVED}") from exc
    if warehouse:
        try:
            targets += [p for p in (scaffold_warehouse(root),) if p is not None]
        except ScaffoldWriteError:
            _remove(created)
            raise
    return targets


def _remove(created: list[Path]) -> None:
    """Remove the files and (then empty) folders of `created`, last first; what is gone or not
    empty stays as it is."""
    for path in reversed(created):
        try:
            path.rmdir() if path.is_dir() and not path.is_symlink() else path.unlink()
        except OSError:
            pass


WAREHOUSE_FILE = "warehouse.duckdb"  # the scaffold's warehouse.path
KEY_ENV = "ITERABLE_API_KEY"  # the variable the scaffold's api_key reads


def scaffold_warehouse(root: Path) -> Path | None:
    """Create the (empty) DuckDB file the example project names, unless it exists (`init --force`
    keeps a warehouse's data and sync state): commands never create the warehouse file (a mistyped
    path would start an empty one). The file created, or None."""
    path = Path(root) / WAREHOUSE_FILE
    if path.exists() or path.is_symlink():  # (a dangling link: DuckDB would create its target)
        return None
    import duckdb

    from ..warehouses.duckdb import duckdb_name

    try:
        duckdb.connect(duckdb_name(str(path))).close()
    except duckdb.Error as exc:  # (a full disk): what DuckDB began is no database
        _remove([path, Path(str(path) + ".wal")])
        raise ScaffoldWriteError(f"cannot create {path}: {exc}",
                                 hint=f"pass `dinsync init` a folder you can write to{REMOVED}") from exc
    return path


REMOVED = " (the files this run created were removed)"
