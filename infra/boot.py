"""The API host's first-boot script (EC2 user data) and every file it writes.

The text lives in package-data templates (`infra/templates/`), so linters read the same files
(shellcheck, systemd-analyze, the Compose schema: tests/infra/test_validators.py). Placeholders
are `@name@`; every one must be filled. All paths hang off `root` ("" on a real host) so a test
can run the script in a temporary directory.

The limits the script must respect (the heredoc marker, the EC2 size cap, what bounds
`apiHost.env`, the host ports the API cannot take) live in `infra/host_rules.py`, which
`infra/config.py` checks settings against.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING

import yaml

from infra.downloads import RDS_CA_BUNDLE, download
from infra.host_rules import (
    ECR_HOST,
    HEREDOC_MARKER,
    USER_DATA_LIMIT,
    ecr_registry,
    image_registry,
)

if TYPE_CHECKING:
    from infra.config import ApiHostConfig

ENV_DIR = "/etc/prism"
COMPOSE_FILE = f"{ENV_DIR}/compose.yaml"
API_ENV_FILE = f"{ENV_DIR}/api.env"
# PRISM_API_IMAGE for compose's interpolation: the image the stack's parameter names.
RELEASE_ENV_FILE = f"{ENV_DIR}/release.env"
RDS_CA_FILE = f"{ENV_DIR}/rds-ca.pem"  # the same path on the host and in the container
TUNNEL_ENV_FILE = f"{ENV_DIR}/cloudflared.env"
BIN_DIR = "/usr/local/bin"
UNIT_DIR = "/etc/systemd/system"
PLUGIN_DIR = "/usr/local/lib/docker/cli-plugins"
BOOT_LOG = "/var/log/prism-bootstrap.log"
DOCKER = "/usr/bin/docker"  # where AL2023's docker package installs the CLI

# Enabled and started in this order by the boot script; all must be enabled.
UNITS = (
    "docker.service",
    "prism-api.service",
    "prism-cloudflared.service",
    "prism-env-refresh.timer",
    "prism-auth-watch.service",
)
_OUR_UNITS = (
    "prism-api.service",
    "prism-cloudflared.service",
    "prism-env-refresh.service",
    "prism-env-refresh.timer",
    "prism-auth-watch.service",
)
_PLACEHOLDER = re.compile(r"@([a-z_]+)@")


def parameter_prefix(stack: str) -> str:
    """Every runtime parameter of a stack lives under this path; the host may read only it."""
    return f"/prism/{stack}"


def registry_password_parameter(stack: str) -> str:
    return f"{parameter_prefix(stack)}/registry/password"


# The PostgreSQL role the API connects as. Its name and password are in a Secrets Manager
# secret the stack creates (on its key) and names in DatabaseParameterNames.secret_arn; the role
# itself is made by `prism-dr db bootstrap`.
APP_ROLE = "prism_api"


def app_secret_prefix(stack: str) -> str:
    """The secret's name up to the suffix Pulumi adds: a deleted secret keeps its name for
    its recovery window, so a stack rebuilt within it needs a new one."""
    return f"prism/{stack}/database/app-"


def image_parameter(stack: str) -> str:
    """The API image the host runs (a plain String the stack writes from apiHost.image)."""
    return f"{parameter_prefix(stack)}/release/image"


@dataclass(frozen=True)
class DatabaseParameterNames:
    """SSM parameters the host combines into DATABASE_URL at boot."""

    host: str
    port: str
    name: str
    secret_arn: str

    @staticmethod
    def for_stack(stack: str) -> DatabaseParameterNames:
        base = f"{parameter_prefix(stack)}/database"
        return DatabaseParameterNames(
            host=f"{base}/host",
            port=f"{base}/port",
            name=f"{base}/name",
            secret_arn=f"{base}/secret-arn",
        )


@dataclass(frozen=True)
class UserDataSpec:
    stack: str
    region: str
    settings: ApiHostConfig
    secret_parameters: Mapping[str, str]  # env var → SSM SecureString name
    database: DatabaseParameterNames
    tunnel_token_parameter: str
    root: str = ""  # prefix of every path the script writes (tests)

    def path(self, absolute: str) -> str:
        return f"{self.root}{absolute}"

    @property
    def registry_login(self) -> bool:
        s = self.settings
        return ecr_registry(s.image) is not None or s.registry_username is not None


class UserDataTooLarge(ValueError):
    """The rendered boot script exceeds what EC2 accepts."""


@cache
def template(name: str) -> str:
    return resources.files("infra").joinpath("templates", name).read_text()


def fill(name: str, values: Mapping[str, str]) -> str:
    """Template `name` with every `@key@` replaced; a missing or unused value is a bug."""
    text = template(name)
    wanted = set(_PLACEHOLDER.findall(text))
    if wanted != set(values):
        raise KeyError(f"{name}: placeholders {sorted(wanted)}, values {sorted(values)}")
    return _PLACEHOLDER.sub(lambda m: values[m[1]], text)


def compose_literal(value: str) -> str:
    """`value` as Compose reads it literally: Compose substitutes `$VAR` / `${VAR}` in the
    file's values, and `$$` is its escape for one `$`."""
    return value.replace("$", "$$")


