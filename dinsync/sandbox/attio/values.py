"""Attribute values: the write forms Attio accepts per attribute type, validated and normalised into
the properties Attio returns on read (the "Writing values" / "Reading values" sections of each
attribute type page, and the spec's `input-value` / record value schemas).
"""
from __future__ import annotations

import re
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any, Callable, Protocol

import orjson
import phonenumbers
from email_validator import EmailNotValidError, validate_email
from publicsuffixlist import PublicSuffixList

from .errors import AttioError, invalid_value
from .schema import Attribute, ObjectDef

COUNTRY_CODES = frozenset((
    "AF AX AL DZ AS AD AO AI AQ AG AR AM AW AU AT AZ BS BH BD BB BY BE BZ BJ BM BT BO BA BW BV BR IO BN BG BF BI KH "
    "CM CA CV KY CF TD CL CN CX CC CO KM CG CD CK CR CI HR CU CW CY CZ DK DJ DM DO EC EG SV GQ ER EE ET FK FO FJ FI "
    "FR GF PF TF GA GM GE DE GH GI GR GL GD GP GU GT GG GN GW GY HT HM VA HN HK HU IS IN ID IR IQ IE IM IL IT JM JP "
    "JE JO KZ KE KI KR KW KG LA LV LB LS LR LY LI LT LU MO MK MG MW MY MV ML MT MH MQ MR MU YT MX FM MD MC MN ME MS "
    "MA MZ MM NA NR NP NL AN NC NZ NI NE NG NU NF MP NO OM PK PW PS PA PG PY PE PH PN PL PT PR QA RE RO RU RW BL SH "
    "KN LC MF PM VC WS SM ST SA SN SS RS SC SL SG SK SI SB SO ZA GS ES LK SD SR SJ SZ SE CH SY TW TJ TZ TH TL TG TK "
    "TO TT TN TR TM TC TV UG UA AE GB US UM UY UZ VU VE VN VG VI WF EH YE ZM ZW BQ KP SX").split())
LOCATION_KEYS = ("line_1", "line_2", "line_3", "line_4", "locality", "region", "postcode", "country_code",
                 "latitude", "longitude")
# The spec's patterns for a location's coordinates (`input-value`, location: latitude, longitude).
COORDINATES = {"latitude": re.compile(r"^[-+]?([1-8]?\d(\.\d+)?|90(\.0+)?)$"),
               "longitude": re.compile(r"^[-+]?(180(\.0+)?|((1[0-7]\d)|([1-9]?\d))(\.\d+)?)$")}
TEXT_MAX_BYTES = 10_000_000  # "Values are limited to 10MB" (spec), read in decimal: the stricter reading
_ISO = re.compile(r"(\d{4})(?:-(\d{2})(?:-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,9}))?)?)?)?)?"
                  r"(Z|z|[+-]\d{2}(?::?\d{2})?)?")
_SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*://")
_LABEL = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)")
_PSL = PublicSuffixList(only_icann=True)
_META = frozenset({"active_from", "active_until", "created_by_actor", "attribute_type"})


class RecordLookup(Protocol):
    """What parsing a record reference needs from the store."""

    objects: dict[str, ObjectDef]

    def has_record(self, object_slug: str, record_id: str) -> bool: ...

    def find_unique(self, object_slug: str, attribute: Attribute, key: Any) -> str | None: ...


class Settings(Protocol):
    excess_decimals: str  # "round" | "reject"
    phone_validation: str  # "possible" | "valid"


# ---------------------------------------------------------------- helpers shared with filters
def parse_iso(text: str, need_time: bool = False) -> tuple[datetime, int, bool] | None:
    """(naive UTC datetime, nanoseconds, had a zone) of an ISO 8601 prefix form, or None."""
    m = _ISO.fullmatch(text.strip())
    if m is None:
        return None
    year, month, day, hour, minute, second, frac, zone = m.groups()
    if need_time and hour is None:
        return None
    try:
        dt = datetime(int(year), int(month or 1), int(day or 1), int(hour or 0), int(minute or 0), int(second or 0))
        if zone and zone not in ("Z", "z"):
            sign = 1 if zone[0] == "+" else -1
            digits = zone[1:].replace(":", "")
            offset = timedelta(hours=int(digits[:2]), minutes=int(digits[2:4] or 0))
            if offset >= timedelta(hours=24):
                return None
            dt = dt - sign * offset
    except (ValueError, OverflowError):
        return None
    nanos = int((frac or "0").ljust(9, "0"))
    return dt, nanos, bool(zone)


def format_timestamp(dt: datetime, nanos: int) -> str:
    # isoformat, not strftime: "%Y" writes year 1 as "1" (ISO 8601 and Attio: "0001")
    return f"{dt.replace(microsecond=0).isoformat()}.{nanos:09d}Z"


