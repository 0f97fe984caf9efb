"""The cheap check of a sync's dependencies: what pauses it, and what lets it resume.

A sync depends on its model (the SQL runs in the warehouse and returns the mapped columns) and on
its destination (the fields it maps exist, the credentials are accepted). `check_sync` looks at
each without sending anything:

1. the model's columns in the warehouse (`Warehouse.columns`, a `LIMIT 0` query): the SQL fails
   (`model`), its data cannot be reached or read (`source`), or a column the sync uses is gone
   (`column`);
2. the destination's pre-flight check (`Destination.preflight`, e.g. Attio's attribute list): a
   mapped field was removed or changed (`destination`);
3. the credentials: a 401/403 during the pre-flight check, or on one read-only lookup of a
   placeholder key where the destination has lookups (e.g. Iterable's `getByEmail`) (`credentials`).

The result is `ok`, a `Finding` (the culprit, which pauses the sync), or `inconclusive` (the check
itself could not tell, e.g. the destination was unreachable: a paused sync stays paused, a running
one is not paused for it). Texts are redacted.

The destination's part is quick to give up: its requests get a short retry policy
(`check_retry_policy`, a few attempts within a few seconds, not a run's 8 attempts with backoff up
to 30 s), each attempt at most CHECK_ATTEMPT_SECONDS, the whole part at most CHECK_SECONDS. A stop
request (`stop`, a StopToken) abandons it at once: the result is then inconclusive and `abandoned`
(the check is read-only; the caller records nothing for it).
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import asyncio  # imported where a check runs: a sync with nothing to send never loads it (~20 ms)

from .. import redaction
from ..errors import ConfigError, DestinationAuthError, DinsyncError
from ..warehouses.errors import (
    WarehouseAuthError,
    WarehouseConflict,
    WarehouseError,
    WarehousePermissionError,
    WarehouseUnavailable,
)

# A key no record has, per key kind, for the read-only credentials probe.
PROBE_IDS = {"email": "dinsync-access-check@example.com", "phone": "+14155550100", "string": "dinsync-access-check"}

CHECK_ATTEMPT_SECONDS = 5.0  # one request of the check (the configured timeout_seconds when shorter)
CHECK_SECONDS = 20.0  # the destination's whole part (pre-flight requests and the lookup)
ABANDONED = "the check was abandoned: a stop was requested"


def check_retry_policy():
    """The retry policy of the check's requests: 3 attempts, backoff at most 0.5 s then 1 s, a
    server's Retry-After honoured up to 2 s (a run's own sending keeps the sender's full policy)."""
    from ..sender.retry import RetryPolicy

    return RetryPolicy(max_attempts=3, base=0.5, factor=2.0, cap=1.0, max_retry_after=2.0)


def check_transport_options(dest_cfg: Any):
    """A configured destination's delivery settings, with the check's short retry policy and timeout."""
    from ..engine.run import transport_options

    options = transport_options(dest_cfg)
    return replace(options, retry_policy=check_retry_policy(), timeout=min(options.timeout, CHECK_ATTEMPT_SECONDS))


@dataclass
class Finding:
    """Why a sync cannot run: `culprit` (dinsync.state.syncstate.CULPRITS) and a text naming it."""

    culprit: str
    reason: str
    hint: str | None = None
    issues: list = field(default_factory=list)  # ConfigIssues located in the sync file (pre-flight findings)


@dataclass
class CheckResult:
    finding: Finding | None = None
    inconclusive: str | None = None  # the check could not tell (why)
    abandoned: bool = False  # inconclusive because a stop was requested: nothing is to be recorded

    @property
    def ok(self) -> bool:
        return self.finding is None and self.inconclusive is None

    def describe(self) -> str:
        if self.finding is not None:
            return self.finding.reason
        return self.inconclusive or "checks pass"


