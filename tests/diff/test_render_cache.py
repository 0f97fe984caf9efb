"""Rendered SQL is cached on disk: an unchanged sync imports neither sqlglot nor Jinja2."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from dinsync.diff import DiffSpec, Planner
from dinsync.diff.cache import RenderCache, cache_root
from dinsync.warehouses import connect

ROOT = Path(__file__).resolve().parents[2]

RUN = textwrap.dedent("""
    import json, sys
    from dinsync.diff import DiffSpec, Planner
    from dinsync.warehouses import connect
    w = connect("duckdb", path=sys.argv[1])
    w.execute("CREATE TABLE IF NOT EXISTS people AS SELECT 'a@x.com' AS email, 'Ada' AS name")
    p = Planner(w, DiffSpec(sync="c", model_sql=sys.argv[2], key_column="email", key_normalization="email",
                            fields=[("email", "email"), ("name", "name")]))
    p.ensure_state()
    stats = p.plan()
    keys = [k for b in p.stream_sendable() for k in b.column("_key").to_pylist()]
    p.commit_acknowledged(keys)
    p.commit_removed()
    p.sample("changed", 3); p.duplicates_sample(3); p.field_change_counts(); p.parked_count()
    print(json.dumps({"added": stats.added, "unchanged": stats.unchanged,
                      "sqlglot": "sqlglot" in sys.modules, "jinja2": "jinja2" in sys.modules}))
