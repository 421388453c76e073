"""What the API host's boot script can carry, read by the config's validators and by the
script's renderer alike: the limits of EC2 user data and of the heredocs that write each file,
the host ports the API cannot take, and how an image reference names its registry.
"""

from __future__ import annotations

import re

USER_DATA_LIMIT = 16 * 1024  # EC2 rejects larger user data
# Each file is written with a quoted heredoc ending at this marker line.
HEREDOC_MARKER = "PRISM_EOF"
# Loopback TCP ports the host itself listens on: sshd (22, on all addresses) and cloudflared's
# metrics server (from release 2024.12.1 on, the first free port of 20241-20245; older
# releases take a random free one). The API cannot publish on them.
HOST_RESERVED_PORTS: dict[int, str] = {
    22: "sshd",
    **{p: "cloudflared's metrics server" for p in range(20241, 20246)},
}
# Environment variables the compose file sets itself, and the apiHost key that sets each.
COMPOSE_SET_ENV: dict[str, str] = {"PORT": "port", "IMPORT_UPLOAD_DIR": "importUploadDir"}
# apiHost.env lands in user data; the rest of the script takes about 9 KiB (pinned downloads,
# the refresh and auth-watch units). Rendering grows a value (`$` -> `$$`, escaped quotes,
# non-ASCII as \u or \U escapes, YAML line folding): at worst 4-byte characters, 2 KiB of
# which render as ~5.7 KiB. So 2 KiB of names and values in at most 64 entries always fits
# (tests/infra/test_api_host.py renders the worst cases); the real script is still measured
# (UserDataTooLarge).
ENV_BYTES_LIMIT = 2 * 1024
ENV_MAX_ENTRIES = 64

ECR_HOST = re.compile(r"\d{12}\.dkr\.ecr\.([a-z0-9-]+)\.amazonaws\.com(\.cn)?")


def image_registry(image: str) -> str | None:
    """The registry host of an image reference, None for Docker Hub (no dot, colon or
    `localhost` in the first path component, as docker reads it)."""
    first, sep, _ = image.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        return first
    return None


def ecr_registry(image: str) -> str | None:
    """The ECR registry host of an image in ECR, else None."""
    registry = image_registry(image)
    return registry if registry and ECR_HOST.fullmatch(registry) else None


_DIGEST = re.compile(r"@(sha256:[0-9a-f]{64})$")


def image_digest(image: str) -> str | None:
    """`sha256:<hex>` when the reference pins its image by digest, else None (a tag moves)."""
    match = _DIGEST.search(image)
    return match[1] if match else None
