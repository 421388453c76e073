#!/bin/bash
# Log docker in to the API image's private registry before each pull. The password (or the
# ECR token) goes through a pipe to --password-stdin: never on argv, never in a log.
set -euo pipefail
umask 077
@login@
