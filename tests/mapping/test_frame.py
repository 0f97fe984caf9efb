"""map_batch: keys, kinds, limits, flags, and agreement with a per-row reference."""
from __future__ import annotations

import datetime as dt
import decimal
import math
import random

import orjson
import polars as pl
import pytest

from dinsync.mapping.frame import FRAME_SCHEMA, REJECTION_SCHEMA, FieldMapping, KeyMapping, MappedBatch, map_batch

EMAIL = KeyMapping("email", "email")


def plan(keys: list, *columns, ops: list | None = None) -> pl.DataFrame:
    """A plan batch: each column is a Series/list of values, or (values, flags)."""
    data: dict[str, pl.Series] = {
        "_key": pl.Series(keys, dtype=pl.String),
        "_op": pl.Series(ops or ["added"] * len(keys), dtype=pl.String),
    }
    for i, col in enumerate(columns):
        values, flags = col if isinstance(col, tuple) else (col, [True] * len(keys))
        data[f"v{i}"] = values if isinstance(values, pl.Series) else pl.Series(values, strict=False)
        data[f"x{i}"] = pl.Series(flags, dtype=pl.Boolean)
    return pl.DataFrame(data)


def fields(*names: str, kind: str = "auto") -> list[FieldMapping]:
    return [FieldMapping(i, n, kind) for i, n in enumerate(names)]


def objects(batch: MappedBatch) -> list[dict]:
    return [orjson.loads(j) for j in batch.frame["_json"]]


def reasons(batch: MappedBatch) -> list[str]:
    return batch.rejections["reason"].to_list()


def one(values: list, kind: str = "auto", dtype=None, **kw) -> MappedBatch:
    keys = [f"u{i}@example.com" for i in range(len(values))]
    series = pl.Series(values, dtype=dtype, strict=False)
    return map_batch(plan(keys, series), EMAIL, fields("f", kind=kind), **kw)


def check_shape(batch: MappedBatch) -> None:
    assert dict(batch.frame.schema) == FRAME_SCHEMA
    assert dict(batch.rejections.schema) == REJECTION_SCHEMA
    for text, size in zip(batch.frame["_json"], batch.frame["_bytes"]):
        assert len(text.encode()) == size
        assert isinstance(orjson.loads(text), dict)
    assert not set(batch.frame["_key"].drop_nulls()) & set(batch.rejections["_key"].drop_nulls())


# --- keys ----------------------------------------------------------------------------------

def test_null_key_is_rejected():
    b = map_batch(plan([None, "a@b.co"], ["x", "y"]), EMAIL, fields("name"))
    check_shape(b)
    assert b.frame["_key"].to_list() == ["a@b.co"]
    assert b.rejections.to_dicts() == [{"_key": None, "field": "email", "reason": 'key "email": value is null'}]


@pytest.mark.parametrize(
    ("key", "phrase"),
    [
        ("no-at-sign", "has no @"),
        ("two@@example.com", "more than one @"),
        ("sp ace@example.com", "whitespace"),
        ("", "is empty"),
        ("@example.com", "empty local part"),
        ("x" * 65 + "@example.com", "longer than 64"),
    ],
)
def test_malformed_email_keys(key, phrase):
    b = map_batch(plan([key, "ok@example.com"], [1, 2]), EMAIL, fields("n"))
    check_shape(b)
    assert b.frame["_key"].to_list() == ["ok@example.com"]
    [reason] = reasons(b)
    assert reason.startswith('key "email": ') and "is not a valid email" in reason and phrase in reason


def test_valid_edge_email_keys_are_normalised_in_id_not_key():
    keys = ["a+tag@sub.example.co.uk", "  Mixed.Case@Example.COM ", "x@xn--mnchen-3ya.de"]
    b = map_batch(plan(keys, [1, 2, 3]), EMAIL, fields("n"))
    check_shape(b)
    assert b.rejections.height == 0
    assert b.frame["_key"].to_list() == keys
    assert b.frame["_id"].to_list() == ["a+tag@sub.example.co.uk", "mixed.case@example.com", "x@xn--mnchen-3ya.de"]


def test_a_plan_key_is_sent_as_it_is():
    """With `planned`, `_key` is the plan's key, normalised by the diff's SQL: sent as it is, so
    that no two plan keys become one identifier. A tab or newline the SQL's TRIM left is refused
    (whitespace); a letter whose lowercase Polars and the SQL disagree on is left alone."""
    keys = ["a@x.com", "a@x.com\t", "a@x.com\n", "\ua7cb@x.com"]
    b = map_batch(plan(keys, [1, 2, 3, 4]), KeyMapping("email", "email", planned=True), fields("n"))
    check_shape(b)
    assert b.frame["_id"].to_list() == b.frame["_key"].to_list() == ["a@x.com", "\ua7cb@x.com"]
    assert sorted(b.rejections["_key"].to_list()) == ["a@x.com\t", "a@x.com\n"]
    assert all("is not a valid email" in r for r in reasons(b))


def test_huge_key_is_truncated_in_reason():
    b = map_batch(plan(["x" * 100_000], [1]), EMAIL, fields("n"))
    [reason] = reasons(b)
    assert len(reason) < 300 and "…" in reason


def test_phone_keys():
    keys = ["(415) 555-0100", "+33 6 12 34 56 78", "12", None, "0612345678"]
    b = map_batch(plan(keys, [1, 2, 3, 4, 5]), KeyMapping("phone", "phone"), fields("n"), phone_region="US")
    check_shape(b)
    assert b.frame["_id"].to_list() == ["+14155550100", "+33612345678"]
    assert b.frame["_key"].to_list() == ["(415) 555-0100", "+33 6 12 34 56 78"]  # identity kept for commit
    rej = dict(zip(b.rejections["_key"].to_list(), reasons(b)))
    assert "not a valid phone number (default region US)" in rej["12"]
    assert "not a valid phone number" in rej["0612345678"]  # a French national number is not a US one
    assert rej[None] == 'key "phone": value is null'


def test_phone_keys_holding_more_than_digits_and_separators_are_rejected_as_written():
    """The diff keeps such a key as the model wrote it (dinsync.diff.keys); phonenumbers reads
    fullwidth and Arabic-Indic digits and vanity letters, so without a check of its own the
    mapping sent +1201200000\uff18 as +12012000008 under a key that is not that number's."""
    keys = ["+1201200000\uff18", "+1 201 555 \u0660\u0661\u0662\u0663", "+1 800 FLOWERS", "415*555*0100",
            "+12015550123", "06\u00a012\u00a034\u00a056\u00a078"]
    b = map_batch(plan(keys, [1, 2, 3, 4, 5, 6]), KeyMapping("phone", "phone"), fields("n"), phone_region="FR")
    assert b.frame["_id"].to_list() == ["+12015550123", "+33612345678"]
    rej = dict(zip(b.rejections["_key"].to_list(), reasons(b)))
    assert set(rej) == set(keys[:4])
    for key in keys[:4]:
        assert rej[key].startswith(f'key "phone": \'{key}\' is not read as a phone key: it holds characters '
                                   "other than ASCII digits"), rej[key]


def test_phone_keys_without_region_need_international_form():
    b = map_batch(plan(["(415) 555-0100", "+14155550100"], [1, 2]), KeyMapping("phone", "phone"), fields("n"))
    assert b.frame["_id"].to_list() == ["+14155550100"]
    assert "international form" in reasons(b)[0]


