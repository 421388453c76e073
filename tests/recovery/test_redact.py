from __future__ import annotations

import base64
import json
import os
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pydantic import BaseModel

from drills.verify.model import CheckResult, Status
from recovery.redact import MASK, mask_dsn, mask_secrets, printable, scrub, shown

MASKED_CASES = [
    pytest.param(
        "postgresql://prism:hunter2@db.internal:5432/prism",
        "postgresql://prism:***@db.internal:5432/prism",
        id="postgresql-uri",
    ),
    pytest.param(
        "postgres://prism:hunter2@db.internal/prism",
        "postgres://prism:***@db.internal/prism",
        id="postgres-scheme",
    ),
    pytest.param(
        "postgresql://prism:p%40ss%3Aw%2Ford@db:5432/prism?sslmode=require",
        "postgresql://prism:***@db:5432/prism?sslmode=require",
        id="percent-encoded-at-colon-slash",
    ),
    pytest.param(
        "postgresql://prism:p@ss@db/prism",
        "postgresql://prism:***@db/prism",
        id="raw-at-in-password",
    ),
    pytest.param(
        "postgresql://prism:ab/c?d@db/prism",
        "postgresql://prism:***@db/prism",
        id="raw-slash-and-question-mark-in-password",
    ),
    pytest.param(
        "postgresql://prism:it's@db/prism",
        "postgresql://prism:***@db/prism",
        id="single-quote-in-password",
    ),
    pytest.param(
        "postgresql://:hunter2@db/prism",
        "postgresql://:***@db/prism",
        id="password-without-user",
    ),
    pytest.param(
        "postgresql://db/prism?sslmode=require&password=hunter2&connect_timeout=5",
        "postgresql://db/prism?sslmode=require&password=***&connect_timeout=5",
        id="password-query-param",
    ),
    pytest.param(
        "postgresql://prism@db/prism?sslpassword=hunter2",
        "postgresql://prism@db/prism?sslpassword=***",
        id="sslpassword-query-param",
    ),
    pytest.param(
        "postgresql://prism:hunter2@h1:5432,h2:5433/prism?target_session_attrs=read-write",
        "postgresql://prism:***@h1:5432,h2:5433/prism?target_session_attrs=read-write",
        id="multi-host",
    ),
    pytest.param(
        "postgresql://prism:hunter2@[::1]:5432/prism",
        "postgresql://prism:***@[::1]:5432/prism",
        id="ipv6-host",
    ),
    pytest.param(
        "postgresql://prism:hunter2@/prism?host=/var/run/postgresql",
        "postgresql://prism:***@/prism?host=/var/run/postgresql",
        id="socket-host-in-query",
    ),
    pytest.param(
        "host=db port=5432 user=prism password=hunter2 dbname=prism",
        "host=db port=5432 user=prism password=*** dbname=prism",
        id="key-value",
    ),
    pytest.param(
        r"host=db password = 'two words \' and a quote' dbname=prism",
        "host=db password = *** dbname=prism",
        id="key-value-quoted-with-spaces",
    ),
    pytest.param(
        "host=db sslpassword=hunter2",
        "host=db sslpassword=***",
        id="key-value-sslpassword",
    ),
    pytest.param(
        "PGPASSWORD=hunter2 pg_restore -d prism; DB_PASSWORD=hunter3",
        "PGPASSWORD=*** pg_restore -d prism; DB_PASSWORD=***",
        id="environment-assignments",
    ),
    pytest.param(
        "source postgresql://a:one@h1/db,postgresql://b:two@h2/db and target "
        "postgres://c:three@h3/db; also host=h4 password=four",
        "source postgresql://a:***@h1/db,postgresql://b:***@h2/db and target "
        "postgres://c:***@h3/db; also host=h4 password=***",
        id="several-dsns-in-one-string",
    ),
    pytest.param(
        'connect("postgresql://prism:hunter2@db/prism") failed\nretry <postgres://u:x@h/d>',
        'connect("postgresql://prism:***@db/prism") failed\nretry <postgres://u:***@h/d>',
        id="quoted-and-bracketed",
    ),
    pytest.param(
        "https://operator:token123@api.example.com/ready",
        "https://operator:***@api.example.com/ready",
        id="credentials-in-other-schemes",
    ),
    pytest.param('"password": "x"', '"password": "***"', id="json-pair"),
    pytest.param(
        '{"user": "prism", "db_password":"hunter2", "port": 5432}',
        '{"user": "prism", "db_password":"***", "port": 5432}',
        id="json-pair-in-an-object",
    ),
    pytest.param(
        'error: {"client_secret": "a\\"b c", "api_token": "t0k", "access_token": 12345}',
        'error: {"client_secret": "***", "api_token": "***", "access_token": ***}',
        id="json-secret-and-token-keys-escaped-quote-and-bare-value",
    ),
    pytest.param(
        "settings {'PASSWORD': 'two words', 'session_token' : 'abc'}",
        "settings {'PASSWORD': '***', 'session_token' : '***'}",
        id="python-literal-pairs",
    ),
    pytest.param(
        '"password": "postgresql://u:p@h/db", "passphrase": "unterminated',
        '"password": "***", "passphrase": "***"',
        id="json-pair-holding-a-uri-and-an-unterminated-value",
    ),
    pytest.param("postgresql://u:pa ss@h", "postgresql://u:***@h", id="space-in-password"),
    pytest.param(
        "restore from postgresql://prism:a b\tc@db.internal:5432/prism?sslmode=require failed",
        "restore from postgresql://prism:***@db.internal:5432/prism?sslmode=require failed",
        id="whitespace-in-password-mid-sentence",
    ),
    pytest.param(
        '"dsn": "postgresql://u:pa ss@h/db?application_name=drill@ci" and u@example.com',
        '"dsn": "postgresql://u:***@h/db?application_name=drill@ci" and u@example.com',
        id="space-in-password-in-a-quoted-value",
    ),
    pytest.param(
        "postgresql://u:p?s@cret@db.internal/app",
        "postgresql://u:***@db.internal/app",
        id="raw-question-mark-then-at-sign-in-password",
    ),
    pytest.param(
        # libpq's URI without an authority: every connection parameter in the query.
        "postgresql://?host=db.internal&password=p@ss",
        "postgresql://?host=db.internal&password=***",
        id="at-sign-in-a-query-password-without-authority",
    ),
    pytest.param(
        "psql postgresql://db.internal:5432/app?sslmode=require with PGPASSWORD=hunter2x "
        "as ops@example.com",
        "psql postgresql://db.internal:5432/app?sslmode=require with PGPASSWORD=*** "
        "as ops@example.com",
        id="uri-with-a-port-then-a-password-and-an-at-sign-later-in-the-line",
    ),
    pytest.param(
        "postgresql://u:pw@db.internal/app as ops@example.com",
        "postgresql://u:***@db.internal/app as ops@example.com",
        id="uri-with-a-password-then-an-at-sign-later-in-the-line",
    ),
]

