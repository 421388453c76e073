"""pg_dump archives (custom, directory, tar): their table of contents, and pg_restore's errors
placed in the entry each came from.

`pg_restore --list` names every entry of an archive: dump id, type, schema, name and owner.
Run with `--verbose`, pg_restore says which entry it was processing before that entry's first
error (`from TOC entry 2611; 0 16654 TABLE DATA job supabase_admin`). With both, an archive's
errors are judged by what their entry is, as a plain script's are (drills/local/supabase.py).

pg_restore's parallel workers share one stderr and write their lines in pieces, so an error
can sit next to another worker's entry. The drill therefore restores an archive that needs an
extension the PostgreSQL lacks in one process (drills/local/restore.py); a parallel restore's errors
are placed in the entry named last before each, and every one of them blocks unless its own
message explains it.
"""

from __future__ import annotations

import re
import subprocess
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from drills.local.supabase import TocEntry, parse_create_extension

# Entry types of more than one word, longest first (pg_dump's `desc` strings, PostgreSQL 13-18).
_MULTI_WORD_TYPES = sorted(
    (
        "TABLE DATA", "SEQUENCE SET", "SEQUENCE OWNED BY", "DEFAULT ACL", "FK CONSTRAINT",
        "CHECK CONSTRAINT", "ROW SECURITY", "MATERIALIZED VIEW", "MATERIALIZED VIEW DATA",
        "EVENT TRIGGER", "FOREIGN TABLE", "FOREIGN DATA WRAPPER", "FOREIGN SERVER",
        "USER MAPPING", "LARGE OBJECT", "LARGE OBJECTS", "BLOB METADATA", "BLOB COMMENTS",
        "PROCEDURAL LANGUAGE", "SHELL TYPE", "OPERATOR CLASS", "OPERATOR FAMILY",
        "ACCESS METHOD", "TEXT SEARCH CONFIGURATION", "TEXT SEARCH DICTIONARY",
        "TEXT SEARCH PARSER", "TEXT SEARCH TEMPLATE", "PUBLICATION TABLE",
        "PUBLICATION TABLES IN SCHEMA", "STATISTICS DATA", "DATABASE PROPERTIES",
        "INDEX ATTACH", "TABLE ATTACH",
    ),
    key=len,
    reverse=True,
)  # fmt: skip
_LISTED = re.compile(r"^(\d+); (\d+) (\d+) (.*)$")
_FROM_ENTRY = re.compile(r"from TOC entry (\d+);")
_PREFIX = "pg_restore: "
_ERROR = re.compile(r"pg_restore: error: (.*)$")
_DATA_HEADER = re.compile(rb"^-- Data for Name: (.*); Type: TABLE DATA; Schema: (.*?);")
# Owners Supabase's platform creates its objects as: an archive holding them is a Supabase
# project's, whose platform extensions a restore elsewhere may lack.
SUPABASE_OWNERS = frozenset({"supabase_admin", "supabase_auth_admin", "supabase_storage_admin"})


@dataclass(frozen=True)
class TocItem:
    """One entry of `pg_restore --list`, and its line as a use-list (`-L`) takes it."""

    dump_id: int
    type: str
    schema: str  # "-" when the object has none
    tag: str
    owner: str
    line: str

    @property
    def entry(self) -> TocEntry:
        return TocEntry(None, self.tag, self.type, self.schema)


def parse_toc(listing: str) -> list[TocItem]:
    """The entries of a `pg_restore --list` output, in restore order; comments skipped."""
    items = []
    for line in listing.splitlines():
        match = _LISTED.match(line)
        if not match:
            continue
        rest = match.group(4)
        type_ = next((t for t in _MULTI_WORD_TYPES if rest.startswith(t + " ")), None)
        if type_ is None:
            type_, _, rest = rest.partition(" ")
        else:
            rest = rest[len(type_) + 1 :]
        schema, _, rest = rest.partition(" ")
        # "tag owner"; an entry without owner ends in a space ("EXTENSION pg_cron ").
        tag, _, owner = rest.rpartition(" ") if " " in rest else (rest, "", "")
        items.append(TocItem(int(match.group(1)), type_, schema, tag, owner, line))
    return items


