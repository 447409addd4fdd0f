#!/usr/bin/env bash
# Starts ovsdb-server and ovs-vswitchd with ovs-ctl unless they already run. No kernel module is
# needed: every bridge of ours uses the userspace (netdev) datapath.
set -euo pipefail
if ovs-vsctl --timeout=2 show >/dev/null 2>&1; then
  exit 0
fi
OVS_CTL=/usr/share/openvswitch/scripts/ovs-ctl
"$OVS_CTL" --system-id=random --no-ovs-vswitchd start >/dev/null
"$OVS_CTL" --no-ovsdb-server --no-monitor start >/dev/null 2>&1 || "$OVS_CTL" --no-ovsdb-server --no-monitor start
ovs-vsctl --timeout=10 show >/dev/null
echo "ovs-start: Open vSwitch $(ovs-vsctl --version | head -1 | awk '{print $NF}') running"
