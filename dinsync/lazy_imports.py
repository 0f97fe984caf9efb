"""Heavy libraries imported on first use, by one thread at a time.

Two threads importing a package for the first time by different routes (one `import sqlglot`, the
other a submodule such as `sqlglot.dialects.dialect`) take Python's import locks in opposite
orders. Python breaks that deadlock by handing one of them a half-initialised module, which then
fails with `_DeadlockError` or `module 'sqlglot' has no attribute 'dialects'`. It happened when a
model with a `/*` comment was read while another thread rendered SQL (`serve`, the Python API in
an orchestrator's threads, a run's commit and read threads). So every import of sqlglot in dinsync
goes through `sqlglot_modules`: the whole package, then its submodules as attributes
(`sqlglot.Dialect`, `sqlglot.TokenType`, `sqlglot.exp`).

`asyncssh_module` imports asyncssh without the deprecation warnings its own import raises under
newer `cryptography` releases (51: "DSA is deprecated", five of them on stderr before a Splio SFTP
run's or the demo's first line): they concern asyncssh's code, not anything a user can change.
"""
from __future__ import annotations

import threading

_IMPORTING = threading.Lock()


def sqlglot_modules():
    """(sqlglot, sqlglot.expressions), imported whole."""
    with _IMPORTING:
        import sqlglot
        from sqlglot import exp
    return sqlglot, exp


def asyncssh_module():
    """asyncssh, imported with `cryptography`'s deprecation warnings about asyncssh's own modules
    ignored (for good: asyncssh warns again as it uses them)."""
    import warnings

    with _IMPORTING:
        try:
            from cryptography.utils import CryptographyDeprecationWarning
        except ImportError:  # a cryptography without that class warns with none of it
            pass
        else:
            warnings.filterwarnings("ignore", category=CryptographyDeprecationWarning, module=r"asyncssh(\.|$)")
        import asyncssh
    return asyncssh
