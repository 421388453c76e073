"""Where records live: `<date>-<environment>[-n].md` + `.json` in a record directory.

Both files of a record are published or neither is, each complete (a hard link of a finished
temp file), never overwriting another record: concurrent drills cannot claim the same name and
readers never see half a record. The JSON files are the source of truth; everything written is
scrubbed of secrets first, whatever the caller put into the record.
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import json
import os
import re
import tempfile
from collections.abc import Callable
from pathlib import Path

from pydantic import ValidationError

from drills.record.markdown import record_markdown
from drills.record.model import SCHEMA_VERSION, DrillRecord, redacted
from infra.errors import BadInput, EnvironmentFault

DEFAULT_RECORD_DIR = Path("docs/audit/restore-drills")

RECORD_FILE = re.compile(r"^\d{4}-\d{2}-\d{2}-[A-Za-z0-9][A-Za-z0-9._-]*\.json$")
_PUBLISHED_MODE = 0o644


class CorruptRecord(BadInput):
    """A file named like a drill record that cannot be read as one."""


class RecordNotWritten(EnvironmentFault):
    """The record directory could not take the record (full, read-only, gone)."""


def write_record(record: DrillRecord, record_dir: Path) -> tuple[Path, Path]:
    """Write `<date>-<environment>[-n].md` and `.json` into `record_dir`; return both paths.

    Never overwrites: when either name is taken the next free number is used. On any failure
    of the file system nothing of this record is left behind and RecordNotWritten is raised.
    """
    safe = redacted(record)
    markdown = record_markdown(safe)
    payload = safe.model_dump_json(indent=2) + "\n"
    record_dir = Path(record_dir)
    base = f"{safe.date.isoformat()}-{safe.environment}"
    with contextlib.ExitStack() as temps:
        try:
            record_dir.mkdir(parents=True, exist_ok=True)
            # Both contents on disk first: a full disk fails here, before anything is visible.
            md_tmp = temps.enter_context(_temp_file(record_dir, ".md", markdown))
            json_tmp = temps.enter_context(_temp_file(record_dir, ".json", payload))
            for n in itertools.count(1):
                stem = base if n == 1 else f"{base}-{n}"
                md_path, json_path = record_dir / f"{stem}.md", record_dir / f"{stem}.json"
                if md_path.exists() or json_path.exists():
                    continue
                # The .md is claimed first by every writer, so losing the race for it is the
                # common case; a stray .json without its .md only costs a number.
                if not _publish(md_tmp, md_path, markdown):
                    continue
                try:
                    published = _publish(json_tmp, json_path, payload)
                except BaseException:
                    md_path.unlink(missing_ok=True)
                    raise
                if published:
                    return md_path, json_path
                md_path.unlink()
        except OSError as err:
            raise RecordNotWritten(
                f"--record-dir {record_dir}: the drill record could not be written "
                f"({_reason(err)}); free space or pick a writable directory and run the drill again"
            ) from err
    raise AssertionError("unreachable")


def load_records(record_dir: Path) -> list[DrillRecord]:
    """Every drill record in `record_dir`, oldest first.

    Only JSON files named like records are read; a record file that cannot be parsed raises
    CorruptRecord naming the file rather than being skipped, since a silently missing drill
    would falsify the log.
    """
    return [record for _, record in load_entries(Path(record_dir))]


def load_entries(record_dir: Path) -> list[tuple[Path, DrillRecord]]:
    """(JSON path, record) for every record in `record_dir`, oldest first."""
    if not record_dir.is_dir():
        return []
    entries = [
        (path, read_record(path))
        for path in sorted(record_dir.iterdir())
        if RECORD_FILE.match(path.name) and path.is_file()
    ]
    return sorted(entries, key=lambda entry: (entry[1].started_at, entry[0].name))


def read_record(path: Path) -> DrillRecord:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as e:
        raise CorruptRecord(f"{path}: corrupt drill record, not UTF-8 text ({e.reason})") from e
    except json.JSONDecodeError as e:
        raise CorruptRecord(
            f"{path}: corrupt drill record, invalid JSON at line {e.lineno} column {e.colno}: "
            f"{e.msg}"
        ) from e
    except OSError as e:
        raise BadInput(f"{path}: cannot read the drill record ({_reason(e)})") from e
    if not isinstance(data, dict):
        raise CorruptRecord(f"{path}: corrupt drill record, expected a JSON object")
    version = data.get("schema_version")
    if isinstance(version, int) and version > SCHEMA_VERSION:
        raise CorruptRecord(
            f"{path}: drill record schema version {version} is newer than this prism-infra "
            f"reads ({SCHEMA_VERSION}); upgrade prism-infra"
        )
    try:
        return DrillRecord.model_validate(data)
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "record"
        more = f" (and {e.error_count() - 1} more)" if e.error_count() > 1 else ""
        raise CorruptRecord(f"{path}: corrupt drill record, {where}: {first['msg']}{more}") from e


def replace_atomically(path: Path, write: Callable[[Path], object]) -> None:
    """Produce `path` through `write(tmp_path)` and swap it in whole."""
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        tmp.chmod(_PUBLISHED_MODE)  # mkstemp's 0600 would make the published file private
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def _temp_file(directory: Path, suffix: str, content: str):
    fd, name = tempfile.mkstemp(prefix=".record.", suffix=f"{suffix}.tmp", dir=directory)
    tmp = Path(name)
    try:
        os.fchmod(fd, _PUBLISHED_MODE)  # a link shares the temp file's private 0600 mode
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(content)
            out.flush()
            os.fsync(out.fileno())  # ENOSPC on a delayed allocation shows up here, not later
        yield tmp
    finally:
        tmp.unlink(missing_ok=True)


def _publish(tmp: Path, path: Path, content: str) -> bool:
    """Create `path` as a copy of the finished `tmp` unless it exists; False when it did."""
    try:
        os.link(tmp, path)
        return True
    except FileExistsError:
        return False
    except OSError as err:
        if err.errno not in (errno.EPERM, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK):
            raise
    # A file system without hard links: exclusive create, briefly visible while written.
    try:
        with path.open("x", encoding="utf-8") as out:
            try:
                out.write(content)
                out.flush()
                os.fsync(out.fileno())
            except BaseException:
                path.unlink(missing_ok=True)
                raise
    except FileExistsError:
        return False
    os.chmod(path, _PUBLISHED_MODE)
    return True


def _reason(err: OSError) -> str:
    return err.strerror or type(err).__name__
