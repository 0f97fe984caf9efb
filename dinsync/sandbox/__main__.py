"""`python -m dinsync.sandbox {iterable,attentive} --port P --api-key KEY [options]`

Prints `listening http://127.0.0.1:PORT` as its first line, serves until SIGINT/SIGTERM, exits 0.
The key may come from DINSYNC_SANDBOX_API_KEY instead of the command line (keeps it out of `ps`).
"""
from __future__ import annotations

import argparse
import os
import sys

from .attentive import DEFAULT_SCOPES
from .faults import Faults
from .iterable import FAILURE_LISTS
from .runner import build_sandbox, serve

KEY_ENV = "DINSYNC_SANDBOX_API_KEY"


def _common(sub: argparse.ArgumentParser, port: int) -> None:
    sub.add_argument("--port", type=int, default=port, help="port on 127.0.0.1 (0: any free port)")
    sub.add_argument("--api-key", action="append", default=[], help=f"accepted key (repeatable; or ${KEY_ENV})")
    sub.add_argument("--no-limits", action="store_true", help="turn rate limits off")
    sub.add_argument("--error-rate", type=float, default=0.0)
    sub.add_argument("--reset-rate", type=float, default=0.0)
    sub.add_argument("--throttle-rate", type=float, default=0.0)
    sub.add_argument("--latency", type=float, default=0.0, help="seconds added to every request")
    sub.add_argument("--jitter", type=float, default=0.0, help="random extra seconds, up to this")
    sub.add_argument("--seed", type=int, default=0)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m dinsync.sandbox", description=__doc__.split("\n")[0])
    platforms = parser.add_subparsers(dest="platform", required=True)
    it = platforms.add_parser("iterable", help="Iterable's user API")
    _common(it, 8765)
    it.add_argument("--project-type", choices=("email", "userid", "hybrid"), default="email")
    it.add_argument("--drop-new-fields", action="store_true", help="project drops unknown fields by default")
    it.add_argument("--max-users-per-bulk", type=int, default=1000)
    it.add_argument("--max-body-bytes", type=int, default=4 * 1024 * 1024)
    it.add_argument("--unknown-user-id-list", choices=FAILURE_LISTS, default="notFoundUserIds")
    it.add_argument("--retry-after", choices=("seconds", "http-date", "none"), default="seconds")
    it.add_argument("--window", choices=("sliding", "fixed"), default="sliding")
    it.add_argument("--detect-dates", action="store_true")

    at = platforms.add_parser("attentive", help="Attentive's user-attribute API (v1 custom attributes, v2 users)")
    _common(at, 8767)
    at.add_argument("--scope", action="append", default=[],
                    help=f"scope of the key(s) (repeatable; default: {', '.join(DEFAULT_SCOPES)})")
    at.add_argument("--seed-subscribers", type=int, default=0, metavar="N",
                    help="start with N subscribers subscriber{i}@example.com, phone +1201{2000000+i} (i from 0)")
    at.add_argument("--unknown-user", choices=("reject", "accept", "create"), default="create",
                    help="POST /v1/attributes/custom for an unknown email/phone (undocumented)")
    at.add_argument("--unknown-attributes-lookup", choices=("404", "empty"), default="404")
    at.add_argument("--null-values", choices=("reject", "ignore", "unset"), default="reject")
    at.add_argument("--phone-check", choices=("valid", "possible"), default="valid")
    at.add_argument("--bulk-validation", choices=("request", "record"), default="request")
    at.add_argument("--bulk-job-seconds", type=float, default=0.2, help="seconds until a bulk job completes")
    at.add_argument("--retry-after", action="store_true", help="add Retry-After to 429 answers")
    at.add_argument("--window", choices=("fixed", "sliding"), default="fixed")
    return parser


def _options(args: argparse.Namespace) -> dict:
    if args.platform == "iterable":
        return dict(project_type=args.project_type, allow_new_fields=not args.drop_new_fields,
                    max_users_per_bulk=args.max_users_per_bulk, max_body_bytes=args.max_body_bytes,
                    unknown_user_id_list=args.unknown_user_id_list, retry_after=args.retry_after,
                    window=args.window, detect_dates=args.detect_dates)
    return dict(unknown_user=args.unknown_user, unknown_attributes_lookup=args.unknown_attributes_lookup,
                null_values=args.null_values, phone_check=args.phone_check, bulk_validation=args.bulk_validation,
                bulk_job_seconds=args.bulk_job_seconds,
                bulk_pending_seconds=min(0.05, args.bulk_job_seconds), retry_after=args.retry_after,
                window=args.window)


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    keys = args.api_key or ([os.environ[KEY_ENV]] if os.environ.get(KEY_ENV) else [])
    if not keys:
        parser.error(f"give --api-key or set {KEY_ENV}")
    try:
        faults = Faults(error_rate=args.error_rate, reset_rate=args.reset_rate, throttle_rate=args.throttle_rate,
                        latency=args.latency, jitter=args.jitter, seed=args.seed)
        options = _options(args)
        if args.platform == "attentive" and args.scope:
            options["default_scopes"] = tuple(args.scope)
        sandbox = build_sandbox(args.platform, api_keys=keys, faults=faults, limits=not args.no_limits, **options)
        if args.platform == "attentive" and args.seed_subscribers:
            sandbox.seed_subscribers(args.seed_subscribers)
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
