"""`python -m dinsync.sandbox {iterable,attio,attentive} --port P --api-key KEY [--no-limits] [...]`
`python -m dinsync.sandbox splio --sftp-port P --http-port Q --api-key K --sftp-user U --sftp-password-env VAR`

Prints `listening http://127.0.0.1:PORT` as its first line (Splio: `listening sftp://127.0.0.1:P
http://127.0.0.1:Q`, then `known_hosts [127.0.0.1]:P ssh-ed25519 AAAA...`), serves until
SIGINT/SIGTERM, exits 0. The key may come from DINSYNC_SANDBOX_API_KEY instead of the command line
(keeps it out of `ps`); the SFTP password only ever comes from an environment variable.

    python -m dinsync.sandbox iterable --port 8765 --api-key KEY --project-type email
    python -m dinsync.sandbox attio --port 8766 --api-key KEY --custom-attribute people:plan:select:free,pro,team
"""
from __future__ import annotations

import argparse
import errno
import os
import sys
from typing import Any

from .attentive import DEFAULT_SCOPES
from .faults import Faults
from .iterable import FAILURE_LISTS
from .runner import build_sandbox, serve
from .splio import SplioOptions

KEY_ENV = "DINSYNC_SANDBOX_API_KEY"


def _port(text: str) -> int:
    """A TCP port for argparse: a usage error out of range, not an OverflowError from bind()."""
    try:
        port = int(text)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r}: a port is a number from 0 to 65535 (0: any free port)")
    return port


def _key_help(default_key: str | None) -> str:
    return f"accepted key (repeatable; or ${KEY_ENV}" + (f"; default: {default_key})" if default_key else ")")


def _common(sub: argparse.ArgumentParser, port: int, default_key: str | None = None) -> None:
    sub.add_argument("--port", type=_port, default=port, help="port on 127.0.0.1 (default: %(default)s; 0: any free port)")
    sub.add_argument("--api-key", action="append", default=[], help=_key_help(default_key))
    sub.add_argument("--no-limits", action="store_true", help="turn rate limits off")
    sub.add_argument("--window", choices=("sliding", "fixed"), default="sliding")
    sub.add_argument("--error-rate", type=float, default=0.0)
    sub.add_argument("--reset-rate", type=float, default=0.0, help="resets before the request is applied")
    sub.add_argument("--reset-after-apply-rate", type=float, default=0.0, help="resets after applying it")
    sub.add_argument("--throttle-rate", type=float, default=0.0)
    sub.add_argument("--latency", type=float, default=0.0, help="seconds added to every request")
    sub.add_argument("--jitter", type=float, default=0.0, help="random extra seconds, up to this")
    sub.add_argument("--seed", type=int, default=0)


PROG = "python -m dinsync.sandbox"


