"""`POST /v2/objects/{object}/records/query`: filters and sorts, as Attio's filtering guide and the
attribute type pages document them.

* Shorthand: `{"email_addresses": "a@b.c", "name": "Ada Lovelace"}` (several keys: all must hold),
  an equality check on the type's default property.
* Verbose: `{"attr": {"$op": v}}` (operator on the default property) or `{"attr": {"prop": v | {"$op": v}}}`;
  the conditions of one attribute must hold for the same value (any value of a multiselect).
* Logical: `$and`, `$or` (lists), `$not` (one filter).
* Operators per type and property as documented: `$eq`, `$in` (text, record_id, record reference
  `target_record_id`), `$contains` (case-insensitive), `$starts_with`, `$ends_with`, `$lt`, `$lte`,
  `$gt`, `$gte`, `$not_empty`. Anything else is a 400 `filter_error` unless `lenient_filters` is set.
Not supported (400 `filter_error`): `path`/`constraints` drill-down filters, interaction attributes.
"""
from __future__ import annotations

from typing import Any, Callable

from .errors import AttioError
from .schema import ObjectDef
from .values import normalise_domain, normalise_phone, parse_iso, format_timestamp

EQ, IN, NE = "$eq", "$in", "$not_empty"
TEXT_OPS = frozenset({"$eq", "$contains", "$starts_with", "$ends_with"})
ORDER_OPS = frozenset({"$eq", "$lt", "$lte", "$gt", "$gte"})
ALL_OPS = TEXT_OPS | ORDER_OPS | {IN, NE}


def _prop(kind: str, ops: frozenset | set, getter: Callable[[dict], Any] | None = None, key: str = "") -> tuple:
    return kind, frozenset(ops), getter or (lambda v, k=key: v.get(k))


_NAME = {p: _prop("str", TEXT_OPS | {NE}, key=p) for p in ("first_name", "last_name", "full_name")}
_LOCATION = {**{p: _prop("str", TEXT_OPS, key=p) for p in ("line_1", "line_2", "line_3", "line_4", "locality",
                                                         "region", "postcode")},
             "country_code": _prop("str", {EQ, "$starts_with"}, key="country_code")}
# type -> (default property or None, {property: (kind, operators, getter)})
TYPES: dict[str, tuple[str | None, dict[str, tuple]]] = {
    "text": ("value", {"value": _prop("str", TEXT_OPS | {IN}, key="value")}),
    "number": ("value", {"value": _prop("num", ORDER_OPS, key="value")}),
    "rating": ("value", {"value": _prop("num", ORDER_OPS, key="value")}),
    "currency": ("currency_value", {"currency_value": _prop("num", ORDER_OPS, key="currency_value")}),
    "checkbox": ("value", {"value": _prop("bool", {EQ}, key="value")}),
    "date": ("value", {"value": _prop("date", ORDER_OPS, key="value")}),
    "timestamp": ("value", {"value": _prop("ts", ORDER_OPS, key="value")}),
    "select": ("option", {"option": _prop("option", {EQ}, key="option"),
                          "active_from": _prop("ts", ORDER_OPS - {EQ}, key="active_from")}),
    "status": ("status", {"status": _prop("option", {EQ}, key="status"),
                          "active_from": _prop("ts", ORDER_OPS - {EQ}, key="active_from")}),
    "email-address": ("email_address", {
        "email_address": _prop("email", TEXT_OPS, key="email_address"),
        "normalized_email_address": _prop("email", TEXT_OPS, key="email_address"),
        "email_domain": _prop("lower", TEXT_OPS, key="email_domain"),
        "email_root_domain": _prop("lower", TEXT_OPS, key="email_root_domain"),
        "email_local_specifier": _prop("lower", TEXT_OPS, key="email_local_specifier")}),
    "domain": ("domain", {"domain": _prop("domain", TEXT_OPS | {NE}, key="domain"),
                          "root_domain": _prop("domain", TEXT_OPS | {NE}, key="root_domain")}),
    "phone-number": ("phone_number", {
        "phone_number": _prop("phone", TEXT_OPS, key="phone_number"),
        "normalized_phone_number": _prop("phone", TEXT_OPS, key="phone_number"),
        "country_code": _prop("str", {EQ, NE}, key="country_code")}),
    "personal-name": ("full_name", _NAME),
    "location": (None, _LOCATION),
    "record-reference": (None, {"target_object": _prop("str", {EQ}, key="target_object"),
                                "target_record_id": _prop("str", {EQ, IN}, key="target_record_id")}),
    "actor-reference": (None, {"referenced_actor_type": _prop("str", {EQ}, key="referenced_actor_type"),
                               "referenced_actor_id": _prop("str", {EQ, IN}, key="referenced_actor_id")}),
}