def normalise_domain(text: str) -> str | None:
    """Attio stores domains, not URLs: scheme, credentials, port, path, query are trimmed."""
    host = _SCHEME.sub("", text.strip().lower())
    host = re.split(r"[/?#]", host, maxsplit=1)[0]
    host = host.rsplit("@", 1)[-1]
    host = re.sub(r":\d*$", "", host).rstrip(".")
    try:
        ascii_host = host.encode("idna").decode("ascii") if not host.isascii() else host
    except UnicodeError:
        return None
    labels = ascii_host.split(".")
    if len(ascii_host) > 253 or len(labels) < 2 or not all(_LABEL.fullmatch(lab) for lab in labels):
        return None
    if _PSL.privatesuffix(host) is None:  # a bare public suffix ("co.uk") is no domain
        return None
    return host


def root_domain(domain: str) -> str:
    return _PSL.privatesuffix(domain) or domain


def normalise_email(text: str) -> dict | None:
    """The five email properties, or None when the shape is invalid ("strictly validate")."""
    try:
        parsed = validate_email(text.strip(), check_deliverability=False)
    except EmailNotValidError:
        return None
    local, domain = parsed.local_part.lower(), parsed.domain.lower()
    return {"original_email_address": text, "email_address": f"{local}@{domain}", "email_domain": domain,
            "email_root_domain": root_domain(domain), "email_local_specifier": local}


def normalise_phone(number: str, country: str | None, strict: bool = False) -> dict | None:
    if country is None and not number.strip().startswith("+"):
        return None
    try:
        parsed = phonenumbers.parse(number, country)
    except phonenumbers.NumberParseException:
        return None
    ok = phonenumbers.is_valid_number(parsed) if strict else phonenumbers.is_possible_number(parsed)
    if not ok:
        return None
    region = (phonenumbers.region_code_for_number(parsed)
              or phonenumbers.region_code_for_country_code(parsed.country_code))
    if region not in COUNTRY_CODES:
        region = country
    return {"original_phone_number": number, "country_code": region,
            "phone_number": phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)}


def value_key(attr_type: str, props: dict) -> Any:
    """What makes two values of an attribute the same value (and what uniqueness compares)."""
    if attr_type == "email-address":
        return props["email_address"]
    if attr_type == "domain":
        return props["domain"]
    if attr_type == "phone-number":
        return props["phone_number"]
    if attr_type == "select":
        return props["option"]["id"]["option_id"]
    if attr_type == "status":
        return props["status"]["id"]["status_id"]
    if attr_type == "record-reference":
        return props["target_record_id"]
    if attr_type in ("number", "currency", "rating"):  # one 64-bit float: 1, 1.0 and 1e0 are one value
        return float(props["currency_value" if attr_type == "currency" else "value"]) + 0.0
    return orjson.dumps({k: v for k, v in props.items() if k not in _META}, option=orjson.OPT_SORT_KEYS)


