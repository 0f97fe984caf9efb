"""Request validation of the Attentive sandbox: body shapes from the specs, value formats, attribute types.

Parsing is stateless: it turns a JSON document into plain values or raises `ApiError` with a
message naming the field. Rules that depend on stored data (attribute types, enumerated values,
the v2 custom-attribute limit, identifier conflicts) live with the store in `server.py`.
"""
from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from typing import Any

import orjson
import phonenumbers
import pytz

from .options import (CUSTOM_ATTRIBUTES_KEYS, EVENT_USER_KEYS, EXTERNAL_IDENTIFIERS_KEYS, IDENTIFY_KEYS,
                      V1_CUSTOM_IDENTIFIER_KEYS, V2_ATTRIBUTE_KEYS, V2_CUSTOM_IDENTIFIER_KEYS, V2_DEMOGRAPHIC_KEYS,
                      V2_IDENTIFIER_KEYS, V2_LOCALE_KEYS, V2_LOCATION_KEYS, V2_SUBSCRIPTION_KEYS, V2_USER_KEYS,
                      AttentiveOptions)

COUNTRIES = frozenset(pytz.country_names)  # ISO-3166-1 alpha-2
SUBSCRIPTION_TYPES = ("MARKETING", "TRANSACTIONAL")
CHANNELS = ("TEXT", "EMAIL")
IDENTIFIER_MAX_LENGTH = 100  # "There is a 100 character limit" (identity API, v2 clientUserId)
UNSET = object()  # a custom/standard value of null under null_values="unset"

_EMAIL_RE = re.compile(r"[^@\s\x00-\x1f\x7f]+@(?:[^@\s\x00-\x1f\x7f.]+\.)+[^@\s\x00-\x1f\x7f.]+")
_E164_RE = re.compile(r"\+[1-9]\d{1,14}")
_REGION_RE = re.compile(r"([A-Z]{2})-[A-Z0-9]{1,3}")
_NUMBER_RE = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_DATE_RE = re.compile(r"\d{4}-\d{2}-\d{2}")
_DATETIME_RE = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?(?:Z|[+-]\d{2}:?\d{2})?")


class ApiError(Exception):
    """A request (or a bulk record) refused with `status` and a message for `ErrorResponseDto`."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


def bad(message: str) -> ApiError:
    return ApiError(400, message)


@dataclass
class Identity:
    """Identifiers of one request's user; `custom` maps custom identifier names to values."""

    email: str | None = None
    phone: str | None = None
    client_user_id: str | None = None
    shopify_id: str | None = None
    klaviyo_id: str | None = None
    custom: dict[str, str] = field(default_factory=dict)

    def any(self) -> bool:
        return bool(self.email or self.phone or self.client_user_id or self.shopify_id or self.klaviyo_id
                    or self.custom)


@dataclass
class V2User:
    """One parsed `CreateUserAttributesRequestDtoV2` (the single request or one bulk record)."""

    identity: Identity
    standard: dict[str, Any]            # firstName/lastName and demographic/location/locale sub-objects
    custom: dict[str, Any]
    subscriptions: list[dict[str, Any]]


# ------------------------------------------------------------------ values
def valid_email(email: str) -> bool:
    return len(email) <= 254 and _EMAIL_RE.fullmatch(email) is not None


def valid_phone(phone: str, check: str = "valid") -> bool:
    """E.164 (`+19148440001`), and a number libphonenumber calls valid (or possible)."""
    if _E164_RE.fullmatch(phone) is None:
        return False
    try:
        number = phonenumbers.parse(phone, None)
    except phonenumbers.NumberParseException:
        return False
    ok = phonenumbers.is_valid_number if check == "valid" else phonenumbers.is_possible_number
    return ok(number) and phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164) == phone


def valid_date(value: str) -> bool:
    if _DATE_RE.fullmatch(value) is None:
        return False
    try:
        dt.date.fromisoformat(value)
    except ValueError:
        return False
    return True


def valid_coordinate(value: str, bound: float) -> bool:
    if _NUMBER_RE.fullmatch(value.strip()) is None or value != value.strip():
        return False
    return -bound <= float(value) <= bound


def valid_region(value: str) -> bool:
    match = _REGION_RE.fullmatch(value)
    return match is not None and match.group(1) in COUNTRIES


