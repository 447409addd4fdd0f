#!/usr/bin/env bash
# Runs the test suite (installs what it needs first). Extra arguments go to pytest, e.g.
#   bash scripts/test.sh -m "not mininet"     # the fast unit tests only
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bash "$ROOT/scripts/bootstrap.sh"
cd "$ROOT"
export EVB_REQUIRE_BED=1  # bootstrap set up the bed: a missing piece must fail, not skip
exec .venv/bin/pytest "$@"
