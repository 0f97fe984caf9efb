"""A Splio destination and sync in a project: what validates, what is refused and how it is said."""
from __future__ import annotations

from pathlib import Path

import pytest

from dinsync.config import load_project
from dinsync.errors import ConfigError

PASSWORD = "sftp-secret-0b7e4f"
KEY = "api-secret-91c2d8"
ENV = {"SPLIO_SFTP_PASSWORD": PASSWORD, "SPLIO_API_KEY": KEY}

DESTINATION = """\
version: 1
warehouse: {{type: duckdb, path: warehouse.duckdb}}
destinations:
  splio:
    type: splio
{body}"""
SFTP = """\
    transport: sftp
    universe: acme
    sftp:
      host: sftp.example.com
      port: 22
      username: acme
      password: ${env:SPLIO_SFTP_PASSWORD}
      known_hosts: ~/.ssh/known_hosts
      directory: /imports/contacts
"""
MODEL = "-- primary_key: id\n-- model_type: user\nselect id, email, first_name, phone, plan from people\n"
SYNC = """\
model: people
destination: splio
service: contacts
mode: {mode}
match: {{column: email, field: email}}
fields: {{first_name: firstname, phone: cellphone, plan: {plan}}}
"""


def project(root: Path, body: str = SFTP, mode: str = "update", plan: str = "{field: plan, custom: true}") -> Path:
    (root / "models").mkdir(parents=True)
    (root / "syncs").mkdir()
    (root / "dinsync.yml").write_text(DESTINATION.format(body=body))
    (root / "models" / "people.sql").write_text(MODEL)
    (root / "syncs" / "splio_people.yml").write_text(SYNC.format(mode=mode, plan=plan))
    return root


def issues(root: Path) -> str:
    with pytest.raises(ConfigError) as info:
        load_project(root, env=ENV)
    return info.value.message


def test_the_issue_example_validates_and_keeps_secrets_out_of_options(tmp_path):
    p = load_project(project(tmp_path), env=ENV)
    destination = p.destinations["splio"].make_destination()
    assert destination.settings.transport == "sftp" and destination.settings.sftp.port == 22
    assert PASSWORD in destination.secrets()
    assert PASSWORD not in repr(destination.options) and PASSWORD not in repr(p)
    assert p.syncs["splio_people"].spec().custom == [False, False, True]


def test_upsert_is_refused_with_the_reason(tmp_path):
    text = issues(project(tmp_path, mode="upsert"))
    assert "splio contacts does not support mode 'upsert'" in text
    assert "use `insert`" in text or "`insert`" in text
    assert "import configuration" in text


def test_unknown_standard_field_points_to_custom(tmp_path):
    text = issues(project(tmp_path, plan="plan"))
    assert "has no field 'plan'" in text and "custom: true" in text


@pytest.mark.parametrize("flag", ['"true"', "yes", "1", "on"])
def test_a_custom_flag_written_otherwise_than_true_is_checked_as_the_run_reads_it(tmp_path, flag):
    """`custom: "true"` (quoted), `yes` or `1` are read as true (the sync then writes a custom field),
    but the checks of the fields took only `true` for it: `plan` was refused as a standard field Splio
    lacks, with the hint to mark it `custom: true`, which it was."""
    p = load_project(project(tmp_path, plan=f"{{field: plan, custom: {flag}}}"), env=ENV)
    assert p.syncs["splio_people"].spec().custom == [False, False, True]


@pytest.mark.parametrize("body, expected", [
    ("    transport: sftp\n    universe: acme\n", "transport sftp needs an `sftp:` section"),
    ("    transport: api\n", "transport api needs api_key"),
    (SFTP.replace("password: ${env:SPLIO_SFTP_PASSWORD}", "password: x\n      private_key: y"),
     "exactly one of sftp.password and sftp.private_key"),
    (SFTP.replace("directory: /imports/contacts", "directory: imports"), "absolute path"),
    (SFTP + "    sftp_extra: 1\n", "unknown key destinations.splio.sftp_extra"),
    (SFTP.replace("universe: acme", "universe: acme\n    timezone: Mars/Olympus"), "unknown time zone"),
])
def test_settings_errors(tmp_path, body, expected):
    text = issues(project(tmp_path, body=body))
    assert expected in text
    assert PASSWORD not in text and KEY not in text


