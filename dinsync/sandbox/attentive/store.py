"""Subscribers of one Attentive company, indexed by every identifier.

A subscriber is a dict: {"id", "email", "phone", "clientUserId", "shopifyId", "klaviyoId",
"customIdentifiers": {name: value}, "attributes": {firstName, lastName, demographic{}, location{},
locale{}}, "custom": {name: value}, "subscriptions": [{"type", "channel", "eligible"}], "origin"}.
`origin` says who made it: "seed", or the endpoint that created it.
"""
from __future__ import annotations

from typing import Iterator

from .rules import ApiError, Identity

# (record key, Identity attribute) in matching precedence order
_SLOTS = (("email", "email"), ("phone", "phone"), ("clientUserId", "client_user_id"),
          ("shopifyId", "shopify_id"), ("klaviyoId", "klaviyo_id"))


class SubscriberStore:
    def __init__(self, email_case_sensitive: bool = False):
        self.email_case_sensitive = email_case_sensitive
        self._by: dict[str, dict[str, dict]] = {key: {} for key, _ in _SLOTS}
        self._by_custom: dict[tuple[str, str], dict] = {}
        self._all: list[dict] = []

    def __len__(self) -> int:
        return len(self._all)

    def __iter__(self) -> Iterator[dict]:
        return iter(self._all)

    def _index_value(self, key: str, value: str) -> str:
        return value if key != "email" or self.email_case_sensitive else value.lower()

    def find(self, key: str, value: str) -> dict | None:
        """The subscriber whose identifier `key` ("email", "phone", "clientUserId", ...) is `value`."""
        return self._by[key].get(self._index_value(key, value))

    def matches(self, ident: Identity) -> list[dict]:
        """Distinct subscribers matched by any of the identifiers, in precedence order."""
        found: list[dict] = []
        for key, attr in _SLOTS:
            value = getattr(ident, attr)
            rec = self.find(key, value) if value else None
            if rec is not None and all(rec is not f for f in found):
                found.append(rec)
        for item in ident.custom.items():
            rec = self._by_custom.get(item)
            if rec is not None and all(rec is not f for f in found):
                found.append(rec)
        return found

    def resolve(self, ident: Identity, conflict: str) -> dict | None:
        """The one subscriber these identifiers name, None when none does.

        Identifiers naming different subscribers: 400 (`conflict="reject"`) or the first match by
        precedence email, phone, clientUserId, shopifyId, klaviyoId, custom (`"first"`).
        """
        found = self.matches(ident)
        if len(found) > 1 and conflict == "reject":
            raise ApiError(400, "The identifiers belong to different subscribers")
        return found[0] if found else None

    def create(self, ident: Identity, origin: str) -> dict:
        rec = {"id": len(self._all) + 1, "email": None, "phone": None, "clientUserId": None, "shopifyId": None,
               "klaviyoId": None, "customIdentifiers": {}, "attributes": {}, "custom": {}, "subscriptions": [],
               "origin": origin}
        self._all.append(rec)
        self.attach(rec, ident)
        return rec

    def add_seeded(self, email: str, phone: str, subscriptions: list[dict]) -> None:
        """Fast path for `seed_subscribers`: a new subscriber whose email and phone are known to be free."""
        rec = {"id": len(self._all) + 1, "email": email, "phone": phone, "clientUserId": None, "shopifyId": None,
               "klaviyoId": None, "customIdentifiers": {}, "attributes": {}, "custom": {},
               "subscriptions": subscriptions, "origin": "seed"}
        self._all.append(rec)
        self._by["email"][email if self.email_case_sensitive else email.lower()] = rec
        self._by["phone"][phone] = rec

    def attach(self, rec: dict, ident: Identity) -> None:
        """Give `rec` the identifiers it lacks; values it already has, or that name another
        subscriber, are left as they are (identifiers are never moved between subscribers)."""
        for key, attr in _SLOTS:
            value = getattr(ident, attr)
            if value and rec[key] is None and self.find(key, value) is None:
                rec[key] = value
                self._by[key][self._index_value(key, value)] = rec
        for name, value in ident.custom.items():
            if name not in rec["customIdentifiers"] and (name, value) not in self._by_custom:
                rec["customIdentifiers"][name] = value
                self._by_custom[(name, value)] = rec

    def clear(self) -> None:
        for index in self._by.values():
            index.clear()
        self._by_custom.clear()
        self._all.clear()
