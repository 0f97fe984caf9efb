"""CLI start-up: import time and which heavy libraries each command imports, and through what.

Runs `python -X importtime -m dinsync.cli ...` for `--version`, `status` and a no-op `sync` on a
small DuckDB project (the Iterable sandbox in its own process), a few times each, and prints the
median wall clock, the total import time, and for polars / aiohttp / sqlglot / pyarrow / duckdb
the dinsync module that first imported it. Nothing is asserted.

    python benchmarks/bench_cli_startup.py [--repeat 5]
"""
from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

KEY = "startup-bench-key-0123456789"
HEAVY = ("polars", "aiohttp", "sqlglot", "pyarrow", "duckdb", "pydantic", "yaml")
LINE = re.compile(r"^import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)$")

DINSYNC_YML = """\
version: 1
warehouse: {{type: duckdb, path: warehouse.duckdb}}
destinations:
  iterable: {{type: iterable, api_key: "${{env:BENCH_KEY}}", base_url: "{url}"}}
"""
MODEL = "-- primary_key: id\nselect id, 'u' || id || '@example.com' as email, 'n' || id as name from range(1000) t(id)\n"
SYNC = "model: m\ndestination: iterable\nservice: users\nmode: upsert\nmatch: {column: email, field: email}\n" \
       "fields: {name: firstName}\n"


def parse_importtime(stderr: str) -> tuple[float, dict[str, str]]:
    """(total import seconds, {heavy library: the outermost dinsync module that imported it})."""
    entries = []  # (depth, module, cumulative us), in completion order (children before parents)
    for line in stderr.splitlines():
        m = LINE.match(line)
        if m:
            entries.append((len(m.group(3)) // 2, m.group(4), int(m.group(2))))
    total = sum(cum for depth, _, cum in entries if depth == 0) / 1e6
    via: dict[str, str] = {}
    for i, (depth, module, _) in enumerate(entries):
        root = module.split(".")[0]
        if root not in HEAVY or root in via:
            continue
        # the parents of entry i are the next entries with a smaller depth
        chain, d = [], depth
        for pdepth, pmodule, _ in entries[i + 1:]:
            if pdepth < d:
                chain.append(pmodule)
                d = pdepth
        dinsync = [c for c in chain if c.startswith("dinsync.")]
        via[root] = dinsync[0] if dinsync else (chain[-1] if chain else "(top level)")
    return total, via


def measure(args: list[str], cwd: Path, env: dict, repeat: int) -> tuple[float, float, dict[str, str], int]:
    walls, imports, via, code = [], [], {}, 0
    for _ in range(repeat):
        start = time.perf_counter()
        proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "dinsync.cli", *args], cwd=cwd, env=env,
                              capture_output=True, text=True)
        walls.append(time.perf_counter() - start)
        total, via = parse_importtime(proc.stderr)
        imports.append(total)
        code = proc.returncode
    return statistics.median(walls), statistics.median(imports), via, code


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    opts = parser.parse_args()
    env = dict(os.environ, BENCH_KEY=KEY, DINSYNC_SANDBOX_API_KEY=KEY)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        sandbox = subprocess.Popen([sys.executable, "-m", "dinsync.sandbox", "iterable", "--port", "0",
                                    "--no-limits"], env=env, stdout=subprocess.PIPE, text=True)
        try:
            url = sandbox.stdout.readline().split()[1]
            import duckdb  # the warehouse file (dinsync never creates it: `dinsync init` does)

            duckdb.connect(str(root / "warehouse.duckdb")).close()
            (root / "models").mkdir()
            (root / "syncs").mkdir()
            (root / "dinsync.yml").write_text(DINSYNC_YML.format(url=url))
            (root / "models" / "m.sql").write_text(MODEL)
            (root / "syncs" / "s.yml").write_text(SYNC)
            first = subprocess.run([sys.executable, "-m", "dinsync.cli", "sync"], cwd=root, env=env,
                                   capture_output=True, text=True)
            if first.returncode:
                sys.exit(f"first sync failed: {first.stdout}{first.stderr}")
            print(f"{'command':16} {'exit':>4} {'wall s':>7} {'imports s':>9}  heavy libraries (imported via)")
            for label, argv in (("--version", ["--version"]), ("--help", ["--help"]), ("status", ["status"]),
                                ("sync (no-op)", ["sync"])):
                wall, imp, via, code = measure(argv, root, env, opts.repeat)
                shown = ", ".join(f"{lib} ({via[lib]})" for lib in HEAVY if lib in via) or "none"
                print(f"{label:16} {code:>4} {wall:7.3f} {imp:9.3f}  {shown}")
        finally:
            sandbox.terminate()
            sandbox.wait(10)


if __name__ == "__main__":
    main()
