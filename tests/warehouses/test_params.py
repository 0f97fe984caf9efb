"""`:name` bind parameters, translated for each driver's paramstyle."""
import pytest

from dinsync.warehouses.params import placeholders, translate

SQL = "SELECT ':no', \"a:b\", x::text, 5 % 2 -- :comment\n/* :block */ FROM t WHERE a = :a AND b = :b OR a = :a"


def test_only_real_placeholders_are_found():
    assert placeholders(SQL) == ("a", "b", "a")


@pytest.mark.parametrize("style,sql,params", [
    ("pyformat", "SELECT ':no', \"a:b\", x::text, 5 %% 2 -- :comment\n/* :block */ FROM t WHERE a = %(a)s AND b = %(b)s "
                 "OR a = %(a)s", {"a": 1, "b": "x"}),
    ("format", "SELECT ':no', \"a:b\", x::text, 5 %% 2 -- :comment\n/* :block */ FROM t WHERE a = %s AND b = %s OR a = %s",
     [1, "x", 1]),
    ("qmark", "SELECT ':no', \"a:b\", x::text, 5 % 2 -- :comment\n/* :block */ FROM t WHERE a = ? AND b = ? OR a = ?",
     [1, "x", 1]),
    ("dollar", "SELECT ':no', \"a:b\", x::text, 5 % 2 -- :comment\n/* :block */ FROM t WHERE a = $a AND b = $b OR a = $a",
     {"a": 1, "b": "x"}),
    ("numeric_dollar", "SELECT ':no', \"a:b\", x::text, 5 % 2 -- :comment\n/* :block */ FROM t WHERE a = $1 AND b = $2 "
                       "OR a = $1", [1, "x"]),
    ("at", "SELECT ':no', \"a:b\", x::text, 5 % 2 -- :comment\n/* :block */ FROM t WHERE a = @a AND b = @b OR a = @a",
     {"a": 1, "b": "x"}),
    ("colon", SQL, {"a": 1, "b": "x"}),
])
def test_translate(style, sql, params):
    assert translate(SQL, {"a": 1, "b": "x", "unused": 3}, style) == (sql, params)


def test_quotes_doubled_inside_literals_and_identifiers():
    sql = "SELECT 'it''s :not' AS \"q\"\":x\" WHERE v = :v"
    assert translate(sql, {"v": 1}, "qmark") == ("SELECT 'it''s :not' AS \"q\"\":x\" WHERE v = ?", [1])


def test_no_params_leaves_sql_alone():
    assert translate("SELECT 5 % 2, :a", None, "pyformat") == ("SELECT 5 % 2, :a", None)


def test_missing_value_is_named():
    with pytest.raises(KeyError, match="b"):
        translate("SELECT :a, :b", {"a": 1}, "pyformat")


def test_unknown_style():
    with pytest.raises(ValueError):
        translate("SELECT :a", {"a": 1}, "nope")
