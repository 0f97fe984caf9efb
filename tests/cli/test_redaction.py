"""The one process-wide redactor (dinsync.redaction)."""
from __future__ import annotations

import json
from urllib.parse import quote, quote_plus

import pytest

from dinsync import redaction


@pytest.fixture(autouse=True)
def alone(empty_redactor):
    """Each test starts from an empty redactor (tests/conftest.py)."""
    yield


def test_every_form_of_a_registered_secret_is_masked():
    secret = 'k3y/with "quote" & plus+é'
    redaction.register(secret)
    texts = [secret, quote(secret), quote(secret, safe=""), quote_plus(secret), json.dumps(secret),
             json.dumps(secret, ensure_ascii=False), repr(secret), repr({"api_key": secret})]
    for text in texts:
        out = redaction.redact(f"before {text} after")
        assert secret not in out and "***" in out, (text, out)
        assert out.startswith("before ") and out.endswith(" after")


def test_a_secret_escaped_as_html_is_masked():
    """Slack's payload escapes `&`, `<` and `>`: `pw&<x>` went out as `pw&amp;&lt;x&gt;`, unmasked."""
    import html

    secret = 'pw&<secret>"99'
    redaction.register(secret)
    for text in (html.escape(secret, quote=False), html.escape(secret)):
        assert redaction.redact(f"key {text} refused") == "key *** refused", text


def test_longest_secret_wins_and_others_stay_readable():
    redaction.register("abcd-1234", "abcd-1234-efgh-5678")
    assert redaction.redact("x abcd-1234-efgh-5678 y abcd-1234 z") == "x *** y *** z"
    assert redaction.redact("nothing secret here") == "nothing secret here"


def test_short_values_are_not_secrets_and_none_passes_through():
    redaction.register("us", "", None, "abc")
    assert redaction.redact("us-east abc") == "us-east abc"
    redaction.register("abcdef", min_chars=7)
    assert redaction.redact("abcdef") == "abcdef"
    assert redaction.redact(None) is None
    assert redaction.redact(12345) == "12345"


def test_values_substituted_from_the_environment_are_registered_when_config_loads(tmp_path):
    from dinsync.config.yamlfile import load_yaml, substitute_env

    doc, _ = load_yaml("warehouse: {password: '${env:PW}'}\nregion: '${env:REGION}'\n", "dinsync.yml")
    substitute_env(doc, {"PW": "pw-from-env-9f8e7d", "REGION": "eu"})
    assert redaction.redact("login with pw-from-env-9f8e7d") == "login with ***"
    assert redaction.redact("region eu") == "region eu"  # too short to be a secret


def test_an_excerpt_cut_inside_a_secret_shows_none_of_it():
    """Reasons keep the start of an error body (body_excerpt: `limit` bytes, then `chars`); cut
    before redacting, an echoed key cut in two kept its start, e.g. `Api-Key: supersecr...`."""
    from dinsync.destinations.base import body_excerpt

    secret = "supersecretkey-4f3e2d"
    redaction.register(secret)
    echo = f"Api-Key: {secret} was refused".encode()
    for pad in range(0, 40):  # the secret at every place around the cut
        body = b"Z" * (100 + pad) + b" " + echo
        for text in (body_excerpt(body, 1000, chars=120), body_excerpt(body, 120 + 10)):
            assert "supers" not in text and "Z" * 50 in text, text
    assert body_excerpt(b"x" * 110 + b" " + echo, 1000, chars=200) == "x" * 110 + " Api-Key: *** was refused"
    assert redaction.shorten(f"{'y' * 10} {secret}", 15) == "y" * 10 + " ***"
    assert redaction.shorten(f"{'y' * 20} {secret}", 15) == "y" * 12 + "..."


def test_a_secret_is_masked_before_rich_wraps_the_line(monkeypatch):
    """The consoles' streams saw the lines rich had wrapped: a secret with spaces wrapped at one,
    or a token longer than a line folded across two, reached the terminal unmasked."""
    import io

    from rich.table import Table

    from dinsync import terminal

    spaced, token = "correct horse battery staple", "eyJ" + "q" * 250
    redaction.register(spaced, token)
    captured = io.StringIO()
    monkeypatch.setattr("sys.stderr", captured)
    terminal.reset()
    try:
        terminal.err().print("error: " + "x" * 180 + f" {spaced} end", highlight=False)
        terminal.err().print(f"token {token}", highlight=False)
        table = Table("key", "reason")
        table.add_row("a@x.com", f"refused {spaced} " * 3)
        terminal.err().print(table)
    finally:
        terminal.reset()
    text = captured.getvalue()
    for part in ("horse", "battery", "staple", "qqqqqqqq"):
        assert part not in text, text
    assert text.count("***") == 5 and "a@x.com" in text and " end" in text


