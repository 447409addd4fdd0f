#!/usr/bin/env bash
# An etcd cluster of N members (default 3) on loopback, for evb-nms --store etcd (docs/ha.md).
#
#   scripts/etcd-cluster.sh [--dir DIR] [--port PORT] start|stop|status [N]
#
# Member i (0-based) is named m<i>, serves clients on 127.0.0.1:PORT+2i and its peers on
# PORT+2i+1 (default PORT 2379: 2379/2380, 2381/2382, 2383/2384), keeps its data in DIR/m<i>
# (default DIR /tmp/evb-etcd), logs to DIR/m<i>.log and its PID in DIR/m<i>.pid. `stop` ends
# only the processes of those PID files. A member whose data directory exists restarts from it:
# stop then start brings the whole cluster back with its data.
# Debian's etcd (package etcd-server, 3.4) runs with:
#   --max-txn-ops / --max-request-bytes raised from 128 / 1.5 MiB: one controller write is one
#     transaction (a batch of associations, a group of VM registrations: docs/ha.md, limits);
#   --auto-compaction: etcd keeps every revision of every key until compacted;
#   --quota-backend-bytes 8 GiB (the documented maximum), from 2 GiB.
set -euo pipefail
DIR=/tmp/evb-etcd
PORT=2379
MAX_TXN_OPS=${EVB_ETCD_MAX_TXN_OPS:-16384}
MAX_REQUEST_BYTES=${EVB_ETCD_MAX_REQUEST_BYTES:-$((16 * 1024 * 1024))}
while [ $# -gt 0 ]; do
  case "$1" in
    --dir) DIR=$2; shift 2 ;;
    --port) PORT=$2; shift 2 ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    *) break ;;
  esac
done
ACTION=${1:-}
N=${2:-3}
case "$N" in ''|*[!0-9]*) echo "etcd-cluster: N must be a number, got $N" >&2; exit 2 ;; esac
[ "$N" -ge 1 ] || { echo "etcd-cluster: N must be at least 1" >&2; exit 2; }

client_url() { echo "http://127.0.0.1:$((PORT + 2 * $1))"; }
peer_url() { echo "http://127.0.0.1:$((PORT + 2 * $1 + 1))"; }
# The PID in DIR/m<i>.pid if that process is still our etcd (a PID may have been reused).
member_pid() {
  local file="$DIR/m$1.pid" pid
  [ -f "$file" ] || return 1
  pid=$(cat "$file")
  [ -n "$pid" ] && tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | grep -q -- "--data-dir $DIR/m$1 " \
    && echo "$pid"
}
endpoints() {
  local i list=""
  for ((i = 0; i < N; i++)); do list="$list${list:+,}$(client_url $i)"; done
  echo "$list"
}

start() {
  command -v etcd >/dev/null || { echo "etcd-cluster: no etcd binary (apt-get install etcd-server)" >&2; exit 1; }
  mkdir -p "$DIR"
  local i cluster=""
  for ((i = 0; i < N; i++)); do cluster="$cluster${cluster:+,}m$i=$(peer_url $i)"; done
  for ((i = 0; i < N; i++)); do
    if member_pid $i >/dev/null; then
      echo "etcd-cluster: m$i already runs (PID $(member_pid $i))"
      continue
    fi
    # setsid: Ctrl-C in the caller's terminal does not reach the cluster; stop does.
    setsid etcd --name "m$i" --data-dir "$DIR/m$i" \
      --listen-client-urls "$(client_url $i)" --advertise-client-urls "$(client_url $i)" \
      --listen-peer-urls "$(peer_url $i)" --initial-advertise-peer-urls "$(peer_url $i)" \
      --initial-cluster "$cluster" --initial-cluster-token "evb-etcd-$PORT" \
      --initial-cluster-state new \
      --max-txn-ops "$MAX_TXN_OPS" --max-request-bytes "$MAX_REQUEST_BYTES" \
      --quota-backend-bytes $((8 * 1024 * 1024 * 1024)) \
      --auto-compaction-mode periodic --auto-compaction-retention 5m \
      --logger zap \
      </dev/null >>"$DIR/m$i.log" 2>&1 &
    echo $! >"$DIR/m$i.pid"
  done
  # Healthy: a quorum elected a leader and commits (etcdctl endpoint health writes through it).
  local deadline=$((SECONDS + 30))
  until ETCDCTL_API=3 etcdctl --endpoints "$(endpoints)" --command-timeout 2s endpoint health \
      >/dev/null 2>&1; do
    if [ $SECONDS -ge $deadline ]; then
      echo "etcd-cluster: not healthy after 30 s; logs in $DIR/m*.log" >&2
      exit 1
    fi
    sleep 0.2
  done
  echo "etcd-cluster: $N members up; evb-nms --store etcd --etcd-endpoints $(endpoints)"
}

stop() {
  local i pid pids=()
  for ((i = 0; i < N; i++)); do
    if pid=$(member_pid $i); then
      kill "$pid" && pids+=("$pid")
    fi
    rm -f "$DIR/m$i.pid"
  done
  # A leader stopping tries to hand its leadership to members that are stopping too, for up to
  # 7 s: after 2 s it gets SIGKILL. Nothing is lost: etcd acknowledges a write once it is in the
  # fsync'd logs of a quorum.
  local deadline=$((SECONDS + 2))
  for pid in "${pids[@]}"; do
    while kill -0 "$pid" 2>/dev/null; do
      if [ $SECONDS -ge $deadline ]; then kill -9 "$pid" 2>/dev/null || true; fi
      sleep 0.1
    done
  done
  echo "etcd-cluster: stopped ${#pids[@]} member(s)"
}

status() {
  local i pid down=0
  for ((i = 0; i < N; i++)); do
    if pid=$(member_pid $i); then
      if ETCDCTL_API=3 etcdctl --endpoints "$(client_url $i)" --command-timeout 2s endpoint health \
          >/dev/null 2>&1; then
        echo "m$i $(client_url $i) PID $pid healthy"
      else
        echo "m$i $(client_url $i) PID $pid unhealthy"; down=1
      fi
    else
      echo "m$i $(client_url $i) not running"; down=1
    fi
  done
  return $down
}

case "$ACTION" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  *) echo "usage: $0 [--dir DIR] [--port PORT] start|stop|status [N]" >&2; exit 2 ;;
esac
