"""`prism-dr drill reap`: remove what crashed drills left behind.

`--local` reaps this machine's ephemeral clusters, dumps and processes whose drill died
(`drills.local.reaper`); without it, the AWS reaper (`drills.aws.reaper`) finds and destroys
expired drill stacks and resources.
"""

from __future__ import annotations

import json
import re
from datetime import timedelta

import typer
from rich.console import Console
from rich.table import Table

from infra.errors import BadInput

out = Console()

_DURATION_PART = re.compile(r"(\d+)\s*([smhdw])")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_duration(text: str, option: str = "--older-than") -> timedelta:
    """`6h`, `90m`, `1h30m`, `2d`: a positive duration."""
    compact = text.strip().lower()
    parts = _DURATION_PART.findall(compact)
    if not compact or _DURATION_PART.sub("", compact).strip() or not parts:
        raise BadInput(f"{option} {text!r} is not a duration; use e.g. 6h, 90m, 1h30m or 2d")
    try:
        duration = sum(
            (timedelta(**{_UNITS[unit]: int(number)}) for number, unit in parts), timedelta()
        )
    except OverflowError as err:
        raise BadInput(f"{option} {text!r} is too long; use e.g. 6h or 30d") from err
    if duration <= timedelta(0):
        raise BadInput(f"{option} {text!r} must be longer than zero; use e.g. 6h")
    return duration


def register(app: typer.Typer) -> None:
    """Add `reap` to the `drill` group (registered by drill_cmd before this)."""
    drill = next(group.typer_instance for group in app.registered_groups if group.name == "drill")

    @drill.command("reap")
    def reap(
        local: bool = typer.Option(
            False, "--local", help="Reap this machine's clusters whose drill died (SIGKILL, OOM)."
        ),
        yes: bool = typer.Option(False, "--yes", help="Remove; without it, only list."),
        as_json: bool = typer.Option(False, "--json", help="Print what was found as JSON."),
        older_than: str = typer.Option(
            "6h",
            "--older-than",
            help="Age past which a drill's leftovers are expired (AWS; local: kept clusters).",
        ),
        regions: list[str] = typer.Option(
            [], "--region", help="AWS region to search (repeatable; default: the stacks')."
        ),
        skip_stacks: list[str] = typer.Option(
            [], "--skip-stack", help="Drill stack to leave alone (repeatable)."
        ),
        run: str | None = typer.Option(
            None,
            "--run",
            help="One drill run's id: remove everything tagged with it, expired or not, "
            "and its Cloudflare tunnel and DNS record.",
        ),
    ) -> None:
        """Find and remove what crashed or expired drills left behind."""
        age = parse_duration(older_than)
        if local:
            if regions or skip_stacks or run:
                raise BadInput(
                    "--region, --skip-stack and --run apply to AWS drills; drop them with --local"
                )
            raise typer.Exit(_reap_local(yes=yes, kept_older_than=age, as_json=as_json))
        try:
            import drills.aws.reaper as aws_reaper
        except ModuleNotFoundError as err:  # boto3 or pulumi missing from a partial install
            raise BadInput(
                f"the AWS drill reaper needs the Python module {err.name!r}, which is not "
                "installed: run scripts/bootstrap (or use --local)"
            ) from err
        if run is not None:
            if skip_stacks:
                raise BadInput("--skip-stack does not go with --run (one run is swept)")
            raise typer.Exit(
                aws_reaper.run_sweep(run_id=run, yes=yes, regions=list(regions), as_json=as_json)
            )
        raise typer.Exit(
            aws_reaper.run(
                older_than=age,
                yes=yes,
                regions=list(regions),
                skip_stacks=list(skip_stacks),
                as_json=as_json,
            )
        )


def _reap_local(*, yes: bool, kept_older_than: timedelta, as_json: bool) -> int:
    from drills.local.reaper import reap_local

    found = reap_local(yes=yes, kept_older_than=kept_older_than)
    if as_json:
        out.print_json(json.dumps([item.as_dict() for item in found]))
        return 0
    if not found:
        out.print("no local drill leftovers found")
        return 0
    table = Table(title="Local drill leftovers")
    for column in ("path", "kind", "owner pid", "created", "processes", "action"):
        table.add_column(column, overflow="fold")
    for item in found:
        table.add_row(
            str(item.path),
            item.kind,
            str(item.owner_pid or "—"),
            item.created_at or "—",
            ", ".join(map(str, item.processes)) or "—",
            item.action,
        )
    out.print(table)
    if any(item.action == "would remove" for item in found):
        out.print("nothing removed: run again with --yes to remove them", highlight=False)
    return 0