# ---------------------------------------------------------------- write forms
class ValueParser:
    """Turns the raw JSON written to one attribute into a list of value properties."""

    def __init__(self, lookup: RecordLookup, settings: Settings, option_json: Callable[[Attribute, Any], dict]):
        self.lookup = lookup
        self.settings = settings
        self.option_json = option_json

    def parse(self, attr: Attribute, raw: Any) -> list[dict]:
        if isinstance(raw, list):
            items = raw
            if not attr.is_multiselect and len(items) > 1:
                raise invalid_value(attr.slug, f"{attr.slug} is single-select: give one value, not {len(items)}")
        elif raw is None:
            items = []
        elif attr.is_multiselect:
            # Attio: "As the domains attribute is multi-select, you must always pass values wrapped in an array."
            raise invalid_value(attr.slug, f"{attr.slug} is multiselect: values must be wrapped in an array")
        else:
            items = [raw]
        parse_one = getattr(self, "_" + attr.type.replace("-", "_"))
        out: dict[Any, dict] = {}
        for i, item in enumerate(items):
            if item is None:
                raise invalid_value(attr.slug, "null is not a value", i)
            props = parse_one(attr, item, i)
            props["attribute_type"] = attr.type
            out.setdefault(value_key(attr.type, props), props)  # a repeated value counts once
        return list(out.values())

    # Each parser: (attribute, one raw item, index) -> properties without attribute_type.
    @staticmethod
    def _unwrap(attr: Attribute, item: Any, key: str, i: int) -> Any:
        if isinstance(item, dict):
            if set(item) != {key}:
                raise invalid_value(attr.slug, f"an object value takes exactly the property {key!r}", i)
            return item[key]
        return item

    def _text(self, attr, item, i):
        value = self._unwrap(attr, item, "value", i)
        if not isinstance(value, str):
            raise invalid_value(attr.slug, "expected a string", i)
        if len(value.encode()) > TEXT_MAX_BYTES:
            raise invalid_value(attr.slug, "text values are limited to 10 MB", i)
        return {"value": value}

    def _decimal(self, attr, value, i, what: str, places: int | None = None):
        """A JSON number; `places`: the most decimal places it may have (currency: 4)."""
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise invalid_value(attr.slug, f"expected a number for {what}", i)
        if isinstance(value, int):  # "Numbers are persisted as 64 bit floats" (spec `input-value`)
            try:
                stored = float(value)
            except OverflowError:
                raise invalid_value(attr.slug, "expected a number a 64-bit float holds", i) from None
            value = value if stored == value else stored  # 9007199254740993 is kept as 9007199254740992.0
        if places is not None and isinstance(value, float) and Decimal(repr(value)).as_tuple().exponent < -places:
            if self.settings.excess_decimals == "reject":
                raise invalid_value(attr.slug, "at most 4 decimal places", i)
            value = round(value, 4)
        return value

    def _number(self, attr, item, i):  # "Numbers are persisted as 64 bit floats" (spec): see _decimal
        return {"value": self._decimal(attr, self._unwrap(attr, item, "value", i), i, "a number attribute")}

    def _currency(self, attr, item, i):
        value = self._unwrap(attr, item, "currency_value", i)
        if isinstance(value, str):  # "Where possible, Attio will convert strings into numbers"
            try:
                parsed = Decimal(value.strip())
            except InvalidOperation:
                raise invalid_value(attr.slug, "expected a number or a numeric string", i) from None
            if not parsed.is_finite():
                raise invalid_value(attr.slug, "expected a finite number", i)
            value = float(parsed)
        return {"currency_value": self._decimal(attr, value, i, "a currency attribute", 4),
                "currency_code": attr.currency_code}

    def _checkbox(self, attr, item, i):
        value = self._unwrap(attr, item, "value", i)
        if isinstance(value, str) and value in ("true", "false"):
            value = value == "true"
        if not isinstance(value, bool):
            raise invalid_value(attr.slug, 'expected true, false, "true" or "false"', i)
        return {"value": value}

    def _rating(self, attr, item, i):
        value = self._unwrap(attr, item, "value", i)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value) or not 0 <= value <= 5:
            raise invalid_value(attr.slug, "a rating is an integer from 0 to 5", i)
        return {"value": int(value)}

    def _date(self, attr, item, i):
        value = self._unwrap(attr, item, "value", i)
        parsed = parse_iso(value) if isinstance(value, str) else None
        if parsed is None:
            raise invalid_value(attr.slug, "expected an ISO 8601 date (YYYY, YYYY-MM, YYYY-MM-DD[Thh:mm...])", i)
        return {"value": parsed[0].date().isoformat()}

    def _timestamp(self, attr, item, i):
        value = self._unwrap(attr, item, "value", i)
        parsed = parse_iso(value) if isinstance(value, str) else None
        if parsed is None:
            raise invalid_value(attr.slug, "expected an ISO 8601 timestamp", i)
        return {"value": format_timestamp(parsed[0], parsed[1])}

    def _choice(self, attr, item, i, key: str, noun: str):
        ref = self._unwrap(attr, item, key, i)
        if not isinstance(ref, str):
            raise invalid_value(attr.slug, f"expected the title or id of a {noun}", i)
        opt = attr.option(ref)
        if opt is None:  # never creates an option
            raise AttioError(400, "value_not_found",
                             f'Cannot find {attr.type} attribute with {noun} title "{ref}".')
        return {key: self.option_json(attr, opt)}

    def _select(self, attr, item, i):
        return self._choice(attr, item, i, "option", "select option")

    def _status(self, attr, item, i):
        return self._choice(attr, item, i, "status", "status option")

    def _email_address(self, attr, item, i):
        value = item.get("email_address") if isinstance(item, dict) else item
        props = normalise_email(value) if isinstance(value, str) else None
        if props is None:
            raise invalid_value(attr.slug, "not a valid email address", i)
        return props

    def _domain(self, attr, item, i):
        value = item.get("domain") if isinstance(item, dict) else item
        domain = normalise_domain(value) if isinstance(value, str) else None
        if domain is None:
            raise invalid_value(attr.slug, "not a valid domain", i)
        return {"domain": domain, "root_domain": root_domain(domain)}

    def _phone_number(self, attr, item, i):
        if isinstance(item, str):
            number, country = item, None
        elif isinstance(item, dict) and "original_phone_number" in item and "country_code" in item:
            number, country = item["original_phone_number"], item["country_code"]
        else:
            raise invalid_value(attr.slug, "a phone number is a string starting with + or an object with "
                                "original_phone_number and country_code", i)
        if not isinstance(number, str) or (country is not None and country not in COUNTRY_CODES):
            raise invalid_value(attr.slug, "original_phone_number must be a string and country_code an ISO 3166-1 "
                                "alpha-2 code or null", i)
        props = normalise_phone(number, country, strict=self.settings.phone_validation == "valid")
        if props is None:
            raise invalid_value(attr.slug, "not a valid phone number (E.164, or a local number with its "
                                "country_code)", i)
        return props

    def _personal_name(self, attr, item, i):
        if isinstance(item, str):  # "Last name(s), First name(s)"
            last, sep, first = item.partition(",")
            if not sep:
                first, last = item, ""
            first, last = first.strip(), last.strip()
            return {"first_name": first, "last_name": last, "full_name": " ".join(p for p in (first, last) if p)}
        keys = ("first_name", "last_name", "full_name")
        if not isinstance(item, dict) or not all(isinstance(item.get(k), str) for k in keys):
            raise invalid_value(attr.slug, "first_name, last_name and full_name must all be set", i)
        return {k: item[k] for k in keys}

    def _location(self, attr, item, i):
        if isinstance(item, str):  # Attio parses free text; the sandbox keeps it as line_1
            return {k: (item if k == "line_1" else None) for k in LOCATION_KEYS}
        if not isinstance(item, dict) or set(item) != set(LOCATION_KEYS):
            raise invalid_value(attr.slug, "a location object must give every property (" + ", ".join(LOCATION_KEYS)
                                + "), null where unknown", i)
        if not all(v is None or isinstance(v, str) for v in item.values()):
            raise invalid_value(attr.slug, "location properties are strings or null", i)
        if item["country_code"] is not None and item["country_code"] not in COUNTRY_CODES:
            raise invalid_value(attr.slug, "country_code must be an ISO 3166-1 alpha-2 code", i)
        for key, pattern in COORDINATES.items():
            if item[key] is not None and not pattern.match(item[key]):
                raise invalid_value(attr.slug, f"{key} must match {pattern.pattern}", i)
        return {k: item[k] for k in LOCATION_KEYS}

    def _record_reference(self, attr, item, i):
        objects = self.lookup.objects
        target = objects[attr.target]  # type: ignore[index]
        if isinstance(item, str):  # companies: a domain; people: an email address
            by = {"companies": "domains", "people": "email_addresses"}[target.slug]
            return self._reference_by(attr, target, target.attributes[by], [item], i)
        if not isinstance(item, dict) or not isinstance(item.get("target_object"), str):
            raise invalid_value(attr.slug, "a record reference needs target_object", i)
        if item["target_object"] not in (target.slug, target.id):
            raise invalid_value(attr.slug, f"{attr.slug} can only reference {target.slug}", i)
        rest = {k: v for k, v in item.items() if k != "target_object"}
        if set(rest) == {"target_record_id"}:
            rid = rest["target_record_id"]
            if not isinstance(rid, str) or not self.lookup.has_record(target.slug, rid):
                raise AttioError(400, "value_not_found", f'Record with ID "{rid}" not found in {target.slug}.')
            return {"target_object": target.slug, "target_record_id": rid}
        if len(rest) != 1:
            raise invalid_value(attr.slug, "give target_record_id or one unique attribute of the target", i)
        (ref, values), = rest.items()
        by_attr = target.attribute(ref)
        if by_attr is None or not by_attr.is_unique:
            raise invalid_value(attr.slug, f"{ref!r} is not a unique attribute of {target.slug}", i)
        if not isinstance(values, list) or len(values) != 1:  # "Matching on multiple values is not supported"
            raise invalid_value(attr.slug, f"{ref} must be an array holding exactly one value", i)
        return self._reference_by(attr, target, by_attr, values, i)

    def _reference_by(self, attr, target: ObjectDef, by_attr: Attribute, values: list, i: int) -> dict:
        try:
            props = getattr(self, "_" + by_attr.type.replace("-", "_"))(by_attr, values[0], 0)
        except AttioError:
            raise invalid_value(attr.slug, f"not a valid {by_attr.slug} value for {target.slug}", i) from None
        props["attribute_type"] = by_attr.type
        rid = self.lookup.find_unique(target.slug, by_attr, value_key(by_attr.type, props))
        if rid is None:  # "the write will fail if the target record does not exist"
            raise AttioError(400, "value_not_found", f"No {target.slug} record was found with {by_attr.slug} "
                             f"matching the value provided for attribute with slug \"{attr.slug}\".")
        return {"target_object": target.slug, "target_record_id": rid}
