#!/usr/bin/env bash
# Set up (if needed) and run the linter and the test suite (slow tests excluded). The suite
# includes the doctests of every hybridrec module: pyproject.toml's [tool.pytest.ini_options]
# lists `hybridrec` in testpaths and adds --doctest-modules, so a plain `pytest` runs them too.
# Arguments go to pytest (e.g. `scripts/test.sh tests/eval -x`; only those paths then).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$ROOT"
ruff check .
python -m pytest -m "not slow" -q "$@"
