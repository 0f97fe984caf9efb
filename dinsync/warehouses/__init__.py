"""Warehouse adapters, looked up by the `type` in dinsync.yml and imported only when used.

Importing an adapter module never imports its driver: capabilities can be read without it, and
connecting without the driver raises WarehouseDriverMissing naming the pip extra to install.
"""
from __future__ import annotations

import importlib
from typing import Any

from .base import Capabilities, Warehouse
from .errors import (
    WarehouseAuthError,
    WarehouseConflict,
    WarehouseConstraintViolation,
    WarehouseDriverMissing,
    WarehouseError,
    WarehouseLockTimeout,
    WarehouseObjectMissing,
    WarehousePermissionError,
    WarehouseSettingsError,
    WarehouseSqlError,
    WarehouseStateRefused,
    WarehouseUnavailable,
)

# type -> (module, class). Add a warehouse: its module here, its config model in config/warehouse_config.py.
ADAPTERS: dict[str, tuple[str, str]] = {
    "duckdb": ("dinsync.warehouses.duckdb", "DuckDBWarehouse"),
    "postgres": ("dinsync.warehouses.postgres", "PostgresWarehouse"),
    "redshift": ("dinsync.warehouses.redshift", "RedshiftWarehouse"),
    "bigquery": ("dinsync.warehouses.bigquery", "BigQueryWarehouse"),
    "snowflake": ("dinsync.warehouses.snowflake", "SnowflakeWarehouse"),
    "databricks": ("dinsync.warehouses.databricks", "DatabricksWarehouse"),
}


def adapter_class(kind: str) -> type[Warehouse]:
    if kind not in ADAPTERS:
        raise ValueError(f"unknown warehouse type {kind!r}; expected one of {', '.join(sorted(ADAPTERS))}")
    module, name = ADAPTERS[kind]
    return getattr(importlib.import_module(module), name)


def capabilities_of(kind: str) -> Capabilities:
    """A warehouse type's capabilities, without its driver or a connection."""
    return adapter_class(kind).capabilities


def connect(kind: str, **options: Any) -> Warehouse:
    """Open a warehouse of type `kind` with its config options (SecretStr values are unwrapped)."""
    cls = adapter_class(kind)
    plain = {k: (v.get_secret_value() if hasattr(v, "get_secret_value") else v) for k, v in options.items()}
    return cls(**plain)


def require_driver(module: str, kind: str, extra: str | None = None, package: str | None = None):
    """Import a driver module, or raise WarehouseDriverMissing naming the extra that installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        what = package or module.split(".")[0]
        raise WarehouseDriverMissing(
            f"the {kind} warehouse needs the {what} package, which is not installed ({exc.msg})",
            hint=f"pip install 'dinsync[{extra or kind}]'",
        ) from None


__all__ = [
    "ADAPTERS", "Capabilities", "Warehouse", "WarehouseAuthError", "WarehouseConflict", "WarehouseConstraintViolation",
    "WarehouseDriverMissing", "WarehouseLockTimeout",
    "WarehouseError", "WarehouseObjectMissing", "WarehousePermissionError", "WarehouseSettingsError", "WarehouseSqlError",
    "WarehouseStateRefused",
    "WarehouseUnavailable", "adapter_class", "capabilities_of", "connect", "require_driver",
]
