"""The policy half of `prism-dr plan`: the DR policy pack on the offline run, and `--compare`.

`check(run, project_dir, compare)` runs every policy of policy/ (the functions `pulumi preview
--policy-pack policy` runs) on the stack's offline run, with the stack's pack config
(`policy/config/<stack>.json`, the file CI passes as `--policy-pack-config`), and, with
`compare`, plans the other stack too and lines up their DR settings. Exit code: 1 when a
mandatory policy is violated, else 0; a bad policy config file or compare stack is bad input
(exit 2, from prism_dr.app).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from infra.errors import BadInput
from infra.policy_check import Violation, check_run
from policy.catalog import SETTINGS
from policy.config import (
    CONFIG_DIR,
    PackConfig,
    PolicyConfigError,
    load_pack_config,
    stack_config_file,
)

if TYPE_CHECKING:
    from infra.offline import OfflineRun, ResourceRecord

EXIT_CLEAN = 0
EXIT_VIOLATION = 1
_STACK_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_DB = "aws:rds/instance:Instance"
_HOST = "aws:ec2/instance:Instance"
_REPLICATION = "aws:rds/instanceAutomatedBackupsReplication:InstanceAutomatedBackupsReplication"


@dataclass(frozen=True)
class PolicyReport:
    stack: str
    config_file: str | None  # None: the pack's defaults
    violations: list[Violation]
    compare: dict[str, Any] | None = None
    rows: list[tuple[str, Any, Any]] = field(default_factory=list)

    @property
    def mandatory(self) -> list[Violation]:
        return [v for v in self.violations if v.enforcement == "mandatory"]

    @property
    def exit_code(self) -> int:
        return EXIT_VIOLATION if self.mandatory else EXIT_CLEAN

    def as_dict(self) -> dict[str, Any]:
        return {
            "configFile": self.config_file,
            "passed": not self.mandatory,
            "violations": [v.as_dict() for v in self.violations],
            "compare": self.compare,
        }


def pack_config(stack: str, project_dir: Path | None) -> PackConfig:
    """The stack's policy config: the project's policy/config/<stack>.json, else the pack's own
    file of that name, else the defaults (floors of the spec, environment from tags)."""
    candidates = (
        [stack_config_file(stack, project_dir / "policy" / "config")] if project_dir else []
    )
    candidates.append(stack_config_file(stack, CONFIG_DIR))
    for path in candidates:
        if path.is_file():
            try:
                return load_pack_config(path, SETTINGS)
            except PolicyConfigError as error:
                raise BadInput(f"{error}") from None
    return PackConfig()


# ---------------------------------------------------------------------------------------------
# --compare: the DR-relevant settings of two stacks side by side.


def _first(run: OfflineRun, type_: str) -> ResourceRecord | None:
    found = run.of_type(type_)
    return found[0] if found else None


def _plain(value: Any) -> Any:
    from infra.offline import UNKNOWN, Secret

    if value is UNKNOWN:
        return "(unknown)"
    if isinstance(value, Secret):
        return "[secret]"
    return value


def dr_facts(run: OfflineRun) -> dict[str, Any]:
    """What decides recoverability, exposure and cost of a recovery, per stack."""
    db, host = _first(run, _DB), _first(run, _HOST)
    facts: dict[str, Any] = {}
    if db is not None:
        i = db.inputs
        facts |= {
            "database": i.get("identifier"),
            "engine version": i.get("engineVersion"),
            "instance class": i.get("instanceClass"),
            "backup retention (days)": i.get("backupRetentionPeriod"),
            "backup window (UTC)": i.get("backupWindow"),
            "multi-AZ": i.get("multiAz"),
            "deletion protection": i.get("deletionProtection"),
            "pulumi protect": db.protect,
            "final snapshot": not i.get("skipFinalSnapshot", False),
            "keep automated backups": i.get("deleteAutomatedBackups") is False,
            "storage encrypted": i.get("storageEncrypted"),
            "publicly accessible": i.get("publiclyAccessible", False),
            "storage (GiB, max)": f"{i.get('allocatedStorage')}, {i.get('maxAllocatedStorage')}",
        }
    replication = _first(run, _REPLICATION)
    if replication is None:
        facts["backup replication"] = "off"
    else:
        regions = {p.urn: p.inputs.get("region") for p in run.of_type("pulumi:providers:aws")}
        region = regions.get(replication.provider.rsplit("::", 1)[0], "?")
        days = replication.inputs.get("retentionPeriod")
        facts["backup replication"] = f"to {region}, {days} days"
    if host is not None:
        facts |= {
            "host instance type": host.inputs.get("instanceType"),
            "host IMDSv2": (host.inputs.get("metadataOptions") or {}).get("httpTokens"),
            "host disk encrypted": (host.inputs.get("rootBlockDevice") or {}).get("encrypted"),
        }
    return {k: _plain(v) for k, v in facts.items()}


def _compare(
    run: OfflineRun, other: OfflineRun
) -> tuple[dict[str, Any], list[tuple[str, Any, Any]]]:
    ours, theirs = dr_facts(run), dr_facts(other)
    keys = list(dict.fromkeys([*ours, *theirs]))
    rows = [(k, ours.get(k), theirs.get(k)) for k in keys]
    doc = {
        "stack": other.stack,
        "settings": [
            {"setting": k, run.stack: a, other.stack: b, "differs": a != b} for k, a, b in rows
        ],
    }
    return doc, rows


def check(run: OfflineRun, project_dir: Path | None, compare: str | None = None) -> PolicyReport:
    """Run the policy pack on `run`; with `compare`, plan that stack too and line them up."""
    config = pack_config(run.stack, project_dir or run.project_dir)
    violations = check_run(run, config)
    compare_doc, rows = None, []
    if compare is not None:
        if not _STACK_NAME.fullmatch(compare):
            raise BadInput(f"--compare {compare!r} is not a stack name (letters, digits, . _ -)")
        if compare == run.stack:
            raise BadInput(f"--compare {compare} is the stack being planned; name another stack")
        from infra.offline import run_program

        other = run_program(compare, project_dir=project_dir, preview=run.preview)
        compare_doc, rows = _compare(run, other)
    return PolicyReport(
        stack=run.stack,
        config_file=str(config.source) if config.source else None,
        violations=violations,
        compare=compare_doc,
        rows=rows,
    )


# ---------------------------------------------------------------------------------------------
# Rendering (the table output; --json carries PolicyReport.as_dict()).


def _cell(value: Any) -> Text:
    if isinstance(value, bool):
        return Text(str(value).lower(), style="green" if value else "red")
    return Text("-" if value is None else str(value))


def _shown(path: str | None) -> str:
    if path is None:
        return "pack defaults"
    try:
        return str(Path(path).resolve().relative_to(Path.cwd()))
    except ValueError:
        return path


def render(report: PolicyReport, console: Console | None = None) -> None:
    console = console or Console(soft_wrap=False)
    source = _shown(report.config_file)
    if not report.violations:
        console.print(f"[bold]Policies[/bold] ({source}): [green]no violations[/green]")
    else:
        count = len(report.mandatory)
        verdict = (
            f"[bold red]{count} mandatory violation(s)[/bold red]: `pulumi preview "
            "--policy-pack policy` would block this update"
            if count
            else "[yellow]advisory findings only[/yellow]"
        )
        console.print(f"[bold]Policies[/bold] ({source}): {verdict}")
        for v in report.violations:
            style = "bold red" if v.enforcement == "mandatory" else "yellow"
            line = Text("  ")
            line.append(f"{v.enforcement:<9}", style=style)
            line.append(f" {v.policy}", style="bold")
            line.append(f"  {v.resource_type} {v.resource}".rstrip())
            console.print(line)
            console.print(Text(f"      {v.message}"))
            console.print(Text(f"      fix: {v.fix}", style="dim"))
    if report.compare is not None:
        other = report.compare["stack"]
        table = Table(title=f"DR settings: {report.stack} vs {other}")
        table.add_column("setting", style="bold")
        table.add_column(report.stack)
        table.add_column(other)
        for key, ours, theirs in report.rows:
            marker = Text(key, style="bold yellow" if ours != theirs else "bold")
            table.add_row(marker, _cell(ours), _cell(theirs))
        console.print(table)
