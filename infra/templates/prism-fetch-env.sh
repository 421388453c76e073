#!/bin/bash
# Fetch the API's secrets into a root-only env file. Re-run hourly by a timer, which restarts
# the API when a value changed (e.g. after RDS rotated the managed master password).
set -euo pipefail
umask 077
REGION=@region@
ENV_FILE=@api_env_file@
param() {
  aws ssm get-parameter --region "$REGION" --with-decryption --name "$1" \
    --query Parameter.Value --output text
}
# Compose reads single-quoted values literally; refuse the two characters that would break it.
line() {
  case "$2" in
    *"'"* | *$'\n'*) echo "prism-fetch-env: $1 holds a quote or newline" >&2; exit 1 ;;
  esac
  printf "%s='%s'\n" "$1" "$2"
}
tmp=$(mktemp "$ENV_FILE.XXXXXX")
trap 'rm -f "$tmp"' EXIT
db_host=$(param @db_host@)
db_port=$(param @db_port@)
db_name=$(param @db_name@)
secret_arn=$(param @db_secret_arn@)
secret=$(aws secretsmanager get-secret-value --region "$REGION" --secret-id "$secret_arn" \
  --query SecretString --output text)
db_user=$(jq -er '.username | @uri' <<<"$secret")
db_pass=$(jq -er '.password | @uri' <<<"$secret")
line DATABASE_URL "postgres://${db_user}:${db_pass}@${db_host}:${db_port}/${db_name}?sslmode=require" >>"$tmp"
@secret_lines@
if cmp -s "$tmp" "$ENV_FILE"; then exit 0; fi
mv "$tmp" "$ENV_FILE"
if [ "${1:-}" = --restart-if-changed ]; then systemctl restart prism-api.service; fi
