"""Warehouse adapters, looked up by the `type` in dinsync.yml."""
from __future__ import annotations

from typing import Any

from .base import Warehouse


def connect(kind: str, **options: Any) -> Warehouse:
    if kind == "duckdb":
        from .duckdb import DuckDBWarehouse

        return DuckDBWarehouse(**options)
    raise ValueError(f"unknown warehouse type {kind!r}")
