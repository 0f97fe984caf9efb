"""Key normalisations in SQL: what makes two spellings of one key the same key.

Each is applied to the key's text form (DINSYNC_TEXT: CAST AS VARCHAR, on PostgreSQL under the
database's deterministic collation, so that keys compare as the text the platform receives, not
under a case-insensitive column collation); an empty result is a NULL key. The
Polars twins (same results on the same input) are in `dinsync.mapping.normalize`.

  email  LOWER(TRIM(k))
  lower  LOWER(TRIM(k)), for keys that are not emails (e.g. Attio's domains)
  trim   TRIM(k)
  none   k, NULL when it is blank (spaces only)
  phone  E.164-like: keep '+' and ASCII digits; a leading '+' stays; else a leading '00' becomes
         '+'; else '+<country code>' is put in front, after dropping the national trunk prefix
         (e.g. FR: 06 12 34 56 78 -> +33612345678). Country code and trunk prefix come from the
         sync's default region (phonenumbers metadata); without a region, the digits as they are,
         without '+' (the mapping rejects them: '+' in front of a national number made another
         country's, e.g. the US 201 555 0002 as +2015550002, an Egyptian number). A trunk prefix
         written as '(0)' inside a number is dropped first (+44 (0)20 7183 8750 -> +442071838750,
         as E.164 has it). Only the separators people
         write in numbers are dropped (spaces, tabs, line breaks, no-break spaces, '-', '.', '(',
         ')', '/', dashes): a value holding anything else with a digit or a non-ASCII character (a non-ASCII digit
         as in +1201200000\uff18, a letter as in +1 800 FLOWERS or 'ext. 12', '*', '#', a second
         '+' or one after a digit) keeps its text as written, so that the mapping rejects it
         quoting the model's value: reduced to its ASCII digits it would be another number. A
         value with no ASCII digit made only of ASCII letters, '+' and separators ('n/a', 'CALL
         ME') has no key (NULL: the row is skipped), as a blank one.
"""
from __future__ import annotations

import re

KEY_NORMALIZATIONS = ("email", "lower", "trim", "none", "phone")
_DIGITS = re.compile(r"[0-9]*")


def phone_params(region: str | None) -> tuple[str, str]:
    """(country calling code, national trunk prefix) of a region, as digit strings ('' if none)."""
    if not region:
        return "", ""
    from ..mapping.normalize import phone_key_params

    return phone_key_params(region)


def key_sql(normalization: str, column_sql: str, phone: tuple[str, str] = ("", "")) -> str:
    """The normalised key of `column_sql` (a quoted column reference) in canonical SQL."""
    text = f"DINSYNC_TEXT({column_sql})"
    if normalization in ("email", "lower"):
        return f"NULLIF(LOWER(DINSYNC_TRIM({text})), '')"
    if normalization == "trim":
        return f"NULLIF(DINSYNC_TRIM({text}), '')"
    if normalization == "none":  # kept as written, but a key of spaces only is no key (as trimmed ones)
        return f"CASE WHEN DINSYNC_TRIM({text}) = '' THEN NULL ELSE {text} END"
    if normalization == "phone":
        cc, trunk = phone
        if not (_DIGITS.fullmatch(cc) and _DIGITS.fullmatch(trunk)):
            raise ValueError(f"phone parameters must be digits, got {phone!r}")
        raw = text
        text = f"REPLACE({text}, '(0)', '')"  # +44 (0)20 ...: the trunk prefix E.164 drops
        digits = f"DINSYNC_DIGITS({text})"
        kept = f"DINSYNC_PHONECHARS({text})"
        rest = f"DINSYNC_PHONEREST({text})"  # '+' and what a phone key may not hold
        national = f"'+{cc}' || {digits}" if cc else digits  # (no region: not read, see above)
        if trunk:
            national = (f"CASE WHEN {digits} LIKE '{trunk}%' THEN '+{cc}' || SUBSTR({digits}, {len(trunk) + 1}) "
                        f"ELSE '+{cc}' || {digits} END")
        return (
            f"CASE WHEN {digits} = '' AND DINSYNC_UNLETTERED({rest}) = '' THEN NULL "
            # anything but separators, or a '+' not in front: the text as written (rejected by
            # the mapping), never its ASCII digits, which may be another number
            f"WHEN {rest} <> '' AND NOT ({rest} = '+' AND {kept} LIKE '+%') THEN {raw} "
            f"WHEN {kept} LIKE '+%' THEN '+' || {digits} "
            f"WHEN {digits} LIKE '00%' THEN NULLIF('+' || SUBSTR({digits}, 3), '+') "
            f"ELSE {national} END"
        )
    raise ValueError(f"unknown key normalization {normalization!r}")
