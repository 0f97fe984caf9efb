"""A model's statement is found without a SQL tokenizer when the text is simple (no `;` inside, no
`/* */`), so loading a project does not import sqlglot; the result is the tokenizer's."""
from __future__ import annotations

import pytest

from dinsync.config import loader, model_files

SIMPLE = [
    "-- primary_key: id\nselect id, email from t\n",
    "-- primary_key: id\n-- model_type: user\n\nselect id,\n  email\nfrom t\nwhere x = '--'\n",
    "-- primary_key: id\nselect id from t;\n",
    "-- primary_key: id\nselect id from t  ;  \n\n",
    "-- primary_key: id\nselect id from t\n-- trailing comment\n\n",
]
COMPLEX = [
    "-- primary_key: id\nselect 'a;b' as id from t\n",
    "-- primary_key: id\n/* block */ select id from t\n",
    "-- primary_key: id\nselect id from t -- done;\n",
    "-- primary_key: id\nselect 1 as id; select 2\n",
    "-- primary_key: id\nselect id from t where x = 'a'\n-- trailing comment\n",
]


def tokenized(text: str):
    issues: list = []
    original = model_files._single_statement
    model_files._single_statement = lambda text: None
    try:
        return loader._Loader._model_sql(text, "m.sql", issues), issues
    finally:
        model_files._single_statement = original


@pytest.mark.parametrize("text", SIMPLE)
def test_fast_path_agrees_with_the_tokenizer(text):
    assert model_files._single_statement(text) is not None
    issues: list = []
    assert loader._Loader._model_sql(text, "m.sql", issues) == tokenized(text)[0]
    assert issues == []


@pytest.mark.parametrize("text", COMPLEX)
def test_anything_else_goes_to_the_tokenizer(text):
    assert model_files._single_statement(text) is None


def test_a_header_only_model_is_reported_empty():
    issues: list = []
    assert loader._Loader._model_sql("-- primary_key: id\n\n", "m.sql", issues) == ("", None)
    assert [i.message for i in issues] == ["model SQL is empty"]


def test_a_string_whose_last_line_starts_like_a_comment_is_kept_whole():
    """A string literal spanning lines, the last of which begins with `--`: the fast path took that
    line for a trailing comment and cut the statement inside its string, so a valid model failed in
    the warehouse with "unterminated string literal"."""
    text = "-- primary_key: id\nselect id, 'first line\n-- second line' as note from t\n"
    issues: list = []
    assert loader._Loader._model_sql(text, "m.sql", issues) == (
        "select id, 'first line\n-- second line' as note from t", 2)
    assert issues == [] and tokenized(text) == (("select id, 'first line\n-- second line' as note from t", 2), [])


@pytest.mark.parametrize("text", [
    "-- primary_key: id\n/* a comment\n   over two lines */ select 1 as id\n",
    "-- primary_key: id\n/* multi\nline; */ with x as (select 1 as id) select * from x;\n",
    "-- primary_key: id\n/* one */ /* two\nthree */ select 1 as id\n",
])
def test_a_block_comment_ending_on_the_statement_s_first_line_is_not_cut(text):
    """The statement was taken from the start of its first token's line, to keep a comment there:
    where a block comment opened on an earlier line ended on that one, its tail (`line; */ with
    ...`) began the model's SQL, which no warehouse could run (validate and sync: exit 3)."""
    import duckdb

    issues: list = []
    sql, line = loader._Loader._model_sql(text, "m.sql", issues)
    assert issues == []
    assert duckdb.sql(sql).fetchall() == [(1,)], sql
    assert line == text.count("\n", 0, text.rfind("*/")) + 1  # (the first token's line)
