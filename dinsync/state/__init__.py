"""Run log, rejections, locks and layout migrations, kept in the warehouse."""
from .layout import LAYOUT_VERSION
from .store import StateStore

__all__ = ["LAYOUT_VERSION", "StateStore"]