def render_compose(spec: UserDataSpec) -> str:
    s = spec.settings
    doc = yaml.safe_load(template("compose.yaml"))
    api = doc["services"]["api"]
    api["env_file"] = [spec.path(API_ENV_FILE)]
    # PORT and IMPORT_UPLOAD_DIR come from their own keys (config refuses them in env).
    api["environment"] = {
        **{name: compose_literal(value) for name, value in s.env.items()},
        "PORT": str(s.port),
        "IMPORT_UPLOAD_DIR": s.import_upload_dir,
    }
    # Loopback only: cloudflared on the host is the one way in.
    api["ports"] = [f"127.0.0.1:{s.port}:{s.port}"]
    api["volumes"] = [
        f"{spec.path(s.import_upload_dir)}:{s.import_upload_dir}",
        f"{spec.path(RDS_CA_FILE)}:{RDS_CA_FILE}:ro",
    ]
    return yaml.safe_dump(doc, sort_keys=False)


def compose_command(spec: UserDataSpec) -> str:
    """`docker compose` with the stack's files: the image is read from the release env."""
    return (
        f"{spec.path(DOCKER)} compose --env-file {spec.path(RELEASE_ENV_FILE)} "
        f"-f {spec.path(COMPOSE_FILE)}"
    )


def _fetch_env_script(spec: UserDataSpec) -> str:
    q = shlex.quote
    db = spec.database
    login_line = (
        f"  {spec.path(BIN_DIR)}/prism-registry-login\n" if spec.registry_login else ""
    )
    secret_lines = []
    for env, name in sorted(spec.secret_parameters.items()):
        secret_lines += [f"value=$(param {q(name)})", f'line {env} "$value" >>"$tmp"']
    return fill(
        "prism-fetch-env.sh",
        {
            "region": q(spec.region),
            "api_env_file": q(spec.path(API_ENV_FILE)),
            "release_env_file": q(spec.path(RELEASE_ENV_FILE)),
            "image_parameter": q(image_parameter(spec.stack)),
            "ca_path": RDS_CA_FILE,
            "login_line": login_line,
            "compose": compose_command(spec),
            "db_host": q(db.host),
            "db_port": q(db.port),
            "db_name": q(db.name),
            "db_secret_arn": q(db.secret_arn),
            "secret_lines": "\n".join(secret_lines),
        },
    )


def _tunnel_token_script(spec: UserDataSpec) -> str:
    q = shlex.quote
    return fill(
        "prism-fetch-tunnel-token.sh",
        {
            "region": q(spec.region),
            "token_parameter": q(spec.tunnel_token_parameter),
            "tunnel_env_file": q(spec.path(TUNNEL_ENV_FILE)),
        },
    )


def _registry_login_script(spec: UserDataSpec) -> str:
    q = shlex.quote
    s = spec.settings
    ecr = ecr_registry(s.image)
    if ecr is not None:
        match = ECR_HOST.fullmatch(ecr)
        assert match is not None
        login = (
            f"aws ecr get-login-password --region {q(match[1])} |\n"
            f"  docker login --username AWS --password-stdin {q(ecr)}"
        )
    else:
        registry = image_registry(s.image) or "docker.io"
        login = (
            f"aws ssm get-parameter --region {q(spec.region)} --with-decryption \\\n"
            f"  --name {q(registry_password_parameter(spec.stack))} "
            "--query Parameter.Value --output text |\n"
            f"  docker login --username {q(s.registry_username or '')} --password-stdin "
            f"{q(registry)}"
        )
    return fill("prism-registry-login.sh", {"login": login})