def _parser(prog: str = PROG, default_platform: str | None = None,
            default_key: str | None = None) -> argparse.ArgumentParser:
    """The parser, named `prog` in usage and error messages (`dinsync sandbox` from the CLI);
    `default_key`: the key accepted when neither --api-key nor $DINSYNC_SANDBOX_API_KEY names one."""
    default = f" Without a platform: {default_platform}." if default_platform else ""
    parser = argparse.ArgumentParser(
        prog=prog, description="Serve a platform's sandbox on 127.0.0.1 for manual tries.",
        epilog=f"`{prog} PLATFORM --help` lists a platform's options.{default}")
    platforms = parser.add_subparsers(dest="platform", required=True, title="platforms", metavar="PLATFORM")
    it = platforms.add_parser("iterable", help="Iterable's user API")
    _common(it, 8765, default_key)
    it.add_argument("--project-type", choices=("email", "userid", "hybrid"), default="email")
    it.add_argument("--drop-new-fields", action="store_true", help="project drops unknown fields by default")
    it.add_argument("--max-users-per-bulk", type=int, default=1000)
    it.add_argument("--max-body-bytes", type=int, default=4_000_000)
    it.add_argument("--unknown-user-id-list", choices=FAILURE_LISTS, default="notFoundUserIds")
    it.add_argument("--retry-after", choices=("seconds", "http-date", "none"), default="seconds")
    it.add_argument("--detect-dates", action="store_true")

    at = platforms.add_parser("attio", help="Attio's REST API v2 (people and companies)")
    _common(at, 8766, default_key)
    at.add_argument("--custom-attribute", action="append", default=[], metavar="OBJECT:SLUG:TYPE[:OPTIONS][:FLAGS]",
                    help="declare a custom attribute, e.g. people:plan:select:free,pro,team or "
                         "people:customer_id:text:unique (repeatable)")
    at.add_argument("--scopes", help="comma-separated scopes of every key (default: record_permission:read-write,"
                                     "object_configuration:read)")
    at.add_argument("--read-rate", type=float, default=100.0, help="read requests/s per token")
    at.add_argument("--write-rate", type=float, default=25.0, help="write requests/s per token")
    at.add_argument("--query-is-write", action="store_true", help="count records queries as writes")
    at.add_argument("--auto-create-companies", action="store_true",
                    help="a new person gets a company from their email domain")
    at.add_argument("--status-attributes", action="store_true",
                    help="allow custom status attributes on people/companies")
    at.add_argument("--unknown-attribute-status", type=int, choices=(400, 404), default=400)
    at.add_argument("--uniqueness-conflict-status", type=int, choices=(400, 409), default=400)
    at.add_argument("--lenient-filters", action="store_true", help="accept any filter operator on any property")

    tv = platforms.add_parser("attentive", help="Attentive's user-attribute API (v1 custom attributes, v2 users)")
    _common(tv, 8767, default_key)
    tv.set_defaults(window="fixed")
    tv.add_argument("--scope", action="append", default=[],
                    help=f"scope of the key(s) (repeatable; default: {', '.join(DEFAULT_SCOPES)})")
    tv.add_argument("--seed-subscribers", type=int, default=0, metavar="N",
                    help="start with N subscribers subscriber{i}@example.com, phone +1201{2000000+i} (i from 0)")
    tv.add_argument("--unknown-user", choices=("reject", "accept", "create"), default="create",
                    help="POST /v1/attributes/custom for an unknown email/phone (undocumented)")
    tv.add_argument("--unknown-attributes-lookup", choices=("404", "empty"), default="404")
    tv.add_argument("--null-values", choices=("reject", "ignore", "unset"), default="reject")
    tv.add_argument("--phone-check", choices=("valid", "possible"), default="possible")
    tv.add_argument("--bulk-validation", choices=("request", "record"), default="request")
    tv.add_argument("--bulk-job-seconds", type=float, default=0.2, help="seconds until a bulk job completes")
    tv.add_argument("--retry-after", action="store_true", help="add Retry-After to 429 answers")
    _splio_parser(platforms, default_key)
    return parser


def _platform_options(args: argparse.Namespace) -> dict[str, Any]:
    if args.platform == "iterable":
        return dict(project_type=args.project_type, allow_new_fields=not args.drop_new_fields,
                    max_users_per_bulk=args.max_users_per_bulk, max_body_bytes=args.max_body_bytes,
                    unknown_user_id_list=args.unknown_user_id_list, retry_after=args.retry_after,
                    detect_dates=args.detect_dates)
    if args.platform == "attentive":
        options = dict(unknown_user=args.unknown_user, unknown_attributes_lookup=args.unknown_attributes_lookup,
                       null_values=args.null_values, phone_check=args.phone_check,
                       bulk_validation=args.bulk_validation, bulk_job_seconds=args.bulk_job_seconds,
                       bulk_pending_seconds=min(0.05, args.bulk_job_seconds), retry_after=args.retry_after)
        if args.scope:
            options["default_scopes"] = tuple(args.scope)
        return options
    options = dict(
        custom_attributes=list(args.custom_attribute), rate_limits={"read": args.read_rate, "write": args.write_rate},
        query_is_read=not args.query_is_write, auto_create_companies=args.auto_create_companies,
        status_attributes_on_standard_objects=args.status_attributes,
        unknown_attribute_status=args.unknown_attribute_status,
        uniqueness_conflict_status=args.uniqueness_conflict_status, lenient_filters=args.lenient_filters)
    if args.scopes:
        options["default_scopes"] = tuple(s.strip() for s in args.scopes.split(",") if s.strip())
    return options


