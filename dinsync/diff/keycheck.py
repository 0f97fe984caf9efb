"""NULL and duplicated keys of a model, counted in the warehouse.

A sync's run gets these figures from its plan (the diff already groups the segment by key; see
`KeyFigures.from_plan`): no extra pass. `dinsync check` counts them without planning, with
`KeyCounter` (sql/key_counts.sql, one pass over the model; sql/key_duplicates.sql for a sample,
only when there are duplicates), using the plan's key expression (`keys.key_sql`) so both give the
same figures.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .keys import key_sql, phone_params
from .render import SqlError, check_identifier, check_model_sql, ident, render_template

SAMPLE_KEY_CHARS = 60  # a sample key longer than this is cut (keys are personal data: show little)


@dataclass
class KeyFigures:
    """What a key looks like in a model's rows. `sample`: the most duplicated values (key, rows)."""

    model: str
    column: str
    normalization: str  # how the key is read: email or lower (trimmed, lowercased) | trim | none
    rows: int
    null_keys: int
    duplicate_keys: int  # distinct values found on more than one row
    duplicate_rows: int  # rows holding such a value (all withheld by a sync matching on this key)
    sample: list[tuple[str, int]] = field(default_factory=list)

    @property
    def duplicate_pct(self) -> float:
        return 100.0 * self.duplicate_rows / self.rows if self.rows else 0.0

    @classmethod
    def from_plan(cls, model: str, column: str, normalization: str, stats: Any,
                  sample: list[tuple[str, int]]) -> "KeyFigures":
        """The figures a plan (`PlanStats`) already holds."""
        return cls(model=model, column=column, normalization=normalization, rows=stats.segment_rows,
                   null_keys=stats.null_keys, duplicate_keys=stats.duplicate_keys,
                   duplicate_rows=stats.duplicate_rows, sample=list(sample))

    def sample_text(self, redact=lambda s: s, limit: int = 5) -> str:
        return ", ".join(repr(cut_key(redact(str(k)))) for k, _ in self.sample[:limit])

    def describe(self, redact=lambda s: s, what: str = "matching key") -> str:
        """`6 of 20 rows (30.0%) share 3 duplicated matching keys (email) (e.g. 'a@x.co', ...)`."""
        what += "" if self.duplicate_keys == 1 else "s"
        text = (f"{self.duplicate_rows:,} of {self.rows:,} rows ({self.duplicate_pct:.1f}%) share "
                f"{self.duplicate_keys:,} duplicated {what} ({self.column})")
        sample = self.sample_text(redact)
        return text + (f" (e.g. {sample})" if sample else "")


def blocked_message(figures: KeyFigures, limit: float, sync: str, redact=lambda s: s) -> str:
    """Why the syncs of a model do not run (the same text wherever a sync is blocked)."""
    return (f"model {figures.model} is blocked: {figures.describe(redact)}, over the {limit:g}% limit of sync "
            f"{sync}; none of the model's syncs matching on {figures.column} run, nothing was sent")


def blocked_hint(figures: KeyFigures) -> str:
    return (f"make {figures.column} unique in model {figures.model}; "
            f"`dinsync check --select model:{figures.model}` lists the duplicated keys")


def cut_key(key: str) -> str:
    return key if len(key) <= SAMPLE_KEY_CHARS else key[:SAMPLE_KEY_CHARS - 1] + "…"


class KeyCounter:
    """Counts one key of one model in the warehouse (read-only: no state, no lock)."""

    def __init__(self, warehouse: Any, model: str, model_sql: str, column: str, normalization: str = "none",
                 phone_region: str | None = None):
        self.warehouse = warehouse
        self.model = model
        self.column = check_identifier(column, "key column")
        self.normalization = normalization
        self.dialect: str = warehouse.dialect
        self.model_sql = check_model_sql(model_sql, self.dialect)
        phone = phone_params(phone_region) if normalization == "phone" else ("", "")
        try:
            key_expr = key_sql(normalization, f"m.{ident(self.column)}", phone)
        except ValueError as exc:
            raise SqlError(str(exc)) from None
        self._ctx = {"key_expr": key_expr}

    def render(self, statement: str, limit: int = 5) -> str:
        """SQL of `key_counts` or `key_duplicates` (the `limit` most duplicated values)."""
        if statement not in ("key_counts", "key_duplicates"):
            raise ValueError(f"unknown statement {statement!r}")
        if not isinstance(limit, int) or isinstance(limit, bool) or limit < 0:
            raise ValueError(f"limit must be a non-negative integer, got {limit!r}")
        return render_template(statement, {**self._ctx, "limit": limit}, self.dialect, self.model_sql)

    def count(self, samples: int = 5) -> KeyFigures:
        from .model_errors import locating

        sql = self.render("key_counts")
        with locating(sql, self.model_sql):  # an error in the model's rows: its line (see located_in_model)
            row = self.warehouse.rows(sql)[0]
        counts = {k: int(v or 0) for k, v in row.items()}
        sample: list[tuple[str, int]] = []
        if counts["duplicate_keys"] and samples:
            sql = self.render("key_duplicates", limit=samples)
            with locating(sql, self.model_sql):
                found = self.warehouse.rows(sql)
            sample = [(r["_key"], int(r["_n"])) for r in found]
        return KeyFigures(model=self.model, column=self.column, normalization=self.normalization,
                          rows=counts["segment_rows"], null_keys=counts["null_keys"],
                          duplicate_keys=counts["duplicate_keys"], duplicate_rows=counts["duplicate_rows"],
                          sample=sample)
