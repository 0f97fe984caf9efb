"""Run log, rejections, locks and layout migrations, kept in the warehouse."""
from .store import LAYOUT_VERSION, StateStore

__all__ = ["LAYOUT_VERSION", "StateStore"]
