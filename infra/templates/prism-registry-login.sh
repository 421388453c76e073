#!/bin/bash
# Log docker in to the API image's private registry before compose pulls a missing image. The
# password (or the ECR token) goes through a pipe to --password-stdin: never on argv or in a log.
set -euo pipefail
umask 077
@login@
