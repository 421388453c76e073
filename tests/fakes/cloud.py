"""Where the fake engine's resources live once a provider has created them: an account apart
from the stack's state, as a real one is. Forgetting a resource in the state (Pulumi's
`refresh --clear-pending-creates`) leaves it here; only a delete removes it.

`MemoryCloud` keeps them in a dict; `MotoCloud` creates the AWS ones on the moto server (the
kinds the sweep and the reaper delete), so the sweep's own boto3 code is what removes them.
Both hand the Cloudflare ones to `FakeCloudflare`, which behaves like the v4 API the sweep
calls (recovery/cloudflare.py: CloudflareTunnels).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from recovery.cloudflare import CloudflareError, drill_tunnel_name
from recovery.engine import EngineError

TUNNEL = "cloudflare:index/zeroTrustTunnelCloudflared:ZeroTrustTunnelCloudflared"
DNS = "cloudflare:index/dnsRecord:DnsRecord"
HOST = "aws:ec2/instance:Instance"
SECRET = "aws:secretsmanager/secret:Secret"
_ids = itertools.count(1)


@dataclass
class _Tunnel:
    account_id: str
    name: str
    connections: int = 0
    deleted: bool = False


@dataclass
class FakeCloudflare:
    """The tunnels and DNS records of one account, answering like the v4 API.

    Cloudflare refuses to delete a tunnel that still has active connections (seen in
    terraform-provider-cloudflare#5255; the API's answer is error 1022, "Cannot delete tunnel
    because it has active connections"); `DELETE .../cfd_tunnel/{id}/connections` drops them
    (developers.cloudflare.com/api: Cloudflare Tunnel > Clean Up Cloudflare Tunnel
    Connections). A deleted tunnel stays listed with `deleted_at` unless `is_deleted=false`
    filters it out, which is what CloudflareTunnels asks for. Every path names its account
    (`/accounts/{account_id}/cfd_tunnel/{id}`) or zone (`/zones/{zone_id}/dns_records/{id}`):
    a tunnel or record asked for under another answers 404, as the API does.
    """

    tunnels: dict[str, _Tunnel] = field(default_factory=dict)
    records: dict[str, tuple[str, str]] = field(default_factory=dict)  # id -> (zone, name)
    calls: list[tuple[str, str]] = field(default_factory=list)
    running: set[str] = field(default_factory=set)  # tunnels whose cloudflared still runs
    # Whether a tunnel's cloudflared still runs, when the host lives elsewhere (moto).
    connector_alive: Callable[[str], bool] | None = None
    zones: dict[str, str] = field(default_factory=dict)  # zone id -> its name

    def zone_name(self, zone_id: str) -> str:
        self.calls.append(("zone_name", zone_id))
        if zone_id not in self.zones:
            raise CloudflareError(f"Cloudflare GET /zones/{zone_id}: 404 Could not route")
        return self.zones[zone_id]

    def _alive(self, tunnel_id: str) -> bool:
        if self.connector_alive is not None:
            return self.connector_alive(tunnel_id)
        return tunnel_id in self.running

    def connect(self, tunnel_id: str) -> None:
        """cloudflared started on the host: it holds four connections to the edge."""
        self.running.add(tunnel_id)
        self.tunnels[tunnel_id].connections = 4

    def connector_stopped(self, tunnel_id: str) -> None:
        """The host is gone; the edge still lists its connections until they time out or
        are cleaned (the reason the clean-up endpoint exists)."""
        self.running.discard(tunnel_id)

    def add_tunnel(self, account_id: str, name: str) -> str:
        tunnel_id = f"{next(_ids):08x}-0000-4000-8000-000000000000"
        self.tunnels[tunnel_id] = _Tunnel(account_id, name)
        return tunnel_id

    def add_record(self, zone_id: str, hostname: str) -> str:
        record_id = f"{next(_ids):032x}"
        self.records[record_id] = (zone_id, hostname)
        return record_id

    def live(self) -> dict[str, list[str]]:
        """What is left: live tunnels by name, records by hostname."""
        return {
            "tunnels": [t.name for t in self.tunnels.values() if not t.deleted],
            "records": [name for _, name in self.records.values()],
        }

    # -- TunnelCleanup ----------------------------------------------------------------------

    def tunnels_named(self, account_id: str, name: str) -> list[str]:
        self.calls.append(("tunnels_named", name))
        return [
            i
            for i, t in self.tunnels.items()
            if t.account_id == account_id and t.name == name and not t.deleted
        ]

    def clean_connections(self, account_id: str, tunnel_id: str) -> None:
        self.calls.append(("clean_connections", tunnel_id))
        # A cloudflared that still runs reconnects at once (it retries lost connections).
        self._tunnel(tunnel_id, account_id).connections = 4 if self._alive(tunnel_id) else 0

    def delete_tunnel(self, account_id: str, tunnel_id: str) -> None:
        self.calls.append(("delete_tunnel", tunnel_id))
        tunnel = self._tunnel(tunnel_id, account_id)
        if tunnel.connections:
            raise CloudflareError(
                f"Cloudflare DELETE /accounts/{account_id}/cfd_tunnel/{tunnel_id}: 400 Cannot "
                "delete tunnel because it has active connections"
            )
        tunnel.deleted = True

    def dns_records(self, zone_id: str, hostname: str) -> list[str]:
        self.calls.append(("dns_records", hostname))
        return [i for i, (z, n) in self.records.items() if z == zone_id and n == hostname]

    def delete_dns_record(self, zone_id: str, record_id: str) -> None:
        self.calls.append(("delete_dns_record", record_id))
        if record_id not in self.records or self.records[record_id][0] != zone_id:
            raise CloudflareError(f"Cloudflare DELETE /zones/{zone_id}/dns_records: 404")
        del self.records[record_id]

    def _tunnel(self, tunnel_id: str, account_id: str) -> _Tunnel:
        tunnel = self.tunnels.get(tunnel_id)
        if tunnel is None or tunnel.deleted or tunnel.account_id != account_id:
            raise CloudflareError(
                f"Cloudflare /accounts/{account_id}/cfd_tunnel/{tunnel_id}: 404 tunnel not found"
            )
        return tunnel


@dataclass
class MemoryCloud:
    """The account as a dict: URN -> (type, physical id). The host's cloudflared connects to
    the stack's tunnel as soon as both exist, and stays connected while the host runs."""

    cloudflare: FakeCloudflare = field(default_factory=FakeCloudflare)
    account_id: str = "f037e56e89293a057740de681ac9abbe"
    zone_id: str = "a1b2c3d4e5f60718293a4b5c6d7e8f90"
    zone_name: str = "prismhub.io"
    resources: dict[str, tuple[str, str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.cloudflare.zones[self.zone_id] = self.zone_name

    def create(self, stack: str, urn: str, type_: str, tags: dict[str, str]) -> None:
        if type_ == TUNNEL:
            physical = self.cloudflare.add_tunnel(self.account_id, drill_tunnel_name(stack))
        elif type_ == DNS:
            physical = self.cloudflare.add_record(self.zone_id, f"{stack}.{self.zone_name}")
        else:
            physical = self._create_aws(stack, urn, type_, tags)
        self.resources[urn] = (type_, physical)
        self._connect(stack)

    def delete(self, stack: str, urn: str) -> None:
        type_, physical = self.resources[urn]
        try:
            if type_ == TUNNEL:
                self.cloudflare.delete_tunnel(self.account_id, physical)
            elif type_ == DNS:
                self.cloudflare.delete_dns_record(self.zone_id, physical)
            else:
                self._delete_aws(type_, physical)
        except CloudflareError as error:  # what the provider reports back to the engine
            raise EngineError(f"pulumi failed on stack {stack}: {error}") from None
        del self.resources[urn]
        if type_ == HOST:  # cloudflared stops with its host
            for tunnel in self._tunnels():
                self.cloudflare.connector_stopped(tunnel)

    def live(self) -> list[str]:
        return sorted(self.resources)

    def _connect(self, stack: str) -> None:
        if any(t == HOST for t, _ in self.resources.values()):
            for tunnel in self._tunnels():
                self.cloudflare.connect(tunnel)

    def _tunnels(self) -> list[str]:
        return [p for t, p in self.resources.values() if t == TUNNEL]

    def _create_aws(self, stack: str, urn: str, type_: str, tags: dict[str, str]) -> str:
        return f"{type_.rsplit(':', 1)[-1].lower()}-{next(_ids)}"

    def _delete_aws(self, type_: str, physical: str) -> None:
        pass


@dataclass
class MotoCloud(MemoryCloud):
    """AWS resources of the kinds a drill's sweep deletes are made on the moto server, tagged
    as the drill program tags them; the rest stay in memory."""

    region: str = "us-east-1"
    clients: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__post_init__()
        # The host may be terminated behind the engine's back (by the sweep): ask moto.
        self.cloudflare.connector_alive = lambda tunnel_id: self._host_running()

    def _host_running(self) -> bool:
        hosts = [p for t, p in self.resources.values() if t == HOST]
        if not hosts:
            return False
        found = self._client("ec2").describe_instances(InstanceIds=hosts)["Reservations"]
        states = [i["State"]["Name"] for r in found for i in r["Instances"]]
        return any(state not in ("shutting-down", "terminated") for state in states)

    def _client(self, service: str) -> Any:
        import boto3

        if service not in self.clients:
            self.clients[service] = boto3.client(service, region_name=self.region)
        return self.clients[service]

    def _create_aws(self, stack: str, urn: str, type_: str, tags: dict[str, str]) -> str:
        tag_list = [{"Key": k, "Value": v} for k, v in tags.items()]
        name = f"{stack}-{urn.rsplit('::', 1)[-1]}"[:63]
        if type_ == "aws:rds/instance:Instance":
            self._client("rds").create_db_instance(
                DBInstanceIdentifier=name,
                DBInstanceClass="db.t4g.small",
                Engine="postgres",
                MasterUsername="prism_admin",
                MasterUserPassword="not-a-real-password-1",
                AllocatedStorage=20,
                Tags=tag_list,
            )
            return name
        if type_ == "aws:ec2/securityGroup:SecurityGroup":
            return self._client("ec2").create_security_group(
                GroupName=name,
                Description="drill",
                TagSpecifications=[{"ResourceType": "security-group", "Tags": tag_list}],
            )["GroupId"]
        if type_ == HOST:
            ec2 = self._client("ec2")
            ami = ec2.describe_images(Filters=[{"Name": "architecture", "Values": ["arm64"]}])[
                "Images"
            ][0]["ImageId"]
            return ec2.run_instances(
                ImageId=ami,
                MinCount=1,
                MaxCount=1,
                InstanceType="t4g.small",
                TagSpecifications=[{"ResourceType": "instance", "Tags": tag_list}],
            )["Instances"][0]["InstanceId"]
        if type_ == "aws:ssm/parameter:Parameter":
            parameter = f"/prism/{stack}/{urn.rsplit('::', 1)[-1]}"
            self._client("ssm").put_parameter(
                Name=parameter, Value="x", Type="SecureString", Tags=tag_list
            )
            return parameter
        if type_ == SECRET:
            return self._client("secretsmanager").create_secret(
                Name=f"prism/{stack}/database/app-{next(_ids)}", SecretString="{}", Tags=tag_list
            )["ARN"]
        return super()._create_aws(stack, urn, type_, tags)

    def _delete_aws(self, type_: str, physical: str) -> None:
        if type_ == "aws:rds/instance:Instance":
            self._client("rds").delete_db_instance(
                DBInstanceIdentifier=physical, SkipFinalSnapshot=True
            )
        elif type_ == "aws:ec2/securityGroup:SecurityGroup":
            self._client("ec2").delete_security_group(GroupId=physical)
        elif type_ == HOST:
            self._client("ec2").terminate_instances(InstanceIds=[physical])
        elif type_ == "aws:ssm/parameter:Parameter":
            self._client("ssm").delete_parameter(Name=physical)
        elif type_ == SECRET:  # the provider's delete: the secret's recovery window (drills: 7)
            self._client("secretsmanager").delete_secret(SecretId=physical, RecoveryWindowInDays=7)
