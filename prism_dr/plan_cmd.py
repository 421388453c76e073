"""`prism-dr plan --stack STACK [--json]`: the stack's resources and DR posture, offline.

Runs the real Pulumi program under Pulumi's mocks with `Pulumi.<stack>.yaml` (infra/offline.py),
like a `pulumi preview` that needs no CLI, no plugin and no cloud account. Values only the cloud
can compute (endpoints, ARNs, restorable times) show as unknown; secrets never show.

Bad input (a bad stack name, a missing stack file, invalid config) raises BadInput or
ConfigError, which `prism_dr.app.main` turns into one line on stderr and exit 2. Pulumi is
imported only when the command runs, so the other commands of prism-dr never load it.
"""

from __future__ import annotations

import gc
import hashlib
import json
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from infra.errors import BadInput
from infra.host_rules import image_digest
from prism_dr import teardown

if TYPE_CHECKING:
    from infra.offline import OfflineRun, ResourceRecord


def dr_targets() -> dict[str, float]:
    """RPO/RTO targets from the drill manifest's one Targets model (the shipped Prism
    manifest, spec §1): the plan shows the figures the drills are judged against."""
    from drills.verify.manifest import load_manifest

    targets = load_manifest().targets
    return {"rpoHours": targets.rpo_hours, "rtoHours": targets.rto_hours}


# Per resource type, the inputs that matter for backup, restore, exposure and alerting.
_DR_SETTINGS: dict[str, list[str]] = {
    "aws:rds/instance:Instance": [
        "identifier",
        "engine",
        "engineVersion",
        "instanceClass",
        "multiAz",
        "storageEncrypted",
        "publiclyAccessible",
        "manageMasterUserPassword",
        "backupRetentionPeriod",
        "backupWindow",
        "maintenanceWindow",
        "copyTagsToSnapshot",
        "skipFinalSnapshot",
        "finalSnapshotIdentifier",
        "deleteAutomatedBackups",
        "deletionProtection",
        "masterUserSecretKmsKeyId",
        "restoreToPointInTime",
        "snapshotIdentifier",
        "dbSubnetGroupName",
        "parameterGroupName",
        "vpcSecurityGroupIds",
    ],
    "aws:rds/instanceAutomatedBackupsReplication:InstanceAutomatedBackupsReplication": [
        "sourceDbInstanceArn",
        "retentionPeriod",
        "kmsKeyId",
    ],
    "aws:kms/key:Key": ["deletionWindowInDays", "enableKeyRotation"],
    "aws:kms/alias:Alias": ["name"],
    "aws:rds/parameterGroup:ParameterGroup": ["family", "parameters"],
    "aws:rds/subnetGroup:SubnetGroup": ["subnetIds"],
    # Both kinds of group also show their ingress and egress rules (_security_group_rules).
    "aws:ec2/securityGroup:SecurityGroup": ["vpcId"],
    "aws:ec2/defaultSecurityGroup:DefaultSecurityGroup": ["vpcId"],
    "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule": [
        "securityGroupId",
        "ipProtocol",
        "fromPort",
        "toPort",
        "referencedSecurityGroupId",
    ],
    "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule": [
        "securityGroupId",
        "ipProtocol",
        "fromPort",
        "toPort",
        "cidrIpv4",
    ],
    "aws:ec2/instance:Instance": [
        "instanceType",
        "ami",
        "subnetId",
        "associatePublicIpAddress",
        "vpcSecurityGroupIds",
        "metadataOptions.httpTokens",
        "metadataOptions.httpPutResponseHopLimit",
        "rootBlockDevice.encrypted",
        "rootBlockDevice.volumeSize",
        "userDataReplaceOnChange",
    ],
    "aws:iam/rolePolicy:RolePolicy": ["policy"],
    "aws:iam/rolePolicyAttachment:RolePolicyAttachment": ["policyArn"],
    "aws:iam/instanceProfile:InstanceProfile": ["role"],
    "aws:ssm/parameter:Parameter": ["name", "type", "value", "insecureValue"],
    "aws:sns/topic:Topic": ["name"],
    "aws:sns/topicSubscription:TopicSubscription": ["protocol", "endpoint"],
    "aws:rds/eventSubscription:EventSubscription": ["sourceType", "sourceIds", "eventCategories"],
    "aws:cloudwatch/metricAlarm:MetricAlarm": [
        "namespace",
        "metricName",
        "comparisonOperator",
        "threshold",
        "period",
        "evaluationPeriods",
        "treatMissingData",
        "alarmActions",
    ],
    "aws:ec2/vpc:Vpc": ["cidrBlock"],
    "aws:ec2/subnet:Subnet": ["cidrBlock", "availabilityZone", "mapPublicIpOnLaunch"],
    "aws:ec2/routeTable:RouteTable": ["routes"],
    "cloudflare:index/zeroTrustTunnelCloudflared:ZeroTrustTunnelCloudflared": [
        "name",
        "configSrc",
    ],
    "cloudflare:index/zeroTrustTunnelCloudflaredConfig:ZeroTrustTunnelCloudflaredConfig": [
        "tunnelId",
        "config.ingresses",
    ],
    "cloudflare:index/dnsRecord:DnsRecord": ["name", "type", "content", "proxied", "ttl"],
    "random:index/randomId:RandomId": ["byteLength", "keepers"],
    "random:index/randomPassword:RandomPassword": ["length", "special"],
    "aws:secretsmanager/secret:Secret": ["namePrefix", "kmsKeyId", "recoveryWindowInDays"],
    "aws:secretsmanager/secretVersion:SecretVersion": ["secretId", "secretString"],
    "pulumi:providers:aws": ["region"],
}
# Outputs worth showing although (in a preview) the cloud has not computed them yet.
_DR_OUTPUTS: dict[str, list[str]] = {
    "aws:rds/instance:Instance": ["endpoint", "latestRestorableTime", "arn"],
}
# Components in the order the stack builds them; anything else follows.
_COMPONENT_ORDER = [
    "prism:infra:Network",
    "prism:infra:ApiHost",
    "prism:infra:PrismDatabase",
    "prism:infra:ApiTunnel",
    "prism:infra:RuntimeSecrets",
    "prism:infra:Alarms",
]
_GROUP_TYPES = (
    "aws:ec2/securityGroup:SecurityGroup",
    "aws:ec2/defaultSecurityGroup:DefaultSecurityGroup",
)
_SG_RULES = {
    "ingress": "aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule",
    "egress": "aws:vpc/securityGroupEgressRule:SecurityGroupEgressRule",
}
# Set: import the provider SDKs whole, without infra/slim_import.py (an escape hatch).
EAGER_IMPORTS_ENV = "PRISM_DR_EAGER_IMPORTS"
_STACK_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