def filter_error(message: str) -> AttioError:
    return AttioError(400, "filter_error", message)


def compile_filter(obj: ObjectDef, node: Any, lenient: bool = False) -> Callable[[dict], bool]:
    """A predicate over stored records (`{"values": {slug: [value, ...]}}`)."""
    return _Compiler(obj, lenient).node(node)


def email_equalities(obj: ObjectDef, node: Any) -> tuple[Any, list[str]] | None:
    """(attribute, emails) when a filter is only shorthand equalities on one unique email
    attribute (one, or an `$or` of them: what a lookup of many keys sends), the emails normalised
    as the filter compares them; None for any other filter. Such a filter can match only the
    records the uniqueness index holds for those emails."""
    terms = node["$or"] if isinstance(node, dict) and set(node) == {"$or"} else [node]
    if not isinstance(terms, list):
        return None
    ref, emails = None, []
    for term in terms:
        if not (isinstance(term, dict) and len(term) == 1):
            return None
        ((name, value),) = term.items()
        if name.startswith("$") or not isinstance(value, str) or ref not in (None, name):
            return None
        ref = name
        emails.append(_operand("email", value))
    attr = obj.attribute(ref) if ref is not None else None
    if attr is None or not attr.is_unique or attr.type != "email-address":
        return None
    return attr, emails


class _Compiler:
    def __init__(self, obj: ObjectDef, lenient: bool):
        self.obj, self.lenient = obj, lenient

    def node(self, node: Any) -> Callable[[dict], bool]:
        if not isinstance(node, dict):
            raise filter_error("A filter must be an object.")
        preds = []
        for key, cond in node.items():
            if key in ("$and", "$or"):
                if not isinstance(cond, list) or not cond:
                    raise filter_error(f"{key} takes a non-empty array of filters.")
                subs = [self.node(c) for c in cond]
                preds.append((lambda r, s=subs: all(p(r) for p in s)) if key == "$and"
                             else (lambda r, s=subs: any(p(r) for p in s)))
            elif key == "$not":
                sub = self.node(cond)
                preds.append(lambda r, s=sub: not s(r))
            elif key in ("path", "constraints"):
                raise filter_error("Path (drill-down) filters are not supported by the sandbox.")
            elif key.startswith("$"):
                raise filter_error(f"Unknown logical operator {key}.")
            else:
                preds.append(self.attribute(key, cond))
        return lambda r: all(p(r) for p in preds)

    def attribute(self, ref: str, cond: Any) -> Callable[[dict], bool]:
        attr = self.obj.attribute(ref)
        if attr is None or attr.is_archived:
            raise filter_error(f'Unknown attribute slug/ID "{ref}" in filter.')
        if attr.type not in TYPES:
            raise filter_error(f"Filtering on {attr.type} attributes is not supported by the sandbox.")
        default, props = TYPES[attr.type]
        # (property, operator, operand) triples
        triples: list[tuple[str, str, Any]] = []
        if not isinstance(cond, dict):
            if default is None:
                raise filter_error(f'Attribute "{attr.slug}" needs a property in the filter.')
            triples.append((default, EQ, cond))
        else:
            if not cond:
                raise filter_error(f'Empty condition for attribute "{attr.slug}".')
            for key, value in cond.items():
                if key.startswith("$"):
                    if default is None:
                        raise filter_error(f'Attribute "{attr.slug}" needs a property before {key}.')
                    triples.append((default, key, value))
                elif key not in props:
                    raise filter_error(f'Unknown property "{key}" for {attr.type} attribute "{attr.slug}".')
                elif isinstance(value, dict):
                    if not value:
                        raise filter_error(f'Empty condition for "{attr.slug}.{key}".')
                    triples += [(key, op, operand) for op, operand in value.items()]
                else:
                    triples.append((key, EQ, value))
        value_checks, presence = [], []
        for prop, op, operand in triples:
            kind, ops, getter = props[prop]
            if op not in ALL_OPS:
                raise filter_error(f"Unknown operator {op}.")
            if op not in ops and not self.lenient:
                raise filter_error(f'Operator {op} is not supported for "{attr.slug}.{prop}" ({attr.type}).')
            if op == NE:
                if not isinstance(operand, bool):
                    raise filter_error("$not_empty takes true or false.")
                presence.append((getter, operand))
            else:
                value_checks.append(_check(kind, op, operand, getter))
        slug = attr.slug

        def pred(record: dict) -> bool:
            values = record["values"].get(slug, [])
            for getter, wanted in presence:
                if any(getter(v) not in (None, "") for v in values) != wanted:
                    return False
            return not value_checks or any(all(c(v) for c in value_checks) for v in values)
        return pred


