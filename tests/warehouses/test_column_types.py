"""The column types `write_arrow(mode="replace")` creates, per warehouse family (column_types.py)."""
from __future__ import annotations

import pyarrow as pa
import pytest

from dinsync.warehouses.column_types import DATABRICKS, POSTGRES_FAMILY, SNOWFLAKE
from dinsync.warehouses.errors import WarehouseSqlError


@pytest.mark.parametrize("arrow, postgres, databricks", [
    (pa.string(), "TEXT", "STRING"),
    (pa.dictionary(pa.int32(), pa.large_string()), "TEXT", "STRING"),
    (pa.null(), "TEXT", "STRING"),
    (pa.bool_(), "BOOLEAN", "BOOLEAN"),
    (pa.uint8(), "SMALLINT", "SMALLINT"),
    (pa.uint16(), "INTEGER", "INT"),
    (pa.uint32(), "BIGINT", "BIGINT"),
    (pa.uint64(), "NUMERIC(20, 0)", "DECIMAL(20, 0)"),
    (pa.float32(), "REAL", "FLOAT"),
    (pa.float64(), "DOUBLE PRECISION", "DOUBLE"),
    (pa.decimal128(12, 3), "NUMERIC(12, 3)", "DECIMAL(12, 3)"),
    (pa.timestamp("us"), "TIMESTAMP", "TIMESTAMP"),
    (pa.timestamp("us", tz="UTC"), "TIMESTAMPTZ", "TIMESTAMP"),
    (pa.date32(), "DATE", "DATE"),
])
def test_each_family_names_its_own_types(arrow, postgres, databricks):
    assert POSTGRES_FAMILY.of(arrow, "TEXT") == postgres
    assert DATABRICKS.of(arrow, "STRING") == databricks


def test_text_is_the_warehouse_s_own():
    assert POSTGRES_FAMILY.of(pa.string(), "VARCHAR(65535)") == "VARCHAR(65535)"  # Redshift
    assert SNOWFLAKE.of(pa.large_string(), "VARCHAR") == "VARCHAR"


def test_an_arrow_type_no_column_holds_names_the_warehouse():
    with pytest.raises(WarehouseSqlError, match="cannot write Arrow type list<item: int64> to a Snowflake table"):
        SNOWFLAKE.of(pa.list_(pa.int64()), "VARCHAR")
