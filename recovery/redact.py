"""Keep passwords, tokens and keys out of everything a drill writes or prints.

Records are committed to the repository and logs end up in CI output, so every string that
might hold a connection string or a credential passes through `mask_dsn` (alias
`mask_secrets`; `scrub` for nested data) first. Masked: passwords in URIs and conninfo, any
value whose name says secret, token, key, credential or password (`CLERK_SECRET_KEY=…`,
`--api-token x`, `"apiKey": "…"`), and credentials recognised by their shape wherever they
stand (Clerk `sk_live_…`, AWS access key ids, bearer tokens, JWTs, Cloudflare tunnel tokens).
When a string is ambiguous the masking errs towards hiding too much rather than too little.
"""

from __future__ import annotations

import os
import re
from typing import Any

from pydantic import BaseModel

MASK = "***"
_SHOWN_CHARS = 120

# Any URI scheme, not only postgres(ql)://: an API or Redis URL with credentials is no less
# secret. A URI ends at whitespace, a double quote, angle bracket or backtick (none of which
# RFC 3986 allows unencoded; a single quote it does allow in a password), or where the next URI
# begins (several DSNs pasted with only a comma between them).
_SCHEME = r"(?<![\w+.-])[A-Za-z][A-Za-z0-9+.-]*://"
_URI_END = rf"(?=(?:{_SCHEME})|[\s\"<>`]|$)"
_URI = re.compile(rf"({_SCHEME})(.*?){_URI_END}", re.S)

# A password holding whitespace cuts a URI short: the rest of its userinfo runs to the next
# '@' on the same line, then the URI goes on as usual.
_SCHEME_START = re.compile(_SCHEME)
_USERINFO_GAP = re.compile(r"[^\r\n\"<>`@]*?@")
_URI_REST = re.compile(rf"(.*?){_URI_END}", re.S)

# A name that says its value is a credential: CLERK_SECRET_KEY, API_TOKEN, aws_access_key_id,
# client-credentials, apiKey, STRIPE_KEY (a bare "key" is too common in prose to count).
_SECRET_NAME = (
    r"[\w.-]*?(?:secret|token|credential|pass(?:word|wd|phrase)|pwd"
    r"|(?:api|access|private|signing|encryption|master|service|client|auth|session)[_-]?key"
    r"|[a-z0-9][_-]key|(?-i:[a-z0-9]Key))[\w.-]*"
)

_URI_QUERY_PASSWORD = re.compile(rf"(?i)([?&]{_SECRET_NAME}=)[^&#]*")

# libpq conninfo (`password=…`, `sslpassword=…`) and environment style (`PGPASSWORD=…`,
# `DB_PASSWORD=…`). A value is either single-quoted with backslash escapes or runs to the next
# whitespace, as libpq parses it; an unterminated quote masks the rest of the string.
_KEY_VALUE_PASSWORD = re.compile(
    rf"""(?i)((?<![\w.-]){_SECRET_NAME}\s*=\s*)('(?:[^'\\]|\\.)*'?|"(?:[^"\\]|\\.)*"?|\S+)"""
)

# A command-line flag naming a credential, its value after a space: `--api-token x`. Pulumi's
# `--secret` and `--show-secrets` are switches: what follows them is a key name, not a value.
_FLAG_VALUE = re.compile(
    r"(?i)((?<!\S)(?:--|-(?!-))(?!(?:show-)?secrets?\s)"
    r"[\w-]*(?:secret|token|credential|password|passwd|passphrase|key)[\w-]*"
    r"\s+)(?!-)('(?:[^'\\]|\\.)*'?|\"(?:[^\"\\]|\\.)*\"?|\S+)"
)

# Prose: a credential written after the word that names it, as a person types a note
# ("rotated the token 9f8e7d6c5b4a", "password: hunter2x", "the API key is AbC_123…"). Only
# a value that looks generated (six characters or more, with a digit or one of _+/=-) is
# masked, so "the token expired" stays readable.
_WORD_VALUE = re.compile(
    r"(?i)((?<![\w-])(?:token|password|passwd|passphrase|secret|api[ _-]?key)s?"
    r"(?:\s*[:=]\s*|\s+(?:is\s+|was\s+)?))"
    r"(?!\*\*\*)(?=[^\s,;&'\"]*[0-9_+/=-])([^\s,;&'\"]{6,})"
)

