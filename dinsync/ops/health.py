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
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .. import redaction
from ..errors import ConfigError, DestinationAuthError, DinsyncError
from ..warehouses.errors import (
    WarehouseAuthError,
    WarehouseError,
    WarehousePermissionError,
    WarehouseUnavailable,
)

# A key no record has, per key kind, for the read-only credentials probe.
PROBE_IDS = {"email": "dinsync-access-check@example.com", "phone": "+14155550100", "string": "dinsync-access-check"}


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

    @property
    def ok(self) -> bool:
        return self.finding is None and self.inconclusive is None

    def describe(self) -> str:
        if self.finding is not None:
            return self.finding.reason
        return self.inconclusive or "checks pass"


def check_sync(project: Any, name: str, wh: Any, *, destination: bool = True) -> CheckResult:
    """Check the model (in `wh`) and, unless `destination` is False, the destination of sync `name`."""
    finding = check_model(project, name, wh)
    if finding is not None:
        return CheckResult(finding)
    if not destination:
        return CheckResult()
    return check_destination(project, name)


def check_model(project: Any, name: str, wh: Any) -> Finding | None:
    cfg = project.syncs[name]
    model = project.models[cfg.model]
    try:
        columns = [c for c, _ in wh.columns(model.sql)]
    except (WarehouseUnavailable, WarehouseAuthError, WarehousePermissionError) as exc:
        return Finding("source", _r(f"model {model.name} cannot read its data: {exc.message}"), exc.hint)
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


def check_destination(project: Any, name: str) -> CheckResult:
    """The destination's pre-flight check and, where the destination has lookups, one read-only
    lookup of a placeholder key through the same transport (for its credentials)."""
    from ..engine.run import config_issues, transport_options  # the engine's own helpers

    cfg = project.syncs[name]
    dest_cfg = project.destinations[cfg.destination]
    destination = dest_cfg.make_destination()
    redaction.register(*destination.secrets())
    spec = cfg.spec()

    async def check() -> CheckResult:
        async with destination.make_transport(transport_options(dest_cfg)) as transport:
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

    try:
        import asyncio

        return asyncio.run(check())
    except DestinationAuthError as exc:
        return CheckResult(Finding("credentials", _r(f"{cfg.destination} refused the credentials: {exc.message}"),
                                   exc.hint))
    except ConfigError as exc:
        return CheckResult(Finding("destination", _r("; ".join(i.message for i in exc.issues)), None, exc.issues))
    except DinsyncError as exc:
        return CheckResult(inconclusive=_r(f"{cfg.destination} could not be checked: {exc.message}"))
    except Exception as exc:  # unreachable, timed out...
        return CheckResult(inconclusive=_r(f"{cfg.destination} could not be checked: {type(exc).__name__}: {exc}"))


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