def _operand(kind: str, value: Any) -> Any:
    """Normalise a filter operand like the stored values it is compared with."""
    if kind == "num":
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise filter_error(f"Expected a number in filter, got {value!r}.")
        return float(value) + 0.0  # compared as the 64-bit floats numbers are persisted as
    if kind == "bool":
        if value in ("true", "false"):
            return value == "true"
        if not isinstance(value, bool):
            raise filter_error(f"Expected true or false in filter, got {value!r}.")
        return value
    if not isinstance(value, str):
        raise filter_error(f"Expected a string in filter, got {value!r}.")
    if kind in ("date", "ts"):
        parsed = parse_iso(value, need_time=kind == "ts")
        if parsed is None:
            raise filter_error(f"Cannot parse {value!r} as a {'timestamp' if kind == 'ts' else 'date'} in filter.")
        return parsed[0].date().isoformat() if kind == "date" else format_timestamp(parsed[0], parsed[1])
    if kind in ("email", "lower"):
        return value.strip().lower()
    if kind == "domain":
        return normalise_domain(value) or value.strip().lower()
    if kind == "phone":
        phone = normalise_phone(value, None)
        return phone["phone_number"] if phone else value.strip()
    return value


def _check(kind: str, op: str, operand: Any, getter: Callable[[dict], Any]) -> Callable[[dict], bool]:
    if op == IN:
        if not isinstance(operand, list):
            raise filter_error("$in takes an array.")
        wanted = [_operand(kind, o) for o in operand]
        return lambda v: _matches_any(kind, getter(v), wanted)
    if op in ("$contains", "$starts_with", "$ends_with"):
        if not isinstance(operand, str):
            raise filter_error(f"{op} takes a string.")
        needle = operand.lower()
        test = {"$contains": str.__contains__, "$starts_with": str.startswith, "$ends_with": str.endswith}[op]
        return lambda v: isinstance(getter(v), str) and test(getter(v).lower(), needle)
    target = _operand(kind, operand)
    if op == EQ:
        return lambda v: _matches_any(kind, getter(v), [target])
    if kind not in ("num", "date", "ts"):
        raise filter_error(f"{op} needs a number, date or timestamp.")
    compare = {"$lt": lambda a: a < target, "$lte": lambda a: a <= target, "$gt": lambda a: a > target,
               "$gte": lambda a: a >= target}[op]
    return lambda v: getter(v) is not None and compare(getter(v))


def _matches_any(kind: str, stored: Any, wanted: list) -> bool:
    if kind == "option":  # a select option or status, by title or id
        return isinstance(stored, dict) and any(w in (stored["title"], stored["id"].get("option_id"),
                                                      stored["id"].get("status_id")) for w in wanted)
    return stored in wanted


def sort_records(obj: ObjectDef, records: list[dict], sorts: list[dict]) -> list[dict]:
    """Stable multi-key sort; records without a value go last."""
    for sort in reversed(sorts):
        if "path" in sort:
            raise filter_error("Sorting by path is not supported by the sandbox.")
        attr = obj.attribute(sort["attribute"])
        if attr is None or attr.is_archived:
            raise filter_error(f'Unknown attribute slug/ID "{sort["attribute"]}" in sorts.')
        default, props = TYPES.get(attr.type, (None, {}))
        field = sort.get("field") or default
        if field not in props:
            raise filter_error(f'Give a valid "field" to sort by {attr.slug}.')
        getter = props[field][2]
        kind = props[field][0]

        def key(record: dict, slug=attr.slug, getter=getter, kind=kind) -> Any:
            values = record["values"].get(slug, [])
            value = getter(values[0]) if values else None
            if kind == "option" and isinstance(value, dict):
                value = value["title"]
            return value

        present = [r for r in records if key(r) is not None]
        missing = [r for r in records if key(r) is None]
        present.sort(key=key, reverse=sort["direction"] == "desc")
        records = present + missing
    return records
