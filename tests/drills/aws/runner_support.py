"""Local equivalents of a drill stack for the runner tests, the signal child and the bench."""

from __future__ import annotations

import threading
from typing import Any

from drills.aws.forward import Direct
from drills.local.cluster import Cluster
from drills.local.standin_api import serve
from tests.fakes.engine import LocalEquivalents

SECRET_ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:rds!db-0a1b2c3d-AbCdEf"


class StandinStack(LocalEquivalents):
    """The restored DB is `database` on the test cluster; the host is the stand-in API on it;
    the tunnel hostname is the API's local address."""

    def __init__(self, cluster: Cluster, database: str) -> None:
        self.cluster = cluster
        self.database = database
        self.servers: dict[str, Any] = {}

    def start(self, stack: str) -> dict[str, Any]:
        server = serve(0, self.cluster.dsn(self.database))
        threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()
        self.servers[stack] = server
        return {
            "dbAddress": self.cluster.host,
            "dbPort": self.cluster.port,
            "dbName": self.database,
            "dbMasterSecretArn": SECRET_ARN,
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


def access_for(cluster: Cluster) -> Direct:
    """The runner's own Direct access, with the cluster's login as the 'managed secret'."""

    def credentials(arn: str) -> tuple[str, str]:
        assert arn == SECRET_ARN
        return cluster.user, cluster.password

    return Direct(credentials=credentials, sslmode="disable")


def http_url(hostname: str) -> str:
    return f"http://{hostname}"