def _splio_parser(platforms: argparse._SubParsersAction, default_key: str | None = None) -> None:
    sp = platforms.add_parser("splio", help="Splio's SFTP contact imports and contacts API")
    d = SplioOptions()
    sp.add_argument("--http-port", type=_port, default=8768,  # (8765-8767: the other platforms, side by side)
                    help="API port on 127.0.0.1 (default: %(default)s; 0: any free port)")
    sp.add_argument("--sftp-port", type=_port, default=2222,
                    help="SFTP port on 127.0.0.1 (default: %(default)s; 0: any free port)")
    sp.add_argument("--api-key", action="append", default=[], help=_key_help(default_key))
    sp.add_argument("--sftp-user", default="dinsync",
                    help="the SFTP login's user name, sftp.username in dinsync.yml (default: dinsync)")
    sp.add_argument("--sftp-password-env", metavar="VAR", help="environment variable holding the SFTP password")
    sp.add_argument("--sftp-authorized-key", action="append", default=[], metavar="FILE",
                    help="OpenSSH public key file accepted for the user (repeatable)")
    sp.add_argument("--host-key", metavar="FILE", help="OpenSSH private host key (default: a new ed25519 key)")
    sp.add_argument("--root", metavar="DIR", help="SFTP root folder (default: a temporary folder)")
    sp.add_argument("--universe", default=d.universe,
                    help="the universe's name, universe: in dinsync.yml (default: %(default)s)")
    sp.add_argument("--insert-allowed", action="store_true", help="imports create unknown contacts")
    sp.add_argument("--custom-field", action="append", default=[], metavar="NAME:TYPE",
                    help="custom contact field, type text|int|double|date (repeatable; ids from 0)")
    sp.add_argument("--separator", default=d.separator)
    sp.add_argument("--file-name-pattern", default=d.file_name_pattern)
    sp.add_argument("--empty-cells", choices=("clear", "keep"), default=d.empty_cells)
    sp.add_argument("--custom-field-columns", choices=("name", "id", "both"), default=d.custom_field_columns)
    sp.add_argument("--poll-interval", type=float, default=d.poll_interval)
    sp.add_argument("--max-lines", type=int, default=d.max_lines)
    sp.add_argument("--token-lifetime", type=float, default=d.token_lifetime, help="seconds")
    sp.add_argument("--no-limits", action="store_true", help="turn rate limits off")
    sp.add_argument("--bulk-own-limit", action="store_true", help="bulk gets its own bucket instead of sharing "
                    "the contacts one")
    sp.add_argument("--custom-fields-by-name", action="store_true")
    sp.add_argument("--error-rate", type=float, default=0.0)
    sp.add_argument("--reset-rate", type=float, default=0.0)
    sp.add_argument("--throttle-rate", type=float, default=0.0)
    sp.add_argument("--latency", type=float, default=0.0, help="seconds added to every request")
    sp.add_argument("--seed", type=int, default=0)


