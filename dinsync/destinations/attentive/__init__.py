"""Attentive: "Synchronize Users", update only.

Built from Attentive's public OpenAPI files (REST API v1 and API V2, copies in tests/specs/) and
its rate-limit page. The product promise is that dinsync never creates a subscriber:

- Every write that could create one is preceded by a documented read that cannot: by default
  `GET /v1/attributes/custom?email=|phone=` (150/s, the fastest documented per-user read), for
  every row about to be written (`lookup: every_write`; a subscriber deleted through Attentive's
  privacy API since the last run must not come back). A 404 is "not found". The spec does not say
  what an unknown user gets, so each run first asks about an address nobody has: if that is a 404,
  an empty list names a known subscriber without custom attributes; if it is an empty list, empty
  answers are confirmed through `GET /v1/subscriptions` (10/s; its 404 is in the spec).
  `existence_check: subscriptions` uses only the latter. Unknown subscribers are `not_found`:
  counted, listed in the rejections table, looked up again next run, never written.
- Standard fields go through the v2 user-attributes body, by default the async bulk endpoint
  (256 users, 100 requests/s; records are pending until the job completes, then read from its
  `.jsonl` results), or the single endpoint (`standard_fields_via: single`). The v2 endpoints
  document that they create unknown users: the existence check above is what stops that.
- Custom attributes (`{field: Name, custom: true}`) go through `POST /v1/attributes/custom` by
  default: its behaviour for an unknown user is undocumented (DinMo and Daasity say it only
  updates existing subscribers), whereas v2 documents creating one, so v1 is never the less safe
  of the two; it also has no limit on the number of attributes (v2: 100). One user per request
  (150/s, the same pace as the lookups). `custom_attributes_via: v2` puts them in the bulk body.
- Only changed fields are sent (the engine's diff); NULLs and empty strings are not sent
  ("Avoid sending null values or empty strings"; Attentive documents no way to clear a value).

See the README's Attentive section for limits (documented vs chosen) and what is unconfirmed.
"""
from .destination import AttentiveDestination, AttentiveSettings
from .fields import STANDARD_FIELDS

__all__ = ["AttentiveDestination", "AttentiveSettings", "STANDARD_FIELDS"]