def check_sync(project: Any, name: str, wh: Any, *, destination: bool = True, stop: Any = None) -> CheckResult:
    """Check the model (in `wh`) and, unless `destination` is False, the destination of sync `name`.
    `stop` (a StopToken): a stop request abandons the check (see the module's docstring)."""
    if stop is not None and stop.requested:
        return CheckResult(inconclusive=ABANDONED, abandoned=True)
    try:
        finding = check_model(project, name, wh)
    except WarehouseConflict as exc:  # another transaction holds the model's table: says nothing of the model
        return CheckResult(inconclusive=_r(f"model {project.syncs[name].model} could not be checked: {exc.message}"))
    if finding is not None:
        return CheckResult(finding)
    if not destination:
        return CheckResult()
    return check_destination(project, name, stop=stop)


def check_model(project: Any, name: str, wh: Any) -> Finding | None:
    cfg = project.syncs[name]
    model = project.models[cfg.model]
    try:
        columns = [c for c, _ in wh.columns(model.sql)]
    except (WarehouseUnavailable, WarehouseAuthError, WarehousePermissionError) as exc:
        return Finding("source", _r(f"model {model.name} cannot read its data: {exc.message}"), exc.hint)
    except WarehouseConflict:  # a lock timeout, a write conflict: the check cannot tell (check_sync)
        raise
    except WarehouseError as exc:
        return Finding("model", _r(f"model {model.name} failed in the warehouse: {exc.message}"),
                       "run the model's SQL in the warehouse to debug it")
    except Exception as exc:  # a driver error outside the adapter's translation
        return Finding("model", _r(f"model {model.name} failed in the warehouse: {type(exc).__name__}: {exc}"),
                       "run the model's SQL in the warehouse to debug it")
    named = [(f"match column {cfg.match_column!r}", cfg.match_column)] + [
        (f"column {f.column!r} (mapped to {f.field!r})", f.column) for f in cfg.fields]
    missing = [what for what, column in named if column not in columns]
    if missing:
        what = missing[0]
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        return Finding("column", _r(f"{what} is not a column of model {model.name}{more}"),
                       f"columns: {', '.join(columns[:20])}")
    return None


def check_destination(project: Any, name: str, *, stop: Any = None) -> CheckResult:
    """The destination's pre-flight check and, where the destination has lookups, one read-only
    lookup of a placeholder key through the same transport (for its credentials). Short retries
    and timeouts; abandoned at once on a stop request (`stop`, a StopToken)."""
    from ..engine.run import config_issues  # the engine's own helper

    cfg = project.syncs[name]
    dest_cfg = project.destinations[cfg.destination]
    destination = dest_cfg.make_destination()
    redaction.register(*destination.secrets(), partial=True)
    spec = cfg.spec()

    async def check() -> CheckResult:
        async with destination.make_transport(check_transport_options(dest_cfg)) as transport:
            result = await destination.preflight(transport, spec)
            if result.issues:
                issues = config_issues(project, cfg, result, redaction.redact)
                return CheckResult(Finding("destination", "; ".join(i.message for i in issues),
                                           next((i.hint for i in issues if i.hint), None), issues))
            spec.kinds.update(result.kinds)
            probe = _probe(destination, cfg, spec)
            if probe is not None:
                # any answer but 401/403 means the credentials work (a 401/403 raises); a lookup that
                # got no answer (unreachable, 5xx or timeouts after retries) says nothing of them
                delivered = await transport.deliver(probe)
                lost = next((r for r in delivered.problems if r.status == "failed"), None)
                if lost is not None:
                    return CheckResult(inconclusive=_r(f"{cfg.destination} could not be checked: {lost.reason}"))
            return CheckResult()

    if stop is not None and stop.requested:
        return CheckResult(inconclusive=ABANDONED, abandoned=True)
    from ..engine.options import OUTAGE_SECONDS, outage_seconds

    try:  # read by the transports: an unusable value is the environment's, nothing of the destination's
        outage_seconds(OUTAGE_SECONDS)
    except ConfigError as exc:
        return CheckResult(inconclusive=_r(f"{cfg.destination} could not be checked: "
                                           + "; ".join(i.message for i in exc.issues)))
    from ..sender.lookups import run_leaving_lookups

    try:  # (a host-name lookup the bound gave up on is not waited for)
        return run_leaving_lookups(_bounded(check(), stop))
    except _Abandoned:
        return CheckResult(inconclusive=ABANDONED, abandoned=True)
    except _TimedOut:
        return CheckResult(inconclusive=_r(f"{cfg.destination} could not be checked: no answer within "
                                           f"{CHECK_SECONDS:g} s"))
    except DestinationAuthError as exc:
        return CheckResult(Finding("credentials", _r(f"{cfg.destination} refused the credentials: {exc.message}"),
                                   exc.hint))
    except ConfigError as exc:
        return CheckResult(Finding("destination", _r("; ".join(i.message for i in exc.issues)), None, exc.issues))
    except DinsyncError as exc:
        return CheckResult(inconclusive=_r(f"{cfg.destination} could not be checked: {exc.message}"))
    except Exception as exc:  # unreachable, timed out...
        return CheckResult(inconclusive=_r(f"{cfg.destination} could not be checked: {type(exc).__name__}: {exc}"))