def value_kind(value: Any) -> str:
    """The type a custom attribute gets from its first value: BOOLEAN, NUMBER, DATE or STRING.

    Strings are read for what they hold ("'Age' passed with the first value of '24' ... will be
    typed as a 'Number'"): "TRUE"/"false" -> BOOLEAN, "50.89" -> NUMBER, ISO dates -> DATE.
    """
    if type(value) is bool:
        return "BOOLEAN"
    if isinstance(value, (int, float)):
        return "NUMBER"
    text = str(value).strip()
    if text.lower() in ("true", "false"):
        return "BOOLEAN"
    if _NUMBER_RE.fullmatch(text):
        return "NUMBER"
    if valid_date(text) or (_DATETIME_RE.fullmatch(text) and valid_date(text[:10])):
        return "DATE"
    return "STRING"


def fits(kind: str, value: Any) -> bool:
    """Whether a value may be stored in an attribute of this type (a STRING attribute takes any scalar)."""
    return kind == "STRING" or value_kind(value) == kind


def as_text(value: Any) -> str:
    """A stored custom value as the v1 lookup returns it (the spec types values as strings)."""
    if isinstance(value, str):
        return value
    return orjson.dumps(value).decode()


# ------------------------------------------------------------------ shapes
def parse_json_object(raw: bytes) -> dict:
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise bad("Request body is not valid JSON") from None
    if type(doc) is not dict:
        raise bad("Request body must be a JSON object")
    return doc


def _object(value: Any, where: str) -> dict:
    if type(value) is not dict:
        raise bad(f"{where} must be an object")
    return value


def _keys(doc: dict, allowed: frozenset, where: str, strict: bool) -> None:
    if strict and not doc.keys() <= allowed:
        raise bad(f"{where} has unknown field(s): {', '.join(sorted(set(doc) - allowed))}")


def _string(value: Any, where: str, *, max_length: int | None = None, empty: bool = True) -> str:
    if type(value) is not str:
        raise bad(f"{where} must be a string")
    if not empty and not value:
        raise bad(f"{where} must not be empty")
    if max_length is not None and len(value) > max_length:
        raise bad(f"{where} is longer than {max_length} characters")
    return value


def _email(value: Any, where: str) -> str:
    if not valid_email(_string(value, where, empty=False)):
        raise bad(f"{where} is not a valid email address")
    return value


def _phone(value: Any, where: str, check: str) -> str:
    if not valid_phone(_string(value, where, empty=False), check):
        raise bad(f"{where} must be a valid phone number in E.164 format (e.g. +19148440001)")
    return value


def parse_custom_values(doc: Any, where: str, opts: AttentiveOptions) -> dict[str, Any]:
    """Custom attribute name -> scalar value; null per `null_values` (dropped, or UNSET)."""
    values = _object(doc, where)
    out: dict[str, Any] = {}
    for name, value in values.items():
        if not name or not name.strip():
            raise bad(f"{where}: an attribute name must not be empty")
        if len(name) > opts.max_attribute_name_length:
            raise bad(f"{where}: attribute name '{name[:40]}...' is longer than "
                      f"{opts.max_attribute_name_length} characters")
        if isinstance(value, (list, dict)):
            raise bad(f"{where}.{name}: arrays and objects are not supported as attribute values")
        if value is None:
            if opts.null_values == "reject":
                raise bad(f"{where}.{name}: null is not a supported attribute value")
            if opts.null_values == "ignore":
                continue
            value = UNSET
        out[name] = value
    return out


# ------------------------------------------------------------------ v1
def parse_custom_attributes_request(doc: dict, opts: AttentiveOptions) -> tuple[Identity, dict[str, Any]]:
    """`POST /v1/attributes/custom` -> (user identity, properties)."""
    _keys(doc, CUSTOM_ATTRIBUTES_KEYS, "request", opts.reject_unknown_keys)
    for key in ("properties", "user"):
        if key not in doc:
            raise bad(f"{key} is required")
    identity = parse_event_user(doc["user"], opts)
    return identity, parse_custom_values(doc["properties"], "properties", opts)


def parse_event_user(value: Any, opts: AttentiveOptions) -> Identity:
    """`EventUser`: additionalProperties false, minProperties 1 (always enforced: the spec says so)."""
    user = _object(value, "user")
    _keys(user, EVENT_USER_KEYS, "user", True)
    ident = Identity()
    if "email" in user:
        ident.email = _email(user["email"], "user.email")
    if "phone" in user:
        ident.phone = _phone(user["phone"], "user.phone", opts.phone_check)
    if "externalIdentifiers" in user:
        ext = _object(user["externalIdentifiers"], "user.externalIdentifiers")
        _keys(ext, EXTERNAL_IDENTIFIERS_KEYS, "user.externalIdentifiers", opts.reject_unknown_keys)
        if "clientUserId" in ext:
            ident.client_user_id = _string(ext["clientUserId"], "user.externalIdentifiers.clientUserId",
                                           empty=False)
        if "customIdentifiers" in ext:
            ident.custom = _custom_identifiers(ext["customIdentifiers"], "user.externalIdentifiers.customIdentifiers",
                                               "name", V1_CUSTOM_IDENTIFIER_KEYS, opts)
    if not ident.any():
        raise bad("user needs a phone, an email or an external identifier")
    return ident


