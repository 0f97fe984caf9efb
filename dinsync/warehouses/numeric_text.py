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
import pyarrow.compute as pc

NAME = "dinsync.numeric_text"


class NumericTextType(pa.ExtensionType):
    def __init__(self) -> None:
        super().__init__(pa.string(), NAME)

    def __arrow_ext_serialize__(self) -> bytes:
        return b""

    @classmethod
    def __arrow_ext_deserialize__(cls, storage_type, serialized) -> "NumericTextType":
        return cls()


NUMERIC_TEXT = NumericTextType()
try:
    pa.register_extension_type(NUMERIC_TEXT)
except pa.ArrowKeyError:  # already registered (module reloaded)
    pass

# ADBC writes PostgreSQL's specials as nan / inf / -inf: spelled as PostgreSQL does.
_SPECIALS = {"nan": "NaN", "inf": "Infinity", "-inf": "-Infinity", "+inf": "Infinity"}


def is_numeric_text(t: pa.DataType) -> bool:
    return isinstance(t, pa.BaseExtensionType) and t.extension_name == NAME


def numeric_text(values: pa.Array | pa.ChunkedArray) -> pa.Array:
    """A `numeric_text` array of the text of decimal numbers (strings; NULL stays NULL)."""
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
    return pa.ExtensionArray.from_storage(NUMERIC_TEXT, values)
