"""Local emulators of destination APIs, served on 127.0.0.1 for tests, demos and benchmarks."""
from .attentive import AttentiveOptions, AttentiveSandbox
from .attio import AttioOptions, AttioSandbox, CustomAttribute
from .faults import Faults
from .iterable import IterableOptions, IterableSandbox
from .runner import SandboxThread, build_sandbox, serve
from .splio import SftpFaults, SplioOptions, SplioSandbox

__all__ = ["AttentiveOptions", "AttentiveSandbox", "AttioOptions", "AttioSandbox", "CustomAttribute", "Faults",
           "IterableOptions", "IterableSandbox", "SandboxThread", "SftpFaults", "SplioOptions", "SplioSandbox",
           "build_sandbox", "serve"]
