"""`dinsync check`: the keys of each model, counted in the warehouse, with the verdict a sync
run would reach.

Per model (once, however many selected syncs read it), each key is counted once: every matching
key its syncs use (the column, read as the destination reads it: emails trimmed and lowercased),
and the declared primary key (`-- primary_key:`). For a matching key, duplicated values withhold
their rows from the syncs that match on it; over a sync's `thresholds.max_duplicate_pct` the model
is blocked for that sync (it fails before sending, naming the model and the figure), under it the
run is a warning. The declared primary key is only reported (a warning when it holds NULLs or
duplicates): syncs deliver by their matching key. A sync run reaches the same verdict from the
figures its plan already computes (`dinsync.engine.run`), without counting again.

Exit code: 1 when a model is blocked, else 4 when a key has a warning (and one of the syncs
concerned has `fail_on_warning`), else 0.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Callable

from .errors import DinsyncError, ExitCode

STATUSES = ("ok", "warning", "blocked")


@dataclass
class KeyCheck:
    """One key of a model: its figures and the verdict for the syncs matching on it."""

    column: str
    normalization: str  # email | trim | none
    primary_key: bool  # the model's declared primary key
    syncs: list[str]  # selected syncs matching on this key (empty: the primary key alone)
    null_keys: int
    duplicate_keys: int
    duplicate_rows: int
    duplicate_pct: float
    limit_pct: float | None  # the smallest max_duplicate_pct of `syncs`
    status: str  # ok | warning | blocked
    blocks: list[str] = field(default_factory=list)  # syncs that would not run
    sample: list[dict[str, Any]] = field(default_factory=list)  # [{"key", "rows"}], most duplicated first

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class ModelCheck:
    model: str
    rows: int
    status: str  # the worst of its keys
    syncs: list[str]
    dbt_models: list[str]
    tags: list[str]
    keys: list[KeyCheck]
    messages: list[str]
    message_statuses: list[str] = field(default_factory=list)  # each message's own (its key's) status

    def as_dict(self) -> dict:
        """The CLI's JSON object of the model (`dinsync check --json`'s `models` items)."""
        return asdict(self)


@dataclass
class CheckReport:
    models: list[ModelCheck]
    exit_code: int


def model_keys(project, names: list[str]) -> dict[str, dict[tuple[str, str, str | None], list[str]]]:
    """model -> {(column, normalization, phone region): [syncs matching on it]}, for the selected
    syncs, with the model's primary key (read as is) added when no sync matches on it that way."""
    from .engine.run import sync_key

    keys: dict[str, dict[tuple[str, str, str | None], list[str]]] = {}
    for name in names:
        model, column, normalization, region = sync_key(project, name)
        keys.setdefault(model, {}).setdefault((column, normalization, region), []).append(name)
    for model, found in keys.items():
        found.setdefault((project.models[model].primary_key, "none", None), [])
    return keys


def check_models(project, wh, names: list[str], *, samples: int = 5,
                 redact: Callable[[str], str] = lambda s: s) -> CheckReport:
    """Count the keys of the models of the syncs `names` in the warehouse; the verdicts."""
    from .diff.keycheck import KeyCounter
    from .diff.model_errors import located_in_model

    checks: list[ModelCheck] = []
    codes: list[int] = []
    for model_name, keys in sorted(model_keys(project, names).items()):
        model = project.models[model_name]
        key_checks, messages, statuses = [], [], []
        rows = 0
        for (column, normalization, region), syncs in keys.items():
            try:
                figures = KeyCounter(wh, model_name, model.sql, column, normalization, region).count(samples)
            except DinsyncError as exc:
                located = located_in_model(exc, model_name, project.relative(model.path), model.line("sql"))
                if located is exc:
                    raise
                raise located from None
            rows = figures.rows
            check, message, code = _verdict(project, model, figures, syncs, redact)
            key_checks.append(check)
            codes.append(code)
            if message:
                messages.append(message)
                statuses.append(check.status)
        status = max((k.status for k in key_checks), key=STATUSES.index)
        model_syncs = sorted({s for k in key_checks for s in k.syncs})
        checks.append(ModelCheck(model=model_name, rows=rows, status=status, syncs=model_syncs,
                                 dbt_models=list(model.dbt_models), tags=list(model.tags), keys=key_checks,
                                 messages=messages, message_statuses=statuses))
    from .report import worst_exit_code

    return CheckReport(checks, worst_exit_code(codes))


def _verdict(project, model, figures, syncs: list[str],
             redact: Callable[[str], str]) -> tuple[KeyCheck, str | None, int]:
    """The KeyCheck of a key's figures (`dinsync.diff.keycheck.KeyFigures`), its message and exit code."""
    from .diff.keycheck import blocked_message, cut_key

    pk = figures.column == model.primary_key and figures.normalization == "none"
    limits = {s: project.syncs[s].thresholds.max_duplicate_pct for s in syncs}
    blocks = sorted(s for s, limit in limits.items() if figures.duplicate_rows and figures.duplicate_pct > limit)
    fail_on_warning = any(project.syncs[s].thresholds.fail_on_warning
                          for s in (syncs or [n for n, c in project.syncs.items() if c.model == model.name]))
    message, code = None, ExitCode.OK
    if blocks:
        status, code = "blocked", ExitCode.RUN_FAILED
        message = blocked_message(figures, limits[blocks[0]], blocks[0], redact)
        if len(blocks) > 1:
            message += f" (also blocks {', '.join(blocks[1:])})"
    elif syncs and figures.duplicate_rows:
        status = "warning"
        message = (f"model {model.name}: {figures.describe(redact)}; these rows are withheld by "
                   f"{', '.join(syncs)} (within the {min(limits.values()):g}% limit)")
    elif not syncs and (figures.duplicate_rows or figures.null_keys):
        status = "warning"
        problems = [f"{figures.null_keys:,} of {figures.rows:,} rows have a NULL or empty {figures.column}"] \
            if figures.null_keys else []
        if figures.duplicate_rows:
            problems.append(figures.describe(redact, what="value"))
        message = (f"model {model.name}: its declared primary key {figures.column} does not hold: "
                   f"{'; '.join(problems)} (syncs withhold rows by their matching keys only: no row is withheld "
                   "for it)")
    else:
        status = "ok"
    if status == "warning":
        code = ExitCode.WARNINGS if fail_on_warning else ExitCode.OK
    check = KeyCheck(column=figures.column, normalization=figures.normalization, primary_key=pk, syncs=list(syncs),
                     null_keys=figures.null_keys, duplicate_keys=figures.duplicate_keys,
                     duplicate_rows=figures.duplicate_rows, duplicate_pct=round(figures.duplicate_pct, 3),
                     limit_pct=min(limits.values()) if limits else None, status=status, blocks=blocks,
                     sample=[{"key": cut_key(redact(str(k))), "rows": n} for k, n in figures.sample])
    return check, message, code