def register(app: typer.Typer) -> None:
    @app.command("plan")
    def plan(
        stack: str = typer.Option(
            ..., "--stack", "-s", help="Stack name: reads Pulumi.<STACK>.yaml."
        ),
        as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
        project_dir: Path | None = typer.Option(
            None,
            "--project-dir",
            help="Directory holding Pulumi.yaml and the stack files (default: the nearest "
            "Pulumi.yaml from the current directory up, as pulumi finds it).",
        ),
        compare: str | None = typer.Option(
            None, "--compare", help="Another stack: its DR settings side by side with STACK's."
        ),
    ) -> None:
        """Offline: each resource of STACK with its DR-relevant settings (no cloud, no CLI)."""
        if not _STACK_NAME.fullmatch(stack):
            raise BadInput(f"--stack {stack!r} is not a stack name (letters, digits, . _ -)")
        from infra.project import resolve_project_dir

        root = resolve_project_dir(project_dir)
        teardown.skip()  # plan holds nothing but memory
        # The provider SDKs build ~8,000 classes of typing objects while they load, and the
        # AWS data is 10 MB of JSON: the cycle collector scanning them again and again was a
        # seventh of the command's time, and nothing here needs it (bench/README.md).
        gc.disable()
        try:
            _plan(stack, root, compare, as_json)
        finally:
            gc.enable()


