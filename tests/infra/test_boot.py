"""infra/boot.py: the first-boot script, run for real under bash in a temporary root.

Stub `dnf`, `curl`, `aws`, `systemctl`, `jq` and `docker` stand in for the host's tools. The
`aws` stub answers from a JSON state (SSM parameters, Secrets Manager secrets) and fails like
the CLI for a parameter that does not exist yet; the `systemctl` stub, like systemd, runs the
API unit's ExecStartPre (prism-fetch-env) when asked to start it and wait, and fails when it
fails. On a new stack the database parameters do not exist at first boot.
"""

from __future__ import annotations

import hashlib
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
    image_parameter,
    registry_password_parameter,
    render_user_data,
)
from infra.config import parse_section
from infra.downloads import RDS_CA_BUNDLE, Download
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
IMAGE = "ghcr.io/acme/prism-api@sha256:" + "a1" * 32

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
# Like curl -fsSL: the release file the URL names, from the stand-in release server
# ($STUB_RELEASES), or curl's error 22 for an HTTP error.
_CURL = _LOGGING_STUB + r"""out= url=
while [ $# -gt 0 ]; do
  case "$1" in -o) out=$2; shift ;; --retry) shift ;; -*) ;; *) url=$1 ;; esac
  shift
done
src="$STUB_RELEASES/${url##*/}"
if [ ! -f "$src" ]; then echo "curl: (22) The requested URL returned error: 404" >&2; exit 22; fi
cp "$src" "$out"
"""
# Like journalctl --follow: prints the journal lines in $STUB_JOURNAL, then (unlike the real
# one, which waits for more) ends.
_JOURNALCTL = _LOGGING_STUB + 'cat "$STUB_JOURNAL" 2>/dev/null || true\n'

# What the stand-in release server publishes: one body per file the boot script downloads.
RELEASE_BODIES = {
    "docker-compose-linux-aarch64": b"compose plugin\n",
    "cloudflared-linux-aarch64.rpm": b"cloudflared rpm\n",
    "global-bundle.pem": b"-----BEGIN CERTIFICATE-----\n",
}


@pytest.fixture(autouse=True)
def _pinned_to_the_stand_in_releases(monkeypatch: pytest.MonkeyPatch) -> None:
    """The real pins name the real files; here the checksums are those of the stand-ins, so
    `sha256sum -c` runs for real against what the stub curl returns."""
    sums = {name: hashlib.sha256(body).hexdigest() for name, body in RELEASE_BODIES.items()}
    pinned = {
        "compose": {"v5.4.0": {"arm64": sums["docker-compose-linux-aarch64"]}},
        "cloudflared": {"2026.9.3": {"arm64": sums["cloudflared-linux-aarch64.rpm"]}},
    }
    monkeypatch.setattr("infra.downloads.PINNED", pinned)
    bundle = Download(RDS_CA_BUNDLE.url, sums["global-bundle.pem"])
    monkeypatch.setattr("infra.boot.RDS_CA_BUNDLE", bundle)