def test_a_number_written_in_international_form_is_not_told_to_be_written_so():
    """Without phone_region, a number written with its '+' that is no plausible number (too short,
    too long, no such country) was rejected with the hint for national numbers: '+1201555012' is
    not a valid phone number (no default region: write it in international form, +...), which it
    is. The hint now follows only a number written without '+' (a key's '00' is read as '+'), for
    keys and field kinds alike (and Attio's phone attributes, which share phone_note); with a
    region, the region it was read in follows every one, as before."""
    bad = ["+1201555012", "+1201555012345678", "+999 1234 5678", "+0"]
    hint = " (no default region: write it in international form, +...)"
    b = map_batch(plan(bad + ["201555012"], [1, 2, 3, 4, 5]), KeyMapping("phone", "phone"), fields("n"))
    rej = dict(zip(b.rejections["_key"].to_list(), reasons(b)))
    assert [rej[k] for k in bad] == [f"key \"phone\": {k!r} is not a valid phone number" for k in bad]
    assert rej["201555012"] == "key \"phone\": '201555012' is not a valid phone number" + hint
    f = one(bad + [" +1 201 ", "555"], kind="phone")
    assert reasons(f) == [f"field \"f\": invalid phone number {k!r}" for k in bad + [" +1 201 "]] + [
        "field \"f\": invalid phone number '555'" + hint]
    f = one(bad, kind="phone", phone_region="US")
    assert reasons(f) == [f"field \"f\": invalid phone number {k!r} (default region US)" for k in bad]

    from dinsync.mapping.field_kinds import phone_note

    assert [phone_note(k, None) for k in ["+1201555012", " +0 ", "0612", "0033612"]] == ["", "", hint, hint]
    assert phone_note("+1201555012", "US") == " (default region US)"


def test_string_keys():
    key = KeyMapping("userId", "string", max_length=10)
    keys = ["u1", "", "   ", "héllo", "tab\there", "trailing ", "x" * 11, " lead", None]
    b = map_batch(plan(keys, list(range(len(keys)))), key, fields("n"))
    check_shape(b)
    # Only what no platform accepts is refused here; the platform answers the rest per record.
    assert b.frame["_id"].to_list() == ["u1", "héllo", "tab\there", "trailing ", " lead"]
    rej = dict(zip(b.rejections["_key"].to_list(), reasons(b)))
    assert rej[""].endswith("is empty")
    assert rej["   "].endswith("is blank")
    assert rej["x" * 11].endswith("is longer than 10 characters")
    assert rej[None] == 'key "userId": value is null'


def test_string_key_without_restrictions_accepts_unicode():
    b = map_batch(plan(["héllo wörld 😀 ", "x" * 5000], [1, 2]), KeyMapping("id", "string"), fields("n"))
    assert b.rejections.height == 0 and b.frame.height == 2


def test_key_is_not_in_json():
    b = map_batch(plan(["a@b.co"], ["v"]), EMAIL, fields("name"))
    assert objects(b) == [{"name": "v"}]


# --- JSON content ----------------------------------------------------------------------------

def test_changed_rows_send_only_flagged_fields_in_mapping_order():
    b = map_batch(
        plan(
            ["a@b.co", "c@d.co", "e@f.co", "g@h.co"],
            (["A", "C", "E", "G"], [True, False, True, False]),
            ([1, 2, 3, 4], [True, True, False, False]),
            ([True, False, None, True], [True, False, True, False]),
            ops=["added", "changed", "changed", "changed"],
        ),
        EMAIL,
        fields("name", "n", "flag"),
    )
    check_shape(b)
    assert b.frame["_json"].to_list() == [
        '{"name":"A","n":1,"flag":true}',
        '{"n":2}',
        '{"name":"E","flag":null}',
        "{}",
    ]
    assert b.frame["_op"].to_list() == ["added", "changed", "changed", "changed"]


def test_null_flag_means_not_sent():
    b = map_batch(plan(["a@b.co"], (["x"], [None])), EMAIL, fields("name"))
    assert b.frame["_json"].to_list() == ["{}"]


def test_field_names_are_escaped():
    b = map_batch(plan(["a@b.co"], ["v"], [1]), EMAIL, [FieldMapping(0, 'we"ird\\name'), FieldMapping(1, "ünï 😀")])
    assert objects(b) == [{'we"ird\\name': "v", "ünï 😀": 1}]


@pytest.mark.parametrize(
    "value",
    [
        'quotes "x" and \'y\'',
        "back\\slash",
        "new\nline\r\n",
        "ctrl \x00\x01\x1f\x7f",
        "emoji 😀 and non-BMP 𝄞",
        "\u2028\u2029",
        "",
    ],
)
def test_strings_round_trip(value):
    b = one([value])
    assert objects(b) == [{"f": value}]


def test_big_ints_decimals_dates():
    keys = ["a@b.co"]
    b = map_batch(
        plan(
            keys,
            pl.Series([2**63 - 1]),
            pl.Series([2**64 - 1], dtype=pl.UInt64),
            pl.Series([decimal.Decimal("1234567890123456789.50")], dtype=pl.Decimal(38, 2)),
            [dt.date(2024, 2, 29)],
            [dt.datetime(2024, 1, 2, 3, 4, 5, 6)],
            pl.Series([dt.datetime(2024, 7, 1, 12)]).dt.replace_time_zone("America/New_York"),
        ),
        EMAIL,
        fields("i64", "u64", "dec", "d", "naive", "tz"),
    )
    [text] = b.frame["_json"].to_list()
    assert '"i64":9223372036854775807' in text
    assert '"u64":18446744073709551615' in text
    assert '"dec":1234567890123456789.50' in text
    assert orjson.loads(text) == {
        "i64": 2**63 - 1,
        "u64": 2**64 - 1,
        "dec": 1234567890123456789.5,
        "d": "2024-02-29",
        "naive": "2024-01-02T03:04:05.000006",
        "tz": "2024-07-01T16:00:00Z",
    }


def test_nested_lists_and_structs():
    values = [[{"a": 1, "b": ["x", 'y"'], "c": {"d": None}}], [], None]
    b = one(values)
    assert objects(b) == [{"f": v} for v in values]


def test_null_dtype_column():
    b = map_batch(plan(["a@b.co", "c@d.co"], pl.Series([None, None])), EMAIL, fields("n"))
    assert objects(b) == [{"n": None}, {"n": None}]


def test_empty_frame():
    frame = plan([], pl.Series([], dtype=pl.Int64), pl.Series([], dtype=pl.String))
    b = map_batch(frame, EMAIL, fields("a", "b"))
    check_shape(b)
    assert b.frame.height == 0 and b.rejections.height == 0


def test_no_fields_mapped():
    b = map_batch(plan(["a@b.co"]), EMAIL, [])
    assert b.frame["_json"].to_list() == ["{}"]


def test_all_rows_rejected():
    b = map_batch(plan(["bad", None, "a b@c"], [1.0, 2.0, float("nan")]), EMAIL, fields("n"))
    check_shape(b)
    assert b.frame.height == 0
    assert b.rejections.height == 4  # third row: bad key and NaN


def test_several_problems_several_rejections_row_not_in_frame():
    frame = plan(["a@@b", "ok@b.co"], [float("inf"), 1.0], [None, "x"])
    b = map_batch(frame, EMAIL, [FieldMapping(0, "score"), FieldMapping(1, "name")])
    check_shape(b)
    assert b.frame["_key"].to_list() == ["ok@b.co"]
    assert sorted(b.rejections["field"].to_list()) == ["email", "score"]
    assert set(b.rejections["_key"]) == {"a@@b"}


# --- floats, limits --------------------------------------------------------------------------

@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_floats_reject_the_row(bad):
    b = one([bad, 1.5])
    assert objects(b) == [{"f": 1.5}]
    assert reasons(b) == ['field "f": NaN/infinite is not valid JSON']
    assert b.rejections["field"].to_list() == ["f"]