def _plan(stack: str, root: Path, compare: str | None, as_json: bool) -> None:
    if not os.environ.get(EAGER_IMPORTS_ENV):
        from infra import slim_import

        slim_import.install()  # a one-shot process: load only the resources it declares
    from infra.offline import run_program  # here: loads pulumi, which only plan needs

    run = run_program(stack, project_dir=root, preview=True)
    report = build_report(run)
    report["awsRules"] = _check_aws_rules(run)
    # The DR policy pack (policy/), as `pulumi preview --policy-pack policy` runs it.
    from prism_dr import plan_policy

    policies = plan_policy.check(run, root, compare)
    report["policies"] = policies.as_dict()
    if as_json:
        typer.echo(json.dumps(report, indent=2))
    else:
        _print(report)
        plan_policy.render(policies)
    if policies.exit_code:
        raise typer.Exit(policies.exit_code)


def _check_aws_rules(run: OfflineRun) -> str:
    """AWS's own data (RDS versions and classes, IAM actions) against the stack; the first
    problem is bad input naming its key. Says what it checked against, or why it could not."""
    from infra import aws_rules

    if not aws_rules.available():
        return "not checked: cfn-lint (a dev dependency) is not installed"
    from infra.checks import aws_rule_problems
    from infra.config import ConfigError

    problems = aws_rule_problems(run, run.region)
    if problems:
        raise ConfigError(problems[0].key, problems[0].message)
    version = aws_rules.cfnlint_version()
    return f"RDS engine/class/region and IAM actions checked (cfn-lint {version} data)"


# ---------------------------------------------------------------------------------------------
# The report: plain data, rendered as JSON or as a table.


def _plain(value: Any) -> Any:
    from infra.offline import UNKNOWN, Secret

    if value is UNKNOWN:
        return "<unknown>"
    if isinstance(value, Secret):
        return "<secret>"
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _lookup(data: Any, path: str) -> Any:
    from infra.offline import Secret

    for part in path.split("."):
        if isinstance(data, Secret):
            return data
        if not isinstance(data, dict) or part not in data:
            return None
        data = data[part]
    return data


def _summarize_policy(text: Any) -> Any:
    if not isinstance(text, str):
        return text
    try:
        doc = json.loads(text)
    except json.JSONDecodeError:
        return text
    return [
        {"effect": st.get("Effect"), "action": st.get("Action"), "resource": st.get("Resource")}
        for st in doc.get("Statement", [])
    ]


def _rule_summary(rule: ResourceRecord, names_by_id: dict[str, str]) -> str:
    inputs = rule.inputs
    source = inputs.get("referencedSecurityGroupId")
    peer = names_by_id.get(source, source) if source else inputs.get("cidrIpv4")
    ports = (
        f"{inputs.get('fromPort')}"
        if inputs.get("fromPort") == inputs.get("toPort")
        else (f"{inputs.get('fromPort')}-{inputs.get('toPort')}")
    )
    return f"{inputs.get('ipProtocol')}/{ports} {peer}"


def _security_group_rules(run: OfflineRun, group: ResourceRecord) -> dict[str, Any]:
    """Inline and separate rules of one security group; an empty list means: none at all."""
    names_by_id = {r.id: r.name for r in run.resources if r.custom and r.id}
    rules: dict[str, Any] = {}
    for direction, rule_type in _SG_RULES.items():
        found = [
            _rule_summary(r, names_by_id)
            for r in run.of_type(rule_type)
            if r.inputs.get("securityGroupId") == group.id
        ]
        rules[direction] = [*(group.inputs.get(direction) or []), *found]
    return rules


def _settings(record: ResourceRecord) -> dict[str, Any]:
    from infra.offline import UNKNOWN

    keys = _DR_SETTINGS.get(record.type)
    if keys is None:
        settings = {
            k: v
            for k, v in record.inputs.items()
            if k != "tags" and not isinstance(v, (dict, list))
        }
    else:
        settings = {k: v for k in keys if (v := _lookup(record.inputs, k)) is not None}
    if "policy" in settings:
        settings["policy"] = _summarize_policy(settings["policy"])
    if "parameters" in settings and isinstance(settings["parameters"], list):
        settings["parameters"] = [
            f"{p.get('name')}={p.get('value')}" for p in settings["parameters"]
        ]
    user_data = record.inputs.get("userData")
    if isinstance(user_data, str):
        digest = hashlib.sha256(user_data.encode()).hexdigest()[:12]
        settings["userData"] = f"{len(user_data.encode())} bytes, sha256 {digest}…"
    for key in _DR_OUTPUTS.get(record.type, []):
        settings[key] = record.outputs.get(key, UNKNOWN)
    return {k: _plain(v) for k, v in settings.items()}


