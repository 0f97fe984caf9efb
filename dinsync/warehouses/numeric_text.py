"""Decimal numbers read as text: `numeric_text`, an Arrow extension type (storage: string).

PostgreSQL's `numeric` holds what no Arrow type the mapping reads does: up to 131,072 digits
before the point (decimal128 holds 38; Polars reads no decimal256) and, in any `numeric(p, s)`
column, NaN (and ±Infinity where the column is unconstrained). Read as decimal128 or float64, a NaN
became NULL (sent as null: the platform's value cleared) and a wide value lost digits. Read as
its text instead (PostgreSQL's own digits, e.g. `12345678901234567.89`, or `NaN`, `Infinity`,
`-Infinity`), in every batch of a stream whatever the values: the mapping sends the digits as a
JSON number and rejects the row of a NaN or an infinity with a reason, as it does for floats.
"""
from __future__ import annotations

import pyarrow as pa

NAME = "dinsync.numeric_text"


class NumericTextType(pa.ExtensionType):
    """`free_scale`: the column declares no scale (an unconstrained `numeric`: sums, averages), so
    its values' scales differ from row to row (`5`, `0.5`); the mapping writes each with a fraction
    (`5.0`), as a float column would be: a platform that types a field by the first number it sees
    (Iterable) then never finds an integer in a decimal field, or the reverse."""

    def __init__(self, free_scale: bool = False) -> None:
        self.free_scale = free_scale
        super().__init__(pa.string(), NAME)

    def __arrow_ext_serialize__(self) -> bytes:
        return b"free_scale" if self.free_scale else b""

    @classmethod
    def __arrow_ext_deserialize__(cls, storage_type, serialized) -> "NumericTextType":
        return cls(free_scale=serialized == b"free_scale")


NUMERIC_TEXT = NumericTextType()
try:
    pa.register_extension_type(NUMERIC_TEXT)
except pa.ArrowKeyError:  # already registered (module reloaded)
    pass

# ADBC writes PostgreSQL's specials as nan / inf / -inf: spelled as PostgreSQL does.
_SPECIALS = {"nan": "NaN", "inf": "Infinity", "-inf": "-Infinity", "+inf": "Infinity"}


def is_numeric_text(t: pa.DataType) -> bool:
    return isinstance(t, pa.BaseExtensionType) and t.extension_name == NAME


def is_numeric_text_list(t: pa.DataType) -> bool:
    """A list of `numeric_text` (PostgreSQL's `numeric[]`)."""
    return (pa.types.is_list(t) or pa.types.is_large_list(t)) and is_numeric_text(t.value_type)


def numeric_text_list(lists: pa.Array | pa.ChunkedArray, free_scale: bool = False) -> pa.Array:
    """A list array whose elements are the text of decimal numbers (strings, or an extension type
    stored as strings: ADBC's opaque `numeric`) as a list of `numeric_text`: a `numeric[]` whose
    elements had gone as JSON strings ("1.5", "nan") is sent as numbers, and its NaN rejected."""
    if isinstance(lists, pa.ChunkedArray):
        lists = lists.combine_chunks()
    if lists.offset:  # (a slice: its offsets point into its parent's values, which a mask cannot take)
        lists = pa.concat_arrays([lists])
    values = lists.values
    if isinstance(values.type, pa.BaseExtensionType):
        values = values.storage
    kind = pa.LargeListArray if pa.types.is_large_list(lists.type) else pa.ListArray
    return kind.from_arrays(lists.offsets, numeric_text(values, free_scale), mask=lists.is_null())


def free_scale(t: pa.DataType) -> bool:
    """Whether a `numeric_text` type's column declares no scale (see NumericTextType)."""
    return bool(getattr(t, "free_scale", False))


def numeric_text(values: pa.Array | pa.ChunkedArray, free_scale: bool = False) -> pa.Array:
    """A `numeric_text` array of the text of decimal numbers (strings; NULL stays NULL); `free_scale`:
    the column declares no scale (see NumericTextType)."""
    import pyarrow.compute as pc  # (only where numerics are read: its first import costs ~25 ms)

    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if values.type != pa.string():
        values = values.cast(pa.string())
    lowered = pc.utf8_lower(values)
    special = pc.is_in(lowered, pa.array(list(_SPECIALS)))
    if pc.any(special).as_py():
        spelled = pc.replace_with_mask(values, special, pc.filter(
            pc.take(pa.array(list(_SPECIALS.values())), pc.index_in(lowered, pa.array(list(_SPECIALS)))), special))
        values = spelled
    return pa.ExtensionArray.from_storage(NumericTextType(free_scale) if free_scale else NUMERIC_TEXT, values)


def wide_decimals_as_text(batch):
    """A record batch (or table) whose decimal256 columns are `numeric_text` (free scale), the
    others as they are. Polars reads no decimal256 (its import panics: the whole run failed with a
    Rust traceback); a driver that reads a wide decimal type as decimal256 at a fixed scale
    (google-cloud-bigquery: BIGNUMERIC as decimal256(76, 38), 1 as 1.000...000 with 38 zeros) has
    its values sent as their exact digits, without the padding zeros of that scale."""
    import pyarrow.compute as pc

    if not any(pa.types.is_decimal256(f.type) for f in batch.schema):
        return batch
    columns, fields = [], []
    for f, col in zip(batch.schema, batch.columns):
        if pa.types.is_decimal256(f.type):
            if isinstance(col, pa.ChunkedArray):
                col = col.combine_chunks()
            text = col.cast(pa.string())
            sci = pc.match_substring(text, "E").fill_null(False)
            if pc.any(sci).as_py():  # Arrow writes 0 and values below 1e-6 as 0E-38, 1.00E-7: the plain digits
                plain = [format(v, "f") if v is not None else None for v in pc.filter(col, sci).to_pylist()]
                text = pc.replace_with_mask(text, sci, pa.array(plain, pa.string()))
            if f.type.scale > 0:  # the fixed scale's padding zeros (and a point left bare)
                text = pc.replace_substring_regex(text, r"(\.[0-9]*?)0+$", r"\1")
                text = pc.replace_substring_regex(text, r"\.$", "")
                text = pc.if_else(pc.equal(text, "-0"), "0", text)
            col = numeric_text(text, free_scale=True)
            f = pa.field(f.name, col.type, f.nullable)
        columns.append(col)
        fields.append(f)
    schema = pa.schema(fields, metadata=batch.schema.metadata)
    return type(batch).from_arrays(columns, schema=schema)