def test_sftp_credentials_written_in_the_file(tmp_path):
    # A password or key text written in dinsync.yml is refused (located, not echoed); a private_key
    # that is the path of a key file is not a secret and may be written there.
    literal = SFTP.replace("${env:SPLIO_SFTP_PASSWORD}", "pasted-sftp-pw-123")
    text = issues(project(tmp_path / "a", body=literal))
    assert "dinsync.yml:12: destinations.splio.sftp.password is a credential written in the file" in text
    assert "pasted-sftp-pw-123" not in text
    key_text = SFTP.replace("password: ${env:SPLIO_SFTP_PASSWORD}",
                            "private_key: '-----BEGIN OPENSSH PRIVATE KEY----- b3BlbnNzaC1rZXk'")
    text = issues(project(tmp_path / "b", body=key_text))
    assert "destinations.splio.sftp.private_key is a credential written in the file" in text
    assert "b3BlbnNzaC1rZXk" not in text
    key_path = SFTP.replace("password: ${env:SPLIO_SFTP_PASSWORD}", "private_key: ~/.ssh/splio_ed25519")
    p = load_project(project(tmp_path / "c", body=key_path), env=ENV)
    assert p.destinations["splio"].make_destination().settings.sftp.private_key is not None


def test_file_name_template_must_identify_sync_and_run(tmp_path):
    body = SFTP.replace("directory: /imports/contacts", "directory: /imports/contacts\n      file_name: 'x_{seq}.csv'")
    assert "must contain {sync}, {run} and {seq}" in issues(project(tmp_path, body=body))


def test_file_name_placeholders_take_no_format_spec(tmp_path):
    # validate said OK, then every sync failed at its first file: "ValueError: Unknown format code
    # 'd' for object of type 'str'" (an unexpected error), as {seq} is formatted as text
    for n, (template, named) in enumerate((("{universe}_{sync}_{stamp}_{run}_{seq:06d}.csv", "({seq:06d})"),
                                           ("{universe}_{sync}_{stamp!r}_{run}_{seq}.csv", "({stamp!r})"))):
        line = f"directory: /imports/contacts\n      file_name: '{template}'"
        text = issues(project(tmp_path / str(n), body=SFTP.replace("directory: /imports/contacts", line)))
        assert f"placeholders take no format spec or conversion {named}" in text


def test_file_names_must_indicate_the_universe(tmp_path):
    """Splio: "Filenames must indicate the universe": a template with neither {universe} nor the
    universe's name writes files Splio skips."""
    body = SFTP.replace("directory: /imports/contacts",
                        "directory: /imports/contacts\n      file_name: 'contacts_{sync}_{stamp}_{run}_{seq}.csv'")
    assert "must indicate the universe" in issues(project(tmp_path, body=body))
    literal = body.replace("'contacts_", "'acme_contacts_")
    load_project(project(tmp_path / "b", body=literal), env=ENV)


def test_the_api_sends_24_requests_at_once_by_default_and_dinsync_yml_still_decides(tmp_path):
    """20 contacts requests/s at 1 s an answer need 20 in flight (the cap grows with the latency,
    sender/inflight.py): the generic 8 held 40% of the rate at 1 s; a `concurrency` set still wins."""
    from dinsync.destinations.splio.destination import SplioDestination

    api = "    transport: api\n    universe: acme\n    api_key: ${env:SPLIO_API_KEY}\n"
    p = load_project(project(tmp_path / "a", body=api), env=ENV)
    assert p.destinations["splio"].concurrency == SplioDestination.default_concurrency == 24
    p = load_project(project(tmp_path / "b", body=api + "    concurrency: 6\n"), env=ENV)
    assert p.destinations["splio"].concurrency == 6


def test_the_account_a_sync_reaches_is_the_universe_whichever_transport(tmp_path):
    """What a sync records as the place its snapshot was delivered to (another one: every row is
    sent): the universe, over SFTP or the API alike, never a credential."""
    api = "    transport: api\n    universe: acme\n    api_key: ${env:SPLIO_API_KEY}\n"
    accounts = [load_project(project(tmp_path / name, body=body), env=ENV).destinations["splio"]
                .make_destination().account() for name, body in (("sftp", SFTP), ("api", api))]
    assert accounts == ["universe acme", "universe acme"]
    other = load_project(project(tmp_path / "other", body=SFTP.replace("acme", "acme_eu")), env=ENV)
    assert other.destinations["splio"].make_destination().account() == "universe acme_eu"


def test_the_api_of_another_address_is_another_account_though_the_universe_is_the_same(tmp_path):
    """A universe's sync tried against the sandbox (`base_url` of `dinsync sandbox splio`), then
    pointed at Splio's API under the same universe name: the snapshot says what the sandbox holds,
    so the address is part of where the writes land (else nothing would ever reach Splio); Splio's
    own API address is the universe alone, as SFTP is (a change of transport resends nothing)."""
    api = "    transport: api\n    universe: acme\n    api_key: ${env:SPLIO_API_KEY}\n"
    sandbox = api + "    base_url: http://127.0.0.1:18400/\n"
    accounts = [load_project(project(tmp_path / name, body=body), env=ENV).destinations["splio"]
                .make_destination().account() for name, body in (("api", api), ("sandbox", sandbox))]
    assert accounts == ["universe acme", "universe acme at http://127.0.0.1:18400"]
    default = api + "    base_url: https://API.splio.com:443/\n"
    assert load_project(project(tmp_path / "default", body=default), env=ENV).destinations["splio"] \
        .make_destination().account() == "universe acme"
