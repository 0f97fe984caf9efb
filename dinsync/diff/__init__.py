"""The diff: canonical SQL in sql/, rendered per dialect, run in the warehouse (see planner.py)."""
from .planner import Planner
from .spec import DiffSpec, PlanStats

__all__ = ["DiffSpec", "PlanStats", "Planner"]
