"""Which PostgreSQL made a backup: read from the backup itself, before any binary is chosen.

A pg_dump archive (custom, directory, tar) starts its table of contents with a header that
holds, after the format version and the creation time, the server's version string and
pg_dump's own (pg_backup_archiver.c: WriteHead/ReadHead, archive version 1.10 and later). A
plain script says the same in comments (`-- Dumped from database version 16.4`). A live
server answers `SHOW server_version_num`. Reading the header here, in Python, matters: a
pg_restore older than the archive cannot even list it.
"""

from __future__ import annotations

import gzip
import re
import tarfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

_MAGIC = b"PGDMP"
_HEAD_BYTES = 1 << 20
_SCRIPT_SCAN_LIMIT = 16 * _HEAD_BYTES  # a script without version comments is not read whole


class HeaderError(ValueError):
    """The archive header is not what pg_dump writes (truncated, corrupt, not an archive)."""


@dataclass(frozen=True)
class DumpVersions:
    """Versions a backup names: the server it was taken from and the pg_dump that took it."""

    server: str | None = None  # e.g. "16.4" or "15.8 (Debian 15.8-1.pgdg120+1)"
    dumper: str | None = None
    created_at: datetime | None = None  # archives only: the dumping machine's clock, read as UTC

    @property
    def server_major(self) -> int | None:
        return major_of(self.server)

    @property
    def dumper_major(self) -> int | None:
        return major_of(self.dumper)

    @property
    def needed_major(self) -> int | None:
        """The oldest major that can restore it: neither older than its server nor its pg_dump.

        A newer pg_dump writes archive versions and script commands (`\\restrict`, `SET
        transaction_timeout`) that older pg_restore and psql reject.
        """
        majors = [m for m in (self.server_major, self.dumper_major) if m is not None]
        return max(majors) if majors else None


def major_of(version: str | None) -> int | None:
    """'16.4 (Debian …)' → 16, '9.6.24' → 9, '18beta1' → 18, '150004' (version_num) → 15."""
    if not version:
        return None
    text = version.strip()
    if text.isdigit() and len(text) >= 5:
        return int(text) // 10000
    match = re.match(r"(\d+)", text)
    return int(match.group(1)) if match else None


# -- archives ------------------------------------------------------------------------------------

def archive_versions(path: Path) -> DumpVersions:
    """Versions and creation time from a custom file, a directory's toc.dat or a tar's toc.dat."""
    if path.is_dir():
        with (path / "toc.dat").open("rb") as stream:
            return parse_archive_header(stream.read(64 * 1024))
    with path.open("rb") as stream:
        head = stream.read(512)
    if head.startswith(_MAGIC):
        with path.open("rb") as stream:
            return parse_archive_header(stream.read(64 * 1024))
    try:
        with tarfile.open(path, "r:") as tar:
            member = tar.extractfile("toc.dat")
            if member is None:
                raise HeaderError("the tar archive has no toc.dat")
            return parse_archive_header(member.read(64 * 1024))
    except (tarfile.TarError, KeyError) as err:
        raise HeaderError(f"not a pg_dump tar archive ({err})") from err


def parse_archive_header(data: bytes) -> DumpVersions:
    reader = _Reader(data)
    if reader.take(5) != _MAGIC:
        raise HeaderError("no PGDMP magic string")
    vmaj, vmin = reader.byte(), reader.byte()
    vrev = reader.byte() if (vmaj, vmin) > (1, 0) else 0
    version = (vmaj, vmin, vrev)
    if vmaj != 1:
        raise HeaderError(f"unknown archive version {vmaj}.{vmin}")
    reader.int_size = reader.byte()
    reader.byte()  # offset size
    reader.byte()  # format
    if version >= (1, 15, 0):
        reader.byte()  # compression algorithm
    elif version >= (1, 4, 0):
        reader.int()  # compression level
    elif version >= (1, 2, 0):
        reader.byte()
    created_at = None
    if version >= (1, 4, 0):
        sec, minute, hour, mday, mon, year, _isdst = (reader.int() for _ in range(7))
        try:
            created_at = datetime(year + 1900, mon + 1, mday, hour, minute, sec, tzinfo=UTC)
        except ValueError:
            created_at = None
        reader.string()  # database name
    server = dumper = None
    if version >= (1, 10, 0):
        server, dumper = reader.string(), reader.string()
    return DumpVersions(server=server, dumper=dumper, created_at=created_at)


class _Reader:
    """pg_dump's integers: a sign byte, then `int_size` bytes, least significant first."""

    def __init__(self, data: bytes):
        self.data = data
        self.pos = 0
        self.int_size = 4

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise HeaderError("the archive header is truncated")
        chunk = self.data[self.pos:self.pos + n]
        self.pos += n
        return chunk

    def byte(self) -> int:
        return self.take(1)[0]

    def int(self) -> int:
        sign = self.byte()
        value = int.from_bytes(self.take(self.int_size), "little")
        return -value if sign else value

    def string(self) -> str | None:
        length = self.int()
        if length < 0:
            return None
        if length > 4096:
            raise HeaderError("the archive header holds an implausible string length")
        return self.take(length).decode("utf-8", errors="replace")


# -- plain scripts -------------------------------------------------------------------------------

_DUMPED_FROM = re.compile(rb"^-- Dumped from database version (\S+(?: \([^)\n]*\))?)\s*$", re.M)
_DUMPED_BY = re.compile(rb"^-- Dumped by pg_dump(?:all)? version (\S+(?: \([^)\n]*\))?)\s*$",
                        re.M)


def script_versions(path: Path, gzipped: bool) -> DumpVersions:
    """Versions from a plain script's header comments (pg_dumpall: the first database's).

    A pg_dumpall script's role section can be long, so the search streams past the first
    megabyte when it must, stopping at the first database header.
    """
    server = dumper = None
    with _open(path, gzipped) as stream:
        carry = b""
        for _ in range(_SCRIPT_SCAN_LIMIT // _HEAD_BYTES):
            chunk = stream.read(_HEAD_BYTES)
            if not chunk:
                break
            window = carry + chunk
            server = server or _first(_DUMPED_FROM, window)
            dumper = dumper or _first(_DUMPED_BY, window)
            if server and dumper:
                break
            carry = window[-512:]
    return DumpVersions(server=server, dumper=dumper)


def _first(pattern: re.Pattern[bytes], data: bytes) -> str | None:
    match = pattern.search(data)
    return match.group(1).decode(errors="replace") if match else None


def _open(path: Path, gzipped: bool) -> IO[bytes]:
    return gzip.open(path, "rb") if gzipped else path.open("rb")


# -- live servers --------------------------------------------------------------------------------

def server_versions(dsn: str) -> DumpVersions:
    """A live server's version (raises psycopg.Error when it cannot be reached)."""
    import psycopg

    with psycopg.connect(dsn, connect_timeout=10) as conn:
        version = conn.execute("SHOW server_version").fetchone()[0]
    return DumpVersions(server=version)