def _options(record: ResourceRecord, names: dict[str, str]) -> dict[str, Any]:
    options: dict[str, Any] = {}
    if record.protect:
        options["protect"] = True
    if record.ignore_changes:
        options["ignoreChanges"] = list(record.ignore_changes)
    if record.provider:
        urn = record.provider.rsplit("::", 1)[0]
        options["provider"] = names.get(urn, urn)
    return options


def _posture(run: OfflineRun) -> dict[str, Any]:
    dbs = run.of_type("aws:rds/instance:Instance")
    if not dbs:
        return {}
    db = dbs[0]
    replications = run.of_type(
        "aws:rds/instanceAutomatedBackupsReplication:InstanceAutomatedBackupsReplication"
    )
    regions = {r.urn: r.inputs.get("region") for r in run.of_type("pulumi:providers:aws")}
    replication = None
    if replications:
        rep = replications[0]
        replication = {
            "region": regions.get(rep.provider.rsplit("::", 1)[0]),
            "retentionDays": rep.inputs.get("retentionPeriod"),
        }
    # The instance's record of its origin (a restore block, or restoredFrom after one).
    restore = (db.inputs.get("tags") or {}).get("prism:restored-from")
    return _plain(
        {
            "targets": dr_targets(),
            "database": db.inputs.get("identifier"),
            "pointInTimeRecoveryDays": db.inputs.get("backupRetentionPeriod"),
            "backupWindow": db.inputs.get("backupWindow"),
            "maintenanceWindow": db.inputs.get("maintenanceWindow"),
            "multiAz": db.inputs.get("multiAz"),
            "deletionProtection": db.inputs.get("deletionProtection"),
            "pulumiProtect": db.protect,
            "finalSnapshot": not db.inputs.get("skipFinalSnapshot", False),
            "keepAutomatedBackupsOnDelete": db.inputs.get("deleteAutomatedBackups") is False,
            "storageEncrypted": db.inputs.get("storageEncrypted"),
            "publiclyAccessible": db.inputs.get("publiclyAccessible"),
            "backupReplication": replication,
            "restoredFrom": restore,
            # What runs against it: the approved image (by digest on prod) and the API's role.
            "apiImage": run.outputs.get("apiImage"),
            "apiImageByDigest": image_digest(str(run.outputs.get("apiImage", ""))) is not None,
            "applicationRole": run.outputs.get("dbAppRole"),
        }
    )


def build_report(run: OfflineRun) -> dict[str, Any]:
    from infra.offline import stack_file

    names = {r.urn: r.name for r in run.resources}
    resources = []
    for r in run.resources:
        settings = _settings(r) if r.custom else {}
        if r.type in _GROUP_TYPES:
            settings |= _plain(_security_group_rules(run, r))
        resources.append(
            {
                "type": r.type,
                "name": r.name,
                "parent": names.get(r.parent),
                "custom": r.custom,
                "options": _options(r, names),
                "settings": settings,
                "inputs": _plain(r.inputs),
            }
        )
    return {
        "stack": run.stack,
        "stackFile": str(stack_file(run.stack, run.project_dir)),
        "preview": run.preview,
        "posture": _posture(run),
        "placeholders": list(run.placeholders),
        "diagnostics": list(run.diagnostics),
        "resources": resources,
        "outputs": _plain(run.outputs),
    }


# ---------------------------------------------------------------------------------------------
# Rendering.


def _short_type(type_: str) -> str:
    package, _, rest = type_.partition(":")
    module, _, name = rest.rpartition(":")
    module = module.split("/")[0]
    return f"{package}.{name}" if module in ("index", "") else f"{module}.{name}"


