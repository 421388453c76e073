"""infra/boot.py: the first-boot script, run for real under bash in a temporary root.

Stub `dnf`, `curl`, `aws`, `systemctl`, `jq` and `docker` stand in for the host's tools. The
`aws` stub answers from a JSON state (SSM parameters, Secrets Manager secrets) and fails like
the CLI for a parameter that does not exist yet; the `systemctl` stub, like systemd, runs the
API unit's ExecStartPre (prism-fetch-env) when asked to start it and wait, and fails when it
fails. On a new stack the database parameters do not exist at first boot.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
from pathlib import Path

import pytest

from infra.boot import (
    API_ENV_FILE,
    BOOT_LOG,
    UNITS,
    DatabaseParameterNames,
    UserDataSpec,
    boot_files,
    registry_password_parameter,
    render_user_data,
)
from infra.config import parse_section
from infra.offline import read_stack_config
from infra.secrets import secret_parameter_names, tunnel_token_parameter

STACK = "staging"
REGION = "us-east-1"
SECRETS = {
    "CLERK_SECRET_KEY": "sk_test_BOOTclerk91f2",
    "CLERK_PUBLISHABLE_KEY": "pk_test_BOOTpublish33a1",
    "REDIS_URL": "rediss://default:BOOTredis77c@redis.internal.test:6379",
}
DB_USER = "prism_admin"
DB_PASSWORD = "p@ss:w/rd%BOOT&?#"  # characters a URL must encode
TUNNEL_TOKEN = "eyBOOTtunnelTokenC0ffee"
REGISTRY_PASSWORD = "ghp_BOOTregistryToken42"
SECRET_VALUES = [*SECRETS.values(), DB_PASSWORD, TUNNEL_TOKEN, REGISTRY_PASSWORD]

_AWS = r"""#!/usr/bin/env python3
import json, os, sys
state = json.load(open(os.environ["STUB_STATE"]))
args = sys.argv[1:]
with open(os.environ["STUB_LOG"], "a") as log:
    log.write("aws " + " ".join(args) + "\n")
def opt(name):
    return args[args.index(name) + 1]
if args[:2] == ["ssm", "get-parameter"]:
    name = opt("--name")
    if name not in state["parameters"]:
        sys.stderr.write("An error occurred (ParameterNotFound) when calling the GetParameter "
                         "operation: \n")
        sys.exit(254)
    print(state["parameters"][name])
elif args[:2] == ["secretsmanager", "get-secret-value"]:
    arn = opt("--secret-id")
    if arn not in state["secrets"]:
        sys.stderr.write("An error occurred (ResourceNotFoundException)\n")
        sys.exit(254)
    print(state["secrets"][arn])
elif args[:2] == ["ecr", "get-login-password"]:
    print("ecr-token")
else:
    sys.stderr.write("aws stub: unexpected " + " ".join(args) + "\n")
    sys.exit(2)
"""

_JQ = r"""#!/usr/bin/env python3
# The two filters prism-fetch-env uses: `.field | @uri` and `.field`, with -e and -r.
import json, sys, urllib.parse
program = sys.argv[-1]
field, _, convert = (p.strip() for p in program.partition("|"))
value = json.load(sys.stdin).get(field.lstrip("."))
if value is None:
    sys.exit(1)
print(urllib.parse.quote(value, safe="-_.~") if convert == "@uri" else value)
"""

_SYSTEMCTL = r"""#!/bin/bash
echo "systemctl $*" >>"$STUB_LOG"
case "$1" in
  enable)
    shift
    now=0
    for unit in "$@"; do
      if [ "$unit" = --now ]; then now=1; else echo "$unit" >>"$STUB_DIR/enabled"; fi
    done
    if [ "$now" = 1 ]; then exec "$0" start "$@"; fi ;;
  start)
    shift
    block=1
    for unit in "$@"; do [ "$unit" = --no-block ] && block=0; done
    for unit in "$@"; do
      [ "$unit" = --no-block ] && continue
      echo "$unit" >>"$STUB_DIR/started"
      # Like systemd: a blocking start of the API runs its ExecStartPre and reports failure.
      if [ "$block" = 1 ] && [ "$unit" = prism-api.service ]; then
        "$PRISM_ROOT/usr/local/bin/prism-fetch-env" || exit 1
      fi
    done ;;