# HTTP headers that carry credentials, as a log line shows them.
_CREDENTIAL_HEADER = re.compile(
    r"(?i)(\b(?:proxy-)?authorization|\bx-api-key|\bx-auth-(?:token|key)|\bcookie)"
    r"(\s*:\s*)([^\r\n]+)"
)

# Credentials by their shape, wherever they stand.
_SHAPES = [
    re.compile(r"(?i)(\bbearer\s+)[A-Za-z0-9._~+/-]{8,}=*"),  # RFC 6750 bearer tokens
    re.compile(r"()\b[sr]k_(?:live|test)_[A-Za-z0-9]{8,}"),  # Clerk (and Stripe) secret keys
    re.compile(r"()\bwhsec_[A-Za-z0-9+/=]{16,}"),  # webhook signing secrets (Clerk/Svix)
    re.compile(r"()\b(?:AKIA|ASIA)[A-Z0-9]{16}\b"),  # AWS access key ids
    re.compile(r"()\beyJ[A-Za-z0-9_-]{6,}\.eyJ[A-Za-z0-9_-]{6,}\.[A-Za-z0-9_-]{6,}"),  # JWTs
    # A Cloudflare tunnel token: base64 of {"a":"<account>","t":"<tunnel>","s":"<secret>"}.
    re.compile(r"()\beyJhIjoi[A-Za-z0-9+/_-]{20,}={0,2}"),
    re.compile(r"()\b(?:gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{30,})"),  # GitHub
]

# A host list with optional ports and a path: what precedes the query of a well-formed URI.
_HOST = r"(?:\[[0-9A-Za-z:.%]*\]|[\w.%-]*)(?::\d*)?"
_AUTHORITY_AND_PATH = re.compile(rf"{_HOST}(?:,{_HOST})*(?:/[^?]*)?")

# JSON or Python-literal pairs in free text (`"password": "x"`, `'api_token': 'x'`, a JSON
# body quoted in a log line): a quoted key holding pass, secret or token, a colon, and a value
# that is quoted (with backslash escapes; an unterminated quote masks the rest) or runs to the
# next separator. null, true and false are not secrets.
_QUOTED_PAIR = re.compile(
    r"""(?i)(["'])([^"'\n]*(?:pass|secret|token|credential|[a-z0-9][_-]key|(?-i:[a-z0-9]Key))[^"'\n]*)\1"""
    r"""(\s*:\s*)"""
    r"""(?:("(?:[^"\\]|\\.)*"?|'(?:[^'\\]|\\.)*'?)|(?!(?:null|true|false)\b)[^\s,}\]]+)"""
)

_SECRET_KEYS = re.compile(rf"(?i)^{_SECRET_NAME}$")


def mask_dsn(text: str) -> str:
    """`text` with every secret replaced by MASK: passwords in URIs, values under a name that
    says secret, token, key, credential or password (key=value, `--flag value`, quoted pairs,
    credential headers), and credentials recognised by their shape.

    A quoted pair is JSON or Python-literal style: `"password": "x"`, `'api_token': 'x'`.

    Hosts, ports, users and database names stay visible: they are what a reader of a drill
    record needs to know which database was restored.
    """
    # Quoted pairs first: their values may hold anything, a URI or a space included.
    text = _QUOTED_PAIR.sub(_mask_quoted_pair, text)
    out: list[str] = []
    pos = 0
    while match := _URI.search(text, pos):
        out.append(_mask_key_values(text[pos : match.start()]))
        body, end = _continued_past_whitespace(text, match.group(2), match.end())
        out.append(match.group(1) + _mask_uri_body(body))
        pos = end
    out.append(_mask_key_values(text[pos:]))
    text = _FLAG_VALUE.sub(lambda m: m.group(1) + MASK, "".join(out))
    text = _WORD_VALUE.sub(lambda m: m.group(1) + MASK, text)
    text = _CREDENTIAL_HEADER.sub(lambda m: m.group(1) + m.group(2) + MASK, text)
    for shape in _SHAPES:
        text = shape.sub(lambda m: m.group(1) + MASK, text)
    return text


