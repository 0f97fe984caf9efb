"""`dinsync init`: the example project loads and its model columns check out on DuckDB."""
from __future__ import annotations

import duckdb
import pytest

from dinsync.config import ScaffoldExistsError, check_columns, load_project, scaffold
from dinsync.config.scaffold import ScaffoldWriteError
from dinsync.destinations.iterable import IterableDestination
from dinsync.errors import ConfigError

EXPECTED = ["dinsync.yml", "seeds/customers.csv", "models/active_customers.sql",
            "syncs/iterable_customers.yml", ".gitignore", "README.md"]


def test_scaffold_writes_the_example_project(tmp_path):
    written = scaffold(tmp_path / "project")
    assert [p.relative_to(tmp_path / "project").as_posix() for p in written] == EXPECTED
    root = tmp_path / "project"
    yml = (root / "dinsync.yml").read_text()
    assert "api_key: ${env:ITERABLE_API_KEY}" in yml
    assert "# base_url: http://127.0.0.1" in yml
    assert "read_csv('seeds/customers.csv')" in (root / "models/active_customers.sql").read_text()
    assert "*.duckdb" in (root / ".gitignore").read_text().splitlines()
    assert "working directory" in (root / "models/active_customers.sql").read_text()


def test_scaffolded_project_loads_and_its_columns_exist(tmp_path, monkeypatch):
    scaffold(tmp_path)
    project = load_project(tmp_path, env={"ITERABLE_API_KEY": "sk-scaffold-secret"})
    assert list(project.syncs) == ["iterable_customers"]
    sync = project.syncs["iterable_customers"]
    assert (sync.model, sync.destination, sync.match_column, sync.match_field) == (
        "active_customers", "iterable", "email", "email")
    destination = project.destinations["iterable"]
    assert destination.resolved_base_url() == IterableDestination.base_urls["us"]
    assert project.models["active_customers"].primary_key == "customer_id"

    monkeypatch.chdir(tmp_path)  # the CLI runs with the project folder as working directory
    con = duckdb.connect()

    def columns_of(model):
        return [row[0] for row in con.execute(f"DESCRIBE {model.sql}").fetchall()]

    assert check_columns(project, columns_of) == []
    assert con.execute(f"select count(*) from ({project.models['active_customers'].sql})").fetchone()[0] == 4


def test_scaffolded_project_needs_the_api_key(tmp_path):
    scaffold(tmp_path)
    with pytest.raises(ConfigError) as info:
        load_project(tmp_path, env={})
    assert [(i.file, i.hint) for i in info.value.issues] == [("dinsync.yml", "export ITERABLE_API_KEY=...")]


def test_scaffold_refuses_to_overwrite(tmp_path):
    (tmp_path / "README.md").write_text("mine\n")
    with pytest.raises(ScaffoldExistsError) as info:
        scaffold(tmp_path)
    assert "README.md" in info.value.message and "--force" in info.value.hint
    assert sorted(p.name for p in tmp_path.iterdir()) == ["README.md"]  # nothing written
    assert (tmp_path / "README.md").read_text() == "mine\n"


def test_scaffold_refuses_a_dangling_symbolic_link_where_a_file_goes(tmp_path):
    """A link whose target does not exist is no file to Path.exists(): init wrote through it,
    creating the file wherever it pointed, outside the project folder, without --force."""
    from dinsync.config.scaffold import scaffold_warehouse

    project, outside = tmp_path / "project", tmp_path / "outside"
    project.mkdir()
    outside.mkdir()
    (project / "README.md").symlink_to(outside / "notes.md")
    with pytest.raises(ScaffoldExistsError) as info:
        scaffold(project)
    assert "README.md" in info.value.message
    assert list(outside.iterdir()) == [] and [p.name for p in project.iterdir()] == ["README.md"]
    (project / "warehouse.duckdb").symlink_to(outside / "w.duckdb")
    assert scaffold_warehouse(project) is None and list(outside.iterdir()) == []


def test_scaffold_force_overwrites(tmp_path):
    (tmp_path / "README.md").write_text("mine\n")
    written = scaffold(tmp_path, force=True)
    assert len(written) == len(EXPECTED)
    assert (tmp_path / "README.md").read_text().startswith("# dinsync project")


def test_scaffold_force_replaces_a_link_and_leaves_what_it_points_to(tmp_path):
    """`init --force` over a project whose dinsync.yml is a symbolic link (a shared config kept
    elsewhere) wrote the scaffold through the link: the file outside the project folder was
    overwritten. --force replaces the project's own files, never one outside its folder."""
    project, outside = tmp_path / "project", tmp_path / "outside"
    project.mkdir()
    outside.mkdir()
    (outside / "shared.yml").write_text("mine\n")
    (project / "dinsync.yml").symlink_to(outside / "shared.yml")
    scaffold(project, force=True)
    assert (outside / "shared.yml").read_text() == "mine\n"
    assert not (project / "dinsync.yml").is_symlink()
    assert (project / "dinsync.yml").read_text().startswith("# dinsync project")


