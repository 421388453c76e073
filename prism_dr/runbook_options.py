"""The options every runbook command (snapshot, audit, recover) takes to name its database."""

from __future__ import annotations

from pathlib import Path

STACK_HELP = "Stack whose database to use: its identifier and region from Pulumi.<STACK>.yaml."
DB_HELP = "DB instance identifier (instead of --stack); region from AWS_REGION."
PROJECT_DIR_HELP = "Directory holding the Pulumi.<STACK>.yaml files (default: this project)."


def project_root(given: Path | None) -> Path | None:
    """The project directory whose records a runbook command reads: `--project-dir`, else
    the checkout found from the current directory up (as `plan` and `pulumi` find it), else
    the checkout this package runs from; None when none holds Pulumi.yaml. Never the
    current directory as such: run from elsewhere, a command must judge the same records."""
    from infra.project import find_project_dir, project_file

    if given is not None:
        return given.resolve() if project_file(given.resolve()) is not None else None
    return find_project_dir() or find_project_dir(Path(__file__).resolve().parent)
