"""`python -m dinsync`: the same as the `dinsync` command."""
from dinsync.entry import main

main()
