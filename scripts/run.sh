#!/usr/bin/env bash
# Runs the product: the evb-nms controller and the default Mininet data center with lldpad
# stations on every server, until Ctrl-C. Extra arguments go to evb-datacenter (see --help).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bash "$ROOT/scripts/bootstrap.sh"
cd "$ROOT"
exec .venv/bin/evb-datacenter "$@"
