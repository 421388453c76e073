#!/bin/bash
# cloudflared reads TUNNEL_TOKEN from its environment: the token stays off argv.
set -euo pipefail
umask 077
token=$(aws ssm get-parameter --region @region@ --with-decryption \
  --name @token_parameter@ --query Parameter.Value --output text)
printf "TUNNEL_TOKEN='%s'\n" "$token" >@tunnel_env_file@.new
mv @tunnel_env_file@.new @tunnel_env_file@