def parse_identify_request(doc: dict, opts: AttentiveOptions) -> Identity:
    """`POST /v1/identity-resolution/user-identifiers` (`IdentifyRequestDto`)."""
    _keys(doc, IDENTIFY_KEYS, "request", opts.reject_unknown_keys)
    ident = Identity()
    limit = IDENTIFIER_MAX_LENGTH
    if "email" in doc:
        ident.email = _email(_string(doc["email"], "email", max_length=limit), "email")
    if "phone" in doc:
        ident.phone = _phone(doc["phone"], "phone", opts.phone_check)
    for key, attr in (("shopifyId", "shopify_id"), ("klaviyoId", "klaviyo_id"), ("clientUserId", "client_user_id")):
        if key in doc:
            setattr(ident, attr, _string(doc[key], key, max_length=limit, empty=False))
    if "customIdentifiers" in doc:
        ident.custom = _custom_identifiers(doc["customIdentifiers"], "customIdentifiers", "name",
                                           V1_CUSTOM_IDENTIFIER_KEYS, opts)
    if not (ident.client_user_id or ident.custom):
        raise bad("clientUserId or customIdentifiers is required")
    others = sum(bool(x) for x in (ident.email, ident.phone, ident.shopify_id, ident.klaviyo_id,
                                   ident.client_user_id)) + len(ident.custom)
    if others < 2:
        raise bad("a client user identifier or custom identifier must come with at least one other identifier")
    return ident


def _custom_identifiers(value: Any, where: str, name_key: str, allowed: frozenset,
                        opts: AttentiveOptions) -> dict[str, str]:
    """Name -> value; both are needed (the v1 schema leaves them optional, but half an identifier names nobody)."""
    if type(value) is not list:
        raise bad(f"{where} must be an array")
    out: dict[str, str] = {}
    for i, item in enumerate(value):
        here = f"{where}[{i}]"
        item = _object(item, here)
        _keys(item, allowed, here, opts.reject_unknown_keys)
        for key in (name_key, "value"):
            if key not in item:
                raise bad(f"{here}.{key} is required")
        name = _string(item[name_key], f"{here}.{name_key}", max_length=IDENTIFIER_MAX_LENGTH, empty=False)
        out[name] = _string(item["value"], f"{here}.value", max_length=IDENTIFIER_MAX_LENGTH, empty=False)
    return out


# ------------------------------------------------------------------ v2
_STRING_FIELDS = {"demographic": V2_DEMOGRAPHIC_KEYS - {"age"}, "location": V2_LOCATION_KEYS,
                  "locale": V2_LOCALE_KEYS}
_SECTION_KEYS = {"demographic": V2_DEMOGRAPHIC_KEYS, "location": V2_LOCATION_KEYS, "locale": V2_LOCALE_KEYS}


def parse_v2_user(doc: Any, where: str, opts: AttentiveOptions) -> V2User:
    """One `CreateUserAttributesRequestDtoV2`; `where` prefixes field names in messages ("" or "users[3].")."""
    doc = _object(doc, where.rstrip(".") or "request")
    _keys(doc, V2_USER_KEYS, where.rstrip(".") or "request", opts.reject_unknown_keys)
    if "identifiers" not in doc:
        raise bad(f"{where}identifiers is required")
    identity = _v2_identifiers(doc["identifiers"], f"{where}identifiers", opts)
    standard: dict[str, Any] = {}
    custom: dict[str, Any] = {}
    if "attributes" in doc:
        attrs = _object(doc["attributes"], f"{where}attributes")
        _keys(attrs, V2_ATTRIBUTE_KEYS, f"{where}attributes", opts.reject_unknown_keys)
        for key in ("firstName", "lastName"):
            if key in attrs:
                _leaf(standard, key, attrs[key], f"{where}attributes.{key}", opts, _string)
        for section in ("demographic", "location", "locale"):
            if section in attrs:
                here = f"{where}attributes.{section}"
                values = _object(attrs[section], here)
                _keys(values, _SECTION_KEYS[section], here, opts.reject_unknown_keys)
                out: dict[str, Any] = {}
                for key, value in values.items():
                    _leaf(out, key, value, f"{here}.{key}", opts, _CHECKS.get((section, key), _string))
                standard[section] = out
        if "custom" in attrs:
            custom = parse_custom_values(attrs["custom"], f"{where}attributes.custom", opts)
    subscriptions = _v2_subscriptions(doc["subscriptions"], f"{where}subscriptions", opts) \
        if "subscriptions" in doc else []
    return V2User(identity, standard, custom, subscriptions)


