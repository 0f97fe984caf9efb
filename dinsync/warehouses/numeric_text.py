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
