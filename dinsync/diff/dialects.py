"""What each warehouse's SQL puts in place of the templates' DINSYNC_* pseudo-functions (data).

One entry per sqlglot dialect. A pattern is SQL text of that dialect with placeholders:

  {x}                 the (single) argument
  {args}              all arguments, comma-separated
  {args_text}         each argument cast to the dialect's text type, comma-separated
  {args_text_concat}  each argument cast to text, joined with `|| ',' ||`
  {args_hash}         each argument wrapped in DINSYNC_HASH(...), comma-separated
  {args_typeof}       each argument wrapped in TYPEOF(...), comma-separated (DuckDB)

A pattern may use other pseudo-functions (they are replaced in turn). Contracts:

  DINSYNC_HASH(x)            64-bit hash of x's text form; never NULL (NULL has its own value)
  DINSYNC_ROWHASH(a, ...)    order-sensitive hash of several non-NULL hashes, whose DINSYNC_DIGEST
                             over rows no structured change cancels (not XOR-linear in any argument)
  DINSYNC_FINGERPRINT(v...)  hash of a row's values: equal values (of equal types) give equal hashes
  DINSYNC_DIGEST(x)          order-independent aggregate of hashes, always compared with a row count
  DINSYNC_TRIM(x)            x without the Unicode white space (SPACES below) at either end, as
                             Polars' strip_chars (normalize_email); each engine's own TRIM drops
                             other sets (PostgreSQL and Snowflake ' ' only, DuckDB the Zs spaces
                             but not tabs or line breaks), so one key differed by warehouse
  DINSYNC_DIGITS(x)          x without any character other than ASCII digits
  DINSYNC_PHONECHARS(x)      x without any character other than ASCII digits and '+'
  DINSYNC_PHONEREST(x)       x without ASCII digits and the separators of phone numbers (space,
                             tab, CR, LF, no-break spaces U+00A0 U+202F, '-', '.', '(', ')', '/',
                             the dashes U+2010-U+2015 and U+2212; PHONE_KEY_READ below): '+' and what a
                             phone key may not hold
  DINSYNC_UNLETTERED(x)      x without ASCII letters and '+'
  DINSYNC_TEXT(x)            x's text form, compared character for character (a key's text)
  DINSYNC_EXACT(x)           x, or a form of it whose hash tells apart any two values whose text
                             forms differ, or that differ where the text form does not show it
                             (a Snowflake FLOAT or timestamp): the fingerprint's argument, and the
                             value hashed, for a column the adapter names (see
                             Warehouse.exact_hash_columns)

Adding a warehouse (e.g. Redshift, Databricks) means adding one entry here, plus its hash column
type and its capabilities in its adapter.
"""
from __future__ import annotations

# The separators of a phone number, with the ASCII digits, as a regular-expression class that
# PostgreSQL/Redshift (POSIX), DuckDB/BigQuery (RE2), Snowflake and Spark read alike; the same as
# dinsync.mapping.normalize.PHONE_KEY_READ (the Polars twin), which a test checks.
PHONE_KEY_READ = "[-0-9 \\t\\n\\r()./\u00a0\u202f\u2010\u2011\u2012\u2013\u2014\u2015\u2212]"
_PHONEREST = "REGEXP_REPLACE({x}, '" + PHONE_KEY_READ + "', ''"
# Unicode White_Space (what Rust's char::is_whitespace, so Polars' strip_chars, drops): the ASCII
# controls as CHR() (no dialect's string escapes involved), the others as written
_WIDE_SPACES = "\u0085\u00a0\u1680" + "".join(map(chr, range(0x2000, 0x200B))) + "\u2028\u2029\u202f\u205f\u3000"
SPACES = "\t\n\x0b\x0c\r " + _WIDE_SPACES
_SPACES_SQL = "CHR(9) || CHR(10) || CHR(11) || CHR(12) || CHR(13) || ' " + _WIDE_SPACES + "'"
_TRIM_BOTH = "TRIM(BOTH " + _SPACES_SQL + " FROM {x})"
# the same characters as an RE2 class, in ASCII (DuckDB's strings have no escapes; RE2 reads
# these), braces doubled for the pattern's format()
_RE2_SPACES = "[\\t\\n\\v\\f\\r \\x{{85}}\\x{{A0}}\\x{{1680}}\\x{{2000}}-\\x{{200A}}\\x{{2028}}\\x{{2029}}\\x{{202F}}\\x{{205F}}\\x{{3000}}]"