def _state(tmp: Path, *, with_database: bool) -> dict:
    params = {name: SECRETS[env] for env, name in secret_parameter_names(STACK, SECRETS).items()}
    params[tunnel_token_parameter(STACK)] = TUNNEL_TOKEN
    params[registry_password_parameter(STACK)] = REGISTRY_PASSWORD
    params[image_parameter(STACK)] = IMAGE
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
            "journalctl": _JOURNALCTL,
        }.items():
            path = self.stubs / name
            path.write_text(text)
            path.chmod(0o755)
        # The docker CLI where AL2023's package puts it (the units and scripts call it there).
        docker = self.root / "usr/bin/docker"
        docker.parent.mkdir(parents=True)
        docker.write_text(_DOCKER)
        docker.chmod(0o755)
        self.releases = tmp / "releases"
        self.releases.mkdir()
        for name, body in RELEASE_BODIES.items():
            (self.releases / name).write_bytes(body)
        self.log = tmp / "calls.log"
        self.env = {
            "STUB_RELEASES": str(self.releases),
            "STUB_JOURNAL": str(tmp / "journal"),
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
    # The application role's secret, over TLS checked against the RDS CAs and the host name.
    assert lines[0] == (
        "DATABASE_URL='postgres://prism_admin:p%40ss%3Aw%2Frd%25BOOT%26%3F%23"
        "@prism-staging.abc.us-east-1.rds.amazonaws.com:5432/prism"
        "?sslmode=verify-full&sslrootcert=/etc/prism/rds-ca.pem'"
    )
    assert sorted(lines[1:]) == sorted(f"{k}='{v}'" for k, v in SECRETS.items())
    assert [p.name for p in env_file.parent.iterdir() if p.name.startswith("api.env.")] == []
    release = host.root / "etc/prism/release.env"
    assert release.read_text() == f"PRISM_API_IMAGE='{IMAGE}'\n"
    assert stat.S_IMODE(release.stat().st_mode) == 0o600

    # The 5-minute refresh recreates the API container only when something changed, and
    # never restarts the whole unit.
    recreate = "compose --env-file {0}/etc/prism/release.env -f {0}/etc/prism/compose.yaml up"
    recreate = recreate.format(host.root) + " --detach --wait --no-deps api"
    assert host.run(fetch_env, "--apply").returncode == 0
    assert recreate not in host.log.read_text()
    state = json.loads((host.tmp / "state.json").read_text())
    arn = next(iter(state["secrets"]))
    state["secrets"][arn] = json.dumps({"username": DB_USER, "password": "rotated"})
    (host.tmp / "state.json").write_text(json.dumps(state))
    assert host.run(fetch_env, "--apply").returncode == 0
    assert host.log.read_text().count(recreate) == 1
    assert "systemctl restart" not in host.log.read_text()

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
    # `-`: a registry that is down does not stop a start (the cached image runs).
    login = f"ExecStartPre=-{host.root}/usr/local/bin/prism-registry-login"
    docker = f"{host.root}/usr/bin/docker"
    assert unit.index(login) < unit.index(f"ExecStart={docker}")
    # No pull before a start: a restart never brings in another image behind a tag.
    assert " pull" not in unit
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


def test_a_new_image_reaches_the_running_api_through_its_parameter(host: Host) -> None:
    _state(host.tmp, with_database=True)
    spec = _spec(host.root, registryUsername="prism-bot")
    assert host.run(render_user_data(spec)).returncode == 0
    fetch_env = host.root / "usr/local/bin/prism-fetch-env"
    assert host.run(fetch_env).returncode == 0  # what the API's start wrote
    state = json.loads((host.tmp / "state.json").read_text())
    newer = "ghcr.io/acme/prism-api@sha256:" + "b2" * 32
    state["parameters"][image_parameter(STACK)] = newer
    (host.tmp / "state.json").write_text(json.dumps(state))
    before = host.log.read_text()
    assert host.run(fetch_env, "--apply").returncode == 0
    calls = host.log.read_text()[len(before) :].splitlines()
    assert (host.root / "etc/prism/release.env").read_text() == f"PRISM_API_IMAGE='{newer}'\n"
    # Logged in first (the new image is pulled), then the API container alone recreated.
    login = next(i for i, c in enumerate(calls) if c.startswith("docker login"))
    up = next(i for i, c in enumerate(calls) if "up --detach --wait --no-deps api" in c)
    assert login < up


def _boot_fails_before_any_unit(host: Host) -> str:
    _state(host.tmp, with_database=False)
    done = host.run(render_user_data(_spec(host.root)))
    assert done.returncode != 0
    assert host.lines("enabled") == [] and host.lines("started") == []
    assert not (host.root / "usr/local/lib/docker/cli-plugins/docker-compose").exists()
    dnf = [c for c in host.log.read_text().splitlines() if c.startswith("dnf ")]
    assert dnf == ["dnf install -y docker jq"]
    return done.stdout + done.stderr


def test_an_altered_download_stops_the_boot_before_it_is_installed(host: Host) -> None:
    (host.releases / "cloudflared-linux-aarch64.rpm").write_bytes(b"something else\n")
    out = _boot_fails_before_any_unit(host)
    assert "cloudflared.rpm: FAILED" in out and "docker-compose: OK" in out


def test_a_failed_download_stops_the_boot(host: Host) -> None:
    (host.releases / "global-bundle.pem").unlink()
    out = _boot_fails_before_any_unit(host)
    assert "curl: (22)" in out


def test_the_rds_ca_bundle_is_installed_where_the_url_names_it(host: Host) -> None:
    _state(host.tmp, with_database=False)
    assert host.run(render_user_data(_spec(host.root))).returncode == 0
    bundle = host.root / "etc/prism/rds-ca.pem"
    assert bundle.read_bytes() == RELEASE_BODIES["global-bundle.pem"]
    assert stat.S_IMODE(bundle.stat().st_mode) == 0o644


@pytest.mark.parametrize(
    ("journal", "refreshed"),
    [
        # PostgreSQL's message for a wrong password (src/backend/libpq/auth.c), as pgx quotes it.
        (
            'failed to connect to `user=prism_api database=prism`: server error (FATAL: '
            'password authentication failed for user "prism_api" (SQLSTATE 28P01))\n',
            True,
        ),
        ("listening on :8080\nGET /ready 200\n", False),
    ],
)
def test_an_authentication_failure_refreshes_at_once(
    host: Host, journal: str, refreshed: bool
) -> None:
    _state(host.tmp, with_database=False)
    assert host.run(render_user_data(_spec(host.root))).returncode == 0
    (host.tmp / "journal").write_text(journal)
    before = host.log.read_text()
    host.run(host.root / "usr/local/bin/prism-auth-watch")
    calls = host.log.read_text()[len(before) :]
    assert "journalctl --follow --lines=0 --output=cat SYSLOG_IDENTIFIER=prism-api" in calls
    assert ("systemctl start prism-env-refresh.service" in calls) is refreshed
