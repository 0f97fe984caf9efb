"""A Ctrl-C while the command's modules are still being imported (typer, rich: the first ~0.1 s)
ends the command as one during its run does: "interrupted", exit 130, no traceback."""
from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

# The interrupt arrives deterministically: an import hook raises KeyboardInterrupt when the
# console script reaches `dinsync.cli`, as SIGINT's default handler would at that moment.
DRIVER = """
import sys
class Interrupt:
    def find_spec(self, name, path=None, target=None):
        if name == "dinsync.cli":
            raise KeyboardInterrupt
sys.meta_path.insert(0, Interrupt())
sys.argv = ["dinsync", "status"]
from dinsync.entry import main
main()
"""


def test_ctrl_c_while_importing_the_command_exits_130_without_a_traceback(tmp_path):
    done = subprocess.run([sys.executable, "-c", DRIVER], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert (done.returncode, done.stdout, done.stderr) == (130, "", "interrupted\n")


def test_the_console_script_and_python_m_start_at_the_guarded_entry():
    root = Path(__file__).resolve().parents[2]
    scripts = tomllib.loads((root / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts == {"dinsync": "dinsync.entry:main"}
    assert "from dinsync.entry import main" in (root / "dinsync" / "__main__.py").read_text()


def test_the_package_imports_nothing_before_the_entry_can_handle_ctrl_c():
    loaded = subprocess.run([sys.executable, "-c", "import sys, dinsync.entry; "
                             "print(sorted(m for m in sys.modules if m.startswith('dinsync')))"],
                            capture_output=True, text=True, timeout=60, check=True).stdout
    assert loaded.strip() == "['dinsync', 'dinsync.entry']"


# typer turns a KeyboardInterrupt inside a command (outside a run's graceful stop) into exit 130
# without a word; the command says it was interrupted, as everywhere else.
IN_COMMAND = """
import sys
import dinsync.cli.state_commands  # where `status` looks use_options up
def interrupted(*args, **kwargs):
    raise KeyboardInterrupt
dinsync.cli.state_commands.use_options = interrupted
sys.argv = ["dinsync", "status"]
from dinsync.entry import main
main()
"""


def test_ctrl_c_inside_a_command_says_interrupted(tmp_path):
    done = subprocess.run([sys.executable, "-c", IN_COMMAND], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert (done.returncode, done.stdout, done.stderr) == (130, "", "interrupted\n")
