"""Local emulators of destination APIs, served on 127.0.0.1 for tests, demos and benchmarks."""
from .attentive import AttentiveOptions, AttentiveSandbox
from .faults import Faults
from .iterable import IterableOptions, IterableSandbox
from .runner import SandboxThread, build_sandbox, serve

__all__ = ["AttentiveOptions", "AttentiveSandbox", "Faults", "IterableOptions", "IterableSandbox", "SandboxThread",
           "build_sandbox", "serve"]