@pytest.mark.parametrize("arrow_type, infinities, finite, text", [
    # ±infinity as the drivers deliver them: DuckDB (±INT64_MAX µs), PostgreSQL through ADBC
    # (the server's ±INT64 shifted by the 2000-01-01 epoch, wrapping around)
    ("timestamp[us, tz=UTC]", [9223372036854775807, -9223372036854775807, -9222425352054775809,
                               -9222425352054775808], 1704096000000000, "2024-01-01T08:00:00Z"),
    ("timestamp[us]", [9223372036854775807, -9222425352054775809], 0, "1970-01-01T00:00:00"),
    ("timestamp[ms]", [9223372036854775807], 0, "1970-01-01T00:00:00"),
    ("date32[day]", [2147483647, -2147483648, -2147472692], 19723, "2024-01-01"),
])
def test_infinite_dates_reject_the_row_instead_of_crashing(arrow_type, infinities, finite, text):
    import pyarrow as pa

    physical = pa.int32() if arrow_type.startswith("date") else pa.int64()
    target = {"timestamp[us, tz=UTC]": pa.timestamp("us", tz="UTC"), "timestamp[us]": pa.timestamp("us"),
              "timestamp[ms]": pa.timestamp("ms"), "date32[day]": pa.date32()}[arrow_type]
    values = pa.array(infinities + [finite, None], physical).view(target)
    b = one(pl.Series("f", pl.from_arrow(values)))
    check_shape(b)
    assert objects(b) == [{"f": text}, {"f": None}]
    assert reasons(b) == ['field "f": date out of range (years 1 to 9999; an infinity?), which cannot be sent'] * len(infinities)


@pytest.mark.parametrize("arrow_type, infinity, finite, kind, text", [
    ("date32[day]", 2147483647, 19723, "datetime", "2024-01-01T00:00:00"),  # DuckDB's DATE 'infinity'
    ("date32[day]", -2147483648, 19723, "datetime", "2024-01-01T00:00:00"),
    ("timestamp[us]", 9223372036854775807, 1704096000000000, "date", "2024-01-01"),
    ("timestamp[us, tz=UTC]", -9223372036854775807, 1704096000000000, "date", "2024-01-01"),
])
def test_infinite_dates_coerced_to_the_other_kind_reject_the_row(arrow_type, infinity, finite, kind, text):
    """`type: datetime` of DuckDB's DATE 'infinity' panicked in Polars ("out-of-range date"): the
    whole run failed with a traceback."""
    import pyarrow as pa

    physical = pa.int32() if arrow_type.startswith("date") else pa.int64()
    target = {"timestamp[us, tz=UTC]": pa.timestamp("us", tz="UTC"), "timestamp[us]": pa.timestamp("us"),
              "date32[day]": pa.date32()}[arrow_type]
    values = pa.array([infinity, finite, None], physical).view(target)
    b = one(pl.Series("f", pl.from_arrow(values)), kind=kind)
    check_shape(b)
    assert objects(b) == [{"f": text}, {"f": None}]
    assert reasons(b) == ['field "f": date out of range (years 1 to 9999; an infinity?), which cannot be sent']


def test_dates_outside_the_years_1_to_9999_reject_their_row():
    """Polars writes year 10000 as "+10000-01-01" and year 0 as "0000-..." / -1 as "-0001-...":
    no platform reads those as dates. The first and last day of the years 1 to 9999 go through."""
    import datetime as dt

    import pyarrow as pa

    days = pa.array([dt.date(1, 1, 1), dt.date(9999, 12, 31), None], pa.date32())
    late = pa.array([2_932_897, -719_163], pa.int32()).view(pa.date32())  # 10000-01-01, 0000-12-31
    b = one(pl.Series("f", pl.from_arrow(pa.concat_arrays([days, late]))))
    assert objects(b) == [{"f": "0001-01-01"}, {"f": "9999-12-31"}, {"f": None}]
    assert reasons(b) == ['field "f": date out of range (years 1 to 9999; an infinity?), which cannot be sent'] * 2
    stamps = pa.array([dt.datetime(9999, 12, 31, 23, 59, 59, 999999), dt.datetime(1, 1, 1)], pa.timestamp("us"))
    late = pa.array([2_932_897 * 86_400_000_000, -719_162 * 86_400_000_000 - 1], pa.int64()).view(pa.timestamp("us"))
    b = one(pl.Series("f", pl.from_arrow(pa.concat_arrays([stamps, late]))))
    assert objects(b) == [{"f": "9999-12-31T23:59:59.999999"}, {"f": "0001-01-01T00:00:00"}]
    assert len(reasons(b)) == 2


