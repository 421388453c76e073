"""Drill records and the drill log in docs/audit/restore-drills/.

`model` is the record, `store` reads and writes its two files, `markdown` renders it for
people, `log` rebuilds the log page and chart, `tools` gathers who/where/which versions.
Everything public is re-exported here: `from drills.record import DrillRecord, write_record`.
"""

from drills.record.log import CHART_NAME, LOG_NAME, chart_points, rebuild_log
from drills.record.markdown import format_duration, log_markdown, record_markdown
from drills.record.model import (
    ENVIRONMENT_PATTERN,
    SCHEMA_VERSION,
    SEED_COLUMNS,
    DrillRecord,
    HostInfo,
    Phase,
    Result,
    RtoKind,
    redacted,
)
from drills.record.store import (
    DEFAULT_RECORD_DIR,
    CorruptRecord,
    RecordNotWritten,
    load_records,
    write_record,
)
from drills.record.tools import OPERATOR_ENV, default_completed_by, host_info, tool_versions
from drills.verify.manifest import Targets

__all__ = [
    "CHART_NAME",
    "DEFAULT_RECORD_DIR",
    "ENVIRONMENT_PATTERN",
    "LOG_NAME",
    "OPERATOR_ENV",
    "SCHEMA_VERSION",
    "SEED_COLUMNS",
    "CorruptRecord",
    "DrillRecord",
    "HostInfo",
    "Phase",
    "RecordNotWritten",
    "Result",
    "RtoKind",
    "Targets",
    "chart_points",
    "default_completed_by",
    "format_duration",
    "host_info",
    "load_records",
    "log_markdown",
    "rebuild_log",
    "record_markdown",
    "redacted",
    "tool_versions",
    "write_record",
]
