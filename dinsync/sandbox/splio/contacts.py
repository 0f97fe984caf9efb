"""The universe's contacts, shared by the SFTP importer and the REST API, and the value rules both apply.

Field rules come from Splio's docs (reference §3.3, §3.5): email max 100 characters (stored
lowercase), firstname / lastname max 255, cellphone max 30, language one of the 2-letter codes of
the Datahub article, custom fields typed text / int / double (2 decimals) / date
`YYYY-MM-DD HH:MM:SS`. What the docs leave open is decided here and documented in the package
docstring (`dinsync/sandbox/splio/__init__.py`).
"""
from __future__ import annotations

import copy
import re
import time
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any, Iterable, Mapping

LANGUAGES = frozenset("ar br ca cz de en es fr gr it ja kr nl pl ru tr zh".split())
MAX_EMAIL = 100
MAX_NAME = 255
MAX_CELLPHONE = 30
MAX_CUSTOM_FIELDS = 180  # Splio's default limit on contacts
FIELD_TYPES = ("text", "int", "double", "date")
DATE_FORMAT = "%Y-%m-%d %H:%M:%S"
# Writable system fields (besides the key). `customer_key` only comes from CSV files.
SYSTEM_FIELDS = ("firstname", "lastname", "language", "cellphone")
_LIMITS = {"firstname": MAX_NAME, "lastname": MAX_NAME, "cellphone": MAX_CELLPHONE, "customer_key": MAX_NAME}

_EMAIL_RE = re.compile(r"[^@\s\x00-\x1f\x7f\"(),:;<>\[\\\]]+@(?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?\.)+[a-z]{2,63}",
                       re.IGNORECASE)
_CELLPHONE_RE = re.compile(r"\+?[0-9]+")
_INT_RE = re.compile(r"-?[0-9]{1,18}")
_DOUBLE_RE = re.compile(r"-?[0-9]{1,15}(?:\.[0-9]+)?")
_DATE_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}")
_CENT = Decimal("0.01")


class FieldError(ValueError):
    """A value Splio refuses. `error` is Splio's error code (wrong_value, wrong_email, wrong_type, is_blank)."""

    def __init__(self, error: str, message: str):
        super().__init__(message)
        self.error = error
        self.message = message


@dataclass(frozen=True)
class CustomField:
    id: int
    name: str
    type: str  # text | int | double | date

    @property
    def column(self) -> str:
        """Splio's field key for searches and the unique key: `cN`."""
        return f"c{self.id}"


def normalize_email(value: Any, *, lowercase: bool = True) -> str:
    """The email as stored (lowercased); raises FieldError."""
    if value is None or value == "":
        raise FieldError("is_blank", "email is mandatory")
    if not isinstance(value, str):
        raise FieldError("wrong_type", "email must be a string")
    if len(value) > MAX_EMAIL:
        raise FieldError("wrong_value", f"email is longer than {MAX_EMAIL} characters")
    if _EMAIL_RE.fullmatch(value) is None:
        raise FieldError("wrong_email", f"{value} is not a valid email address")
    return value.lower() if lowercase else value


def normalize_system(name: str, value: Any) -> str:
    """A system field's stored value ('' clears it); raises FieldError."""
    if value is None or value == "":
        return ""
    if not isinstance(value, str):
        raise FieldError("wrong_type", f"{name} must be a string")
    if name == "language":
        if value not in LANGUAGES:
            raise FieldError("wrong_value", f"language {value!r} is not one of {', '.join(sorted(LANGUAGES))}")
        return value
    limit = _LIMITS[name]
    if len(value) > limit:
        raise FieldError("wrong_value", f"{name} is longer than {limit} characters")
    if name == "cellphone" and _CELLPHONE_RE.fullmatch(value) is None:
        raise FieldError("wrong_value", "cellphone must be digits with an optional leading +")
    return value


