#!/bin/bash
# Wait for the API's first database authentication failure in its journal, then refresh the
# credentials at once instead of at the next timer tick. PostgreSQL reports a wrong password
# as `password authentication failed for user "…"` (SQLSTATE 28P01); the API's driver quotes
# it. systemd restarts this watcher afterwards (RestartSec bounds the rate).
set -uo pipefail
# Process substitution, not a pipe: grep's exit ends the wait without another journal line.
if grep --quiet --max-count=1 -E 'password authentication failed|SQLSTATE 28P01' \
  < <(journalctl --follow --lines=0 --output=cat SYSLOG_IDENTIFIER=prism-api); then
  echo "prism-auth-watch: the database refused the API's credentials: refreshing"
  systemctl start prism-env-refresh.service
fi
