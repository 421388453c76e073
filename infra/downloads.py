"""What the API host's boot script downloads, pinned by version and sha256 per architecture.

Amazon Linux 2023 packages docker and jq (installed with dnf, verified by its signed repos), but
neither the docker compose plugin nor cloudflared: those two come from their GitHub releases,
and the boot script checks each file with `sha256sum -c` before it is installed. A version or
architecture missing here is refused by the config (infra/config.py), never fetched unchecked.

Where each checksum was read (add a release the same way, from its publisher's own list):
- docker compose: the release's per-asset `.sha256` files, as docker-library/docker's
  versions.json records them (commit 3289af88086d67e6f0bfebfa0617541a0f574d96, compose 5.4.0).
- cloudflared: the "SHA256 Checksums" block of the GitHub release notes of 2026.9.3, as
  charlestephen/hassio-apps quotes it in cloudflared/CHANGELOG.md (commit cb230dff); the
  newest release whose list could be read from here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Architecture = Literal["arm64", "x86_64"]
Tool = Literal["compose", "cloudflared"]


@dataclass(frozen=True)
class Download:
    url: str
    sha256: str


# tool -> version -> architecture -> sha256 of the release asset
PINNED: dict[Tool, dict[str, dict[Architecture, str]]] = {
    "compose": {
        "v5.4.0": {
            "x86_64": "837fd1d35bf6a494f41b5b5988269a7be79de337cf1a1a6ff0e45ab51bb4e9be",
            "arm64": "fc5d1371f1ec7987e703da94ede49af3fbfb240b83f22991a98511de7bc4b93b",
        },
    },
    "cloudflared": {
        "2026.9.3": {
            "x86_64": "b64f9131b5ea2772c4a8fb9fb67f95437190ad63e909871396adb92c2b6d99eb",
            "arm64": "e37b746dd252ab51b8dbe90f07eaf50c0335d137009cc224a97203acf1c331ab",
        },
    },
}

# The asset names differ per project: compose says aarch64 for its binary; cloudflared names
# its RPMs by the RPM architecture (aarch64, x86_64).
_MACHINE = {"arm64": "aarch64", "x86_64": "x86_64"}


def _url(tool: Tool, version: str, arch: Architecture) -> str:
    machine = _MACHINE[arch]
    if tool == "compose":
        return (
            f"https://github.com/docker/compose/releases/download/{version}/"
            f"docker-compose-linux-{machine}"
        )
    return (
        f"https://github.com/cloudflare/cloudflared/releases/download/{version}/"
        f"cloudflared-linux-{machine}.rpm"
    )


def pinned_versions(tool: Tool, arch: Architecture) -> list[str]:
    return sorted(v for v, sums in PINNED[tool].items() if arch in sums)


def download(tool: Tool, version: str, arch: Architecture) -> Download:
    """The pinned download; KeyError when no checksum is recorded for it."""
    return Download(_url(tool, version, arch), PINNED[tool][version][arch])


# The RDS certificate authorities of every commercial region, for `sslmode=verify-full`. AWS
# changes this file when it adds a CA; then pin the new file's sha256 here. This checksum is the
# one a third-party deployment script records for the bundle as fetched on 2026-09-07 (108
# certificates); it was not fetched from AWS here (no internet on the build machine).
RDS_CA_BUNDLE = Download(
    "https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem",
    "e5bb2084ccf45087bda1c9bffdea0eb15ee67f0b91646106e466714f9de3c7e3",
)
