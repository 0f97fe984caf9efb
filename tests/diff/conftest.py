"""The rendered-SQL cache of these tests lives in a temporary folder, never in the user's home."""
from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _sql_cache_dir(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("DINSYNC_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "dinsync-cache"))