def normalize_custom(field: CustomField, value: Any) -> str:
    """A custom field's stored value (a string; '' clears it); raises FieldError.

    JSON numbers are accepted where the type allows them ("can be an integer, a float, a string or
    a date"); booleans, objects and arrays never are.
    """
    if value is None or value == "":
        return ""
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise _type_error(field)
    kind = field.type
    if kind == "text":
        return value if isinstance(value, str) else _number_text(value)
    if kind == "int":
        if isinstance(value, float) or (isinstance(value, str) and _INT_RE.fullmatch(value) is None):
            raise _type_error(field)
        return str(int(value))
    if kind == "double":
        if isinstance(value, str) and _DOUBLE_RE.fullmatch(value) is None:
            raise _type_error(field)
        try:
            number = Decimal(str(value))
        except InvalidOperation:
            raise _type_error(field) from None
        if not number.is_finite():
            raise _type_error(field)
        return str(number.quantize(_CENT, rounding=ROUND_HALF_UP))
    if not isinstance(value, str) or _DATE_RE.fullmatch(value) is None:
        raise _type_error(field)
    try:
        datetime.strptime(value, DATE_FORMAT)
    except ValueError:
        raise _type_error(field) from None
    return value


def _type_error(field: CustomField) -> FieldError:
    return FieldError("wrong_type", f"Custom field with id {field.id} and name {field.name} must be of type "
                                    f"{field.type}.")


def _number_text(value: int | float) -> str:
    return str(value) if isinstance(value, int) or not value.is_integer() else str(int(value))


class CustomFields:
    """The universe's custom contact fields, by id and by name."""

    def __init__(self, fields: Mapping[str, str] | Iterable[Mapping[str, Any]] | None = None):
        self.by_id: dict[int, CustomField] = {}
        self.by_name: dict[str, CustomField] = {}
        items: list[tuple[int | None, str, str]] = []
        if isinstance(fields, Mapping):
            items = [(None, name, kind) for name, kind in fields.items()]
        elif fields is not None:
            items = [(f.get("id"), f["name"], f["type"]) for f in fields]
        for field_id, name, kind in items:
            self.add(name, kind, field_id)

    def add(self, name: str, kind: str, field_id: int | None = None) -> CustomField:
        if kind not in FIELD_TYPES:
            raise ValueError(f"custom field {name!r}: type must be one of {', '.join(FIELD_TYPES)}")
        if not name or name in self.by_name:
            raise ValueError(f"custom field name {name!r} is empty or already used")
        if len(self.by_id) >= MAX_CUSTOM_FIELDS:
            raise ValueError(f"a universe has at most {MAX_CUSTOM_FIELDS} custom contact fields")
        if field_id is None:
            field_id = max(self.by_id, default=-1) + 1
        if field_id in self.by_id or field_id < 0:
            raise ValueError(f"custom field id {field_id} is negative or already used")
        field = CustomField(int(field_id), name, kind)
        self.by_id[field.id] = field
        self.by_name[name] = field
        return field

    def __iter__(self):
        return iter(sorted(self.by_id.values(), key=lambda f: f.id))

    def __len__(self) -> int:
        return len(self.by_id)


def _set_custom(target: dict[int, str], values: Mapping[int, str]) -> None:
    """Write custom values; '' clears (removes) a value."""
    for field_id, value in values.items():
        if value == "":
            target.pop(field_id, None)
        else:
            target[field_id] = value


def now_text(clock: float | None = None) -> str:
    return time.strftime(DATE_FORMAT, time.localtime(time.time() if clock is None else clock))


