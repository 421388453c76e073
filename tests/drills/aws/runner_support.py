"""Local equivalents of a drill stack for the runner tests, the signal child and the bench."""

from __future__ import annotations

import secrets
import threading
from typing import Any

from psycopg.conninfo import make_conninfo

from drills.aws.forward import Direct
from drills.local.cluster import Cluster
from drills.local.standin_api import serve
from infra.boot import APP_ROLE
from tests.fakes.engine import LocalEquivalents

SECRET_ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:rds!db-0a1b2c3d-AbCdEf"
APP_SECRET_ARN = (
    "arn:aws:secretsmanager:us-east-1:123456789012:secret:"
    "prism/drill-20261202-010000/database/app-20261202010000000001-XyZ123"
)


class StandinStack(LocalEquivalents):
    """The restored DB is `database` on the test cluster; the host is the stand-in API on it,
    logging in as the application role with the stack's own new password, as the drill host
    does (the runner must set it on the database first); the tunnel hostname is the API's
    local address."""

    def __init__(self, cluster: Cluster, database: str) -> None:
        self.cluster = cluster
        self.database = database
        self.servers: dict[str, Any] = {}
        self.app_password = ""  # the drill stack's RandomPassword, new for every stack

    def start(self, stack: str) -> dict[str, Any]:
        self.app_password = secrets.token_hex(20)
        dsn = make_conninfo(
            self.cluster.dsn(self.database), user=APP_ROLE, password=self.app_password
        )
        server = serve(0, dsn)
        threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()
        self.servers[stack] = server
        return {
            "dbAddress": self.cluster.host,
            "dbPort": self.cluster.port,
            "dbName": self.database,
            "dbMasterSecretArn": SECRET_ARN,
            "dbAppRole": APP_ROLE,
            "dbAppSecretArn": APP_SECRET_ARN,
            "apiHostname": f"127.0.0.1:{server.server_port}",
            "apiHostId": "i-0123456789abcdef0",
        }

    def stop(self, stack: str) -> None:
        server = self.servers.pop(stack, None)
        if server is not None:
            server.shutdown()
            server.server_close()

    def running(self) -> list[str]:
        return list(self.servers)


def access_for(cluster: Cluster, stack: StandinStack) -> Direct:
    """The runner's own Direct access: the cluster's login as the restored instance's managed
    master secret, the stack's password as its application-role secret."""

    def credentials(arn: str) -> tuple[str, str]:
        if arn == APP_SECRET_ARN:
            return APP_ROLE, stack.app_password
        assert arn == SECRET_ARN, arn
        return cluster.user, cluster.password

    return Direct(credentials=credentials, sslmode="disable")


def http_url(hostname: str) -> str:
    return f"http://{hostname}"
