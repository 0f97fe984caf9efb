"""What the Attentive sandbox knows from the specs (as data) and the options for what they leave open."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

# Endpoint names are the specs' operationIds (used for rate limits, faults, counters and the log).
# (method, path) -> endpoint; paths as the client sees them (v1 server URL ends in /v1).
ROUTES = {
    ("GET", "/v1/me"): "getMe",
    ("GET", "/v2/me"): "getMeV2",
    ("POST", "/v1/attributes/custom"): "postCustomAttributes",
    ("GET", "/v1/attributes/custom"): "getCustomAttributes",
    ("GET", "/v1/subscriptions"): "getSubscriptions",
    ("POST", "/v1/identity-resolution/user-identifiers"): "identify",
    ("POST", "/v2/user/attributes"): "postUserAttributes",
    ("POST", "/v2/bulk/user/attributes"): "postBulkUserAttributes",
    ("GET", "/v2/bulk/job/{bulkJobId}"): "getBulkJobStatus",
}
RESULTS_ENDPOINT = "bulkJobResults"  # the .jsonl download (a pre-signed link in production, not the API)

# Documented limits (requests per second, per endpoint, per token): 150/s for most endpoints,
# subscriptions 10/s, identity 10/s [docs: API rate limits]; v2 bulk endpoints 100/s [v2 spec].
DEFAULT_RATE_LIMITS: dict[str, float | None] = {
    "getMe": 150, "getMeV2": 150, "postCustomAttributes": 150, "getCustomAttributes": 150,
    "getSubscriptions": 10, "identify": 10, "postUserAttributes": 150,
    "postBulkUserAttributes": 100, "getBulkJobStatus": 100,
}

# Scopes each endpoint requires, from the specs' `security` (OAuthFlow scopes).
ENDPOINT_SCOPES: dict[str, tuple[str, ...]] = {
    "getMe": (), "getMeV2": (), "getBulkJobStatus": (),  # "No Additional scopes required"
    "postCustomAttributes": ("attributes:write",), "getCustomAttributes": ("attributes:write",),
    "getSubscriptions": ("subscriptions:read",), "identify": ("identity:write",),
    "postUserAttributes": ("attributes:write", "subscriptions:write"),
    "postBulkUserAttributes": ("attributes:write", "subscriptions:write"),
}
DEFAULT_SCOPES = ("attributes:write", "subscriptions:write", "subscriptions:read")

# Request properties, from the specs' schemas (tests compare them with the spec files).
CUSTOM_ATTRIBUTES_KEYS = frozenset({"properties", "user"})                  # CustomAttributesRequest
EVENT_USER_KEYS = frozenset({"phone", "email", "externalIdentifiers"})       # EventUser
EXTERNAL_IDENTIFIERS_KEYS = frozenset({"clientUserId", "customIdentifiers"})  # ExternalIdentifiers
V1_CUSTOM_IDENTIFIER_KEYS = frozenset({"name", "value"})
IDENTIFY_KEYS = frozenset({"phone", "email", "shopifyId", "klaviyoId", "clientUserId",
                           "customIdentifiers"})                             # IdentifyRequestDto
V2_USER_KEYS = frozenset({"attributes", "subscriptions", "identifiers"})     # CreateUserAttributesRequestDtoV2
V2_ATTRIBUTE_KEYS = frozenset({"firstName", "lastName", "demographic", "location", "locale", "custom"})
V2_DEMOGRAPHIC_KEYS = frozenset({"language", "dateOfBirth", "age", "organization", "title", "website"})
V2_LOCATION_KEYS = frozenset({"address1", "address2", "city", "state", "zip", "latitude", "longitude",
                              "country", "region", "timezone"})
V2_LOCALE_KEYS = frozenset({"language", "country"})
# subscriptions[] items: the spec also requires "subscriptionType" without listing it
V2_SUBSCRIPTION_KEYS = frozenset({"signUpSourceId", "channel", "singleOptIn"})
V2_IDENTIFIER_KEYS = frozenset({"email", "phone", "shopifyId", "klaviyoId", "clientUserId", "customIdentifiers"})
V2_CUSTOM_IDENTIFIER_KEYS = frozenset({"key", "value"})                      # CustomIdentifier
BULK_KEYS = frozenset({"users"})                                             # UserAttributes

UnknownUser = Literal["reject", "accept", "create"]


@dataclass
class AttentiveOptions:
    """Settings of one company and the behaviours Attentive does not document (see the package docstring)."""

    limits: bool = True
    rate_limits: dict[str, float | None] = field(default_factory=lambda: dict(DEFAULT_RATE_LIMITS))
    window: Literal["fixed", "sliding"] = "fixed"
    retry_after: bool | Literal["seconds", "http-date"] = False  # True: "seconds"
    default_scopes: tuple[str, ...] = DEFAULT_SCOPES
    endpoint_scopes: dict[str, tuple[str, ...]] = field(default_factory=lambda: dict(ENDPOINT_SCOPES))
    write_implies_read: bool = True
    unknown_user: UnknownUser = "create"
    unknown_attributes_lookup: Literal["404", "empty"] = "404"
    null_values: Literal["reject", "ignore", "unset"] = "reject"
    type_mismatch: Literal["reject", "accept"] = "reject"
    enum_properties: dict[str, list[str]] = field(default_factory=dict)
    max_attribute_name_length: int = 200
    v2_custom_attribute_limit: int | None = 100
    identifier_conflict: Literal["reject", "first"] = "reject"
    email_case_sensitive: bool = False
    phone_check: Literal["valid", "possible"] = "possible"
    reject_unknown_keys: bool = True
    bulk_max_users: int = 256
    bulk_validation: Literal["request", "record"] = "request"
    bulk_pending_seconds: float = 0.05
    bulk_job_seconds: float = 0.2
    results_order: Literal["submitted", "reversed"] = "submitted"
    results_index: bool = True
    completed_status: str = "COMPLETED"
    max_body_bytes: int = 16 * 1024 * 1024
    me: dict[str, str] = field(default_factory=lambda: {
        "applicationName": "dinsync sandbox", "attentiveDomainName": "sandbox.attn.tv",
        "companyName": "Sandbox Company", "contactEmail": "sandbox@example.com", "companyId": "MDc6U2FuZGJveA"})
    log_size: int = 100_000

    def __post_init__(self) -> None:
        choices = {"window": ("fixed", "sliding"), "unknown_user": ("reject", "accept", "create"),
                   "unknown_attributes_lookup": ("404", "empty"), "null_values": ("reject", "ignore", "unset"),
                   "type_mismatch": ("reject", "accept"), "identifier_conflict": ("reject", "first"),
                   "phone_check": ("valid", "possible"), "bulk_validation": ("request", "record"),
                   "results_order": ("submitted", "reversed")}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {', '.join(map(repr, allowed))}")
        if self.retry_after not in (False, True, "seconds", "http-date"):
            raise ValueError("retry_after must be False, True, 'seconds' or 'http-date'")
        if not 1 <= self.bulk_max_users:
            raise ValueError("bulk_max_users must be >= 1")
        if self.bulk_pending_seconds < 0 or self.bulk_job_seconds < self.bulk_pending_seconds:
            raise ValueError("need 0 <= bulk_pending_seconds <= bulk_job_seconds")
        for name, given, known in (("rate_limits", self.rate_limits, DEFAULT_RATE_LIMITS),
                                   ("endpoint_scopes", self.endpoint_scopes, ENDPOINT_SCOPES)):
            unknown = set(given) - set(known)
            if unknown:
                raise ValueError(f"unknown endpoints in {name}: {', '.join(sorted(unknown))}")
        # overrides complete the documented values (None: no limit for that endpoint)
        self.rate_limits = {**DEFAULT_RATE_LIMITS, **self.rate_limits}
        self.endpoint_scopes = {**ENDPOINT_SCOPES, **{k: tuple(v) for k, v in self.endpoint_scopes.items()}}