def _units(spec: UserDataSpec) -> dict[str, str]:
    bin_dir = spec.path(BIN_DIR)
    # `-`: a registry that is down must not stop a start; the cached image still runs.
    login_step = (
        f"ExecStartPre=-{bin_dir}/prism-registry-login\n" if spec.registry_login else ""
    )
    values = {
        "prism-api.service": {
            "bin_dir": bin_dir,
            "compose": compose_command(spec),
            "login_step": login_step,
        },
        "prism-cloudflared.service": {
            "bin_dir": bin_dir,
            "tunnel_env_file": spec.path(TUNNEL_ENV_FILE),
        },
        "prism-env-refresh.service": {"bin_dir": bin_dir},
        "prism-env-refresh.timer": {},
        "prism-auth-watch.service": {"bin_dir": bin_dir},
    }
    return {unit: fill(unit, values[unit]) for unit in _OUR_UNITS}


@dataclass(frozen=True)
class BootFile:
    path: str  # absolute on the host, `root` included
    body: str
    mode: str
    kind: str  # "shell", "unit" or "compose": which linter reads it


def boot_files(spec: UserDataSpec) -> list[BootFile]:
    """Every file the boot script writes, in order."""
    bin_dir = spec.path(BIN_DIR)
    files = [
        BootFile(spec.path(COMPOSE_FILE), render_compose(spec), "0644", "compose"),
        BootFile(f"{bin_dir}/prism-fetch-env", _fetch_env_script(spec), "0700", "shell"),
        BootFile(
            f"{bin_dir}/prism-fetch-tunnel-token", _tunnel_token_script(spec), "0700", "shell"
        ),
        BootFile(f"{bin_dir}/prism-auth-watch", template("prism-auth-watch.sh"), "0700", "shell"),
    ]
    if spec.registry_login:
        files.append(
            BootFile(
                f"{bin_dir}/prism-registry-login", _registry_login_script(spec), "0700", "shell"
            )
        )
    unit_dir = spec.path(UNIT_DIR)
    files += [
        BootFile(f"{unit_dir}/{unit}", body, "0644", "unit")
        for unit, body in _units(spec).items()
    ]
    return files


def _heredoc(path: str, body: str, mode: str) -> str:
    """Shell that writes `body` to `path` verbatim (quoted marker: no expansion).

    Config refuses the marker in everything it can put into a file, so this guards the code,
    not the user's settings."""
    if HEREDOC_MARKER in body:
        raise ValueError(f"{path}: content contains the heredoc marker {HEREDOC_MARKER}")
    if not body.endswith("\n"):
        body += "\n"
    q = shlex.quote(path)
    return f"cat >{q} <<'{HEREDOC_MARKER}'\n{body}{HEREDOC_MARKER}\nchmod {mode} {q}\n"


def render_user_data(spec: UserDataSpec) -> str:
    """The first-boot script. Holds parameter names and public settings only."""
    s = spec.settings
    compose = download("compose", s.compose_version, s.architecture)
    cloudflared = download("cloudflared", s.cloudflared_version, s.architecture)
    checksums = [
        f"{compose.sha256}  docker-compose",
        f"{cloudflared.sha256}  cloudflared.rpm",
        f"{RDS_CA_BUNDLE.sha256}  rds-ca.pem",
    ]
    uid, _, gid = s.import_upload_owner.partition(":")
    script = fill(
        "user-data.sh",
        {
            "stack": spec.stack,
            "log_file": shlex.quote(spec.path(BOOT_LOG)),
            "plugin_dir": spec.path(PLUGIN_DIR),
            "compose_url": compose.url,
            "cloudflared_url": cloudflared.url,
            "rds_ca_url": RDS_CA_BUNDLE.url,
            "checksums": "\n".join(checksums),
            "env_dir": spec.path(ENV_DIR),
            "rds_ca_file": shlex.quote(spec.path(RDS_CA_FILE)),
            "upload_uid": uid,
            "upload_gid": gid,
            "upload_dir": shlex.quote(spec.path(s.import_upload_dir)),
            "files": "".join(_heredoc(f.path, f.body, f.mode) for f in boot_files(spec)),
            "units": " ".join(UNITS),
        },
    )
    size = len(script.encode())
    if size > USER_DATA_LIMIT:
        raise UserDataTooLarge(f"user data is {size} bytes; EC2 allows {USER_DATA_LIMIT}")
    return script
