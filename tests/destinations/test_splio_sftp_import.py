"""Importing the SFTP transport (and its sandbox) must not print asyncssh's own deprecation
warnings: `cryptography` 51 raises five "DSA is deprecated" warnings while asyncssh's modules load,
which a plain `pip install dinsync` (no extra pinning cryptography lower) printed before the demo's
and every Splio SFTP run's first line. Other code's warnings of that class still show."""
import subprocess
import sys

import pytest

CODE = """
import warnings
import {module}
from cryptography.utils import CryptographyDeprecationWarning as W
with warnings.catch_warnings(record=True) as seen:
    warnings.warn_explicit("DSA is deprecated", W, "misc.py", 32, module="asyncssh.crypto.misc")
    warnings.warn_explicit("DSA is deprecated", W, "dsa.py", 38, module="asyncssh.crypto.dsa")
    warnings.warn_explicit("yours", W, "app.py", 1, module="myapp")
print([str(w.message) for w in seen])
"""


@pytest.mark.parametrize("module", ["dinsync.destinations.splio.sftp", "dinsync.sandbox"])
def test_asyncssh_deprecations_are_not_shown_other_code_s_are(module):
    out = subprocess.run([sys.executable, "-c", CODE.format(module=module)], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "['yours']"
