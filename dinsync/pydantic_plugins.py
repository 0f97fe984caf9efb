"""pydantic looks up its own plugins (the `pydantic` entry-point group) when the first model is
built, through `importlib.metadata.entry_points()`, which raises for every group once a single
installed package's entry_points.txt cannot be parsed (a line without `=`: TypeError) or decoded
(not UTF-8: UnicodeDecodeError): every dinsync command, whatever its project, failed with
"unexpected error: UnicodeDecodeError ...". `look_up` does pydantic's lookup first; when it raises,
pydantic goes without plugins (it could read none), and dinsync goes on. Destination plugins are
read package by package (`dinsync.destinations`): such a package is listed with its error there."""
from __future__ import annotations

import os


def look_up() -> None:
    """pydantic's plugin lookup, done before the first model is built; a failure disables it."""
    if os.environ.get("PYDANTIC_DISABLE_PLUGINS"):
        return
    try:
        from pydantic.plugin._loader import get_plugins
    except ImportError:  # (another pydantic: its own lookup, as it has it)
        return
    try:
        get_plugins()  # cached by pydantic: the first model asks no more
    except Exception:
        os.environ["PYDANTIC_DISABLE_PLUGINS"] = "__all__"  # (pydantic reads it at each lookup)