def _leaf(out: dict, key: str, value: Any, where: str, opts: AttentiveOptions, check) -> None:
    if value is None and opts.null_values != "reject":
        if opts.null_values == "unset":
            out[key] = UNSET
        return
    out[key] = check(value, where)


def _date_of_birth(value: Any, where: str) -> str:
    if not valid_date(_string(value, where)):
        raise bad(f"{where} must be a date in YYYY-MM-DD format")
    return value


def _age(value: Any, where: str) -> int:
    if type(value) is not int or value < 0:
        raise bad(f"{where} must be a non-negative integer")
    return value


def _latitude(value: Any, where: str) -> str:
    if not valid_coordinate(_string(value, where), 90.0):
        raise bad(f"{where} must be a string holding a number between -90 and 90")
    return value


def _longitude(value: Any, where: str) -> str:
    if not valid_coordinate(_string(value, where), 180.0):
        raise bad(f"{where} must be a string holding a number between -180 and 180")
    return value


def _country(value: Any, where: str) -> str:
    if _string(value, where) not in COUNTRIES:
        raise bad(f"{where} must be an ISO-3166-1 alpha-2 country code (e.g. US)")
    return value


def _region(value: Any, where: str) -> str:
    if not valid_region(_string(value, where)):
        raise bad(f"{where} must be an ISO-3166-2 subdivision code (e.g. AU-NSW)")
    return value


_CHECKS = {("demographic", "dateOfBirth"): _date_of_birth, ("demographic", "age"): _age,
           ("location", "latitude"): _latitude, ("location", "longitude"): _longitude,
           ("location", "country"): _country, ("location", "region"): _region, ("locale", "country"): _country}


def _v2_identifiers(value: Any, where: str, opts: AttentiveOptions) -> Identity:
    ids = _object(value, where)
    _keys(ids, V2_IDENTIFIER_KEYS, where, opts.reject_unknown_keys)
    if not ids:
        raise bad(f"{where} must have at least one identifier")
    ident = Identity()
    if "email" in ids:
        ident.email = _email(ids["email"], f"{where}.email")
    if "phone" in ids:
        ident.phone = _phone(ids["phone"], f"{where}.phone", opts.phone_check)
    for key, attr in (("shopifyId", "shopify_id"), ("klaviyoId", "klaviyo_id"), ("clientUserId", "client_user_id")):
        if key in ids:
            setattr(ident, attr, _string(ids[key], f"{where}.{key}", max_length=IDENTIFIER_MAX_LENGTH, empty=False))
    if "customIdentifiers" in ids:
        ident.custom = _custom_identifiers(ids["customIdentifiers"], f"{where}.customIdentifiers", "key",
                                           V2_CUSTOM_IDENTIFIER_KEYS, opts)
    if not ident.any():
        raise bad(f"{where} must have at least one identifier")
    return ident


def _v2_subscriptions(value: Any, where: str, opts: AttentiveOptions) -> list[dict[str, Any]]:
    if type(value) is not list:
        raise bad(f"{where} must be an array")
    out = []
    for i, item in enumerate(value):
        here = f"{where}[{i}]"
        item = _object(item, here)
        # the spec requires `subscriptionType` without listing it among the properties
        _keys(item, V2_SUBSCRIPTION_KEYS | {"subscriptionType"}, here, opts.reject_unknown_keys)
        for key in ("signUpSourceId", "channel", "subscriptionType"):
            if key not in item:
                raise bad(f"{here}.{key} is required")
        _string(item["signUpSourceId"], f"{here}.signUpSourceId", empty=False)
        if item["channel"] not in CHANNELS:
            raise bad(f"{here}.channel must be one of {', '.join(CHANNELS)}")
        if item["subscriptionType"] not in SUBSCRIPTION_TYPES:
            raise bad(f"{here}.subscriptionType must be one of {', '.join(SUBSCRIPTION_TYPES)}")
        if "singleOptIn" in item and type(item["singleOptIn"]) is not bool:
            raise bad(f"{here}.singleOptIn must be a boolean")
        out.append({"type": item["subscriptionType"], "channel": item["channel"]})
    return out
