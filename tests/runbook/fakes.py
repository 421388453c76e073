"""Fakes for `recover`: a StackEngine and a Cloudflare, both local.

Engineer C's fake StackEngine (tests/fakes/engine.py) was not on main when these tests were
written, so this minimal one stands in. Its `up` runs the program it is given for real,
under Pulumi's mocks (infra/offline.py), so a test sees every resource the recovery stack
would declare; the "host" is the stand-in API (drills/local/standin_api.py) on a local database,
reached in place of the recovery hostname, logging in as the application role with the
stack's own new password, as the recovery host does: until `recover` sets that password on the
"restored instance", /ready stays 503.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from psycopg.conninfo import conninfo_to_dict, make_conninfo

from drills.aws.forward import Direct
from drills.local.standin_api import serve
from infra.boot import APP_ROLE
from infra.offline import OfflineRun, Secret, run_program
from recovery.cloudflare import with_ingress
from recovery.engine import EngineError, OnEvent, Program, StackInfo, UpResult

MASTER_SECRET_ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:rds!db-5e6f-AbCdEf"
APP_SECRET_ARN = (
    "arn:aws:secretsmanager:us-east-1:123456789012:secret:"
    "prism/recovery-t1/database/app-20261202010000000001-XyZ123"
)


class FakeEngine:
    def __init__(self, project_dir: Path, dsn: str, prod_outputs: Mapping[str, Any]):
        self.project_dir = project_dir
        self.dsn = dsn  # the "restored instance" (its master login); the API answers from it
        self.app_password = ""  # the recovery stack's RandomPassword, new at each `up`
        self.calls: list[tuple[str, str]] = []
        self.runs: dict[str, OfflineRun] = {}
        self.config: dict[str, Mapping[str, str]] = {}
        self.tags: dict[str, Mapping[str, str]] = {}
        self._outputs: dict[str, dict[str, Any]] = {"prod": dict(prod_outputs)}
        self._servers: list[Any] = []
        self.api_url = ""
        # A failing `up`: the error, and how many resources it leaves in the stack's state
        # (the Automation API raises once the engine stops; created resources stay).
        self.fail: EngineError | None = None
        self.left_behind = 0
        self.resource_counts: dict[str, int] = {}

    def up(
        self,
        stack: str,
        program: Program,
        *,
        config: Mapping[str, str],
        tags: Mapping[str, str] = {},
        on_event: OnEvent | None = None,
    ) -> UpResult:
        self.calls.append(("up", stack))
        self.config[stack], self.tags[stack] = dict(config), dict(tags)
        if self.fail is not None:
            if self.left_behind:
                self.resource_counts[stack] = self.left_behind
                self._outputs.setdefault(stack, {})
            raise self.fail
        # The prod file feeds the runtime's config; the recovery program reads none of it but
        # the region, which the real engine sets from `config` (aws:region) as here.
        run = run_program(
            "prod",
            project_dir=self.project_dir,
            program=program,
            preview=False,
            overrides={"aws:region": config["aws:region"]},
        )
        self.runs[stack] = run
        self.resource_counts[stack] = len(run.resources)
        self.app_password = self.app_password or secrets.token_hex(20)  # kept by a re-run
        server = serve(0, make_conninfo(self.dsn, user=APP_ROLE, password=self.app_password))
        threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True
        ).start()
        self._servers.append(server)
        self.api_url = f"http://127.0.0.1:{server.server_port}"
        outputs = {k: v for k, v in run.outputs.items() if not isinstance(v, Secret)}
        db = conninfo_to_dict(self.dsn)
        outputs |= {  # the local database stands in for the restored instance
            "dbAddress": db["host"],
            "dbPort": int(str(db["port"])),
            "dbName": db["dbname"],
            "dbMasterSecretArn": MASTER_SECRET_ARN,
            "dbAppSecretArn": APP_SECRET_ARN,
        }
        self._outputs[stack] = outputs
        return UpResult(outputs=outputs)

    def outputs(self, stack: str) -> Mapping[str, Any]:
        self.calls.append(("outputs", stack))
        return dict(self._outputs.get(stack, {}))

    def destroy(self, stack: str, *, remove: bool = True, on_event: OnEvent | None = None) -> None:
        self.calls.append(("destroy", stack))

    def cancel(self, stack: str) -> None:
        self.calls.append(("cancel", stack))

    def refresh(self, stack: str, *, clear_pending_creates: bool = True) -> None:
        self.calls.append(("refresh", stack))

    def list_stacks(self, prefix: str = "") -> list[StackInfo]:
        return [
            StackInfo(name=s, last_update=None, resource_count=self.resource_counts.get(s))
            for s in self._outputs
            if s.startswith(prefix)
        ]

    def access(self) -> Direct:
        """`recover`'s access to the restored instance: the master login for its managed
        secret, the stack's password for its application secret."""
        db = conninfo_to_dict(self.dsn)

        def credentials(arn: str) -> tuple[str, str]:
            if arn == APP_SECRET_ARN:
                return APP_ROLE, self.app_password
            assert arn == MASTER_SECRET_ARN, arn
            return str(db["user"]), str(db.get("password", ""))

        return Direct(credentials=credentials, sslmode="disable")

    def close(self) -> None:
        for server in self._servers:
            server.shutdown()
            server.server_close()


class FakeCloudflare:
    """A zone's CNAME records and each tunnel's ingress rules, seen through Cutover."""

    def __init__(self, records: dict[str, str], ingress: dict[str, list[dict[str, Any]]]):
        self.records = records
        self.ingress = ingress
        self.calls: list[str] = []

    def cname_target(self, zone_id: str, hostname: str) -> str:
        return self.records[hostname]

    def point_cname(self, zone_id: str, hostname: str, target: str) -> None:
        self.calls.append(f"point {hostname} {target}")
        assert hostname in self.records, "the cutover edits the existing record, never adds one"
        self.records[hostname] = target

    def set_ingress(
        self, account_id: str, tunnel_id: str, hostname: str, service: str | None
    ) -> None:
        self.calls.append(f"ingress {tunnel_id} {hostname} {service}")
        self.ingress[tunnel_id] = with_ingress(self.ingress.get(tunnel_id, []), hostname, service)
