"""One run of one sync: plan -> stream -> map -> send -> commit (see run.py)."""
from .lock import LockKeeper, LockLostError
from .options import EngineOptions
from .run import SyncRun, preflight_sync
from .stop import StopToken, stop_on_signals

__all__ = ["EngineOptions", "LockKeeper", "LockLostError", "StopToken", "SyncRun", "preflight_sync",
           "stop_on_signals"]