def test_time_24_00_00_is_sent_as_such_not_as_null():
    """TIME '24:00:00' (the end of a day: DuckDB and PostgreSQL accept it) is beyond Polars' clock,
    which reads it as null: it went out as JSON null, clearing the field in the platform, and the
    row was acknowledged. It is sent as ISO 8601's "24:00:00"; the column's other times as before."""
    import pyarrow as pa

    from dinsync.mapping.frame import frame_from_arrow

    for unit, per_second in (("us", 10**6), ("ns", 10**9), ("ms", 10**3)):
        day = 86_400 * per_second
        times = pa.array([day, 43_200 * per_second + per_second // 1000, None], pa.int64()).cast(
            pa.int32() if unit == "ms" else pa.int64()).view(pa.time32(unit) if unit == "ms" else pa.time64(unit))
        keys = [f"u{i}@example.com" for i in range(3)]
        batch = pa.RecordBatch.from_arrays([pa.array(keys), pa.array(["added"] * 3), times, pa.array([True] * 3)],
                                           names=["_key", "_op", "v0", "x0"])
        frame, _ = frame_from_arrow(batch)
        b = map_batch(frame, EMAIL, fields("t"))
        check_shape(b)
        assert objects(b) == [{"t": "24:00:00"}, {"t": "12:00:00.001000"}, {"t": None}], unit
        plain = pa.RecordBatch.from_arrays([pa.array(keys[1:]), pa.array(["added"] * 2), times.slice(1),
                                            pa.array([True] * 2)], names=["_key", "_op", "v0", "x0"])
        assert objects(map_batch(frame_from_arrow(plain)[0], EMAIL, fields("t"))) == [{"t": "12:00:00.001000"},
                                                                                       {"t": None}]
    # inside a list and a struct
    times = pa.array([86_400_000_000, 1_000_000, None], pa.time64("us"))
    listed = pa.ListArray.from_arrays(pa.array([0, 2, 2, 3], pa.int32()), times)
    structs = pa.StructArray.from_arrays([times, pa.array([1, 2, 3])], ["t", "n"])
    batch = pa.RecordBatch.from_arrays([pa.array(keys), pa.array(["added"] * 3), listed, pa.array([True] * 3),
                                        structs, pa.array([True] * 3)], names=["_key", "_op", "v0", "x0", "v1", "x1"])
    b = map_batch(frame_from_arrow(batch)[0], EMAIL, fields("l", "s"))
    assert objects(b) == [{"l": ["24:00:00", "00:00:01"], "s": {"t": "24:00:00", "n": 1}},
                          {"l": [], "s": {"t": "00:00:01", "n": 2}}, {"l": [None], "s": {"t": None, "n": 3}}]


def test_infinite_second_and_nanosecond_timestamps_reject_the_row_instead_of_a_wrong_date():
    """DuckDB's TIMESTAMP_S and TIMESTAMP_NS '±infinity' (±INT64_MAX) were sent as wrong dates and
    acknowledged: seconds wrapped around when Polars read them as milliseconds ('infinity' went out
    as "1969-12-31T23:59:59", '-infinity' as "1970-01-01T00:00:01"), and nanoseconds lie in
    1677-2262 ("2262-04-11T23:47:16.854775"). Rows holding them are rejected like TIMESTAMP's."""
    import pyarrow as pa

    from dinsync.mapping.frame import frame_from_arrow

    big = 2**63 - 1
    seconds = pa.array([big, -big, 1577836800, 1577836800, 1577836800], pa.int64()).view(pa.timestamp("s"))
    nanos = pa.array([0, 0, big, -big - 1, None], pa.int64()).view(pa.timestamp("ns", tz="UTC"))
    listed = pa.ListArray.from_arrays(pa.array([0, 1, 1, 1, 1, 2], pa.int32()),
                                      pa.array([big, 1577836800], pa.int64()).view(pa.timestamp("s")))
    keys = [f"u{i}@example.com" for i in range(5)]
    batch = pa.RecordBatch.from_arrays(
        [pa.array(keys), pa.array(["added"] * 5), seconds, pa.array([True] * 5), nanos, pa.array([True] * 5),
         listed, pa.array([True] * 5)], names=["_key", "_op", "v0", "x0", "v1", "x1", "v2", "x2"])
    frame, _ = frame_from_arrow(batch)
    b = map_batch(frame, EMAIL, fields("s", "ns", "list"))
    check_shape(b)
    why = "date out of range (years 1 to 9999; an infinity?), which cannot be sent"
    assert sorted(zip(b.rejections["_key"], b.rejections["reason"])) == [
        (keys[0], f'field "list": {why}'), (keys[0], f'field "s": {why}'), (keys[1], f'field "s": {why}'),
        (keys[2], f'field "ns": {why}'), (keys[3], f'field "ns": {why}')]
    assert objects(b) == [{"s": "2020-01-01T00:00:00", "ns": None, "list": ["2020-01-01T00:00:00"]}]


def test_timestamps_zoned_in_a_zone_polars_does_not_know_are_sent_in_utc():
    """DuckDB exports a TIMESTAMPTZ labelled with the session's zone, ICU's name for TZ: under TZ=IST
    (or PST, JST, BST, CST: ICU's three-letter IDs) Polars refused the label and every run of a model
    with a TIMESTAMPTZ failed ("unexpected error: ComputeError: unable to parse time zone: 'IST'").
    The values are instants (UTC-based integers), sent in UTC with Z whatever the label."""
    import pyarrow as pa

    from dinsync.mapping.frame import frame_from_arrow

    micros = pa.array([1_704_067_200_000_000, None], pa.int64())
    millis = pa.array([1_704_067_200_500, None], pa.int64())
    keys = ["u0@example.com", "u1@example.com"]
    columns = [micros.view(pa.timestamp("us", tz="IST")),
               pa.ListArray.from_arrays(pa.array([0, 1, 2], pa.int32()), micros.view(pa.timestamp("us", "PST"))),
               pa.StructArray.from_arrays([millis.view(pa.timestamp("ms", tz="JST"))], ["at"]),
               micros.view(pa.timestamp("us", tz="Asia/Kolkata"))]
    batch = pa.RecordBatch.from_arrays(
        [pa.array(keys), pa.array(["added"] * 2)] + [a for c in columns for a in (c, pa.array([True] * 2))],
        names=["_key", "_op", "v0", "x0", "v1", "x1", "v2", "x2", "v3", "x3"])
    b = map_batch(frame_from_arrow(batch)[0], EMAIL, fields("t", "l", "s", "k"))
    check_shape(b)
    assert objects(b) == [
        {"t": "2024-01-01T00:00:00Z", "l": ["2024-01-01T00:00:00Z"], "s": {"at": "2024-01-01T00:00:00.500000Z"},
         "k": "2024-01-01T00:00:00Z"},
        {"t": None, "l": [None], "s": {"at": None}, "k": None}]
    dates = map_batch(frame_from_arrow(batch)[0], EMAIL, fields("t", kind="date")[:1])
    assert objects(dates) == [{"t": "2024-01-01"}, {"t": None}]
    import duckdb

    con = duckdb.connect()
    con.execute("SET TimeZone = 'IST'")  # what TZ=IST gives a DuckDB session
    batch = con.sql("SELECT 'a@b.co' AS _key, 'added' AS _op, TIMESTAMPTZ '2024-06-01 12:00:00+02' AS v0, true AS x0, "
                    "[TIMESTAMPTZ '2024-06-01 12:00:00+02'] AS v1, true AS x1").to_arrow_table().to_batches()[0]
    assert objects(map_batch(frame_from_arrow(batch)[0], EMAIL, fields("t", "l"))) == [
        {"t": "2024-06-01T10:00:00Z", "l": ["2024-06-01T10:00:00Z"]}]


def test_infinite_timestamps_of_every_unit_reject_the_row_under_type_date():
    """`type: date` of DuckDB's TIMESTAMP_S / TIMESTAMP_MS '±infinity' sent null (the platform's
    value cleared) and of TIMESTAMP_NS '±infinity' the days 2262-04-11 and 1677-09-21: rejected for
    their row, as under the other kinds."""
    import pyarrow as pa

    from dinsync.mapping.frame import frame_from_arrow

    big = 2**63 - 1
    keys = [f"u{i}@example.com" for i in range(3)]
    columns = [pa.array([v, -v, 1577836800 * k], pa.int64()).view(pa.timestamp(unit, tz=tz))
               for unit, k, v, tz in (("s", 1, big, None), ("ms", 1000, big, None), ("ns", 10**9, big, "UTC"))]
    batch = pa.RecordBatch.from_arrays(
        [pa.array(keys), pa.array(["added"] * 3)] + [a for c in columns for a in (c, pa.array([True] * 3))],
        names=["_key", "_op", "v0", "x0", "v1", "x1", "v2", "x2"])
    frame, _ = frame_from_arrow(batch)
    b = map_batch(frame, EMAIL, fields("s", "ms", "ns", kind="date"))
    check_shape(b)
    why = "date out of range (years 1 to 9999; an infinity?), which cannot be sent"
    assert sorted(zip(b.rejections["_key"], b.rejections["reason"])) == sorted(
        (k, f'field "{f}": {why}') for k in keys[:2] for f in ("s", "ms", "ns"))
    assert objects(b) == [{"s": "2020-01-01", "ms": "2020-01-01", "ns": "2020-01-01"}]


def test_a_struct_of_second_and_microsecond_timestamps_keeps_both_values():
    """Only TIMESTAMP_S values are converted to milliseconds (as Polars reads them): a struct holding
    a TIMESTAMP_S and a TIMESTAMP had its microseconds multiplied by 1,000 too (a date beyond year
    9999, which made Polars panic)."""
    import datetime as dt

    import pyarrow as pa

    from dinsync.mapping.frame import frame_from_arrow

    pair = pa.StructArray.from_arrays([pa.array([dt.datetime(2020, 1, 1, 12)], pa.timestamp("s")),
                                       pa.array([dt.datetime(2021, 6, 1, 8, 30, 0, 250)], pa.timestamp("us"))],
                                      names=["s", "us"])
    batch = pa.RecordBatch.from_arrays([pa.array(["u@example.com"]), pa.array(["added"]), pair, pa.array([True])],
                                       names=["_key", "_op", "v0", "x0"])
    frame, _ = frame_from_arrow(batch)
    b = map_batch(frame, EMAIL, fields("pair"))
    check_shape(b)
    assert b.rejections.height == 0
    assert objects(b) == [{"pair": {"s": "2020-01-01T12:00:00", "us": "2021-06-01T08:30:00.000250"}}]


@pytest.mark.parametrize("kind", ["auto", "string", "json"])
def test_dates_beyond_the_calendar_inside_lists_and_structs_reject_their_row(kind):
    """A TIMESTAMP 'infinity' inside a list or a struct (DuckDB's ±INT64_MAX µs) made Polars panic
    while formatting it ("invalid or out-of-range datetime"): the whole sync failed with a Rust
    panic and a traceback, run after run, and no row of the batch was sent. Dates beyond the
    years 1 to 9999 inside them went out as "+10000-01-01" or "0000-01-01", which a top-level
    date of the same value never does. Such a row is rejected with the top-level reason."""
    import pyarrow as pa

    good_us, end_us = 1704096000000000, 2_932_897 * 86_400_000_000  # 2024-01-01 08:00, 10000-01-01
    ts = pa.array([2**63 - 1, -(2**63 - 1), end_us, good_us, good_us], pa.int64()).view(pa.timestamp("us"))
    tz = pa.array([good_us, good_us, good_us, -(2**63 - 1), good_us, None], pa.int64())
    days = pa.array([19723, 19723, 19723, 2_932_897, 19723, None], pa.int32()).view(pa.date32())
    lists = pa.ListArray.from_arrays(pa.array([0, 1, 2, 3, 4, 5, 5], pa.int32()), ts)
    structs = pa.StructArray.from_arrays([tz.view(pa.timestamp("us", tz="UTC")), days], ["seen", "day"])
    keys = [f"u{i}@example.com" for i in range(6)]
    b = map_batch(plan(keys, pl.Series("a", pl.from_arrow(lists)), pl.Series("b", pl.from_arrow(structs))),
                  EMAIL, fields("stamps", "meta", kind=kind))
    check_shape(b)
    why = "date out of range (years 1 to 9999; an infinity?), which cannot be sent"
    assert sorted(zip(b.rejections["_key"], b.rejections["reason"])) == [
        (keys[0], f'field "stamps": {why}'), (keys[1], f'field "stamps": {why}'), (keys[2], f'field "stamps": {why}'),
        (keys[3], f'field "meta": {why}')]
    assert b.frame["_key"].to_list() == keys[4:]
    sent = [{k: orjson.loads(v) if kind == "string" else v for k, v in o.items()} for o in objects(b)]
    assert sent == [{"stamps": ["2024-01-01T08:00:00"], "meta": {"seen": "2024-01-01T08:00:00Z", "day": "2024-01-01"}},
                    {"stamps": [], "meta": {"seen": None, "day": None}}]


def test_non_finite_float_in_unsent_field_is_fine():
    b = map_batch(plan(["a@b.co"], ([float("nan")], [False]), [1]), EMAIL, fields("score", "n"))
    assert objects(b) == [{"n": 1}]


def test_max_value_bytes_on_one_megabyte_string():
    big = "é" * 500_000 + "x" * 24_288  # 1 MiB of UTF-8
    b = one([big, "short"], max_value_bytes=1000)
    assert objects(b) == [{"f": "short"}]
    [reason] = reasons(b)
    assert reason == 'field "f": value is 1024288 bytes, over the limit of 1000 bytes'
    b = one([big])
    assert objects(b) == [{"f": big}]


def test_max_value_bytes_counts_utf8_bytes():
    b = one(["😀" * 3, "😀" * 2 + "a"], max_value_bytes=9)  # 12 bytes, 9 bytes
    assert objects(b) == [{"f": "😀😀a"}]


def test_max_row_bytes():
    b = map_batch(plan(["a@b.co", "c@d.co"], ["x" * 50, "y"]), EMAIL, fields("name"), max_row_bytes=30)
    assert b.frame["_key"].to_list() == ["c@d.co"]
    assert b.rejections.to_dicts() == [
        {"_key": "a@b.co", "field": "name",
         "reason": 'row is 61 bytes of JSON, over the limit of 30 bytes (largest field "name": 52 bytes)'}
    ]


def test_a_row_over_the_size_cap_names_its_largest_field():
    """A row over the body cap was rejected with its size alone (field None): with ten columns, which
    value to shorten was left to guess. Its largest sent field is named, in the reason and as the
    rejection's field; fields the row does not send do not count."""
    frame = plan(["a@b.co", "c@d.co", "e@f.co"], (["x" * 40, "y", "z" * 90], [True, True, False]),
                 (["short", "w" * 60, "v" * 45], [True, True, True]))
    b = map_batch(frame, EMAIL, fields("name", "note"), max_row_bytes=50)
    assert b.frame["_key"].to_list() == []
    assert b.rejections.to_dicts() == [
        {"_key": "a@b.co", "field": "name",
         "reason": 'row is 66 bytes of JSON, over the limit of 50 bytes (largest field "name": 42 bytes)'},
        {"_key": "c@d.co", "field": "note",
         "reason": 'row is 82 bytes of JSON, over the limit of 50 bytes (largest field "note": 62 bytes)'},
        {"_key": "e@f.co", "field": "note",
         "reason": 'row is 56 bytes of JSON, over the limit of 50 bytes (largest field "note": 47 bytes)'},
    ]


# --- kinds -----------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("values", "kind", "expected", "bad"),
    [
        (["1", " 42 ", "-7", "+3", "007", "9223372036854775808"], "integer", [1, 42, -7, 3, 7, 2**63], []),
        (["1.5", "abc", "", "1e3", "0x10"], "integer", [], ["1.5", "abc", "", "1e3", "0x10"]),
        ([1.0, -3.0, 1.5, float("nan")], "integer", [1, -3], ["1.5", "NaN"]),
        ([True, False], "integer", [1, 0], []),
        (["1.25", " -0.5 ", "1e3", "12345678901234567890123", ".5", "+2"], "number",
         [1.25, -0.5, 1000.0, 1.2345678901234568e22, 0.5, 2.0], []),  # orjson reads big ints as floats
        (["nan", "inf", "1e400", "one"], "number", [], ["nan", "inf", "1e400", "one"]),
        (["true", "FALSE", " yes ", "n", "1", "0", "T"], "boolean", [True, False, True, False, True, False, True], []),
        (["maybe", "2"], "boolean", [], ["maybe", "2"]),
        ([0, 1, 2], "boolean", [False, True], ["2"]),
        (["2024-02-29", " 1999-12-31 "], "date", ["2024-02-29", "1999-12-31"], []),
        (["2023-02-29", "2024-1-2", "20240102", "2024-01-02T00:00:00", "x"], "date", [],
         ["2023-02-29", "2024-1-2", "20240102", "2024-01-02T00:00:00", "x"]),
        (
            ["2024-01-02T03:04:05", "2024-01-02 03:04", "2024-01-02", "2024-01-02T03:04:05.123Z",
             "2024-01-02T03:04:05+02:00", "2024-01-02T03:04:05-0530", "2024-01-02T23:30:00-01"],
            "datetime",
            ["2024-01-02T03:04:05", "2024-01-02T03:04:00", "2024-01-02T00:00:00", "2024-01-02T03:04:05.123000Z",
             "2024-01-02T01:04:05Z", "2024-01-02T08:34:05Z", "2024-01-03T00:30:00Z"],
            [],
        ),
        (["2024-13-01T00:00:00", "yesterday", "2024-01-02T25:00:00", "2024-01-02T03:04:05 PST",
          "2024-01-01T10:00:60"], "datetime", [],  # (a leap second was moved to 10:01:00)
         ["2024-13-01T00:00:00", "yesterday", "2024-01-02T25:00:00", "2024-01-02T03:04:05 PST",
          "2024-01-01T10:00:60"]),
        ([1, -2], "string", ["1", "-2"], []),
        ([2.5, float("nan")], "string", ["2.5"], ["NaN/infinite is not valid JSON"]),
        ([True, False], "string", ["true", "false"], []),
        (["  Ann@Example.COM ", "", None], "email", ["ann@example.com", None, None], []),
        (["not-an-email", "a@b@c", "josé@b"], "email", ["josé@b"], ["not-an-email", "a@b@c"]),
        (['{"a": [1, 2]}', "[]", "3", "null"], "json", [{"a": [1, 2]}, [], 3, None], []),
        (["{bad", "NaN", "", "[1,]"], "json", [], ["{bad", "NaN", "", "[1,]"]),
    ],
)
def test_kinds(values, kind, expected, bad):
    b = one(values, kind=kind)
    check_shape(b)
    assert [o["f"] for o in objects(b)] == expected
    assert len(reasons(b)) == len(bad)
    for reason, value in zip(reasons(b), bad):
        assert reason.startswith('field "f": '), reason
        assert (value if value.startswith("NaN/") else f"'{value}'") in reason, reason


