"""`python -m dinsync`: the same as the `dinsync` command."""
from dinsync.cli import main

main()