""")


def run(tmp_path, model="SELECT * FROM people", env=None) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", RUN, str(tmp_path / "w.duckdb"), model],
        env={**os.environ, "DINSYNC_CACHE_DIR": str(tmp_path / "cache"), **(env or {})},
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_second_run_imports_neither_sqlglot_nor_jinja(tmp_path):
    first = run(tmp_path)
    assert first == {"added": 1, "unchanged": 0, "sqlglot": True, "jinja2": True}
    second = run(tmp_path)
    assert second == {"added": 0, "unchanged": 1, "sqlglot": False, "jinja2": False}
    changed_model = run(tmp_path, model="SELECT email, name FROM people")  # another input: rendered again
    assert changed_model["sqlglot"] and changed_model["unchanged"] == 1


def test_corrupt_or_unwritable_cache_renders_again(tmp_path):
    run(tmp_path)
    files = list((tmp_path / "cache" / "sql").glob("*.json"))
    assert len(files) == 1
    files[0].write_text("{not json", encoding="utf-8")
    again = run(tmp_path)
    assert again["sqlglot"] and again["unchanged"] == 1
    assert json.loads(files[0].read_text(encoding="utf-8"))["format"] == 1  # rewritten whole
    files[0].write_text(json.dumps({"format": 1, "entries": {"plan_all": 42}}), encoding="utf-8")
    assert run(tmp_path)["unchanged"] == 1
    off = run(tmp_path, env={"DINSYNC_CACHE_DIR": ""})  # cache off
    assert off["sqlglot"]


def test_a_cache_file_others_may_write_is_not_used(tmp_path):
    """Cached statements run against the warehouse with this user's credentials: a file in a
    shared DINSYNC_CACHE_DIR that another account wrote (or may write) must not be run."""
    run(tmp_path)
    [file] = (tmp_path / "cache" / "sql").glob("*.json")
    assert file.stat().st_mode & 0o777 == 0o600
    data = json.loads(file.read_text(encoding="utf-8"))
    data["entries"] = {k: "SELECT 'planted' AS x WHERE false" if k.startswith("plan") else v
                       for k, v in data["entries"].items()}
    file.write_text(json.dumps(data), encoding="utf-8")
    file.chmod(0o666)  # as another account's file, or one anyone may rewrite
    again = run(tmp_path)
    assert again["sqlglot"] and again["unchanged"] == 1  # rendered again, not read from the file


def test_no_home_folder_turns_the_cache_off(tmp_path):
    """Neither HOME nor a passwd entry for the user (`env -i`, a container's arbitrary uid): every
    `plan` and `sync` failed with "unexpected error: RuntimeError: Could not determine home
    directory." (Path.home()). There is no cache folder then: the SQL is rendered every run."""
    blocker = tmp_path / "no_home"
    blocker.mkdir()
    (blocker / "sitecustomize.py").write_text(
        "import pwd\n\ndef getpwuid(uid):\n    raise KeyError(f'getpwuid(): uid not found: {uid}')\n\n"
        "pwd.getpwuid = getpwuid\n")
    env = {k: v for k, v in os.environ.items() if k not in ("HOME", "XDG_CACHE_HOME", "DINSYNC_CACHE_DIR")}
    env["PYTHONPATH"] = os.pathsep.join([str(blocker), *filter(None, [os.environ.get("PYTHONPATH")])])
    for _ in range(2):
        out = subprocess.run([sys.executable, "-c", RUN, str(tmp_path / "w.duckdb"), "SELECT * FROM people"],
                             env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        assert json.loads(out.stdout.strip().splitlines()[-1])["sqlglot"]  # rendered: nothing cached
    assert not (tmp_path / "cache").exists()


def test_importing_the_diff_does_not_import_sqlglot():
    code = "import sys, dinsync.diff, dinsync.diff.planner; print('sqlglot' in sys.modules, 'jinja2' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "False False", out.stderr


def test_cache_location(monkeypatch, tmp_path):
    monkeypatch.setenv("DINSYNC_CACHE_DIR", str(tmp_path / "c"))
    assert cache_root() == tmp_path / "c" / "sql"
    monkeypatch.delenv("DINSYNC_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_root() == tmp_path / "xdg" / "dinsync" / "sql"
    monkeypatch.setenv("DINSYNC_CACHE_DIR", "")
    assert cache_root() is None
    cache = RenderCache("k")
    cache.put("a", "SELECT 1")  # in memory only
    assert cache.get("a") == "SELECT 1" and cache.path is None


def test_cached_sql_is_the_rendered_sql(tmp_path):
    w = connect("duckdb", path=str(tmp_path / "w.duckdb"))
    w.execute("CREATE TABLE people (email VARCHAR, name VARCHAR)")
    spec = DiffSpec(sync="c", model_sql="SELECT * FROM people", key_column="email", key_normalization="email",
                    fields=[("email", "email"), ("name", "name")])
    fresh = Planner(w, spec, cache=False)
    Planner(w, spec).render("plan")  # fills the cache
    cached = Planner(w, spec)
    for statement in fresh.statements():
        assert cached.render(statement) == fresh.render(statement)
    w.close()


def test_templates_are_strict(tmp_path):
    from dinsync.diff.render import render_template

    with pytest.raises(Exception, match="undefined"):
        render_template("plan_stats", {}, "duckdb")


def test_pruning_removes_only_the_caches_own_files(tmp_path):
    """The folder may hold files of the user's (DINSYNC_CACHE_DIR set to a folder of theirs whose
    `sql` holds reports): pruning the oldest beyond MAX_FILES removed any `*.json` there (45 of 300
    reports, as old as they were, for one cache file written)."""
    from dinsync.diff import cache

    root = tmp_path / "sql"
    root.mkdir(mode=0o700)
    theirs = [root / f"report_{i}.json" for i in range(cache.MAX_FILES + 44)]
    for i, path in enumerate(theirs):
        path.write_text("{}", encoding="utf-8")
        os.utime(path, (1_000_000 + i, 1_000_000 + i))
    ours = RenderCache("0" * 32, root=root)
    ours.put("plan_all", "SELECT 1")
    assert all(path.exists() for path in theirs)
    assert (root / f"{'0' * 32}.json").exists()
    for i in range(cache.MAX_FILES + 4):  # the cache's own files beyond the cap still go, oldest first
        RenderCache(f"{i:032x}", root=root).put("plan_all", "SELECT 1")
    kept = sorted(p.name for p in root.glob("*.json") if not p.name.startswith("report_"))
    assert len(kept) == cache.MAX_FILES and f"{'0' * 32}.json" not in kept
    assert all(path.exists() for path in theirs)


@pytest.mark.parametrize("folder", ["symlink", "others_may_write"])
def test_a_cache_folder_that_is_not_the_users_alone_is_not_used(tmp_path, folder):
    """A shared DINSYNC_CACHE_DIR (/tmp/...) where another account created `sql` first, as a link to
    a folder of this user's or as a folder anyone may write: the cache wrote its files through the
    link (and pruned the folder it points to) or into the folder others control. Neither is used:
    the SQL is rendered in memory, nothing is written there."""
    target = tmp_path / "users_own"
    target.mkdir(mode=0o700)
    root = tmp_path / "shared" / "sql"
    root.parent.mkdir()
    if folder == "symlink":
        root.symlink_to(target)
    else:
        root.mkdir()
        root.chmod(0o777)
    cache = RenderCache("1" * 32, root=root)
    cache.put("plan_all", "SELECT 1")
    assert cache.get("plan_all") == "SELECT 1"  # (kept in memory)
    assert list(target.iterdir()) == [] and list(root.iterdir()) == []


def test_the_file_read_is_the_one_checked(tmp_path, monkeypatch):
    """The owner of a shared DINSYNC_CACHE_DIR (/tmp/...) can rename this user's `sql` away and put
    a folder of theirs in its place: swapped between the file's check by name and its read, the
    planted statements were read and run with this user's credentials. The check is now of the
    file read (its descriptor), so a swap after it reads this user's own file, and one before it
    the planted file, which is refused."""
    from dinsync.diff import cache

    root = tmp_path / "shared" / "sql"
    RenderCache("2" * 32, root=root).put("plan_all", "SELECT 'ours'")
    planted = tmp_path / "planted"
    planted.mkdir()
    (planted / f"{'2' * 32}.json").write_text(json.dumps({"format": 1, "entries": {"plan_all": "SELECT 'planted'"}}))
    (planted / f"{'2' * 32}.json").chmod(0o666)  # (as another account's file)
    real, calls = cache._ours, []

    def ours_then_swapped(path, *args):
        verdict = real(path, *args)
        calls.append(path)
        if len(calls) == 2:  # after the file's check: the folder is swapped
            root.rename(tmp_path / "shared" / "sql.ours")
            planted.rename(root)
        return verdict

    monkeypatch.setattr(cache, "_ours", ours_then_swapped)
    assert RenderCache("2" * 32, root=root).get("plan_all") == "SELECT 'ours'"


def test_a_temporary_file_left_by_a_killed_save_is_removed_once_stale(tmp_path):
    """A run killed while the cache saved (the file is written as `.tmp-*.json`, then renamed over
    the cache's) left its temporary file for good: nothing ever removed it. A save now removes
    such files of this user's once older than STALE_TEMP_SECONDS; a fresh one (another process's
    save under way) and a link of that name stay."""
    from dinsync.diff import cache

    root = tmp_path / "sql"
    root.mkdir(mode=0o700)
    stale, fresh = root / ".tmp-k1ll3d_x.json", root / ".tmp-wr1t1ng.json"
    for path in (stale, fresh):
        path.write_text('{"format": 1, "entr', encoding="utf-8")
        path.chmod(0o600)
    old = stale.stat().st_mtime - cache.STALE_TEMP_SECONDS - 60
    os.utime(stale, (old, old))
    outside = tmp_path / "users_file.json"
    outside.write_text("{}", encoding="utf-8")
    os.utime(outside, (old, old))
    link = root / ".tmp-l1nk.json"
    link.symlink_to(outside)
    RenderCache("3" * 32, root=root).put("plan_all", "SELECT 1")
    assert not stale.exists()
    assert fresh.exists() and link.is_symlink() and outside.exists()
    assert (root / f"{'3' * 32}.json").exists()
