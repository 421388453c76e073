"""The options every runbook command (snapshot, audit, recover) takes to name its database."""

from __future__ import annotations

STACK_HELP = "Stack whose database to use: its identifier and region from Pulumi.<STACK>.yaml."
DB_HELP = "DB instance identifier (instead of --stack); region from AWS_REGION."
PROJECT_DIR_HELP = "Directory holding the Pulumi.<STACK>.yaml files (default: this project)."
