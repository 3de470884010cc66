#!/usr/bin/env bash
# Set up (if needed) and run the linter and the test suite (slow tests excluded).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$ROOT"
ruff check .
python -m pytest -m "not slow" -q "$@"
