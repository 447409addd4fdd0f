#!/usr/bin/env bash
# Installs everything the product and its tests need on a fresh Debian bookworm machine (as root),
# creates .venv and starts Open vSwitch if it is not running. Idempotent; sourced by run.sh/test.sh.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# etcd-server, etcd-client: the shared store (--store etcd, scripts/etcd-cluster.sh, docs/ha.md).
APT_PACKAGES="openvswitch-switch mininet lldpad iputils-ping iperf3 tcpdump iproute2 ethtool openssl python3-venv python3-dev gcc chromium chromium-driver etcd-server etcd-client"

missing=""
for p in $APT_PACKAGES; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
  echo "bootstrap: installing$missing"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq $missing >/dev/null
  # Debian's etcd-server starts a single-node etcd on port 2379 where systemd runs: the cluster
  # of scripts/etcd-cluster.sh takes that port, and nothing of ours uses the system's etcd.
  case " $missing " in
    *" etcd-server "*) systemctl disable --now etcd >/dev/null 2>&1 || true ;;
  esac
fi

# Debian's Mininet lives in the system Python's dist-packages: the venv must see it.
if [ ! -x "$ROOT/.venv/bin/python" ]; then
  /usr/bin/python3 -m venv --system-site-packages "$ROOT/.venv"
fi
stamp="$ROOT/.venv/.installed-$(sha1sum "$ROOT/setup.py" | cut -c1-12)"
if [ ! -f "$stamp" ]; then
  # This machine's pip config names local mirrors that may be absent; their warnings are noise.
  "$ROOT/.venv/bin/pip" install -q -e "$ROOT[test]" 2>&1 | (grep -v "^WARNING: Location" || true)
  touch "$stamp"
fi

"$ROOT/scripts/ovs-start.sh"