UNCHANGED_CASES = [
    pytest.param("postgresql://prism@db.internal:5432/prism", id="user-without-password"),
    pytest.param("postgresql://db.internal/prism?sslmode=disable", id="no-userinfo"),
    pytest.param(
        "postgresql://db:5432/prism?application_name=drill@ci", id="at-sign-in-query-value"
    ),
    pytest.param("host=db port=5432 user=prism dbname=prism", id="key-value-without-password"),
    pytest.param('FATAL: password authentication failed for user "prism"', id="error-prose"),
    pytest.param("http://127.0.0.1:8080/ready returned 200", id="plain-url"),
    pytest.param("", id="empty"),
    pytest.param('{"user": "prism", "port": 5432, "bypass": null}', id="json-without-secrets"),
    pytest.param('{"token": null, "password": true}', id="json-secret-keys-without-values"),
    pytest.param("the password: see the vault", id="unquoted-key-in-prose"),
    pytest.param("postgresql://db:5432/prism is owned by ops@example.com",
                 id="uri-then-an-at-sign-later-in-the-line"),
    pytest.param("postgresql://u:pa ss", id="no-at-sign-after-the-space"),
    pytest.param("postgresql://u:pa\nss@h", id="password-does-not-run-over-lines"),
    pytest.param("postgresql://@db.internal:5432/app?application_name=drill@ci",
                 id="empty-user-name-and-an-at-sign-in-the-query"),
]


@pytest.mark.parametrize(("raw", "masked"), MASKED_CASES)
def test_mask_dsn_masks_passwords(raw: str, masked: str) -> None:
    assert mask_dsn(raw) == masked


