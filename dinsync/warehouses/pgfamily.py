"""Code shared by the warehouses that speak the PostgreSQL protocol (PostgreSQL, Redshift).

Mixins, combined by each adapter:
- `PgErrors`: SQLSTATE and libpq messages -> WarehouseErrors (`pg_errors`).
- `PsycopgSessions`: SQL through psycopg 3, one autocommit session per thread (a transaction
  belongs to the thread that opened it; session-temporary tables stay visible to it) (`pg_sessions`).
- `CsvCopyWrite`: bulk writes as `COPY ... FROM STDIN (FORMAT csv)`, the CSV made by Arrow (`pg_writes`).
- `MultiRowInsertWrite`: bulk writes as batched multi-row INSERTs (no COPY FROM STDIN) (`pg_writes`).
- `AdbcStream`: reads as Arrow record batches through ADBC (binary COPY on the server) (`pg_streams`).
- `CursorStream`: reads through a server-side cursor (DECLARE / FETCH), converted to Arrow (`pg_streams`).
How the diff's row fingerprint hashes their columns is in `pg_hash_forms`; how psycopg's values
become Arrow, in `pg_values`. This module names them all in one place.
"""
from __future__ import annotations

from .pg_errors import PgErrors, classify_pg
from .pg_hash_forms import (ARRAY_SHAPE, NATIVE_HASH_EXACT, NO_EXTENDED_HASH, SESSION_TEXT_FORMS, exact_hash_columns,
                            extended_hash_problem, record_problem, session_text_form, type_tree)
from .pg_sessions import PsycopgSessions
from .pg_streams import AdbcStream, CursorStream
from .pg_values import (BPCHAR_OID, NUMERIC_ARRAY_OID, NUMERIC_OID, any_dimensions, arrow_type_of_column,
                        calendar_array, calendar_list, numeric_array, numeric_from_text, numeric_list_array,
                        numeric_list_from_text, one_dimension)
from .pg_writes import CsvCopyWrite, MultiRowInsertWrite

__all__ = [
    "ARRAY_SHAPE", "BPCHAR_OID", "NATIVE_HASH_EXACT", "NO_EXTENDED_HASH", "NUMERIC_ARRAY_OID", "NUMERIC_OID",
    "SESSION_TEXT_FORMS", "AdbcStream", "CsvCopyWrite", "CursorStream", "MultiRowInsertWrite", "PgErrors",
    "PsycopgSessions", "any_dimensions", "arrow_type_of_column", "calendar_array", "calendar_list", "classify_pg",
    "exact_hash_columns", "extended_hash_problem", "numeric_array", "numeric_from_text", "numeric_list_array",
    "numeric_list_from_text", "one_dimension", "record_problem", "session_text_form", "type_tree",
]