def test_number_kind_keeps_digits_of_numeric_strings():
    b = one(["12345678901234567890123.000001"], kind="number")
    assert b.frame["_json"].to_list() == ['{"f":12345678901234567890123.000001}']


def test_number_kind_writes_integral_numeric_strings_with_a_fraction():
    """A text column mapped `type: number` holds "100" on one row and "99.5" on the next: "100" was
    sent as the integer 100, so Iterable, which types a field by its first value, made the field a
    long and refused the user holding 99.5 (RequestFieldsTypesMismatched: parked). Each is a number
    with a fraction, as a float column's are (an exponent already makes a JSON number a double)."""
    b = one(["100", "99.5", " -7 ", "0", "-0", "12345678901234567890123", "1e3", "+2", "007"], kind="number")
    assert b.frame["_json"].to_list() == [
        '{"f":100.0}', '{"f":99.5}', '{"f":-7.0}', '{"f":0.0}', '{"f":-0.0}', '{"f":12345678901234567890123.0}',
        '{"f":1e3}', '{"f":2.0}', '{"f":7.0}']
    assert one([1, -2], kind="number").frame["_json"].to_list() == ['{"f":1}', '{"f":-2}']  # an integer column


def test_integer_kind_takes_integral_floats_beyond_64_bits_as_it_takes_text_and_decimals():
    """`type: integer` takes integral floats (README), and text of digits or decimals up to 128 bits:
    a float column's 1e19 (or -1e20) was rejected, "cannot convert '1e+19' to an integer", where the
    text "10000000000000000000" and a DECIMAL(38, 0) of it were sent. Beyond 128 bits, as for text,
    the row is rejected."""
    b = one([1e19, -1e20, 2.0**126, 9007199254740992.0, 2.0**127, 1e300], kind="integer")
    check_shape(b)
    assert b.frame["_json"].to_list() == ['{"f":10000000000000000000}', '{"f":-100000000000000000000}',
                                          '{"f":' + str(2**126) + '}', '{"f":9007199254740992}']
    assert reasons(b) == ['field "f": cannot convert \'1.7014118346046923e+38\' to an integer',
                          'field "f": cannot convert \'1e+300\' to an integer']


