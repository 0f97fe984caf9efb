"""Project configuration: dinsync.yml, models/*.sql and syncs/*.yml -> validated pydantic models.

`load_project` raises `dinsync.errors.ConfigError` holding every issue found (file, line, hint).
With `columns_of=` (model -> its column names, e.g. from the warehouse) it also checks, in the
same pass, that primary keys, match columns and mapped columns exist in each model's output.
In dinsync.yml, `${env:NAME}` in a string value is replaced by the environment variable NAME
(a missing one is an issue); `$${env:NAME}` stands for the literal text `${env:NAME}`.
"""
from .columns import check_columns
from .loader import load_project, load_warehouse_config
from .models import DestinationConfig, Model, Project
from .sync_config import FieldMap, SyncConfig, Thresholds
from .warehouse_config import DuckDBConfig, WarehouseConfig
from .scaffold import ScaffoldExistsError, scaffold

__all__ = [
    "DestinationConfig",
    "DuckDBConfig",
    "FieldMap",
    "Model",
    "Project",
    "ScaffoldExistsError",
    "SyncConfig",
    "Thresholds",
    "WarehouseConfig",
    "check_columns",
    "load_project",
    "load_warehouse_config",
    "scaffold",
]