mask_secrets = mask_dsn  # the name for what it does now; mask_dsn stays for its callers


def scrub(value: Any) -> Any:
    """A copy of `value` with `mask_dsn` applied to every string in it, keys included.

    Pydantic models become their JSON-mode dump; values under password-like keys are masked
    whole, since they are bare passwords with nothing around them to recognise.
    """
    if isinstance(value, BaseModel):
        return scrub(value.model_dump(mode="json"))
    if isinstance(value, str):
        return mask_dsn(printable(value))
    if isinstance(value, dict):
        return {
            scrub(key): MASK if _is_secret_key(key) and value[key] else scrub(item)
            for key, item in value.items()
        }
    if isinstance(value, list | tuple | set | frozenset):
        return type(value)(scrub(item) for item in value)
    return value


def printable(text: str) -> str:
    """`text` encodable as UTF-8: bytes a file name smuggled in as surrogates become `\\xNN`.

    A path with non-UTF-8 bytes decodes (surrogateescape) into lone surrogates that no UTF-8
    writer accepts; the record says which bytes they were instead of failing to be written.
    """
    try:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:  # a surrogate no file name could have produced
        return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _is_secret_key(key: Any) -> bool:
    return isinstance(key, str) and bool(_SECRET_KEYS.match(key))


def _mask_quoted_pair(match: re.Match[str]) -> str:
    quote, key, colon, quoted = match.group(1, 2, 3, 4)
    value = quoted[0] + MASK + quoted[0] if quoted else MASK
    return f"{quote}{key}{quote}{colon}{value}"


def _mask_key_values(text: str) -> str:
    return _KEY_VALUE_PASSWORD.sub(lambda m: m.group(1) + MASK, text)


def _continued_past_whitespace(text: str, body: str, end: int) -> tuple[str, int]:
    """The URI body, extended when whitespace in its password cut it short; and its end.

    Cut short, `postgresql://u:pa ss@h` leaves a body `u:pa` with no '@', which is no host and
    port either. Then the password runs on to the next '@' on the same line, unless another
    URI begins first; without such an '@' the body stays as it is.
    """
    authority = re.split(r"[/?#]", body, maxsplit=1)[0]
    head = body.partition("?")[0]
    if "@" in body or ":" not in authority or _AUTHORITY_AND_PATH.fullmatch(head):
        return body, end
    gap = _USERINFO_GAP.match(text, end)
    if gap is None or _SCHEME_START.search(gap.group(0)):
        return body, end
    rest = _URI_REST.match(text, gap.end())
    return body + gap.group(0) + rest.group(1), rest.end()


def _mask_uri_body(body: str) -> str:
    at = _userinfo_end(body)
    if at is None:
        return _URI_QUERY_PASSWORD.sub(lambda m: m.group(1) + MASK, body)
    user, has_password, _ = body[:at].partition(":")
    userinfo = f"{user}:{MASK}" if has_password else user
    return userinfo + _URI_QUERY_PASSWORD.sub(lambda m: m.group(1) + MASK, body[at:])


def _userinfo_end(body: str) -> int | None:
    """Index of the '@' that ends the userinfo, or None when there is no userinfo.

    The last '@' before the query wins, so a password holding a raw (not percent-encoded) '@'
    is still masked whole. An '@' only after the '?' is a query value when what precedes the
    '?' is a plain host list and path; otherwise it is a password holding a raw '?'.
    """
    query = body.find("?")
    head = body if query < 0 else body[:query]
    at = head.rfind("@")
    if at >= 0:
        return at
    at = body.rfind("@")
    if at < 0 or _AUTHORITY_AND_PATH.fullmatch(head):
        return None
    return at


def shown(value: object) -> str:
    """`value` as it may appear in a one-line message: printable, one line, not too long.

    A 5,000-character path is named by its ends, so the line stays readable."""
    text = printable(os.fsdecode(value) if isinstance(value, bytes | os.PathLike) else str(value))
    text = mask_dsn(text).replace("\r", "\\r").replace("\n", "\\n")
    if len(text) > _SHOWN_CHARS:
        keep = _SHOWN_CHARS // 2 - 2
        text = f"{text[:keep]}…{text[-keep:]} ({len(text)} characters)"
    return text
