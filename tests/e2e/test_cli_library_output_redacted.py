"""What libraries write to stderr past the CLI's consoles goes through the redactor too: logging's
last-resort handler (a library's WARNING in a process that configured no logging: the
Snowflake connector's, urllib3's retries), warnings, and uncaught exceptions in threads and in
`__del__`. A secret they quote is masked like everywhere else."""
from __future__ import annotations

import subprocess
import sys

SECRET = "sk_live_library_leak_0123456789"

DRIVER = """
import gc, logging, sys, threading, warnings
import dinsync.cli.state_commands  # where `status` looks use_options up
from dinsync import redaction
SECRET = sys.argv[1]

def noisy(*args, **kwargs):
    redaction.register(SECRET, partial=True)
    logging.getLogger("somelib.connection").warning("retrying https://api.example/v1?token=%s", SECRET)
    warnings.warn(f"credentials {SECRET} are deprecated")
    def crash():
        raise RuntimeError(f"worker saw {SECRET}")
    worker = threading.Thread(target=crash, name="worker")
    worker.start()
    worker.join()
    class Leaky:
        def __del__(self):
            raise ValueError(f"closing with {SECRET}")
    Leaky()
    gc.collect()
    raise KeyboardInterrupt

dinsync.cli.state_commands.use_options = noisy
sys.argv = ["dinsync", "status"]
from dinsync.entry import main
main()
"""


def test_library_output_on_stderr_is_redacted(tmp_path):
    done = subprocess.run([sys.executable, "-c", DRIVER, SECRET], capture_output=True, text=True, timeout=60,
                          cwd=tmp_path)
    assert done.returncode == 130, done.stderr
    assert SECRET[:12] not in done.stderr + done.stdout
    # each of the four still says what happened
    for seen in ("retrying https://api.example/v1?token=***", "are deprecated", "RuntimeError: worker saw ***",
                 "ValueError: closing with ***"):
        assert seen in done.stderr, done.stderr
