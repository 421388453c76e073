#!/bin/bash
# Prism API host bootstrap for stack @stack@, rendered by infra/boot.py.
# No secret values here: they are read from SSM / Secrets Manager at service start.
set -euo pipefail
exec > >(tee -a @log_file@) 2>&1
dnf install -y docker jq
install -d -m 0755 @plugin_dir@
curl -fsSL --retry 5 -o @plugin_dir@/docker-compose @compose_url@
chmod 0755 @plugin_dir@/docker-compose
dnf install -y @cloudflared_url@
install -d -m 0700 @env_dir@
# The API container writes imports here (bind mount): owned by the container's user.
install -d -m 0750 -o @upload_uid@ -g @upload_gid@ @upload_dir@
@files@
systemctl daemon-reload
# Enable every unit first, then queue their start without waiting for any of them: on a new
# stack the database parameters only exist once RDS is available (10+ minutes), and the API
# unit retries until then. Nothing in this script may depend on the database.
systemctl enable @units@
systemctl start --no-block @units@
