from __future__ import annotations

import pytest
from pydantic import BaseModel

from drills.redact import MASK, mask_dsn, scrub
from drills.verify.model import CheckResult, Status

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


def test_scrub_leaves_its_input_untouched() -> None:
    value = {"dsn": ["postgresql://u:s3cret@h/d"]}
    scrub(value)
    assert value == {"dsn": ["postgresql://u:s3cret@h/d"]}
