"""The machine's locale does not change what dinsync reads or sends: a project and its DuckDB file
in folders with non-ASCII names work under a locale whose file system encoding is not UTF-8."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

# Python's file system encoding is ASCII under the C locale when neither UTF-8 mode nor locale
# coercion applies (as under a locale such as fr_FR.ISO-8859-1 it is Latin-1): a name's UTF-8
# bytes are decoded one by one, which DuckDB, taking every path as UTF-8, read as other names
NOT_UTF8_FS = {"LC_ALL": "C", "LANG": "C", "PYTHONUTF8": "0", "PYTHONCOERCECLOCALE": "0"}


def _sync(root, env_over):
    env = dict(os.environ, **env_over)
    proc = subprocess.run([sys.executable, "-m", "dinsync.cli", "--project-dir", os.fsencode(root), "--json", "sync"],
                          env=env, capture_output=True, timeout=120)
    return proc.returncode, json.loads(proc.stdout)


def test_non_ascii_folder_and_file_names_under_a_file_system_encoding_that_is_not_utf8(project, tmp_path):
    """Under such a locale, `dinsync -p "Équipe data"` failed: 'the file's path is not valid UTF-8'
    (exit 3) or 'cannot open DuckDB file' (exit 1), and a warehouse.path holding a character the
    encoding has none for failed with 'unexpected error: UnicodeEncodeError'."""
    root = tmp_path / "Équipe data" / "réverse ETL 🎉"
    root.parent.mkdir()
    shutil.move(str(project.root), str(root))
    (root / "warehouse.duckdb").rename(root / "entrepôt 🎉.duckdb")
    yml = root / "dinsync.yml"
    yml.write_text(yml.read_text().replace("path: warehouse.duckdb", "path: entrepôt 🎉.duckdb"))
    code, result = _sync(root, NOT_UTF8_FS)
    assert code == 0 and result["runs"][0]["acknowledged"] == 20, result
    code, result = _sync(root, {})  # the same file, from a UTF-8 locale: nothing to send
    assert code == 0 and result["runs"][0]["sent"] == 0 and result["runs"][0]["added"] == 0, result
    assert sorted(p.name for p in root.iterdir() if p.suffix == ".duckdb") == ["entrepôt 🎉.duckdb"]


def test_init_in_a_non_ascii_folder_under_a_file_system_encoding_that_is_not_utf8(tmp_path):
    # `dinsync init "Équipe"` wrote the project, then failed on its warehouse file:
    # 'unexpected error: RuntimeError: std::bad_cast' (exit 1)
    root = tmp_path / "Équipe data"
    env = dict(os.environ, **NOT_UTF8_FS)
    proc = subprocess.run([sys.executable, "-m", "dinsync.cli", "init", os.fsencode(root)], env=env,
                          capture_output=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert (root / "warehouse.duckdb").stat().st_size > 0
    env["ITERABLE_API_KEY"] = "k"
    # (--offline: validate would ask api.iterable.com whether the key is accepted)
    proc = subprocess.run([sys.executable, "-m", "dinsync.cli", "--project-dir", os.fsencode(root), "validate",
                           "--offline"], env=env, capture_output=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_an_environment_value_holding_non_ascii_text_under_a_file_system_encoding_that_is_not_utf8(project, tmp_path):
    """Python decodes the environment in the file system encoding: `${env:WAREHOUSE}` holding
    `entrepôt.duckdb` was 'environment variable WAREHOUSE is not valid UTF-8' (exit 3) under such a
    locale (and `entrepÃ´t.duckdb`, another file, under a Latin-1 one). Its value is the UTF-8 text
    it holds, as under a UTF-8 locale."""
    db = tmp_path / "entrepôt.duckdb"
    (project.root / "warehouse.duckdb").rename(db)
    yml = project.root / "dinsync.yml"
    yml.write_text(yml.read_text().replace("path: warehouse.duckdb", "path: ${env:WAREHOUSE}"))
    code, result = _sync(project.root, {**NOT_UTF8_FS, "WAREHOUSE": str(db)})
    assert code == 0 and result["runs"][0]["acknowledged"] == 20, result