def test_string_kind_of_dates_and_lists():
    b = one([dt.date(2024, 1, 2)], kind="string")
    assert objects(b) == [{"f": "2024-01-02"}]
    b = one([["a", "b"]], kind="string")
    assert objects(b) == [{"f": '["a","b"]'}]


def test_datetime_text_with_an_impossible_offset_is_rejected_not_shifted():
    """A text datetime whose offset is no offset (minutes of 60 or more, hours of 24 or more) was
    converted all the same: `+99:99` moved the instant back by 4 days, `-00:75` by 75 minutes,
    `+2400` by a day, and the wrong instant was sent. Such a value is rejected, quoting it; offsets
    up to 23:59 (ISO 8601 and RFC 3339's range; real ones reach 14:00) are converted as before."""
    bad = ["2024-01-01T10:00:00+99:99", "2024-01-01T10:00:00-00:75", "2024-01-01 10:00+2400", "2024-01-01T10:00-24"]
    good = ["2024-01-01T10:00:00+23:59", "2024-01-01T10:00:00-14:00", "2024-01-01T10:00:00+0545"]
    b = one(bad + good, kind="datetime")
    check_shape(b)
    assert [o["f"] for o in objects(b)] == ["2023-12-31T10:01:00Z", "2024-01-02T00:00:00Z", "2024-01-01T04:15:00Z"]
    assert sorted(b.rejections["_key"].to_list()) == [f"u{i}@example.com" for i in range(len(bad))]
    assert all("cannot convert" in r and "to a datetime (ISO 8601)" in r for r in reasons(b)), reasons(b)


def test_date_and_datetime_kinds_from_temporal_columns():
    tz = pl.Series([dt.datetime(2024, 1, 1, 23, 30)]).dt.replace_time_zone("America/New_York")
    assert objects(one(tz, kind="date")) == [{"f": "2024-01-02"}]  # UTC date
    assert objects(one([dt.date(2024, 5, 6)], kind="datetime")) == [{"f": "2024-05-06T00:00:00"}]


def test_wrong_source_types_are_rejected_not_crashing():
    b = one([dt.date(2024, 1, 1)], kind="integer")
    assert reasons(b) == ['field "f": cannot convert values of type Date to integer']
    b = one([[1]], kind="email")
    assert "cannot convert values of type" in reasons(b)[0]


def test_phone_field_kind():
    values = ["(415) 555-0100", "+44 20 7946 0958", "555", "", None]
    b = one(values, kind="phone", phone_region="US")
    check_shape(b)
    assert [o["f"] for o in objects(b)] == ["+14155550100", "+442079460958", None, None]
    assert reasons(b) == ["field \"f\": invalid phone number '555' (default region US)"]


def test_phone_field_kind_integers():
    b = one([14155550100], kind="phone", phone_region="US")
    assert objects(b) == [{"f": "+14155550100"}]


def test_json_kind_raw_embedding_rejects_oversize():
    b = one(['{"k": "' + "v" * 100 + '"}'], kind="json", max_value_bytes=50)
    assert "over the limit of 50 bytes" in reasons(b)[0]


def test_json_kind_names_a_number_no_float_holds_not_invalid_json():
    """`1e400` is valid JSON no 64-bit float can hold (no platform stores it): it was rejected as
    "invalid JSON", which sent the user looking for a syntax error."""
    b = one(["1e400", '{"a": [1, -2e999]}', "[1,", '{"a": 1}'], kind="json")
    assert objects(b) == [{"f": {"a": 1}}]
    assert reasons(b)[0] == ("field \"f\": JSON '1e400' is valid but holds a number beyond what a 64-bit float "
                             "holds (about ±1.8e308), which no platform stores")
    assert "holds a number beyond" in reasons(b)[1]
    assert reasons(b)[2] == "field \"f\": invalid JSON '[1,'"


def test_invalid_mappings_raise():
    frame = plan(["a@b.co"], [1])
    with pytest.raises(ValueError, match="unknown kind"):
        map_batch(frame, EMAIL, [FieldMapping(0, "n", "money")])
    with pytest.raises(ValueError, match="unknown key kind"):
        map_batch(frame, KeyMapping("k", "uuid"), fields("n"))
    with pytest.raises(ValueError, match="lacks columns: v1, x1"):
        map_batch(frame, EMAIL, [FieldMapping(1, "n")])
    with pytest.raises(ValueError, match="mapped twice"):
        map_batch(frame, EMAIL, [FieldMapping(0, "n"), FieldMapping(0, "n")])