@pytest.mark.parametrize("force", [False, True])
def test_scaffold_refuses_a_file_where_a_folder_goes(tmp_path, force):
    (tmp_path / "afile").write_text("mine\n")
    with pytest.raises(ScaffoldExistsError) as info:
        scaffold(tmp_path / "afile", force=force)
    assert "is a file, not a folder" in info.value.message
    assert (tmp_path / "afile").read_text() == "mine\n"

    (tmp_path / "proj").mkdir()
    (tmp_path / "proj" / "models").write_text("mine\n")  # where models/ goes
    with pytest.raises(ScaffoldExistsError) as info:
        scaffold(tmp_path / "proj", force=force)
    assert "models is a file, not a folder" in info.value.message
    assert sorted(p.name for p in (tmp_path / "proj").iterdir()) == ["models"]  # nothing written
    assert (tmp_path / "proj" / "models").read_text() == "mine\n"


@pytest.mark.parametrize("force", [False, True])
def test_scaffold_refuses_a_folder_where_a_file_goes(tmp_path, force):
    (tmp_path / "README.md").mkdir()
    (tmp_path / "README.md" / "notes.txt").write_text("mine\n")
    with pytest.raises(ScaffoldExistsError) as info:
        scaffold(tmp_path, force=force)
    assert "README.md" in info.value.message
    assert sorted(p.name for p in tmp_path.iterdir()) == ["README.md"]
    assert (tmp_path / "README.md" / "notes.txt").read_text() == "mine\n"


@pytest.mark.parametrize("force", [False, True])
def test_scaffold_refuses_a_folder_where_the_warehouse_file_goes(tmp_path, force):
    """A folder named warehouse.duckdb: init wrote the project, skipped the warehouse ("exists") and
    said `next: dinsync validate`, which then refused the folder; nothing of the project works."""
    (tmp_path / "warehouse.duckdb").mkdir()
    with pytest.raises(ScaffoldExistsError) as info:
        scaffold(tmp_path, force=force)
    assert "warehouse.duckdb" in info.value.message
    assert sorted(p.name for p in tmp_path.iterdir()) == ["warehouse.duckdb"]


@pytest.mark.parametrize("force", [False, True])
def test_scaffold_refuses_a_write_ahead_log_without_its_warehouse(tmp_path, force):
    """warehouse.duckdb.wal without warehouse.duckdb (the database moved away alone, the log of its
    last changes left behind): DuckDB deleted the log creating the scaffold's empty warehouse, and
    `init` (without --force) said only "created warehouse.duckdb": a table committed into the log
    was gone for good. init now writes nothing there."""
    from dinsync.config.scaffold import scaffold_warehouse

    db = tmp_path / "old.duckdb"
    con = duckdb.connect(str(db))
    con.execute("PRAGMA disable_checkpoint_on_shutdown")
    con.execute("CREATE TABLE precious AS SELECT 42 AS x")
    log = (tmp_path / "old.duckdb.wal").read_bytes()
    assert log  # (the table is in the log alone)
    con.close()
    (tmp_path / "old.duckdb.wal").unlink(missing_ok=True)
    project = tmp_path / "proj"
    project.mkdir()
    (project / "warehouse.duckdb.wal").write_bytes(log)
    with pytest.raises(ScaffoldExistsError) as info:
        scaffold(project, force=force)
        scaffold_warehouse(project)
    assert "warehouse.duckdb.wal" in info.value.message
    assert sorted(p.name for p in project.iterdir()) == ["warehouse.duckdb.wal"]  # nothing written
    assert (project / "warehouse.duckdb.wal").read_bytes() == log


def test_a_scaffold_cut_short_by_a_full_disk_leaves_nothing_behind(tmp_path, monkeypatch):
    """A disk that filled up after 5 of the 6 files (seen on a 20 KB tmpfs): init failed (exit 2)
    leaving the 5 files and an empty README.md, and the run after freeing space refused them all
    ("already has dinsync.yml, ... README.md; use --force"). What init created is removed; files
    that were there before stay as they were."""
    from pathlib import Path

    from dinsync.config.scaffold import ScaffoldWriteError

    project = tmp_path / "proj"
    project.mkdir()
    (project / "notes.txt").write_text("mine\n")
    real = Path.write_text

    def write_text(self, text, *args, **kwargs):
        if self.name == "README.md":
            self.touch()  # (created, then the disk is full)
            raise OSError(28, "No space left on device", str(self))
        return real(self, text, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", write_text)
    with pytest.raises(ScaffoldWriteError) as info:
        scaffold(project)
    assert "No space left on device" in info.value.message
    assert sorted(p.name for p in project.iterdir()) == ["notes.txt"]
    monkeypatch.setattr(Path, "write_text", real)
    assert [p.relative_to(project).as_posix() for p in scaffold(project)] == EXPECTED  # no --force needed