def _fmt(value: Any) -> Text:
    if value == "<unknown>":
        return Text("(unknown)", style="italic yellow")
    if value == "<secret>":
        return Text("[secret]", style="magenta")
    if isinstance(value, bool):
        return Text(str(value).lower(), style="green" if value else "red")
    if value == []:
        return Text("none")
    if isinstance(value, (dict, list)):
        text = json.dumps(value, separators=(", ", ": "))
        text = text.replace('"<unknown>"', "(unknown)").replace('"<secret>"', "[secret]")
        return Text(text if len(text) <= 160 else text[:157] + "...")
    return Text(str(value))


def _settings_text(entry: dict[str, Any]) -> Text:
    lines = Text()
    for key, value in {**entry["settings"], **entry["options"]}.items():
        if lines:
            lines.append("\n")
        lines.append(f"{key}: ", style="bold" if key in entry["options"] else "")
        lines.append_text(_fmt(value))
    return lines


def _print(report: dict[str, Any]) -> None:
    console = Console(soft_wrap=False)
    console.print(f"[bold]Stack {report['stack']}[/bold]  ({report['stackFile']}, offline preview)")
    posture = report["posture"]
    if posture:
        replication = posture["backupReplication"]
        replicated = (
            f"to {replication['region']}, {replication['retentionDays']} days"
            if replication
            else "off"
        )
        rows = [
            (
                "targets",
                "RPO {rpoHours:g} h, RTO {rtoHours:g} h".format(**posture["targets"]),
            ),
            ("database", posture["database"]),
            ("point-in-time recovery", f"{posture['pointInTimeRecoveryDays']} days"),
            (
                "backup / maintenance window",
                f"{posture['backupWindow']} / {posture['maintenanceWindow']}",
            ),
            ("multi-AZ", posture["multiAz"]),
            ("deletion protection", posture["deletionProtection"]),
            ("pulumi protect", posture["pulumiProtect"]),
            ("final snapshot on delete", posture["finalSnapshot"]),
            ("keep automated backups on delete", posture["keepAutomatedBackupsOnDelete"]),
            ("storage encrypted", posture["storageEncrypted"]),
            ("publicly accessible", posture["publiclyAccessible"]),
            ("backup replication", replicated),
            ("restored from", posture["restoredFrom"] or "-"),
            ("API image", posture["apiImage"] or "-"),
            ("API image pinned by digest", posture["apiImageByDigest"]),
            ("API connects as", posture["applicationRole"] or "-"),
        ]
        summary = Table(title="DR posture", show_header=False, box=None, pad_edge=False)
        for label, value in rows:
            summary.add_row(Text(label, style="bold"), _fmt(value))
        console.print(summary)
    if report.get("awsRules"):
        console.print(f"AWS rules: {report['awsRules']}")
    if report["placeholders"]:
        console.print(
            "[yellow]Secrets not in the stack file (set with `pulumi config set --secret`); "
            f"offline placeholders used:[/yellow] {', '.join(report['placeholders'])}"
        )

    table = Table(title="Resources", show_lines=True)
    table.add_column("resource", no_wrap=True)
    table.add_column("DR-relevant settings")
    entries = report["resources"]
    order = {t: i for i, t in enumerate(_COMPONENT_ORDER)}
    components = sorted(
        (e for e in entries if not e["custom"]), key=lambda e: (order.get(e["type"], 99), e["name"])
    )
    grouped = {
        c["name"]: [e for e in entries if e["custom"] and e["parent"] == c["name"]]
        for c in components
    }
    loose = [e for e in entries if e["custom"] and e["parent"] not in grouped]
    for component in components:
        table.add_row(
            Text(f"{_short_type(component['type'])} {component['name']}", style="bold cyan"), ""
        )
        for entry in grouped[component["name"]]:
            table.add_row(
                f"  {_short_type(entry['type'])}\n  {entry['name']}", _settings_text(entry)
            )
    for entry in loose:
        table.add_row(f"{_short_type(entry['type'])}\n{entry['name']}", _settings_text(entry))
    console.print(table)

    outputs = Table(title="Stack outputs", show_header=False, box=None)
    for key, value in report["outputs"].items():
        outputs.add_row(Text(key, style="bold"), _fmt(value))
    console.print(outputs)