@pytest.mark.parametrize("raw", UNCHANGED_CASES)
def test_mask_dsn_leaves_text_without_passwords_alone(raw: str) -> None:
    assert mask_dsn(raw) == raw


@pytest.mark.parametrize(("raw", "masked"), MASKED_CASES)
def test_mask_dsn_is_idempotent(raw: str, masked: str) -> None:
    assert mask_dsn(masked) == masked


class _Probe(BaseModel):
    dsn: str
    checks: list[CheckResult]


def test_scrub_walks_nested_containers_and_models() -> None:
    value = {
        "source": "postgresql://prism:s3cret@db/prism",
        "items": [
            "password=s3cret",
            ("postgres://u:s3cret@h/d", 3),
            {"deeper": ["host=h password=s3cret"]},
        ],
        "model": _Probe(
            dsn="postgresql://u:s3cret@h/d",
            checks=[
                CheckResult(
                    name="restore",
                    status=Status.FAIL,
                    detail="pg_restore: connection to postgresql://u:s3cret@h/d failed",
                    seconds=0.5,
                )
            ],
        ),
        "postgresql://u:s3cret@h/d": "a DSN as a key",
        "count": 7,
        "ratio": 0.5,
        "missing": None,
        "flag": True,
    }
    scrubbed = scrub(value)
    assert "s3cret" not in repr(scrubbed)
    assert scrubbed["source"] == "postgresql://prism:***@db/prism"
    assert scrubbed["items"][1] == ("postgres://u:***@h/d", 3)
    assert scrubbed["model"]["checks"][0]["detail"].endswith("postgresql://u:***@h/d failed")
    assert scrubbed["model"]["checks"][0]["status"] == "fail"
    assert scrubbed["postgresql://u:***@h/d"] == "a DSN as a key"
    assert (scrubbed["count"], scrubbed["ratio"], scrubbed["missing"], scrubbed["flag"]) == (
        7,
        0.5,
        None,
        True,
    )


def test_scrub_masks_bare_values_under_password_keys() -> None:
    value = {"password": "s3cret", "PGPASSWORD": "s3cret", "db_password": "s3cret", "user": "u"}
    assert scrub(value) == {
        "password": MASK,
        "PGPASSWORD": MASK,
        "db_password": MASK,
        "user": "u",
    }


class _Stamped(BaseModel):
    at: datetime
    dsn: str


def test_scrub_turns_models_into_what_json_can_write() -> None:
    # Records are written as JSON: a model's times become ISO strings, as in its JSON dump.
    stamped = _Stamped(at=datetime(2026, 12, 1, 3, 0, tzinfo=UTC), dsn="postgresql://u:pw@h/d")
    scrubbed = scrub(stamped)
    assert scrubbed == {"at": "2026-12-01T03:00:00Z", "dsn": "postgresql://u:***@h/d"}
    assert json.loads(json.dumps(scrubbed)) == scrubbed


def test_scrub_leaves_its_input_untouched() -> None:
    value = {"dsn": ["postgresql://u:s3cret@h/d"]}
    scrub(value)
    assert value == {"dsn": ["postgresql://u:s3cret@h/d"]}


# --- secrets beyond passwords (tokens, keys, credentials) ----------------------------------

# Shaped like the real ones: a Cloudflare tunnel token is base64 of the JSON cloudflared
# marshals ({"a": account tag, "s": base64 secret, "t": tunnel id}); a Supabase service key is
# an HS256 JWT; Clerk secret keys are sk_live_/sk_test_ + base62; the AWS key pair is the
# example pair from AWS's documentation.
TUNNEL_TOKEN = base64.b64encode(
    json.dumps(
        {
            "a": "6d1f0d4b5c6e4a8b9c0d1e2f3a4b5c6d",
            "s": base64.b64encode(b"\x8f" * 32).decode(),
            "t": "2f3e4d5c-6b7a-4988-8776-655443322110",
        },
        separators=(",", ":"),
    ).encode()
).decode()
SUPABASE_SERVICE_KEY = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9."
    "eyJpc3MiOiJzdXBhYmFzZSIsInJlZiI6ImFiY2RlZmdoaWprbG1ub3AiLCJyb2xlIjoic2VydmljZV9yb2xlIn0."
    "Zm9vYmFyYmF6cXV4cXV1eGNvcmdlZ3JhdWx0Z2FycGx5d2FsZG8"
)
CLERK_KEY = "sk_live_2hX9kQ7bLmN4pR8sT1vW3yZ6aC5dF0gJ"
AWS_ACCESS_KEY = "AKIAIOSFODNN7EXAMPLE"
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
GITHUB_TOKEN = "ghp_" + "aB3dE6gH9jK2mN5pQ8sT1vW4yZ7bC0eF3hJ6"

