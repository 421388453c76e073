"""Keep database passwords out of everything a drill writes or prints.

Records are committed to the repository and logs end up in CI output, so every string that
might hold a connection string passes through `mask_dsn` (or `scrub` for nested data) first.
When a string is ambiguous the masking errs towards hiding too much rather than too little.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel

MASK = "***"

# Any URI scheme, not only postgres(ql)://: an API or Redis URL with credentials is no less
# secret. A URI ends at whitespace, a double quote, angle bracket or backtick (none of which
# RFC 3986 allows unencoded; a single quote it does allow in a password), or where the next URI
# begins (several DSNs pasted with only a comma between them).
_SCHEME = r"(?<![\w+.-])[A-Za-z][A-Za-z0-9+.-]*://"
_URI = re.compile(rf"({_SCHEME})(.*?)(?=(?:{_SCHEME})|[\s\"<>`]|$)", re.S)

_URI_QUERY_PASSWORD = re.compile(r"(?i)([?&][\w-]*pass(?:word|wd)=)[^&#]*")

# libpq conninfo (`password=…`, `sslpassword=…`) and environment style (`PGPASSWORD=…`,
# `DB_PASSWORD=…`). A value is either single-quoted with backslash escapes or runs to the next
# whitespace, as libpq parses it; an unterminated quote masks the rest of the string.
_KEY_VALUE_PASSWORD = re.compile(
    r"(?i)((?<![\w-])[\w-]*pass(?:word|wd)\s*=\s*)('(?:[^'\\]|\\.)*'?|\S+)"
)

# A host list with optional ports and a path: what precedes the query of a well-formed URI.
_HOST = r"(?:\[[0-9A-Za-z:.%]*\]|[\w.%-]*)(?::\d*)?"
_AUTHORITY_AND_PATH = re.compile(rf"{_HOST}(?:,{_HOST})*(?:/[^?]*)?")

_SECRET_KEYS = re.compile(r"(?i)^(?:[\w-]*[_-])?(?:pg)?(?:ssl)?pass(?:word|wd)$")


def mask_dsn(text: str) -> str:
    """`text` with every password in a URI or key=value connection string replaced by MASK.

    Hosts, ports, users and database names stay visible: they are what a reader of a drill
    record needs to know which database was restored.
    """
    out: list[str] = []
    pos = 0
    for match in _URI.finditer(text):
        out.append(_mask_key_values(text[pos : match.start()]))
        out.append(match.group(1) + _mask_uri_body(match.group(2)))
        pos = match.end()
    out.append(_mask_key_values(text[pos:]))
    return "".join(out)


def scrub(value: Any) -> Any:
    """A copy of `value` with `mask_dsn` applied to every string in it, keys included.

    Pydantic models become their JSON-mode dump; values under password-like keys are masked
    whole, since they are bare passwords with nothing around them to recognise.
    """
    if isinstance(value, BaseModel):
        return scrub(value.model_dump(mode="json"))
    if isinstance(value, str):
        return mask_dsn(value)
    if isinstance(value, dict):
        return {
            scrub(key): MASK if _is_secret_key(key) and value[key] else scrub(item)
            for key, item in value.items()
        }
    if isinstance(value, list | tuple | set | frozenset):
        return type(value)(scrub(item) for item in value)
    return value


def _is_secret_key(key: Any) -> bool:
    return isinstance(key, str) and bool(_SECRET_KEYS.match(key))


def _mask_key_values(text: str) -> str:
    return _KEY_VALUE_PASSWORD.sub(lambda m: m.group(1) + MASK, text)


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
