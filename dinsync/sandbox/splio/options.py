"""Settings of one emulated Splio universe: the account, its SFTP import configuration and the API.

Every behaviour Splio does not document is a field here (see the package docstring for which).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

DEFAULT_RATE_LIMITS: dict[str, float | None] = {"contacts": 20, "other": 10}


@dataclass
class SplioOptions:
    # ---- the universe (account)
    universe: str = "sandbox"
    unique_key: str = "email"  # only the email key is emulated
    custom_fields: Any = None  # {name: type} (ids from 0) or [{"id", "name", "type"}]
    lowercase_emails: bool = True

    # ---- SFTP server and import configuration
    sftp_port: int = 0  # start(port) takes the HTTP port; SFTP listens here
    sftp_users: dict[str, dict] = field(default_factory=dict)  # name -> {"password", "public_keys": [...]}
    host_key: str | None = None  # path of an OpenSSH private key; None: a fresh ed25519 key
    root: str | None = None  # the SFTP root folder; None: a temporary folder removed at stop()
    insert_allowed: bool = False  # unknown emails: created (True) or reported not_found (False)
    drop_dir: str = "/imports/contacts"
    reports_dir: str = "/imports/reports"
    processed_dir: str = "/imports/processed"
    file_name_pattern: str = "{universe}_contacts_*.csv"  # glob, case-sensitive
    separator: str = ";"
    max_lines: int = 200_000  # lines of a file, header included ("limit the size of your file to 200K lines")
    empty_cells: Literal["clear", "keep"] = "clear"
    custom_field_columns: Literal["name", "id", "both"] = "name"  # `plan` / `c3` / either
    poll_interval: float | None = 0.2  # seconds; None or 0: only process_now()

    # ---- REST API
    token_lifetime: float = 3600.0
    limits: bool = True
    rate_limits: dict[str, float | None] = field(default_factory=lambda: dict(DEFAULT_RATE_LIMITS))
    bulk_shares_contacts_limit: bool = True
    window: Literal["fixed", "sliding"] = "fixed"
    retry_after_header: bool = False
    max_bulk_contacts: int = 1000
    custom_fields_by_name: bool = False
    missing_key_status: int = 503
    unknown_contact_status: int = 404
    fields_data_type: bool = False
    # GET /data/fields/contacts: Splio's Swagger lists no query parameter, yet its answer carries
    # `per_page` / `current_page` like the sibling field lists that take `per_page` / `page_number`.
    # "paged": those two are read (100 a page by default); "refused": any query parameter -> 400
    # (a server held to the Swagger file), and the whole list in one answer.
    fields_list_query: Literal["paged", "refused"] = "paged"
    reject_unknown_keys: bool = True
    require_json_content_type: bool = True  # a POST / PATCH / PUT body not sent as application/json -> 415
    error_index_base: int = 0  # contacts[N] in a refused bulk's error_key: Splio does not document the base
    log_size: int = 100_000

    def __post_init__(self) -> None:
        if self.unique_key != "email":
            raise ValueError("only unique_key='email' is emulated")
        if len(self.separator) != 1 or self.separator in '"\r\n':
            raise ValueError("separator must be one character, not a quote or a line break")
        if self.empty_cells not in ("clear", "keep"):
            raise ValueError("empty_cells must be 'clear' or 'keep'")
        if self.custom_field_columns not in ("name", "id", "both"):
            raise ValueError("custom_field_columns must be 'name', 'id' or 'both'")
        if self.window not in ("fixed", "sliding"):
            raise ValueError("window must be 'fixed' or 'sliding'")
        if self.fields_list_query not in ("paged", "refused"):
            raise ValueError("fields_list_query must be 'paged' or 'refused'")
        if self.missing_key_status not in (400, 503):
            raise ValueError("missing_key_status must be 400 or 503")
        if self.max_lines < 1 or self.max_bulk_contacts < 1:
            raise ValueError("max_lines and max_bulk_contacts must be positive")
        for path in (self.drop_dir, self.reports_dir, self.processed_dir):
            if not path.startswith("/") or path.rstrip("/") == "" or ".." in path.split("/"):
                raise ValueError(f"SFTP folder {path!r} must be absolute, below / and without '..'")
        dirs = {p.rstrip("/") for p in (self.drop_dir, self.reports_dir, self.processed_dir)}
        if len(dirs) != 3:
            raise ValueError("drop_dir, reports_dir and processed_dir must differ")
        for name, user in self.sftp_users.items():
            if not name or not (user.get("password") or user.get("public_keys")):
                raise ValueError(f"SFTP user {name!r} needs a password or public keys")
