"""dinsync: warehouse-native reverse ETL.

The Python API (see `dinsync.api`), for orchestrators:

    import dinsync
    project = dinsync.load_project("path/to/project")
    result = project.sync(select="tag:daily")
    result.raise_for_status()

`import dinsync` stays cheap: the API is imported on first use, and the heavy libraries (polars,
aiohttp, sqlglot, the warehouse drivers) only by the calls that need them.
"""

__version__ = "0.1.0"

# The errors too are imported on first use: the console script imports this package before it
# can handle a Ctrl-C (`dinsync.entry`), so the package itself imports nothing.
_ERRORS = ("ConfigError", "ConfigIssue", "DestinationAuthError", "DinsyncError", "DuplicateKeysError", "ExitCode",
           "LockBusyError")
_API = ("CheckResult", "KeyCheck", "ModelCheck", "PlanResult", "Project", "Run", "StatusResult", "SyncFailed",
        "SyncPlan", "SyncResult", "load_project")


def __getattr__(name: str):
    if name in _ERRORS:
        from . import errors

        return getattr(errors, name)
    if name in _API:
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module 'dinsync' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)


__all__ = [*_ERRORS, "__version__", *_API]
