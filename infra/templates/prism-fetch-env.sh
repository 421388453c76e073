#!/bin/bash
# Fetch the API's credentials and its approved image into root-only files. With --apply (the
# 5-minute timer, and prism-auth-watch at once after an authentication failure), compose
# recreates the API container alone when one of them changed (e.g. a rotated password).
set -euo pipefail
umask 077
REGION=@region@
ENV_FILE=@api_env_file@
RELEASE_FILE=@release_env_file@
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
changed=0
replace() {
  if cmp -s "$2" "$1"; then rm -f "$2"; else mv "$2" "$1"; changed=1; fi
}
tmp=$(mktemp "$ENV_FILE.XXXXXX")
release=$(mktemp "$RELEASE_FILE.XXXXXX")
trap 'rm -f "$tmp" "$release"' EXIT
line PRISM_API_IMAGE "$(param @image_parameter@)" >>"$release"
db_host=$(param @db_host@)
db_port=$(param @db_port@)
db_name=$(param @db_name@)
secret_arn=$(param @db_secret_arn@)
secret=$(aws secretsmanager get-secret-value --region "$REGION" --secret-id "$secret_arn" \
  --query SecretString --output text)
db_user=$(jq -er '.username | @uri' <<<"$secret")
db_pass=$(jq -er '.password | @uri' <<<"$secret")
# verify-full: the server's certificate must chain to the RDS CAs and name this host.
line DATABASE_URL "postgres://${db_user}:${db_pass}@${db_host}:${db_port}/${db_name}?sslmode=verify-full&sslrootcert=@ca_path@" >>"$tmp"
@secret_lines@
replace "$ENV_FILE" "$tmp"
replace "$RELEASE_FILE" "$release"
# Only a running API is recreated; a starting one reads the new files itself.
if [ "$changed" = 1 ] && [ "${1:-}" = --apply ] && systemctl is-active --quiet prism-api.service; then
@login_line@  @compose@ up --detach --wait --no-deps api
fi