# --- agreement with a per-row reference -------------------------------------------------------

def ref_email_ok(key: str | None) -> bool:
    """Written independently of the Polars expressions: split and check piece by piece."""
    if key is None:
        return False
    e = key.strip().lower()
    if len(e.encode()) > 254 or e.count("@") != 1:
        return False
    if any(c.isspace() or ord(c) < 0x20 or ord(c) == 0x7F for c in e):
        return False
    local, domain = e.split("@")
    return 1 <= len(local.encode()) <= 64 and len(domain) >= 1


def ref_value(v):
    if isinstance(v, float) and not math.isfinite(v):
        raise ValueError
    if isinstance(v, dt.datetime) and v.tzinfo is not None:
        return v.astimezone(dt.timezone.utc)
    if isinstance(v, decimal.Decimal):
        return float(v)
    return v


def reference(frame: pl.DataFrame, mappings: list[FieldMapping]) -> tuple[list[tuple[str, dict]], set]:
    accepted, rejected = [], set()
    for row in frame.iter_rows(named=True):
        ok = ref_email_ok(row["_key"])
        obj = {}
        for m in mappings:
            if row[f"x{m.index}"]:
                try:
                    obj[m.field] = ref_value(row[f"v{m.index}"])
                except ValueError:
                    ok = False
        if ok:
            accepted.append((row["_key"], orjson.loads(orjson.dumps(obj, option=orjson.OPT_UTC_Z))))
        else:
            rejected.add(row["_key"])
    return accepted, rejected


def _rand_string(rng: random.Random) -> str:
    alphabet = ['"', "\\", "\n", "\r", "\t", "\x00", "\x1f", "\x7f", "é", "😀", "𝄞", "\u2028", "/", "'", " "]
    alphabet += list("abcXYZ019{}[]:,")
    return "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 20)))


def _rand_key(rng: random.Random, i: int) -> str | None:
    good = [f"user{i}@example.com", f"First.Last+{i}@Sub.Example.CO.uk", f"  u{i}@x.io ", f"U{i}@EXAMPLE.ORG"]
    bad = [f"user{i}", f"u{i}@@x.com", f"u {i}@x.com", f"u{i}@x.com.", f"u{i}@münchen.de", f"u{i}@x", f".u{i}@x.com"]
    r = rng.random()
    if r < 0.02:
        return None
    return rng.choice(bad) if r < 0.12 else rng.choice(good)


def random_plan(rows: int, seed: int) -> tuple[pl.DataFrame, list[FieldMapping]]:
    rng = random.Random(seed)

    def maybe(v):
        return None if rng.random() < 0.1 else v

    base = dt.datetime(2000, 1, 1)
    columns = [
        ("text", pl.String, lambda: maybe(_rand_string(rng))),
        ("count", pl.Int64, lambda: maybe(rng.choice([0, -1, 2**63 - 1, -(2**63), 2**53 + 1, rng.randint(-1000, 1000)]))),
        ("score", pl.Float64, lambda: maybe(rng.choice(
            [0.0, -0.0, 0.1, 1e300, 5e-324, rng.uniform(-1e6, 1e6), float("nan") if rng.random() < 0.1 else 1.5]))),
        ("flag", pl.Boolean, lambda: maybe(rng.random() < 0.5)),
        ("day", pl.Date, lambda: maybe(dt.date(1970, 1, 1) + dt.timedelta(days=rng.randint(-700000, 2900000)))),
        ("at", pl.Datetime("us"), lambda: maybe(base + dt.timedelta(seconds=rng.randint(0, 10**9), microseconds=rng.choice([0, rng.randint(0, 999999)])))),
        ("at_tz", pl.Datetime("us", "Europe/Paris"), lambda: maybe((base + dt.timedelta(seconds=rng.randint(0, 10**9))).replace(tzinfo=dt.timezone.utc))),
        ("amount", pl.Decimal(20, 4), lambda: maybe(decimal.Decimal(rng.randint(-10**12, 10**12)) / 10000)),
        ("tags", pl.List(pl.String), lambda: maybe([_rand_string(rng) for _ in range(rng.randint(0, 3))])),
        ("meta", pl.Struct({"a": pl.Int64, "b": pl.String}), lambda: maybe({"a": rng.randint(0, 9), "b": _rand_string(rng)})),
        ("nothing", pl.Null, lambda: None),
    ]
    ops = ["added" if rng.random() < 0.5 else "changed" for _ in range(rows)]
    data = {"_key": pl.Series([_rand_key(rng, i) for i in range(rows)], dtype=pl.String), "_op": pl.Series(ops)}
    for i, (_, dtype, gen) in enumerate(columns):
        data[f"v{i}"] = pl.Series([gen() for _ in range(rows)], dtype=dtype)
        data[f"x{i}"] = pl.Series([op == "added" or rng.random() < 0.4 for op in ops])
    mappings = [FieldMapping(i, name) for i, (name, _, _) in enumerate(columns)]
    rng.shuffle(mappings)  # mapping order differs from column order
    return pl.DataFrame(data), mappings


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_agrees_with_per_row_reference(seed):
    frame, mappings = random_plan(3000, seed)
    batch = map_batch(frame, EMAIL, mappings)
    check_shape(batch)
    expected, rejected = reference(frame, mappings)
    got = list(zip(batch.frame["_key"].to_list(), objects(batch)))
    assert len(got) == len(expected)
    for (gk, gobj), (ek, eobj) in zip(got, expected):
        assert gk == ek
        assert list(gobj) == list(eobj), "keys and their order"
        assert gobj == eobj
    assert set(batch.rejections["_key"].to_list()) == rejected
    assert 0 < len(rejected) < len(frame)


def test_string_kind_of_temporal_and_duration():
    b = one([dt.timedelta(seconds=5)], kind="string")
    assert objects(b) == [{"f": "PT5S"}]
    b = one([dt.time(1, 2, 3)], kind="string")
    assert objects(b) == [{"f": "01:02:03"}]
    b = one([dt.datetime(2024, 1, 2, 3, 4, 5)], kind="string")
    assert objects(b) == [{"f": "2024-01-02T03:04:05"}]


def test_null_typed_key_and_flag_columns():
    frame = pl.DataFrame({"_key": [None, None], "_op": ["added", "added"], "v0": [1, 2], "x0": [None, None]})
    b = map_batch(frame, EMAIL, fields("n"))
    check_shape(b)
    assert b.frame.height == 0 and reasons(b) == ['key "email": value is null'] * 2


def test_integer_flag_columns_are_accepted():
    frame = pl.DataFrame({"_key": ["a@b.co", "c@d.co"], "_op": ["added", "changed"], "v0": [1, 2], "x0": [1, 0]})
    b = map_batch(frame, EMAIL, fields("n"))
    assert b.frame["_json"].to_list() == ['{"n":1}', "{}"]


def test_categorical_key_and_values():
    frame = pl.DataFrame({"_key": ["a@b.co"], "_op": ["added"], "v0": ["pro"], "x0": [True]}).with_columns(
        pl.col("_key").cast(pl.Categorical), pl.col("v0").cast(pl.Categorical))
    b = map_batch(frame, EMAIL, fields("plan"))
    assert b.frame["_key"].to_list() == ["a@b.co"] and objects(b) == [{"plan": "pro"}]


# --- decimals read as text (numeric_text: PostgreSQL's numeric) -------------------------------