SECRET_CASES = [
    pytest.param(f"CLERK_SECRET_KEY={CLERK_KEY}", "CLERK_SECRET_KEY=***", id="clerk-env"),
    pytest.param(f"starting with key {CLERK_KEY} loaded", "starting with key *** loaded",
                 id="clerk-key-by-shape"),
    pytest.param("sk_test_4eC39HqLyjWDarjtT1zdp7dc", "***", id="clerk-test-key"),
    pytest.param(f"CLOUDFLARE_TUNNEL_TOKEN={TUNNEL_TOKEN}", "CLOUDFLARE_TUNNEL_TOKEN=***",
                 id="tunnel-token-env"),
    pytest.param(f"cloudflared tunnel run --token {TUNNEL_TOKEN}",
                 "cloudflared tunnel run --token ***", id="tunnel-token-flag"),
    pytest.param(f"tunnel credentials {TUNNEL_TOKEN} rejected", "tunnel credentials *** rejected",
                 id="tunnel-token-by-shape"),
    pytest.param(f"SUPABASE_SERVICE_ROLE_KEY={SUPABASE_SERVICE_KEY}",
                 "SUPABASE_SERVICE_ROLE_KEY=***", id="supabase-key-env"),
    pytest.param(f"apikey header {SUPABASE_SERVICE_KEY}", "apikey header ***", id="jwt-by-shape"),
    pytest.param(f"aws_access_key_id = {AWS_ACCESS_KEY}", "aws_access_key_id = ***",
                 id="aws-access-key-ini"),
    pytest.param(f"aws_secret_access_key={AWS_SECRET}", "aws_secret_access_key=***",
                 id="aws-secret-ini"),
    pytest.param(f"signing with {AWS_ACCESS_KEY}/20261201/eu-west-1",
                 "signing with ***/20261201/eu-west-1", id="aws-access-key-by-shape"),
    pytest.param("ASIAY34FZKBOKMUTVV7A expired", "*** expired", id="aws-session-key-id"),
    pytest.param("Authorization: Bearer abc.DEF-123_xyz~", "Authorization: ***",
                 id="authorization-header"),
    pytest.param("retrying with bearer Zm9vYmFyYmF6cXV4", "retrying with bearer ***",
                 id="bearer-token"),
    pytest.param("X-Auth-Key: 0123456789abcdef0123456789abcdef01234", "X-Auth-Key: ***",
                 id="cloudflare-global-key-header"),
    pytest.param("prism-api --api-token t0k3n-value --port 8080",
                 "prism-api --api-token *** --port 8080", id="api-token-flag"),
    pytest.param("prism-api --api-token=t0k3n-value", "prism-api --api-token=***",
                 id="api-token-flag-equals"),
    pytest.param('export STRIPE_KEY="rk_test_51HabcdefGHIJKLmnop"', "export STRIPE_KEY=***",
                 id="quoted-env-value"),
    pytest.param('{"apiKey": "k-123", "clientSecret": "s-456"}',
                 '{"apiKey": "***", "clientSecret": "***"}', id="json-camel-case-keys"),
    pytest.param(f"GITHUB_TOKEN={GITHUB_TOKEN} and later {GITHUB_TOKEN}",
                 "GITHUB_TOKEN=*** and later ***", id="github-token"),
    pytest.param("https://api.example.com/hook?token=abc123&x=1",
                 "https://api.example.com/hook?token=***&x=1", id="token-in-uri-query"),
    pytest.param("CLERK_WEBHOOK_SECRET=whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
                 "CLERK_WEBHOOK_SECRET=***", id="webhook-secret"),
]

