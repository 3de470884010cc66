#!/usr/bin/env bash
# Set up (if needed) and run the quick benchmark on the embedded ml-latest-small dataset.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$ROOT"
hybridrec bench --quick --out "${1:-out/quick}"
