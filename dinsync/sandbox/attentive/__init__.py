"""A local emulator of Attentive's user-attribute APIs (one company), over real sockets.

Written from Attentive's public OpenAPI files (REST API v1, server `.../v1`, and API V2) and
its rate-limit and authentication pages, never from dinsync's client. Requests pass through:
faults (what a proxy in front would do) -> auth (`Authorization: Bearer <key>`, 401) -> the
per-token, per-endpoint rate limiter (429) -> scopes (403) -> a POST body's media type (the specs
declare only `application/json`; another is 415) -> validation (400) -> the write.
Every answer of the API is JSON `ErrorResponseDto` on error: `{"error": {"id": <int>, "message"}}`.

Endpoints (names are the specs' operationIds; they key limits, faults, counters and the log):
  GET  /v1/me, /v2/me                         getMe, getMeV2            150/s
  POST /v1/attributes/custom                  postCustomAttributes      150/s  attributes:write
  GET  /v1/attributes/custom?email=|phone=    getCustomAttributes       150/s  attributes:write
  GET  /v1/subscriptions?email=|phone=        getSubscriptions           10/s  subscriptions:read
  POST /v1/identity-resolution/user-identifiers  identify                10/s  identity:write
  POST /v2/user/attributes                    postUserAttributes        150/s  attributes:write + subscriptions:write
  POST /v2/bulk/user/attributes               postBulkUserAttributes    100/s  (same)
  GET  /v2/bulk/job/{bulkJobId}               getBulkJobStatus          100/s  (no scope)
  GET  /sandbox-downloads/bulk-jobs/{id}.jsonl?signature=...  bulkJobResults (the `url` of a
       completed job; stands for a pre-signed download link: no bearer token, no API limits)

Documented behaviour it follows:
* v1 custom attributes: `properties` + `user` required; `user` is `EventUser` (phone / email /
  externalIdentifiers, additionalProperties false, minProperties 1); arrays or objects as values
  -> 400; attribute names up to 200 characters; the first value seen fixes an attribute's type
  ("24" -> NUMBER, "TRUE" -> BOOLEAN, "1986-11-16" -> DATE, else STRING); a property defined in the
  UI with enumerated values (`enum_properties`, `define_property`) accepts only those values.
  Answer: 200 with no body. External identifiers only match after the identity API linked them.
* GET lookups take exactly one of `email` / `phone` (both -> 400); `+` must be sent as `%2B`.
* v2 single: creates the user when no subscriber matches ("otherwise, a new user will be
  created") -- kept, and counted in `created_users` so tests can prove a client created nobody;
  202 `{"success": true, "message"}`; standard attributes firstName, lastName, demographic.*,
  location.*, locale.*; `custom` scalars only; at most 100 custom attributes can be created.
  `subscriptions` opt users in (counted in `opt_ins`); `identifiers` minProperties 1.
* v2 bulk: `{"users": [1..256]}` -> 202 `{"message", "batchJobId"}`; the job goes PENDING ->
  IN_PROGRESS -> COMPLETED and only then applies its records; status `{"bulkJobId", "status",
  "totalRecords", "url"}`, `url` once COMPLETED (results file format: see `jobs.py`).
* Formats: phone E.164 with a possible length (libphonenumber; see `phone_check`); email shape; dateOfBirth
  YYYY-MM-DD; age integer; latitude / longitude strings within range; location.country and
  locale.country ISO-3166-1 alpha-2; region ISO-3166-2 shape (`AU-NSW`, known country); the
  100-character limit on clientUserId and identity-API identifiers.
* Rate limits per endpoint and per token; every API answer carries `x-ratelimit-limit` and
  `x-ratelimit-remaining` (requests left in the current second); a throttled request has no effect.

Undocumented behaviour: our choices, all `AttentiveOptions` fields [default]:
* `unknown_user` ["create"]: what `POST /v1/attributes/custom` does for an email/phone no
  subscriber has. "create" makes a profile (counted in `created_users`), "reject" answers 404,
  "accept" answers 200 and stores nothing (counted in `unknown_user_writes`). Default "create"
  because it is the worst case for an update-only product: Hightouch calls its sync "Upsert" and
  the spec says the user "does not need to be actively subscribed", while DinMo and Daasity say
  only existing subscribers are updated. A client that writes without checking existence first
  is caught by `created_users` under "create"; "reject" tests how it handles the 404. With only
  external identifiers an unknown user is always 404 (they must be linked first).
* `unknown_attributes_lookup` ["404"]: GET /v1/attributes/custom for an unknown user: 404, or
  "empty" (200 `[]`, the same as a known user without custom attributes).
* GET /v1/subscriptions: an unknown user is 404 (the spec lists 404); a known one answers its
  subscriptions of the channel asked about (email -> EMAIL, phone -> TEXT), possibly none.
* `null_values` ["reject"]: a null custom or standard attribute value -> 400; "ignore" drops it,
  "unset" removes the stored value. Null or empty identifiers are always 400.
* `type_mismatch` ["reject"]: a value that does not fit the attribute's type -> 400 (a STRING
  attribute takes any scalar); "accept" stores it.
* `v2_custom_attribute_limit` [100]: counted over all custom attribute names the company has
  (created by any endpoint); a v2 write that would create one more -> 400. v1 has no limit.
* `identifier_conflict` ["reject"]: identifiers of one request that name different subscribers
  -> 400 (no 409 is documented here); "first" writes to the first match (email, phone,
  clientUserId, shopifyId, klaviyoId, custom). v2 and identify give a subscriber the identifiers
  it lacks; an identifier is never moved from one subscriber to another.
* `email_case_sensitive` [False]: emails match case-insensitively. `phone_check` ["possible"]:
  E.164 with a length libphonenumber calls possible (the specs ask for E.164 only, and their own
  example +13115552368 is not "valid" to libphonenumber); "valid" also asks for an assigned range.
* `reject_unknown_keys` [True]: keys the schemas do not list -> 400 (`EventUser` always).
  v2 `subscriptions[]` items may carry `subscriptionType` (required by the spec, not listed).
* `bulk_validation` ["request"]: a malformed record refuses the whole bulk request (400 naming
  `users[i].field`); "record" accepts it and reports it in the results file. Rules that depend on
  stored data (types, enums, limit, conflicts) are always per record, in the results file.
* `results_order` ["submitted"], `results_index` [True]: the results file's lines in submission
  order, each with its `index` (the format is undocumented); "reversed" and False serve it otherwise.
* `completed_status` ["COMPLETED"]: the status a finished job reports (the spec lists "common
  values" only; e.g. "COMPLETED_WITH_ERRORS" stands for one it does not name), with its `url`.
* `bulk_pending_seconds` [0.05], `bulk_job_seconds` [0.2]: when a job starts and completes.
  `script_job_failure()` makes the next job end FAILED (nothing applied, no `url`).
* `write_implies_read` [True]: `subscriptions:write` grants `subscriptions:read` (the spec's scope
  list describes `subscriptions:write` as "read and write subscriptions"). `default_scopes`
  [attributes:write, subscriptions:write, subscriptions:read] for keys given without scopes;
  `endpoint_scopes` overrides. v2 writes require both scopes even for private-app keys.
* `retry_after` [False]: 429 without `Retry-After`; True (or "seconds") adds it in whole seconds
  (>= 1), "http-date" as an HTTP date that far ahead (the other form RFC 9110 allows).
* `window` ["fixed"]: 1-second windows aligned on the clock ("sliding" also possible).
  Limits are checked before scopes (a 403 uses a request). A request with a missing or unknown
  key is charged to no token: its 401 reports the full limit as remaining. `limits=False` turns
  limiting and the rate-limit headers off; `rate_limits={endpoint: n or None}` overrides.
* 401 `Unauthorized`, 403 naming the missing scope(s), 404 for unknown routes and jobs, 405,
  413 over `max_body_bytes` [16 MiB] -- all as `ErrorResponseDto`; error ids count up from 1.
* identify: 202 with no body whether or not a subscriber matched (nothing is created).
* `/v1/me` and `/v2/me` answer `options.me`.
* faults run before auth and the limiter (they stand for the infrastructure in front).
"""
from .jobs import BulkJob
from .options import DEFAULT_RATE_LIMITS, DEFAULT_SCOPES, ENDPOINT_SCOPES, ROUTES, AttentiveOptions
from .rules import ApiError, valid_email, valid_phone, value_kind
from .server import AttentiveSandbox, LoggedRequest

__all__ = ["ApiError", "AttentiveOptions", "AttentiveSandbox", "BulkJob", "DEFAULT_RATE_LIMITS", "DEFAULT_SCOPES",
           "ENDPOINT_SCOPES", "LoggedRequest", "ROUTES", "valid_email", "valid_phone", "value_kind"]