SECRET_UNCHANGED = [
    pytest.param("every table has a primary key (id)", id="primary-key-prose"),
    pytest.param("spot check key=42 matches", id="bare-key-value"),
    pytest.param("tokens: 5 parsed", id="tokens-in-prose"),
    pytest.param("CLERK_PUBLISHABLE = the public one", id="no-secret-name"),
    pytest.param("prism-dr drill --tier quick --skip-stack drill-1", id="other-flags"),
    pytest.param("sk_live is the prefix of a live key", id="prefix-alone"),
    pytest.param("pulumi config set --secret prism-infra:clerkSecretKey <value> -s staging",
                 id="pulumi-secret-switch"),
    pytest.param("pulumi stack output --show-secrets dbEndpoint", id="pulumi-show-secrets"),
    pytest.param("the bearer of the news", id="bearer-prose"),
    pytest.param('{"monkeys": 3, "key": "organizations"}', id="bare-key-in-json"),
]


@pytest.mark.parametrize(("raw", "masked"), SECRET_CASES)
def test_secrets_beyond_passwords_are_masked(raw: str, masked: str) -> None:
    assert mask_secrets(raw) == masked
    assert mask_secrets(masked) == masked


@pytest.mark.parametrize("raw", SECRET_UNCHANGED)
def test_text_that_only_looks_like_a_secret_stays(raw: str) -> None:
    assert mask_secrets(raw) == raw


def test_scrub_masks_bare_values_under_secret_names() -> None:
    value = {
        "CLERK_SECRET_KEY": "anything",
        "api_token": "x",
        "aws_secret_access_key": "y",
        "apiKey": "z",
        "credentials": "w",
        "key": "organizations",
        "tool": "pg_restore",
    }
    assert scrub(value) == {
        "CLERK_SECRET_KEY": MASK,
        "api_token": MASK,
        "aws_secret_access_key": MASK,
        "apiKey": MASK,
        "credentials": MASK,
        "key": "organizations",
        "tool": "pg_restore",
    }


# A credential written in prose after the word naming it, as in a drill's --notes.
PROSE_CASES = [
    ("rotated the token 9f8e7d6c5b4a today", "rotated the token *** today"),
    ("token: abc123def456", "token: ***"),
    ("the API token is hunter2xyz", "the API token is ***"),
    ("new password hunter2 set", "new password *** set"),
    ("api key AbC_dEf_GhI", "api key ***"),
]
PROSE_UNCHANGED = [
    "the token expired yesterday",
    "tokens were rotated on schedule",
    "password reset done",
    "secret sauce",
]


@pytest.mark.parametrize(("raw", "masked"), PROSE_CASES)
def test_a_credential_after_the_word_naming_it_is_masked(raw: str, masked: str) -> None:
    assert mask_dsn(raw) == masked
    assert mask_dsn(masked) == masked


@pytest.mark.parametrize("raw", PROSE_UNCHANGED)
def test_prose_about_tokens_without_one_stays(raw: str) -> None:
    assert mask_dsn(raw) == raw


# --- what may be written and shown: printable, one line, not too long ----------------------


def test_a_file_name_with_bytes_that_are_not_utf8_is_written_as_escapes() -> None:
    name = os.fsdecode(b"dump-\xff\xfe.sql")  # as os.listdir gives such a name
    assert printable(name) == "dump-\\xff\\xfe.sql"
    assert printable("caf\u00e9.sql") == "caf\u00e9.sql"  # UTF-8 itself is kept


def test_a_lone_surrogate_no_file_name_could_hold_is_escaped_too() -> None:
    assert printable("a\ud800b") == "a\\ud800b"


def test_shown_values_are_masked_printable_and_on_one_line() -> None:
    assert shown("postgresql://u:pw@db.internal/app") == "postgresql://u:***@db.internal/app"
    assert shown("first\r\nsecond\nthird") == "first\\r\\nsecond\\nthird"
    assert shown(Path("/var/backups/prism.dump")) == "/var/backups/prism.dump"
    assert shown(b"/var/backups/prism-\xff.dump") == "/var/backups/prism-\\xff.dump"
    assert shown(42) == "42"


def _digits(length: int) -> str:
    return "".join(str(i % 10) for i in range(length))


@pytest.mark.parametrize("length", [119, 120])
def test_a_value_up_to_120_characters_is_shown_whole(length: int) -> None:
    assert shown(_digits(length)) == _digits(length)


def test_a_longer_value_is_shown_by_its_ends_with_its_length() -> None:
    text = _digits(121)
    assert shown(text) == f"{text[:58]}…{text[-58:]} (121 characters)"
    long_dsn = "postgresql://u:hunter2@db.internal/" + "x" * 200
    assert "hunter2" not in shown(long_dsn)  # masked before it is cut