def test_the_start_of_a_credential_is_masked_too():
    """A platform's error may echo a prefix of the key ("invalid key sk9f3a7c21e5..."): masked
    from its first 8 characters on, as far as it goes, in every form; other text stays readable."""
    key = "sk9f3a7c21e5b84d06aa/77+e1"
    redaction.register(key, partial=True)
    for n in range(8, len(key)):
        out = redaction.redact(f"invalid key {key[:n]}... (401)")
        assert out == "invalid key ***... (401)", (n, out)
    assert redaction.redact(f"key={quote(key[:14], safe='')}&x=1") == "key=***&x=1"
    assert redaction.redact(f"{key[:12]}zz {key} {key[:7]}") == f"***zz *** {key[:7]}"
    assert redaction.redact("sk9f3a7 is not it") == "sk9f3a7 is not it"  # 7 characters: not masked


def test_the_start_of_a_url_or_a_value_that_is_not_a_credential_is_not_masked():
    """The start of a webhook URL or of a DSN is not secret: masked, every message naming the
    host would be garbled. Values not registered as credentials are masked whole only."""
    redaction.register("https://hooks.example.com/services/T0/B0/xyzzy9f3a", partial=True)
    redaction.register("host=db.internal password=pw9f3a-very-long", partial=True)
    redaction.register("analytics_prod_db")  # an ${env:NAME} value, not a secret setting
    text = "posting to https://hooks.example.com/other; host=db.internal port 5432; analytics_prod_x"
    assert redaction.redact(text) == text


def test_a_json_document_stays_json_when_a_secret_looks_like_a_number(monkeypatch):
    """`--json` and `serve --json` masked the serialised text: with a credential such as "1234" (a
    test database's password), `"added": 1234` became `"added": ***`, which no JSON parser reads."""
    import io

    from dinsync import terminal

    redaction.register("1234", "true-false", partial=True)
    captured = io.StringIO()
    monkeypatch.setattr("sys.stdout", captured)
    terminal.reset()
    try:
        run = {"added": 1234, "seconds": 0.1234, "full_refresh": False, "error": "key 1234 refused (true-false)",
               "warnings": ["1234"], "1234": None}
        terminal.emit({"runs": [run]})
        line = terminal.json_line({"event": "end", "run": run})
    finally:
        terminal.reset()
    masked = {"added": 1234, "seconds": 0.1234, "full_refresh": False, "error": "key *** refused (***)",
              "warnings": ["***"], "***": None}
    assert json.loads(captured.getvalue()) == {"runs": [masked]}
    assert "\n" not in line and json.loads(line) == {"event": "end", "run": masked}


def test_a_secret_echoed_with_escaped_slashes_is_masked():
    """PHP's json_encode (and other encoders) write `/` as `\\/`: a base64 key echoed in a JSON
    error body kept everything after its first `/`."""
    key = "Zm9vYmFy/c2VjcmV0+a2V5/dGV4dA=="
    redaction.register(key, partial=True)
    escaped = key.replace("/", "\\/")
    assert redaction.redact(f'{{"error":"invalid api_key {escaped}"}}') == '{"error":"invalid api_key ***"}'
    assert redaction.redact(f'{{"error":"invalid api_key {escaped[:20]}..."}}') == '{"error":"invalid api_key ***..."}'


def test_the_basic_credentials_of_a_url_with_a_password_are_masked(tmp_path):
    """`base_url: http://user:${env:PW}@proxy` goes out as `Authorization: Basic base64(user:PW)`; a
    server echoing that header (Splio's /authenticate sends no other) showed it, which decodes to PW."""
    import base64

    from dinsync.config import load_project

    (tmp_path / "models").mkdir()
    (tmp_path / "syncs").mkdir()
    (tmp_path / "dinsync.yml").write_text(
        "version: 1\nwarehouse: {type: duckdb, path: w.duckdb}\ndestinations:\n  iterable:\n    type: iterable\n"
        "    api_key: ${env:KEY}\n    base_url: http://proxy-user:${env:PW}@127.0.0.1:8765\nnotifications:\n"
        "  - type: webhook\n    url: http://hook:${env:HOOK_PW}@127.0.0.1:9/hook\n"
        "  - type: slack\n    webhook_url: ${env:SLACK}\n")
    (tmp_path / "w.duckdb").write_bytes(b"")
    load_project(tmp_path, env={"KEY": "it-key-0f9e8d7c", "PW": "proxy-pw-5b4a39", "HOOK_PW": "hook-pw-2c1d0e",
                                "SLACK": "http://slack-token-7e6f5a@127.0.0.1:9/hook"})
    for user, password in (("proxy-user", "proxy-pw-5b4a39"), ("hook", "hook-pw-2c1d0e"), ("slack-token-7e6f5a", "")):
        basic = base64.b64encode(f"{user}:{password}".encode()).decode()
        assert redaction.redact(f'refused "Authorization: Basic {basic}"') == 'refused "Authorization: Basic ***"'