DIALECT_SQL: dict[str, dict[str, str]] = {
    "duckdb": {
        # DuckDB's hash() maps NULL to a fixed non-NULL value, distinct from '' and 'NULL'.
        # COLLATE C: a column of a case- or accent-insensitive collation (`VARCHAR COLLATE NOCASE`)
        # keeps it through the cast, and its hash ignores case, so `Bob` -> `BOB` hashed the same
        # and was never sent; a text of no collation hashes as before (C is byte for byte)
        "DINSYNC_HASH": "HASH(CAST({x} AS VARCHAR) COLLATE C)",
        # HASH(a, b) is g(HASH(a)) XOR HASH(b): XOR-linear in b, so in a BIT_XOR digest two rows
        # that swap fingerprints, or make the same change, cancel out ("nothing changed"). Hashing
        # that once more (a multiplying finaliser, not XOR-linear) mixes key and fingerprint.
        "DINSYNC_ROWHASH": "HASH(HASH({args}))",
        # native hash of the values (several times faster than their text), with the types' names
        # mixed in (TYPEOF is folded to a constant when the query is bound)
        "DINSYNC_FINGERPRINT": "HASH({args}, CONCAT_WS(',', {args_typeof}))",
        "DINSYNC_DIGEST": "BIT_XOR({x})",
        # an ASCII string with no space or control character at either end is returned as is
        # (ASCII's white space is at most ' '): same result, several times faster; the others
        # through RE2 (TRIM(x, chars) took 3.7 us a row, the regular expression 1 us)
        "DINSYNC_TRIM": "CASE WHEN ASCII({x}) > 32 AND ASCII(RIGHT({x}, 1)) > 32 AND STRLEN({x}) = LENGTH({x}) "
                        "THEN {x} ELSE REGEXP_REPLACE({x}, '^" + _RE2_SPACES + "+|" + _RE2_SPACES + "+$', '', 'g') END",
        "DINSYNC_DIGITS": "REGEXP_REPLACE({x}, '[^0-9]', '', 'g')",
        "DINSYNC_PHONECHARS": "REGEXP_REPLACE({x}, '[^0-9+]', '', 'g')",
        "DINSYNC_PHONEREST": _PHONEREST + ", 'g')",
        "DINSYNC_UNLETTERED": "REGEXP_REPLACE({x}, '[A-Za-z+]', '', 'g')",
        # a key compares as the text the platform receives: under a NOCASE column's collation,
        # the userIds u1 and U1 were one (duplicated) key, withheld
        "DINSYNC_TEXT": "CAST({x} AS VARCHAR) COLLATE C",
        # a nested column's text form (DuckDBWarehouse.exact_hash_columns): HASH equates [] and NULL;
        # a text column's under no case- or accent-insensitive collation (same hash as its native one)
        "DINSYNC_EXACT": "CAST({x} AS VARCHAR) COLLATE C",
    },
    "postgres": {
        # COLLATE "C": a text's hash under a nondeterministic collation (ICU `deterministic =
        # false`, e.g. case-insensitive) is the hash of its sort key, so `Bob` -> `BOB` hashed
        # the same and was never sent; under a deterministic collation the hash is that of the
        # bytes, so the values of every other column hash as before
        "DINSYNC_HASH": "COALESCE(HASHTEXTEXTENDED(CAST({x} AS TEXT) COLLATE \"C\", 0), 0)",
        # || keeps a NULL as NULL (CONCAT would skip it)
        "DINSYNC_ROWHASH": "HASHTEXTEXTENDED(({args_text_concat}), 0)",
        # the row hashed by each column type's own hash function (PostgreSQL 14+): about 3x cheaper
        # than hashing each value's text; a json, xml or geometric column must be cast in the model
        # (the adapter's error says so). The columns whose type's hash may equate values of other
        # text forms (text under a case-insensitive collation, citext, arrays and composites of
        # them) arrive wrapped in DINSYNC_EXACT: the adapter names them (exact_hash_columns).
        "DINSYNC_FINGERPRINT": "HASH_RECORD_EXTENDED(ROW({args}), 0)",
        "DINSYNC_DIGEST": "SUM({x})",  # NUMERIC: exact
        "DINSYNC_TRIM": _TRIM_BOTH,
        "DINSYNC_DIGITS": "REGEXP_REPLACE({x}, '[^0-9]', '', 'g')",
        "DINSYNC_PHONECHARS": "REGEXP_REPLACE({x}, '[^0-9+]', '', 'g')",
        "DINSYNC_PHONEREST": _PHONEREST + ", 'g')",
        "DINSYNC_UNLETTERED": "REGEXP_REPLACE({x}, '[A-Za-z+]', '', 'g')",
        # a key compares as the text the platform receives: under the column's collation, a
        # case-insensitive one (ICU, deterministic = false) made u1 and U1 one (duplicated) key.
        # "default" (the database's, deterministic) rather than "C": LOWER of an email key keeps
        # lowering non-ASCII letters as before ("C" lowers A-Z only)
        "DINSYNC_TEXT": "CAST({x} AS TEXT) COLLATE \"default\"",
        "DINSYNC_EXACT": "CAST({x} AS TEXT) COLLATE \"C\"",
    },
    "snowflake": {
        # Snowflake's HASH is a signed 64-bit NUMBER(19, 0). `% 9223372036854775807` keeps it one
        # (a no-op but for the two values +-(2^63 - 1), which become 0) on Snowflake, and is what
        # lets the same SQL run on fakesnow (tests), whose HASH is DuckDB's unsigned 64-bit hash:
        # the remainder fits the BIGINT hash columns there too.
        "DINSYNC_HASH": "COALESCE(HASH(CAST({x} AS VARCHAR)) % 9223372036854775807, 0)",
        "DINSYNC_ROWHASH": "HASH({args}) % 9223372036854775807",
        "DINSYNC_FINGERPRINT": "DINSYNC_ROWHASH({args_hash})",
        # NUMBER(38, 0) on Snowflake already; the cast keeps the sum exact on fakesnow (DuckDB
        # sums of 64-bit integers are HUGEINT, which fakesnow returns as a float)
        "DINSYNC_DIGEST": "SUM(CAST({x} AS NUMBER(38, 0)))",
        "DINSYNC_TRIM": "TRIM({x}, " + _SPACES_SQL + ")",
        "DINSYNC_DIGITS": "REGEXP_REPLACE({x}, '[^0-9]', '')",
        "DINSYNC_PHONECHARS": "REGEXP_REPLACE({x}, '[^0-9+]', '')",
        "DINSYNC_PHONEREST": _PHONEREST + ")",
        "DINSYNC_UNLETTERED": "REGEXP_REPLACE({x}, '[A-Za-z+]', '')",
        "DINSYNC_TEXT": "CAST({x} AS VARCHAR)",
        # a FLOAT, timestamp or TIME column (SnowflakeWarehouse.exact_hash_columns): their text has
        # about 15 significant digits, or the session's output format (milliseconds by default), so
        # values differing beyond them had one text and one hash; the native HASH of the value
        # tells them apart (and its number's text is exact)
        "DINSYNC_EXACT": "HASH({x})",
    },
    "bigquery": {
        "DINSYNC_HASH": "COALESCE(FARM_FINGERPRINT(CAST({x} AS STRING)), 0)",
        "DINSYNC_ROWHASH": "FARM_FINGERPRINT({args_text_concat})",
        "DINSYNC_FINGERPRINT": "DINSYNC_ROWHASH({args_hash})",
        "DINSYNC_DIGEST": "BIT_XOR({x})",
        "DINSYNC_TRIM": "TRIM({x}, '" + SPACES + "')",  # (no CHR: the string's escapes are BigQuery's)
        "DINSYNC_DIGITS": "REGEXP_REPLACE({x}, '[^0-9]', '')",
        "DINSYNC_PHONECHARS": "REGEXP_REPLACE({x}, '[^0-9+]', '')",
        "DINSYNC_PHONEREST": _PHONEREST + ")",
        "DINSYNC_UNLETTERED": "REGEXP_REPLACE({x}, '[A-Za-z+]', '')",
        "DINSYNC_TEXT": "CAST({x} AS STRING)",
        "DINSYNC_EXACT": "{x}",
    },
    "redshift": {
        # FNV_HASH's answer for NULL is undocumented: NULL is decided here
        "DINSYNC_HASH": "CASE WHEN {x} IS NULL THEN 0 ELSE FNV_HASH(CAST({x} AS VARCHAR(65535))) END",
        "DINSYNC_ROWHASH": "FNV_HASH({args_text_concat})",
        "DINSYNC_FINGERPRINT": "DINSYNC_ROWHASH({args_hash})",
        "DINSYNC_DIGEST": "SUM(CAST({x} AS NUMERIC(38, 0)))",  # SUM(BIGINT) is BIGINT on Redshift: exact
        "DINSYNC_TRIM": _TRIM_BOTH,
        "DINSYNC_DIGITS": "REGEXP_REPLACE({x}, '[^0-9]', '')",
        "DINSYNC_PHONECHARS": "REGEXP_REPLACE({x}, '[^0-9+]', '')",
        "DINSYNC_PHONEREST": _PHONEREST + ")",
        "DINSYNC_UNLETTERED": "REGEXP_REPLACE({x}, '[A-Za-z+]', '')",
        # (a column of Redshift's CASE_INSENSITIVE collation is not handled: Redshift has no
        # COLLATE clause, and its COLLATE(x, 'cs') function does not run on the PostgreSQL server
        # Redshift's SQL is tested on; untested whether FNV_HASH and GROUP BY follow that collation)
        "DINSYNC_TEXT": "CAST({x} AS VARCHAR(65535))",
        "DINSYNC_EXACT": "{x}",
    },
    "databricks": {
        # XXHASH64 skips NULL arguments (the seed is returned): NULL is decided here
        "DINSYNC_HASH": "CASE WHEN {x} IS NULL THEN 0 ELSE XXHASH64(CAST({x} AS STRING)) END",
        # XXHASH64 of several values chains them in order: order-sensitive, no text built
        "DINSYNC_ROWHASH": "XXHASH64({args})",
        # each value hashed first (NULL -> 0), so NULLs keep their place in the row
        "DINSYNC_FINGERPRINT": "DINSYNC_ROWHASH({args_hash})",
        # BIT_XOR never overflows (SUM of BIGINT fails on overflow under ANSI mode)
        "DINSYNC_DIGEST": "BIT_XOR({x})",
        "DINSYNC_TRIM": _TRIM_BOTH,
        "DINSYNC_DIGITS": "REGEXP_REPLACE({x}, '[^0-9]', '')",  # Spark: every match is replaced
        "DINSYNC_PHONECHARS": "REGEXP_REPLACE({x}, '[^0-9+]', '')",
        "DINSYNC_PHONEREST": _PHONEREST + ")",
        "DINSYNC_UNLETTERED": "REGEXP_REPLACE({x}, '[A-Za-z+]', '')",
        "DINSYNC_TEXT": "CAST({x} AS STRING)",
        "DINSYNC_EXACT": "{x}",
    },
}