def numeric_batch(values: list, kind: str = "auto", free_scale: bool = False) -> MappedBatch:
    """A plan batch whose v0 arrives as `numeric_text` (the way PostgreSQL numerics stream), mapped."""
    import pyarrow as pa

    from dinsync.mapping.frame import frame_from_arrow
    from dinsync.warehouses.numeric_text import numeric_text

    keys = [f"u{i}@example.com" for i in range(len(values))]
    batch = pa.record_batch({"_key": keys, "_op": ["added"] * len(keys),
                             "v0": numeric_text(pa.array(values, pa.string()), free_scale=free_scale),
                             "x0": [True] * len(keys)})
    frame, numeric = frame_from_arrow(batch)
    assert numeric == {"v0": free_scale} and frame.schema["v0"] == pl.String
    out = map_batch(frame, EMAIL, fields("f", kind=kind), numeric_text=numeric)
    check_shape(out)
    return out


def test_numeric_text_is_sent_with_its_exact_digits():
    wide = ["12345678901234567.89", "1234567890123456789012345", "-0.000000000000000000000001", "1.50", "0", None]
    b = numeric_batch(wide)
    assert b.frame["_json"].to_list() == [
        '{"f":12345678901234567.89}', '{"f":1234567890123456789012345}', '{"f":-0.000000000000000000000001}',
        '{"f":1.50}', '{"f":0}', '{"f":null}']
    assert b.rejections.height == 0
    assert numeric_batch(wide[:2], "number").frame["_json"].to_list() == [
        '{"f":12345678901234567.89}', '{"f":1234567890123456789012345}']
    assert numeric_batch(wide[:2], "string").frame["_json"].to_list() == [
        '{"f":"12345678901234567.89"}', '{"f":"1234567890123456789012345"}']
    integer = numeric_batch(["1234567890123456789012345.000", "12.50"], "integer")
    assert integer.frame["_json"].to_list() == ['{"f":1234567890123456789012345}']
    assert reasons(integer) == ["field \"f\": cannot convert '12.50' to an integer"]
    # 1 / 0 as booleans, as for the other numbers (every row was rejected: "values of type numeric")
    flags = numeric_batch(["1", "0.00", "1.0", "-0", "1.5", "2"], "boolean")
    assert flags.frame["_json"].to_list() == ['{"f":true}', '{"f":false}', '{"f":true}', '{"f":false}']
    assert reasons(flags) == ["field \"f\": cannot convert '1.5' to a boolean", "field \"f\": cannot convert '2' to a boolean"]


def test_decimals_and_hugeints_of_0_and_1_are_booleans():
    """`type: boolean` of a HUGEINT or DECIMAL(p, 0) column (Polars decimals) of 0 / 1 rejected every
    row ("cannot convert values of type Decimal(precision=38, scale=0)") and parked them."""
    b = one([decimal.Decimal(1), decimal.Decimal(0), decimal.Decimal(2), None], "boolean", dtype=pl.Decimal(38, 0))
    assert b.frame["_json"].to_list() == ['{"f":true}', '{"f":false}', '{"f":null}']
    assert reasons(b) == ["field \"f\": cannot convert '2' to a boolean"]


@pytest.mark.parametrize("kind", ["auto", "number", "string", "json"])
def test_numeric_text_nan_and_infinities_reject_their_row(kind):
    """PostgreSQL's numeric NaN / ±Infinity (ADBC spells them nan / inf): the row is rejected with the
    reason floats get, never sent as null (which would clear the platform's value)."""
    b = numeric_batch(["1.25", "NaN", "Infinity", "-Infinity", "nan", "-inf", "1" + "0" * 400], kind)
    assert reasons(b)[:5] == ['field "f": NaN/infinite is not valid JSON'] * 5
    if kind == "string":  # a string of its digits: a valid JSON value
        assert b.frame["_key"].to_list() == ["u0@example.com", "u6@example.com"] and len(reasons(b)) == 5
    else:
        assert b.frame["_key"].to_list() == ["u0@example.com"]
        assert "beyond the range of a 64-bit float" in reasons(b)[5]  # JSON parsers fail on it (orjson) or read inf


def test_numeric_text_without_a_declared_scale_is_written_with_a_fraction():
    """An unconstrained numeric (a sum, an average) holds 5 on one row and 0.5 on the next: each is
    sent with a fraction, as float64 wrote them before, so that a platform typing a field by its
    first number (Iterable) never sees an integer in a decimal field. A declared scale keeps its form."""
    values = ["5", "0.5", "-12", "1234567890123456789012345", None]
    assert numeric_batch(values, free_scale=True).frame["_json"].to_list() == [
        '{"f":5.0}', '{"f":0.5}', '{"f":-12.0}', '{"f":1234567890123456789012345.0}', '{"f":null}']
    assert numeric_batch(values[:1], "number", free_scale=True).frame["_json"].to_list() == ['{"f":5.0}']
    assert numeric_batch(values[:1], "integer", free_scale=True).frame["_json"].to_list() == ['{"f":5}']
    assert numeric_batch(values[:1]).frame["_json"].to_list() == ['{"f":5}']  # numeric(p, 0)


@pytest.mark.parametrize("kind", ["auto", "json", "string", "number"])
def test_numeric_text_lists_are_arrays_of_numbers(kind):
    """A list of `numeric_text` (PostgreSQL's numeric[]): an array of JSON numbers with their exact
    digits (`string`: that array's text), a slice of a stream's batch included; an element that is
    NaN, an infinity or not a number rejects its row. A list is not one number (`number`)."""
    import pyarrow as pa

    from dinsync.mapping.frame import frame_from_arrow
    from dinsync.warehouses.numeric_text import numeric_text_list

    lists = [["0"], ["1.50", "12345678901234567890.125"], [None, "-2"], [], None, ["1", "NaN"], ["1e999"]]
    keys = [f"u{i}@example.com" for i in range(len(lists))]
    batch = pa.record_batch({"_key": keys, "_op": ["added"] * len(keys),
                             "v0": numeric_text_list(pa.array(lists, pa.list_(pa.string()))),
                             "x0": [True] * len(keys)}).slice(1)
    frame, numeric = frame_from_arrow(batch)
    assert numeric == {"v0": False} and frame.schema["v0"] == pl.List(pl.String)
    b = map_batch(frame, EMAIL, fields("f", kind=kind), numeric_text=numeric)
    check_shape(b)
    if kind == "number":
        assert b.frame["_key"].to_list() == ["u4@example.com"] and len(reasons(b)) == 5  # (NULL: null, any kind)
        return
    arrays = ["[1.50,12345678901234567890.125]", "[null,-2]", "[]", None]
    expected = [f'{{"f":{a or "null"}}}' if kind != "string" or a is None else f'{{"f":"{a}"}}' for a in arrays]
    assert b.frame["_json"].to_list() == expected
    assert reasons(b) == ['field "f": NaN/infinite is not valid JSON',
                          'field "f": an element is not a number within a 64-bit float\'s range (1.8e308)']


@pytest.mark.parametrize(("values", "kind", "sent"), [
    (["0000-01-01", "2024-01-02"], "date", ["2024-01-02"]),
    (["0001-01-01T00:00:00+01:00", "9999-12-31T23:30:00-01:00", "0000-06-01T00:00:00", "2024-01-02T03:04:05Z"],
     "datetime", ["2024-01-02T03:04:05Z"]),
])
def test_text_dates_beyond_the_calendar_reject_the_row_not_send_null(values, kind, sent):
    """`type: date` of the text '0000-01-01' (and `type: datetime` of text whose UTC instant falls
    in year 0 or 10000) passed the check and was sent as JSON null: the platform's value was
    silently cleared. Such a row is rejected, saying why."""
    b = one(values, kind=kind)
    check_shape(b)
    assert [o["f"] for o in objects(b)] == sent
    assert len(reasons(b)) == len(values) - len(sent)
    assert all("date out of range" in r for r in reasons(b))