def list_toc(pg_restore: str, archive: Path, env: Mapping[str, str]) -> list[TocItem]:
    """The archive's entries; empty when pg_restore cannot read its table of contents (the
    restore itself then reports why)."""
    done = subprocess.run(
        [pg_restore, "--list", str(archive)],
        capture_output=True, text=True, errors="replace", env=dict(env),
    )  # fmt: skip
    return parse_toc(done.stdout) if done.returncode == 0 else []


def entry_errors(stderr: str) -> list[tuple[int | None, str]]:
    """pg_restore's errors, each with the dump id of the entry it came from (None before any:
    a connection or archive error).

    pg_restore writes a log line in pieces ("pg_restore: ", "error: ", the message), so in a
    parallel restore another worker's line can land between the marker and its message; the
    message then starts the next line of its own.
    """
    errors: list[tuple[int | None, str]] = []
    current: int | None = None
    waiting = False  # an error marker whose message has not come yet
    for line in stderr.splitlines():
        for match in _FROM_ENTRY.finditer(line):
            current = int(match.group(1))
        error = _ERROR.search(line)
        if error:
            message = error.group(1).strip()
            waiting = not message or message.startswith(_PREFIX)
            if not waiting:
                errors.append((current, message))
        elif waiting and line.strip() and not line.startswith(_PREFIX):
            errors.append((current, line.strip()))
            waiting = False
    return errors


def server_message(error: str) -> str:
    """The server's own message in a pg_restore error ("could not execute query: ERROR:  x")."""
    _, found, message = error.partition("ERROR:  ")
    return message.strip() if found else error


def extension_schemas(
    pg_restore: str, archive: Path, extensions: Iterable[TocItem], env: Mapping[str, str]
) -> dict[str, str | None]:
    """Each EXTENSION entry's name and the schema its CREATE EXTENSION names (`WITH SCHEMA`)."""
    found: dict[str, str | None] = {}
    for line in _script_of(pg_restore, archive, list(extensions), env, data_only=False):
        created = parse_create_extension(line)
        if created:
            found[created[0]] = created[1]
    return found


def count_rows(
    pg_restore: str, archive: Path, data: Iterable[TocItem], env: Mapping[str, str]
) -> dict[int, int]:
    """The rows each TABLE DATA entry holds, read from the archive (dump id -> rows)."""
    items = [i for i in data if i.type == "TABLE DATA"]
    by_label = {(i.schema, i.tag): i.dump_id for i in items}
    counts = {i.dump_id: 0 for i in items}
    heading: int | None = None  # the entry whose COPY comes next
    copying: int | None = None
    for line in _script_of(pg_restore, archive, items, env, data_only=True):
        if copying is not None:
            if line.rstrip(b"\r\n") == b"\\.":
                copying = None
            else:
                counts[copying] += 1
            continue
        header = _DATA_HEADER.match(line)
        if header:
            schema, tag = (g.decode(errors="replace") for g in header.group(2, 1))
            heading = by_label.get((schema, tag))
        elif line.startswith(b"COPY ") and heading is not None:
            copying, heading = heading, None
    return counts


def _script_of(
    pg_restore: str,
    archive: Path,
    items: list[TocItem],
    env: Mapping[str, str],
    *,
    data_only: bool,
) -> Iterable[bytes]:
    """The SQL pg_restore would run for `items` alone, line by line (nothing is restored)."""
    if not items:
        return
    with tempfile.TemporaryDirectory(prefix="prism-dr-toc-") as tmp:
        use_list = Path(tmp) / "use.list"
        use_list.write_text("".join(item.line + "\n" for item in items))
        argv = [pg_restore, "--file=-", f"--use-list={use_list}", str(archive)]
        if data_only:
            argv.insert(1, "--data-only")
        proc = subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=dict(env)
        )
        try:
            assert proc.stdout is not None
            yield from proc.stdout
        finally:
            proc.kill()
            proc.wait()