def _splio(parser: argparse.ArgumentParser, args: argparse.Namespace, keys: list[str]) -> int:
    users = {}
    if args.sftp_user:
        password = os.environ.get(args.sftp_password_env) if args.sftp_password_env else None
        if args.sftp_password_env and not password:
            parser.error(f"environment variable {args.sftp_password_env} is empty or unset")
        try:
            public_keys = [open(path, encoding="utf-8").read() for path in args.sftp_authorized_key]
        except OSError as exc:
            parser.error(f"cannot read an authorized key: {exc}")
        if not (password or public_keys):
            parser.error("give --sftp-password-env or --sftp-authorized-key for the SFTP user")
        users[args.sftp_user] = {"password": password, "public_keys": public_keys}
    fields = []
    for spec in args.custom_field:
        name, _, kind = spec.partition(":")
        fields.append({"name": name, "type": kind or "text"})
    try:
        faults = Faults(error_rate=args.error_rate, reset_rate=args.reset_rate, throttle_rate=args.throttle_rate,
                        latency=args.latency, seed=args.seed)
        sandbox = build_sandbox(
            "splio", api_keys=keys, faults=faults, sftp_port=args.sftp_port, sftp_users=users,
            host_key=args.host_key, root=args.root, universe=args.universe, insert_allowed=args.insert_allowed,
            custom_fields=fields, separator=args.separator, file_name_pattern=args.file_name_pattern,
            empty_cells=args.empty_cells, custom_field_columns=args.custom_field_columns,
            poll_interval=args.poll_interval, max_lines=args.max_lines, token_lifetime=args.token_lifetime,
            limits=not args.no_limits, bulk_shares_contacts_limit=not args.bulk_own_limit,
            custom_fields_by_name=args.custom_fields_by_name)
    except (ValueError, OSError) as exc:
        parser.error(str(exc))
    try:
        serve(sandbox, args.http_port)
    except OSError as exc:
        return _cannot_listen(exc, {"--http-port": args.http_port, "--sftp-port": args.sftp_port})
    return 0


def main(argv: list[str] | None = None, prog: str = PROG, default_platform: str | None = None,
         default_key: str | None = None) -> int:
    """`prog`: the program's name in usage and error messages; `default_platform`: named in
    `--help` as the platform used when none is given (the caller supplies it); `default_key`: the
    key accepted without --api-key or $DINSYNC_SANDBOX_API_KEY (`dinsync sandbox`: sandbox-key),
    named in `--help`."""
    parser = _parser(prog, default_platform, default_key)
    args, extra = parser.parse_known_args(argv)
    if extra:  # argparse's own message, and where the platform's options are listed
        hint = f"; `{prog} {args.platform} --help` lists its options"
        if args.platform == "splio" and any(a.split("=")[0] == "--port" for a in extra):
            hint = "; splio serves two ports: --http-port P (its API) and --sftp-port P (its SFTP server)"
        parser.error(f"unrecognized arguments: {' '.join(extra)}{hint}")
    keys = args.api_key or ([os.environ[KEY_ENV]] if os.environ.get(KEY_ENV) else []) or (
        [default_key] if default_key else [])
    if not keys:
        parser.error(f"give --api-key or set {KEY_ENV}")
    if args.platform == "splio":
        return _splio(parser, args, keys)
    try:
        faults = Faults(error_rate=args.error_rate, reset_rate=args.reset_rate,
                        reset_after_apply_rate=args.reset_after_apply_rate, throttle_rate=args.throttle_rate,
                        latency=args.latency, jitter=args.jitter, seed=args.seed)
        sandbox = build_sandbox(args.platform, api_keys=keys, faults=faults, limits=not args.no_limits,
                                window=args.window, **_platform_options(args))
        if args.platform == "attentive" and args.seed_subscribers:
            sandbox.seed_subscribers(args.seed_subscribers)
    except ValueError as exc:
        parser.error(str(exc))
    try:
        serve(sandbox, args.port)
    except OSError as exc:
        return _cannot_listen(exc, {"--port": args.port})
    return 0


def _cannot_listen(exc: OSError, ports: dict[str, int]) -> int:
    """A port the sandbox cannot listen on (`ports`: option -> port): which one, and a hint; a
    usage error (exit 2), as the port is the command's argument."""
    option, port = next(((o, p) for o, p in ports.items() if p and f", {p})" in str(exc)), next(iter(ports.items())))
    if exc.errno == errno.EADDRINUSE:
        message = f"port {port} on 127.0.0.1 is in use" if port else f"a port on 127.0.0.1 is in use: {exc}"
    else:
        message = f"cannot listen on 127.0.0.1:{port}: {exc.strerror or exc}"
    print(f"error: {message}\nhint: pass another {option}, or {option} 0 to take a free one (the `listening` "
          "line names it)", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