# Text type for {args_text} and CAST(... AS VARCHAR) in patterns, per dialect. Redshift's bare
# VARCHAR is 256 bytes: VARCHAR(65535) (rather than VARCHAR(MAX), so the same SQL also runs on
# PostgreSQL in the Redshift adapter's tests).
TEXT_TYPES = {"duckdb": "VARCHAR", "postgres": "TEXT", "snowflake": "VARCHAR", "bigquery": "STRING",
              "redshift": "VARCHAR(65535)", "databricks": "STRING"}
# Dialects whose bare VARCHAR / TEXT is bounded: every such type in the templates becomes this.
UNBOUNDED_TEXT = {"redshift": "VARCHAR(65535)"}

# Dialects whose UPDATE takes no FROM (Delta): `UPDATE t SET ... FROM s WHERE c` is rendered as
# `MERGE INTO t USING s ON c WHEN MATCHED THEN UPDATE SET ...` (the templates' sources match at most
# one row of the target: a MERGE fails rather than pick one of several).
UPDATE_FROM_AS_MERGE = {"databricks"}

# Type of the hash columns when no warehouse says otherwise (golden tests, `render`).
DEFAULT_HASH_TYPES = {"duckdb": "UBIGINT", "postgres": "BIGINT", "snowflake": "BIGINT", "bigquery": "INT64",
                      "redshift": "BIGINT", "databricks": "BIGINT"}

DIALECTS = tuple(DIALECT_SQL)
