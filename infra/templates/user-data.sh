#!/bin/bash
# Prism API host bootstrap for stack @stack@, rendered by infra/boot.py.
# No secret values here: they are read from SSM / Secrets Manager at service start.
set -euo pipefail
exec > >(tee -a @log_file@) 2>&1
dnf install -y docker jq
# What AL2023 does not package comes from its publisher's release, checked against the sha256
# pinned in infra/downloads.py: a changed or truncated file stops the boot before any install.
downloads=$(mktemp -d)
curl -fsSL --retry 5 -o "$downloads/docker-compose" @compose_url@
curl -fsSL --retry 5 -o "$downloads/cloudflared.rpm" @cloudflared_url@
curl -fsSL --retry 5 -o "$downloads/rds-ca.pem" @rds_ca_url@
(cd "$downloads" && sha256sum --check --strict <<'SUMS'
@checksums@
SUMS
)
install -d -m 0755 @plugin_dir@
install -m 0755 "$downloads/docker-compose" @plugin_dir@/docker-compose
dnf install -y "$downloads/cloudflared.rpm"
install -d -m 0700 @env_dir@
install -m 0644 "$downloads/rds-ca.pem" @rds_ca_file@
rm -rf "$downloads"
# The API container writes imports here (bind mount): owned by the container's user.
install -d -m 0750 -o @upload_uid@ -g @upload_gid@ @upload_dir@
@files@
systemctl daemon-reload
# Enable every unit first, then queue their start without waiting for any of them: on a new
# stack the database parameters only exist once RDS is available (10+ minutes), and the API
# unit retries until then. Nothing in this script may depend on the database.
systemctl enable @units@
systemctl start --no-block @units@