esac
exit 0
"""

_LOGGING_STUB = '#!/bin/bash\necho "$(basename "$0") $*" >>"$STUB_LOG"\n'
# Like docker login: reads the password from stdin.
_DOCKER = _LOGGING_STUB + 'case "$*" in *--password-stdin*) cat >/dev/null ;; esac\n'
_CURL = _LOGGING_STUB + 'while [ $# -gt 0 ]; do [ "$1" = -o ] && : >"$2"; shift; done\n'


def _state(tmp: Path, *, with_database: bool) -> dict:
    params = {name: SECRETS[env] for env, name in secret_parameter_names(STACK, SECRETS).items()}
    params[tunnel_token_parameter(STACK)] = TUNNEL_TOKEN
    params[registry_password_parameter(STACK)] = REGISTRY_PASSWORD
    secrets = {}
    if with_database:
        db = DatabaseParameterNames.for_stack(STACK)
        arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:rds!db-1234-AbCdEf"
        params |= {
            db.host: "prism-staging.abc.us-east-1.rds.amazonaws.com",
            db.port: "5432",
            db.name: "prism",
            db.secret_arn: arn,
        }
        secrets[arn] = json.dumps({"username": DB_USER, "password": DB_PASSWORD})
    state = {"parameters": params, "secrets": secrets}
    (tmp / "state.json").write_text(json.dumps(state))
    return state


def _spec(root: Path, **host: object) -> UserDataSpec:
    raw = dict(read_stack_config(STACK)["prism-infra:apiHost"])
    # The test runs unprivileged: the upload dir goes to the current user.
    raw["importUploadOwner"] = f"{os.getuid()}:{os.getgid()}"
    raw.update(host)
    return UserDataSpec(
        stack=STACK,
        region=REGION,
        settings=parse_section("apiHost", raw),  # type: ignore[arg-type]
        secret_parameters=secret_parameter_names(STACK, tuple(SECRETS)),
        database=DatabaseParameterNames.for_stack(STACK),
        tunnel_token_parameter=tunnel_token_parameter(STACK),
        root=str(root),
    )


class Host:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.root = tmp / "root"
        self.root.mkdir()
        # What the AMI already has; the script creates everything else.
        for base in ("usr/local/bin", "etc/systemd/system", "var/log", "var/lib"):
            (self.root / base).mkdir(parents=True)
        self.stubs = tmp / "stubs"
        self.stubs.mkdir()
        for name, text in {
            "aws": _AWS,
            "jq": _JQ,
            "systemctl": _SYSTEMCTL,
            "dnf": _LOGGING_STUB,
            "docker": _DOCKER,
            "curl": _CURL,
        }.items():
            path = self.stubs / name
            path.write_text(text)
            path.chmod(0o755)
        self.log = tmp / "calls.log"
        self.env = {
            "PATH": f"{self.stubs}:/usr/bin:/bin",
            "STUB_STATE": str(tmp / "state.json"),
            "STUB_LOG": str(self.log),
            "STUB_DIR": str(tmp),
            "PRISM_ROOT": str(self.root),
        }

    def run(self, script: str | Path, *args: str) -> subprocess.CompletedProcess[str]:
        if isinstance(script, str):
            path = self.tmp / "user-data"
            path.write_text(script)
            script = path
        return subprocess.run(
            ["bash", str(script), *args], env=self.env, capture_output=True, text=True, timeout=60
        )

    def lines(self, name: str) -> list[str]:
        path = self.tmp / name
        return path.read_text().split() if path.exists() else []


@pytest.fixture
def host(tmp_path: Path) -> Host:
    return Host(tmp_path)


def test_first_boot_on_a_new_stack_enables_everything(host: Host) -> None:
    _state(host.tmp, with_database=False)  # RDS not available yet
    spec = _spec(host.root)
    done = host.run(render_user_data(spec))
    assert done.returncode == 0, done.stdout + done.stderr
    assert host.lines("enabled") == list(UNITS)
    assert host.lines("started") == list(UNITS)
    # Every file is in place with its mode; no env file yet: the database is still coming.
    for f in boot_files(spec):
        path = Path(f.path)
        assert path.read_text() == f.body
        assert oct(stat.S_IMODE(path.stat().st_mode)) == oct(int(f.mode, 8))
    assert not (host.root / API_ENV_FILE.lstrip("/")).exists()
    upload = host.root / spec.settings.import_upload_dir.lstrip("/")
    assert upload.is_dir() and stat.S_IMODE(upload.stat().st_mode) == 0o750
    assert (upload.stat().st_uid, upload.stat().st_gid) == (os.getuid(), os.getgid())


def test_a_blocking_start_would_stop_the_boot_half_way(host: Host) -> None:
    # The stubs are faithful enough to show the defect this script had: `enable --now` of the
    # API fails while the database parameters are missing, and `set -e` ends the script.
    _state(host.tmp, with_database=False)
    old_style = render_user_data(_spec(host.root)).replace(
        "systemctl enable docker.service", "systemctl enable --now docker.service"
    )
    done = host.run(old_style)
    assert done.returncode != 0
    assert "ParameterNotFound" in done.stdout + done.stderr


def test_later_the_env_file_is_written_0600_from_the_secret(host: Host) -> None:
    _state(host.tmp, with_database=False)
    spec = _spec(host.root)
    assert host.run(render_user_data(spec)).returncode == 0
    fetch_env = host.root / "usr/local/bin/prism-fetch-env"
    early = host.run(fetch_env)
    assert early.returncode != 0  # the database parameters do not exist yet: a retry later

    _state(host.tmp, with_database=True)  # RDS is available, the stack wrote its parameters
    done = host.run(fetch_env)
    assert done.returncode == 0, done.stderr
    env_file = host.root / API_ENV_FILE.lstrip("/")
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
    lines = env_file.read_text().splitlines()
    assert lines[0] == (
        "DATABASE_URL='postgres://prism_admin:p%40ss%3Aw%2Frd%25BOOT%26%3F%23"
        "@prism-staging.abc.us-east-1.rds.amazonaws.com:5432/prism?sslmode=require'"
    )
    assert sorted(lines[1:]) == sorted(f"{k}='{v}'" for k, v in SECRETS.items())
    assert [p.name for p in env_file.parent.iterdir() if p.name.startswith("api.env.")] == []

    # The hourly refresh restarts the API only when something changed.
    assert host.run(fetch_env, "--restart-if-changed").returncode == 0
    assert "systemctl restart prism-api.service" not in host.log.read_text()
    state = json.loads((host.tmp / "state.json").read_text())
    arn = next(iter(state["secrets"]))
    state["secrets"][arn] = json.dumps({"username": DB_USER, "password": "rotated"})
    (host.tmp / "state.json").write_text(json.dumps(state))
    assert host.run(fetch_env, "--restart-if-changed").returncode == 0
    assert "systemctl restart prism-api.service" in host.log.read_text()

    token_script = host.root / "usr/local/bin/prism-fetch-tunnel-token"
    assert host.run(token_script).returncode == 0
    token_file = host.root / "etc/prism/cloudflared.env"
    assert token_file.read_text() == f"TUNNEL_TOKEN='{TUNNEL_TOKEN}'\n"
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600

    # No secret value in the boot log, in any command line, or in what the scripts print.
    boot_log = (host.root / BOOT_LOG.lstrip("/")).read_text()
    assert "dnf install -y docker jq" in host.log.read_text()
    for value in SECRET_VALUES:
        assert value not in boot_log
        assert value not in host.log.read_text()
        assert value not in done.stdout + done.stderr


def test_registry_login_from_ssm_before_each_start(host: Host) -> None:
    _state(host.tmp, with_database=False)
    spec = _spec(host.root, registryUsername="prism-bot")
    assert host.run(render_user_data(spec)).returncode == 0
    unit = (host.root / "etc/systemd/system/prism-api.service").read_text()
    login = f"ExecStartPre={host.root}/usr/local/bin/prism-registry-login"
    docker = f"{host.root}/usr/bin/docker"
    pull = f"ExecStartPre=-{docker} compose -f {host.root}/etc/prism/compose.yaml pull"
    assert unit.index(login) < unit.index(pull) < unit.index(f"ExecStart={docker}")
    done = host.run(host.root / "usr/local/bin/prism-registry-login")
    assert done.returncode == 0, done.stderr
    calls = host.log.read_text()
    assert f"--name {registry_password_parameter(STACK)}" in calls
    assert "docker login --username prism-bot --password-stdin ghcr.io" in calls
    assert REGISTRY_PASSWORD not in calls


def test_ecr_login_needs_no_password(host: Host) -> None:
    _state(host.tmp, with_database=False)
    image = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/prism-api@sha256:" + "a" * 64
    spec = _spec(host.root, image=image)
    assert host.run(render_user_data(spec)).returncode == 0
    done = host.run(host.root / "usr/local/bin/prism-registry-login")
    assert done.returncode == 0, done.stderr
    calls = host.log.read_text()
    assert "aws ecr get-login-password --region eu-west-1" in calls
    assert "docker login --username AWS --password-stdin 123456789012.dkr.ecr" in calls
