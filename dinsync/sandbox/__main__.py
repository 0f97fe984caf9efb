"""`python -m dinsync.sandbox iterable --port 8765 --api-key KEY [--no-limits] [--project-type email]`

Prints `listening http://127.0.0.1:PORT` as its first line, serves until SIGINT/SIGTERM, exits 0.
The key may come from DINSYNC_SANDBOX_API_KEY instead of the command line (keeps it out of `ps`).
"""
from __future__ import annotations

import argparse
import os
import sys

from .faults import Faults
from .iterable import FAILURE_LISTS
from .runner import build_sandbox, serve

KEY_ENV = "DINSYNC_SANDBOX_API_KEY"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m dinsync.sandbox", description=__doc__.split("\n")[0])
    platforms = parser.add_subparsers(dest="platform", required=True)
    it = platforms.add_parser("iterable", help="Iterable's user API")
    it.add_argument("--port", type=int, default=8765, help="port on 127.0.0.1 (0: any free port)")
    it.add_argument("--api-key", action="append", default=[], help=f"accepted key (repeatable; or ${KEY_ENV})")
    it.add_argument("--no-limits", action="store_true", help="turn rate limits off")
    it.add_argument("--project-type", choices=("email", "userid", "hybrid"), default="email")
    it.add_argument("--drop-new-fields", action="store_true", help="project drops unknown fields by default")
    it.add_argument("--max-users-per-bulk", type=int, default=1000)
    it.add_argument("--max-body-bytes", type=int, default=4 * 1024 * 1024)
    it.add_argument("--unknown-user-id-list", choices=FAILURE_LISTS, default="notFoundUserIds")
    it.add_argument("--retry-after", choices=("seconds", "http-date", "none"), default="seconds")
    it.add_argument("--window", choices=("sliding", "fixed"), default="sliding")
    it.add_argument("--detect-dates", action="store_true")
    it.add_argument("--error-rate", type=float, default=0.0)
    it.add_argument("--reset-rate", type=float, default=0.0)
    it.add_argument("--throttle-rate", type=float, default=0.0)
    it.add_argument("--latency", type=float, default=0.0, help="seconds added to every request")
    it.add_argument("--jitter", type=float, default=0.0, help="random extra seconds, up to this")
    it.add_argument("--seed", type=int, default=0)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    keys = args.api_key or ([os.environ[KEY_ENV]] if os.environ.get(KEY_ENV) else [])
    if not keys:
        parser.error(f"give --api-key or set {KEY_ENV}")
    try:
        faults = Faults(error_rate=args.error_rate, reset_rate=args.reset_rate, throttle_rate=args.throttle_rate,
                        latency=args.latency, jitter=args.jitter, seed=args.seed)
        sandbox = build_sandbox(
            args.platform, api_keys=keys, faults=faults, project_type=args.project_type, limits=not args.no_limits,
            allow_new_fields=not args.drop_new_fields, max_users_per_bulk=args.max_users_per_bulk,
            max_body_bytes=args.max_body_bytes, unknown_user_id_list=args.unknown_user_id_list,
            retry_after=args.retry_after, window=args.window, detect_dates=args.detect_dates)
    except ValueError as exc:
        parser.error(str(exc))
    try:
        serve(sandbox, args.port)
    except OSError as exc:
        print(f"cannot listen on 127.0.0.1:{args.port}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
