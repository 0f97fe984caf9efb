"""A local emulator of Attio's REST API v2 (People and Companies), over real sockets.

Written from Attio's public OpenAPI 3.1 file and its documentation (authentication, rate limiting,
filtering and sorting, standard objects, attribute types), never from dinsync's client. Requests pass
through: faults (what sits in front of the API) -> auth (`Authorization: Bearer <token>`, or Basic with
the token as username and an empty password) -> scopes -> the rate limiter -> body/query validation ->
the handler. Endpoint names (for faults, the log and counters) are the keys of `ENDPOINTS`.

Documented behaviour it follows:
* Routes: `GET /v2/self`, `GET /v2/objects`, `GET /v2/objects/{object}`, `GET /v2/{target}/{identifier}/
  attributes[/{attribute}[/options|/statuses]]`, `PUT /v2/objects/{object}/records?matching_attribute=`
  (assert), `POST .../records` (create), `POST .../records/query`, `GET|PATCH|PUT .../records/{record_id}`.
  `{object}` is a slug or an object id; attributes are addressed by slug or attribute id.
* Scopes per operation from the spec (`record_permission:read-write` also grants `record_permission:read`).
* Assert: the matching attribute must exist (else 400 `value_not_found`) and be unique (else 400
  `matching_attribute_definition_not_unique`); one match -> update, none -> create, several -> 400
  `multiple_match_results`. A multiselect matching attribute gets the new values added; other
  multiselect attributes are overwritten. PATCH prepends new multiselect values, PUT overwrites them.
  POST fails on a unique value held by another record; so do updates.
* Values per attribute type as the type pages document them: text (<= 10 MB: 10,000,000 bytes of
  UTF-8, the stricter reading), number, checkbox (also "true"/"false"), currency (number, numeric
  string or `{"currency_value"}`, code from the attribute), date and timestamp (ISO 8601 prefixes,
  zones converted to UTC, nanosecond timestamps), rating 0..5, select/status by title or id
  (unknown -> 400 `value_not_found`, never a new option), email (shape checked, lower-cased), domain
  (scheme/path/query trimmed, root domain from the public suffix list),
  phone (a "+" string, or `{original_phone_number, country_code}`; checked with `phonenumbers`),
  personal name (object with all three properties, or "Last, First"), location (every property, null
  allowed), record reference (`target_record_id`, a unique attribute of the target, or a string: a domain
  for companies, an email for people; the target must exist). Multiselect attributes need an array; a
  single-value attribute takes a value or a one-element array. `null` or `[]` clears a value.
  Read-only attributes (record_id, created_at, created_by, avatar_url, logo_url, enriched ones) refuse writes.
* Relationship pairs: writing person `company` updates company `team` and the other way round.
* Rate limits for the whole token: 100 reads/s, 25 writes/s; 429 `rate_limit_error`/`rate_limit_exceeded`
  with `Retry-After` as an HTTP date (the second the window frees); a throttled request has no effect.
* Errors use the envelope `{"status_code", "type", "code", "message"}` (+ `validation_errors`).

Undocumented behaviour: our choices, all `AttioOptions` fields (default in brackets):
* 401 body (missing, malformed or unknown token): `{"status_code": 401, "type": "auth_error", "code":
  "unauthorized", "message": ...}`; `GET /v2/self` with an unknown Bearer token answers 200
  `{"active": false}` (the spec's first response variant). Basic auth needs an empty password.
* 403 for a missing scope: type `auth_error`, code [`missing_scope_code="missing_scopes"`], message naming
  the scopes. Token scopes: [`default_scopes`] = read-write records + object configuration read;
  per token with `token_scopes={"token": ("record_permission:read", ...)}`.
* Unknown attribute in `values`: message `Cannot find attribute with slug/ID "x".` (seen in third-party
  logs as 400 `value_not_found`) [`unknown_attribute_status=400`; 404 gives code `not_found`].
* Unique conflict: 400 `uniqueness_conflict` (third-party reports) [`uniqueness_conflict_status=400`, or 409].
* Writing a read-only attribute: 400 [`read_only_code="immutable_value"`].
* Value shape errors: 400 `validation_type`, message `An invalid value was passed to attribute with slug
  "x".`, `validation_errors` with the sandbox's reason. Body errors: `Body payload validation error.`,
  query errors `Query params validation error.`, both with zod-style `validation_errors`.
* Unknown keys at the body root, in POST's `data` and in query bodies [`reject_unknown_body_keys=True`]
  (the spec forbids them only in `data` of assert/PATCH/PUT). A records query needs a JSON body (`{}`
  at least: the spec marks it required); unknown query parameters are ignored.
* Assert without a value for the matching attribute: 400 `missing_value`.
* Currency amounts with more than 4 decimals (the spec's maximum; its answer is not documented)
  [`excess_decimals="round"`, or "reject"]; numbers are 64-bit floats (documented): an integer a float
  cannot hold is kept as the float (9007199254740993 as 9007199254740992.0), others as given, and
  uniqueness and filters compare the floats (1, 1.0, 1e0 and -0 / 0 are one value); phone numbers must
  be possible [`phone_validation="possible"`, or "valid"] (Attio's own example +15558675309 is not a
  "valid" number for libphonenumber).
* Which requests are reads: GET, and the records query [`query_is_read=True`]; window [`window="sliding"`,
  1 s, or "fixed" on wall-clock seconds]; limits [`rate_limits={"read": 100, "write": 25}`, `limits=True`].
* Filters: operators per type as documented, others refused [`lenient_filters=False`]; `$contains`,
  `$starts_with`, `$ends_with` compare case-insensitively; path filters and path sorts are refused
  (400 `filter_error`). Query `limit` defaults to 500 and is not capped [`max_query_limit=None`].
* Auto-created company from a new person's email domain [`auto_create_companies=False`], skipping
  [`free_email_domains`]; counted in `auto_created`, not `created`.
* Custom attributes follow Attio's rules (no unique select, no custom unique attribute on companies,
  multiselect only for select/record-reference/phone-number); status attributes on people/companies
  are refused unless [`status_attributes_on_standard_objects=False`] is set. Archived attributes and
  options are invisible to writes. Companies' `categories` options: [`company_categories`], a sample.
* A location written as a string is stored as `line_1` (Attio parses it; the sandbox does not).
* Record responses list every non-archived attribute, `[]` when empty; values carry `created_by_actor`
  `{"type": "api-token", "id": <stable id of the token>}`. Objects: people and companies only.
* Faults run before auth and the limiter (they stand for the infrastructure in front).
"""
from .records import RecordStore
from .sandbox import ENDPOINTS, AttioOptions, AttioSandbox, LoggedRequest
from .schema import CustomAttribute, parse_custom_attribute

__all__ = ["ENDPOINTS", "AttioOptions", "AttioSandbox", "CustomAttribute", "LoggedRequest", "RecordStore",
           "parse_custom_attribute"]
