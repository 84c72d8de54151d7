#!/usr/bin/env bash
# Sets Workly up (scripts/setup.sh) and runs it. With no arguments it serves
# Kira at http://127.0.0.1:8080/ (the page, the OpenAI-compatible API, the
# avatar bridge) until Ctrl-C; otherwise the arguments go to `workly`
# (e.g. `scripts/run.sh chat`).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
"$repo/scripts/setup.sh"
workly="${CARGO_TARGET_DIR:-$repo/target}/release/workly"
if (($#)); then
  exec "$workly" "$@"
fi
exec "$workly" serve
