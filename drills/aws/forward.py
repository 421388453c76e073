"""Reaching the restored RDS instance from the machine that runs the drill.

The instance is private. `SsmPortForward` opens a Session Manager port-forwarding session
through the drill's API host (`aws ssm start-session --document-name
AWS-StartPortForwardingSessionToRemoteHost`; needs the AWS CLI and the session-manager
plugin) and hands out a DSN on 127.0.0.1; `Direct` connects to the endpoint itself, for a
runner inside the VPC (`--direct`). Either way the credentials are the restored instance's
own RDS-managed master secret, read from Secrets Manager; the DSN lives in memory only.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from psycopg.conninfo import make_conninfo

from drills.ports import free_port
from infra.errors import BadInput
from recovery.app_role import RoleReport, reset_on_restored

DOCUMENT = "AWS-StartPortForwardingSessionToRemoteHost"
FORWARD_READY_TIMEOUT = 60.0


class ForwardError(Exception):
    """The restored database could not be reached; the message is safe to record."""


Credentials = Callable[[str], tuple[str, str]]
"""secret ARN → (username, password)."""


class DatabaseAccess(Protocol):
    # How secrets are read: the master secret for `open`, the application role's by the runner.
    credentials: Credentials

    def open(self, outputs: Mapping[str, Any]) -> AbstractContextManager[str]:
        """A DSN of the restored database as its master user, valid inside the `with` block."""
        ...


def secrets_manager_credentials(region: str) -> Credentials:
    def read(secret_arn: str) -> tuple[str, str]:
        from recovery.aws import aws_errors, client

        with aws_errors(f"reading the secret {secret_arn}"):
            value = client("secretsmanager", region).get_secret_value(SecretId=secret_arn)
        secret = json.loads(value["SecretString"])
        return secret["username"], secret["password"]

    return read


def _dsn(
    outputs: Mapping[str, Any],
    host: str,
    port: int,
    credentials: Credentials,
    sslmode: str = "require",  # rds.force_ssl is on in the drill's parameter group
) -> str:
    arn = outputs.get("dbMasterSecretArn")
    if not arn:
        raise ForwardError("the drill stack exports no dbMasterSecretArn: no credentials")
    user, password = credentials(str(arn))
    return make_conninfo(
        host=host,
        port=str(port),
        dbname=str(outputs.get("dbName") or "postgres"),
        user=user,
        password=password,
        sslmode=sslmode,
        connect_timeout="10",
    )


@dataclass
class Direct:
    """Connect to the endpoint: the runner is inside the VPC."""

    credentials: Credentials
    sslmode: str = "require"

    @contextmanager
    def open(self, outputs: Mapping[str, Any]) -> Iterator[str]:
        host, port = str(outputs["dbAddress"]), int(outputs["dbPort"])
        yield _dsn(outputs, host, port, self.credentials, self.sslmode)


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


@dataclass
class SsmPortForward:
    """A Session Manager port forward through the drill host to the restored instance."""

    region: str
    credentials: Credentials
    aws_cli: str = "aws"
    ready_timeout: float = FORWARD_READY_TIMEOUT
    sleep: Callable[[float], None] = field(default=time.sleep)

    def command(self, target: str, host: str, port: int, local_port: int) -> list[str]:
        parameters = {
            "host": [host],
            "portNumber": [str(port)],
            "localPortNumber": [str(local_port)],
        }
        return [
            self.aws_cli,
            "ssm",
            "start-session",
            "--region",
            self.region,
            "--target",
            target,
            "--document-name",
            DOCUMENT,
            "--parameters",
            json.dumps(parameters),
        ]

    @contextmanager
    def open(self, outputs: Mapping[str, Any]) -> Iterator[str]:
        local = free_port()
        cmd = self.command(
            str(outputs["apiHostId"]), str(outputs["dbAddress"]), int(outputs["dbPort"]), local
        )
        # Own session: a Ctrl-C reaches the drill, which then ends the forward itself.
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        try:
            deadline = time.monotonic() + self.ready_timeout
            while not _accepts(local):
                if proc.poll() is not None:
                    tail = (proc.stderr.read() if proc.stderr else b"").decode(errors="replace")
                    last = tail.strip().splitlines()[-1:] or ["no output"]
                    raise ForwardError(
                        f"the SSM port forward through {outputs['apiHostId']} ended "
                        f"(exit {proc.returncode}): {last[0][:300]}"
                    )
                if time.monotonic() > deadline:
                    raise ForwardError(
                        f"the SSM port forward through {outputs['apiHostId']} did not open "
                        f"127.0.0.1:{local} within {self.ready_timeout:.0f} s; is the host's "
                        "SSM agent online?"
                    )
                self.sleep(0.5)
            yield _dsn(outputs, "127.0.0.1", local, self.credentials)
        finally:
            _end_group(proc)
            if proc.stderr:
                proc.stderr.close()


def reset_app_role(access: DatabaseAccess, outputs: Mapping[str, Any]) -> RoleReport:
    """The stack's application-role password (its own secret, `dbAppSecretArn`) set on the
    restored instance as that instance's master user, then the API's login tried with it.
    Raises ForwardError, the project's errors (a secret unreadable, a role with too much) or
    psycopg's."""
    arn = outputs.get("dbAppSecretArn")
    if not arn:
        raise ForwardError("the stack exports no dbAppSecretArn: no role for its API")
    role, password = access.credentials(str(arn))
    with access.open(outputs) as dsn:
        return reset_on_restored(dsn, role, password)


def _end_group(proc: subprocess.Popen[bytes], grace: float = 5.0) -> None:
    """The session's whole process group: `aws ssm start-session` runs the relay in a child,
    session-manager-plugin (awscli/customizations/sessionmanager.py starts it with
    check_call), which outlives an `aws` that alone is terminated. The group is the one
    `start_new_session` made, led by `aws`: SIGTERM to all of it, SIGKILL to what is left
    after `grace` seconds."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=grace)
    while _group_alive(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def _group_alive(pgid: int) -> bool:
    """Whether a process of the group still runs (a zombie waiting for its reaper does not)."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) == pgid and fields[0] != "Z":
                return True
    return False


def check_forward_tools(aws_cli: str = "aws") -> None:
    """Before anything is created: the port forward needs the AWS CLI and its SSM plugin."""
    missing = [tool for tool in (aws_cli, "session-manager-plugin") if shutil.which(tool) is None]
    if missing:
        raise BadInput(
            f"{' and '.join(missing)} not found on PATH: the drill reaches the restored database "
            "through an SSM port forward (install the AWS CLI v2 and the Session Manager plugin), "
            "or pass --direct when this machine is inside the VPC"
        )
