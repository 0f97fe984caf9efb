"""What the warehouse says of the model's mapped columns, asked when a planner is made.

Which columns the row fingerprint hashes in their exact form, in a stable form of their own, or
with a part of their value (their shape), and the types the engine records (see the Warehouse
methods each helper names). A model that cannot be read yet gives none: a run reads the model's
columns before it plans.
"""
from __future__ import annotations

from typing import Any

from ..errors import DinsyncError
from .spec import DiffSpec


def _exact_columns(warehouse: Any, spec: DiffSpec) -> list[str]:
    """The mapped columns the warehouse hashes in their exact form (Warehouse.exact_hash_columns);
    none when the model cannot be read yet (a planner made before its table: a run reads the model's
    columns before it plans, so only a caller of the Python API meets this)."""
    exact = getattr(warehouse, "exact_hash_columns", None)
    if exact is None:
        return []
    try:
        return sorted(exact(spec.model_sql, sorted({c for c, _ in spec.fields})))
    except DinsyncError:  # (a warehouse error)
        return []


def _column_kinds(warehouse: Any, spec: DiffSpec) -> dict[str, str]:
    """The mapped columns' types that the engine records (Warehouse.recorded_column_types); none
    when the model cannot be read yet (as _exact_columns)."""
    return _column_forms(warehouse, spec, "recorded_column_types")


def _stable_forms(warehouse: Any, spec: DiffSpec) -> dict[str, str]:
    """The mapped columns the warehouse hashes in a form of their own (Warehouse.stable_hash_forms),
    each with that form; none when the model cannot be read yet (as _exact_columns)."""
    return _column_forms(warehouse, spec, "stable_hash_forms")


def _shape_forms(warehouse: Any, spec: DiffSpec) -> dict[str, str]:
    """The mapped columns whose own hash leaves out part of the value, each with the SQL of that part
    (Warehouse.shape_hash_forms); none when the model cannot be read yet (as _exact_columns)."""
    return _column_forms(warehouse, spec, "shape_hash_forms")


def _column_forms(warehouse: Any, spec: DiffSpec, method: str) -> dict[str, str]:
    """What the warehouse's `method` says of the model's mapped columns, by column."""
    forms = getattr(warehouse, method, None)
    if forms is None:
        return {}
    try:
        return dict(sorted(forms(spec.model_sql, sorted({c for c, _ in spec.fields})).items()))
    except DinsyncError:  # (a warehouse error)
        return {}