def validate_access(project: Any, name: str) -> bool:
    """`dinsync validate`: the check's read-only lookup of a key no record has (Iterable:
    `GET /api/users/getByEmail`), for the credentials of a destination with lookups (Attio's and
    Splio's pre-flight checks read with theirs, and make none). A refusal raises
    DestinationAuthError, no answer after the check's short retries DestinationUnreachableError.
    False when the sync can make no lookup (nothing was asked)."""
    import asyncio

    from ..destinations import hooks
    from ..errors import DestinationUnreachableError

    cfg = project.syncs[name]
    dest_cfg = project.destinations[cfg.destination]
    destination = dest_cfg.make_destination()
    redaction.register(*destination.secrets(), partial=True)
    probe = _probe(destination, cfg, cfg.spec())
    if probe is None:
        return False

    async def check() -> None:
        # (the check's short retries: a closed port or a silent host is told in seconds, not a run's
        # 8 attempts with backoff; it answers "try again" all the same: exit 1)
        async with hooks.opened(destination, destination.make_transport(check_transport_options(dest_cfg))) as transport:
            delivered = await transport.deliver(probe)
        lost = next((r for r in delivered.problems if r.status == "failed"), None)
        if lost is not None:  # (no answer, or one asking to wait: the sender's reason, told for a run's rows)
            reason = (lost.reason or "no answer").removesuffix(": sent by the next run")
            raise DestinationUnreachableError(_r(f"the credentials of {cfg.destination} were not checked: {reason}"),
                                              "check the destination's base_url and the platform's status, then run "
                                              "validate again")

    asyncio.run(check())
    return True


class _Abandoned(Exception):
    """The check was cancelled by a stop request."""


class _TimedOut(Exception):
    """The check took longer than CHECK_SECONDS."""


class _Canceller:
    """A StopToken waker (it only needs `set()`) that cancels an asyncio task from any thread."""

    def __init__(self, loop: asyncio.AbstractEventLoop, task: asyncio.Task):
        self.loop, self.task = loop, task

    def set(self) -> None:
        try:
            self.loop.call_soon_threadsafe(self.task.cancel)
        except RuntimeError:  # the loop is closed: the check is over anyway
            pass


async def _bounded(check: Any, stop: Any) -> CheckResult:
    """`check` within CHECK_SECONDS (else _TimedOut), cancelled at once by a stop request (then
    _Abandoned). The token sets its wakers from the signal thread, never from the handler."""
    import asyncio

    task = asyncio.ensure_future(check)
    canceller = _Canceller(asyncio.get_running_loop(), task)
    if stop is not None:
        stop.add_waker(canceller)  # (set at once when the stop was requested already)
    try:
        done, _ = await asyncio.wait({task}, timeout=CHECK_SECONDS)
        if not done:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            raise _TimedOut()
        if task.cancelled():
            raise _Abandoned()
        return task.result()
    finally:
        if stop is not None:
            stop.remove_waker(canceller)


def _probe(destination: Any, cfg: Any, spec: Any):
    """One read-only lookup request for a key no record has, or None when the destination has none."""
    try:
        kind = destination.service(cfg.service).key_fields[cfg.match_field].kind
        requests = destination.lookup_requests([PROBE_IDS[kind]], [PROBE_IDS[kind]], spec)
    except Exception:  # the destination cannot build one for this sync: the pre-flight check is all there is
        return None
    return requests[0] if requests else None


def _r(text: str) -> str:
    return redaction.redact(text)
