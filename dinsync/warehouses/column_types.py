"""The SQL column types a warehouse writes Arrow data into (`write_arrow(mode="replace")`), as
data: one `ColumnTypes` per warehouse family instead of one copy of the Arrow type walk each."""
from __future__ import annotations

from dataclasses import dataclass, replace

import pyarrow as pa

from .errors import WarehouseSqlError


@dataclass(frozen=True)
class ColumnTypes:
    family: str  # named in the error for an Arrow type no column holds
    int32: str
    float32: str
    float64: str
    decimal: str  # with {p} and {s}: precision and scale
    timestamp_tz: str

    def of(self, t: pa.DataType, text: str) -> str:
        """The column type of Arrow type `t`; `text`: the warehouse's type of text of any length
        (Capabilities.text_type)."""
        if pa.types.is_dictionary(t):
            return self.of(t.value_type, text)
        if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_null(t):
            return text
        if pa.types.is_boolean(t):
            return "BOOLEAN"
        if pa.types.is_int8(t) or pa.types.is_int16(t) or pa.types.is_uint8(t):
            return "SMALLINT"
        if pa.types.is_int32(t) or pa.types.is_uint16(t):
            return self.int32
        if pa.types.is_int64(t) or pa.types.is_uint32(t):
            return "BIGINT"
        if pa.types.is_uint64(t):
            return self.decimal.format(p=20, s=0)
        if pa.types.is_float16(t) or pa.types.is_float32(t):
            return self.float32
        if pa.types.is_float64(t):
            return self.float64
        if pa.types.is_decimal(t):
            return self.decimal.format(p=t.precision, s=t.scale)
        if pa.types.is_timestamp(t):
            return self.timestamp_tz if t.tz else "TIMESTAMP"
        if pa.types.is_date(t):
            return "DATE"
        raise WarehouseSqlError(f"cannot write Arrow type {t} to a {self.family} table")


POSTGRES_FAMILY = ColumnTypes("PostgreSQL-family", int32="INTEGER", float32="REAL", float64="DOUBLE PRECISION",
                              decimal="NUMERIC({p}, {s})", timestamp_tz="TIMESTAMPTZ")
SNOWFLAKE = replace(POSTGRES_FAMILY, family="Snowflake")  # (Snowflake reads the PostgreSQL names)
DATABRICKS = ColumnTypes("Databricks", int32="INT", float32="FLOAT", float64="DOUBLE", decimal="DECIMAL({p}, {s})",
                         timestamp_tz="TIMESTAMP")
