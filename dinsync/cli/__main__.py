"""`python -m dinsync.cli`: the `dinsync` command, as `python -m dinsync` (without its guarded entry)."""
from dinsync.cli import main

main()
