"""A local emulator of Splio's contact imports: SFTP drop box + importer, and the v3 REST API.

Written from Splio's public docs as quoted in the project's reference notes (Datahub automatic
imports; /authenticate, /data/contacts, /data/contacts/bulk, PATCH /data/contacts/{id},
/data/fields/contacts, /universes/unique-key; rate limiting) and the response examples of Splio's
Swagger file, never from dinsync's client.

Documented rules it enforces
* CSV in UTF-8 without BOM (a BOM rejects the file), a header of column names (case-sensitive),
  no multi-line values, at most 200,000 lines (header included), known columns only (`email`, `customer_key`,
  `firstname`, `lastname`, `language`, `cellphone` and the universe's custom fields); an unknown
  column or a missing `email` column skips the whole file. Email max 100 (stored lowercase),
  names max 255, cellphone max 30, language in the documented 2-letter list, custom fields typed
  text / int / double / date `YYYY-MM-DD HH:MM:SS`: a bad value rejects its line only.
* Insert vs update-only is the import configuration's (`insert_allowed`), not the file's.
* JWT from `POST /authenticate {"api_key"}`, `Authorization: Bearer`; bulk create-only (<= 1000,
  207 with per-item 201 / 400 "Contact with unique key ... already exists"; any invalid item
  rejects the whole batch with 400); PATCH updates one contact, the email cannot change.
* Rate limits per client IP: `data/contacts` 20 RPS, other endpoints 10 RPS each; `rateLimit-*`
  headers; 429 `{"message": "API rate limit exceeded"}`.

Our choices where Splio is silent (all `SplioOptions` fields; default in brackets)
* File names [`file_name_pattern="{universe}_contacts_*.csv"`, a case-sensitive glob]: Splio's
  sentence "Filenames must indicate the universe, ..." is cut off. A complete file whose name
  does not match is rejected with reason `file_name`. Names starting with "." or ending in .part,
  .tmp, .temp, .filepart, .partial, .swp or ~ are temporary: never picked up, never reported.
  A file still open for writing over SFTP is not picked up either.
* Separator [`separator=";"`] (older support article), RFC 4180 quoting (`"` doubled). A quoted
  value that runs onto the next line rejects the whole file (`multi_line_value`); a broken
  quote on the last line, a wrong number of values, or an empty line rejects that line.
* Custom field columns [`custom_field_columns="name"`]: by field name; "id" takes `cN`, "both"
  either. Empty cells [`empty_cells="clear"`]: an empty cell clears the stored value; "keep"
  leaves it. Emails are compared and stored lowercase [`lowercase_emails=True`].
* Folders [`drop_dir="/imports/contacts"`, `reports_dir="/imports/reports"`,
  `processed_dir="/imports/processed"`]: files are taken one at a time in name order, every
  `poll_interval` [0.2 s] and on `process_now()`. After processing (or rejection) the file
  moves to the processed folder and `<reports_dir>/<file name>.report.json` is written
  atomically (format in importer.py). A reused name is processed again and its report replaced.
  Only the drop folder is writable over SFTP.
* Token lifetime [`token_lifetime=3600`] (the docs say 1 h and 24 h); an expired, forged or
  missing token -> 401 envelope `authentication.failed`. Wrong api_key -> 400 as documented.
* Bulk shares the 20 RPS contacts bucket [`bulk_shares_contacts_limit=True`]; fixed 1-second
  windows [`window="fixed"`] (the headers are those of Kong's rate-limiting plugin);
  `Retry-After` on 429 [`retry_after_header=False`]: clients must use `rateLimit-reset`.
* Custom fields written by `name` alone [`custom_fields_by_name=False`]: refused with 400
  `is_blank` at `custom_fields[i].id`; ids always work (`cN` <-> id N).
* A contact without email on create [`missing_key_status=503`] (`internal_error`, as in
  Splio's own example; 400 `is_blank` otherwise). Unknown contact on GET / PATCH
  [`unknown_contact_status=404`] with `{"error_key": "id", "error": "wrong_value",
  "error_description": "Contact not found for given identifier."}`.
* Unknown keys in a contact body, or in its custom field and list items [`reject_unknown_keys=True`]
  -> 400 `wrong_value`.
* A POST / PATCH / PUT body not sent as `Content-Type: application/json` (text, a form, no
  header) [`require_json_content_type=True`] -> 415 envelope `wrong_value` at `body`, nothing
  applied (the Swagger file's bodies are JSON; the Attio and Attentive sandboxes refuse such
  bodies too).
* `GET /data/fields/contacts` lists system fields (`is_system: true`) and custom fields
  (`id`, `name`, `field_key: cN`); `data_type` only with [`fields_data_type=False`] (absent
  from Splio's example). Its paging [`fields_list_query="paged"`]: `per_page` (default 100, at
  most 1000) and `page_number`, as on the sibling field lists; Splio's Swagger lists no query
  parameter for this one: "refused" answers any with 400 and the whole list in one answer.
  Only the `email` unique key is emulated.
"""
from .contacts import LANGUAGES, ContactStore, CustomField, CustomFields, FieldError
from .importer import REPORT_SUFFIX, REPORT_VERSION, TEMPORARY_SUFFIXES, is_temporary
from .options import SplioOptions
from .sandbox import SplioSandbox
from .sftp import SftpFaults

__all__ = ["LANGUAGES", "REPORT_SUFFIX", "REPORT_VERSION", "TEMPORARY_SUFFIXES", "ContactStore", "CustomField",
           "CustomFields", "FieldError", "SftpFaults", "SplioOptions", "SplioSandbox", "is_temporary"]
