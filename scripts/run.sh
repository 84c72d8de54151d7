#!/usr/bin/env bash
# Sets Workly up (scripts/setup.sh) and runs it. With no arguments Kira says
# hello; otherwise the arguments go to `workly` (e.g. `scripts/run.sh chat`).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
"$repo/scripts/setup.sh"
workly="${CARGO_TARGET_DIR:-$repo/target}/release/workly"
if (($#)); then
  exec "$workly" "$@"
fi
exec "$workly" chat -p "Bonjour Kira ! Présente-toi en une phrase."