class ContactStore:
    """Contacts by (lowercased) email, with an internal id each. Values are stored as strings.

    A record: {"id", "email", "firstname", "lastname", "language", "cellphone", "customer_key",
    "creation_date", "custom": {field id: value}, "lists": [{"id", "name"?}]}.
    `counters[(source, "created" | "updated")]` counts writes by source ("api", "sftp", "seed").
    """

    def __init__(self, fields: CustomFields, lowercase_emails: bool = True):
        self.fields = fields
        self.lowercase_emails = lowercase_emails
        self.by_email: dict[str, dict] = {}
        self.by_id: dict[int, dict] = {}
        self.counters: Counter = Counter()
        self._next_id = 1

    def __len__(self) -> int:
        return len(self.by_email)

    def get(self, email: str) -> dict | None:
        return self.by_email.get(email.lower() if self.lowercase_emails else email)

    def create(self, email: str, values: Mapping[str, str], custom: Mapping[int, str], *, source: str,
               creation_date: str | None = None, lists: list | None = None) -> dict:
        rec = {"id": self._next_id, "email": email, "firstname": "", "lastname": "", "language": "",
               "cellphone": "", "customer_key": "", "creation_date": creation_date or now_text(),
               "custom": {}, "lists": list(lists or [])}
        self._next_id += 1
        rec.update(values)
        _set_custom(rec["custom"], custom)
        self.by_email[email] = rec
        self.by_id[rec["id"]] = rec
        self.counters[(source, "created")] += 1
        return rec

    def update(self, rec: dict, values: Mapping[str, str], custom: Mapping[int, str], *, source: str,
               creation_date: str | None = None, lists: list | None = None) -> dict:
        rec.update(values)
        _set_custom(rec["custom"], custom)
        if creation_date:
            rec["creation_date"] = creation_date
        if lists is not None:  # PATCH `lists` replaces every membership
            rec["lists"] = list(lists)
        self.counters[(source, "updated")] += 1
        return rec

    def delete(self, email: str) -> bool:
        """Delete a contact (as a user of the universe may): whether there was one."""
        rec = self.get(email)
        if rec is None:
            return False
        self.by_email.pop(email.lower() if self.lowercase_emails else email, None)
        self.by_id.pop(rec["id"], None)
        return True

    def seed(self, contact: Mapping[str, Any]) -> dict:
        """Add or overwrite one contact for a test: {"email", system fields..., custom field names...}."""
        data = dict(contact)
        email = normalize_email(data.pop("email"), lowercase=self.lowercase_emails)
        values: dict[str, str] = {}
        custom: dict[int, str] = {}
        creation_date = data.pop("creation_date", None)
        for name, value in data.items():
            if name in SYSTEM_FIELDS or name == "customer_key":
                values[name] = normalize_system(name, value)
            elif name in self.fields.by_name:
                field = self.fields.by_name[name]
                custom[field.id] = normalize_custom(field, value)
            else:
                raise ValueError(f"unknown contact field {name!r}")
        rec = self.get(email)
        if rec is None:
            return self.create(email, values, custom, source="seed", creation_date=creation_date)
        return self.update(rec, values, custom, source="seed", creation_date=creation_date)

    def public(self, rec: dict, *, data_type: bool = True) -> dict:
        """A contact as the API returns it (shape of the spec's GET /data/contacts/{id} example)."""
        custom = []
        for field_id, value in sorted(rec["custom"].items()):
            field = self.fields.by_id.get(field_id)
            item = {"id": field_id, "name": field.name if field else "", "value": value}
            if data_type:
                item["data_type"] = field.type if field else ""
            custom.append(item)
        return {"id": rec["id"], "lastname": rec["lastname"], "firstname": rec["firstname"], "email": rec["email"],
                "cellphone": rec["cellphone"], "creation_date": rec["creation_date"], "language": rec["language"],
                "custom_fields": custom, "lists": copy.deepcopy(rec["lists"])}

    def snapshot(self, rec: dict) -> dict:
        """A test-friendly copy: system fields plus custom fields by name."""
        out = {k: v for k, v in rec.items() if k not in ("custom", "lists")}
        out["custom_fields"] = {self.fields.by_id[i].name if i in self.fields.by_id else f"c{i}": v
                                for i, v in sorted(rec["custom"].items())}
        out["lists"] = copy.deepcopy(rec["lists"])
        return out

    def clear(self) -> None:
        self.by_email.clear()
        self.by_id.clear()
        self.counters.clear()
        self._next_id = 1
