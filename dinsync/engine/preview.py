"""`dinsync plan`'s sample rows as a run would send them: the planner's few rows (its sample SQL,
values as the warehouse holds them) mapped in Python through the send path's own mapping
(`pipeline.map_plan_batch`: each field's kind, the key's checks, the row's size cap), so that a
HUGEINT, a DECIMAL, a timestamp or an email shows the JSON value the platform receives, and a value
the mapping would reject shows the reason instead."""
from __future__ import annotations

import dataclasses
import decimal
import json
import math
from typing import Any

from .pipeline import map_plan_batch


def mapped_samples(run, op: str, limit: int) -> list[dict]:
    """Up to `limit` plan rows of kind `op` of `run` (a planned `SyncRun`): {"key", "op", "fields":
    {field: value as sent}, "changed_fields", "rejected": [{"field", "reason"}]}. `fields` holds every
    field whose value maps (a changed row sends only its `changed_fields`); a field whose own value
    is rejected is left out of it, and `rejected` says why the run would reject the row (those
    fields, the key, the row's size), as `dinsync rejections` would list it."""
    import polars as pl
    import pyarrow as pa

    table = run.planner.sample_table(op, limit)
    # one record batch, as the stream's (a table's columns are chunked)
    table = pa.RecordBatch.from_arrays([c.combine_chunks() for c in table.columns], schema=table.schema)
    keys = table.column("_key").to_pylist()
    if op in ("removed", "duplicate"):
        return [{"key": k, "op": op, "fields": {}, "changed_fields": [], "rejected": []} for k in keys]
    mapping = run.mapping_plan()
    declared = getattr(run.planner, "declared_scale_values", ())
    n = table.num_rows
    batch = pa.RecordBatch.from_arrays(table.columns + [pa.array([op] * n, pa.string())],
                                       names=table.column_names + ["_op"])
    whole = map_plan_batch(batch, mapping, declared)
    rejected: dict[str, list[dict]] = {}
    for key, field, reason in whole.rejections.select("_key", "field", "reason").iter_rows():
        rejected.setdefault(key, []).append({"field": field, "reason": run.redact(reason)})
    _, refused = run.destination.preview(whole.frame, run.spec)  # what prepare() would refuse
    for r in refused:
        rejected.setdefault(r.key, []).append({"field": r.field, "reason": run.redact(r.reason)})
    # Each field on its own, for every row, under a key that passes (its position): the values of a
    # row the run rejects for one field, its key or its size are shown too.
    from ..mapping import KeyMapping

    alone = dataclasses.replace(mapping, key=KeyMapping(field=mapping.key.field, kind="string"))
    columns = dict(zip(batch.schema.names, batch.columns))
    columns["_key"] = pa.array([str(i) for i in range(n)], pa.string())
    columns.update({f"x{f.index}": pa.array([True] * n, pa.bool_()) for f in mapping.fields})
    every = pa.RecordBatch.from_arrays(list(columns.values()), names=list(columns))
    values: list[dict[str, Any]] = [{} for _ in range(n)]
    for at, f in enumerate(mapping.fields):
        out = map_plan_batch(every, alone, declared, fields=[f], whole_row=False).frame
        # the destination's forms of this field alone (the others not sent), as `prepare` gets them
        out = out.with_columns([pl.col("_t0").alias(f"_t{at}") if m == at else pl.lit(None, pl.String).alias(f"_t{m}")
                                for m in range(len(mapping.fields))])
        out, _ = run.destination.preview(out, run.spec)
        for position, text in out.select("_key", f"_t{at}").iter_rows():
            values[int(position)][f.field] = sent_value(text)
    out = []
    sent = pa.Table.from_batches([table]).select([f"x{f.index}" for f in mapping.fields]).to_pylist()
    for i, row in enumerate(sent):
        out.append({
            "key": keys[i],
            "op": op,
            "fields": {f.field: values[i][f.field] for f in mapping.fields if f.field in values[i]},
            "changed_fields": [f.field for f in mapping.fields if row[f"x{f.index}"]],
            "rejected": rejected.get(keys[i], []),
        })
    return out


def sent_value(text: str | None) -> Any:
    """A field's JSON text as sent (`_t{n}`) as a Python value: a number a 64-bit float holds
    exactly as a float, any other (more digits) as a Decimal of its digits, integers exact."""
    if text is None:
        return None
    return json.loads(text, parse_float=_number)


def _number(text: str) -> float | decimal.Decimal:
    value = float(text)
    exact = decimal.Decimal(text)
    if math.isfinite(value) and decimal.Decimal(repr(value)) == exact:  # (its shortest digits)
        return value
    return exact
