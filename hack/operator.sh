#!/usr/bin/env bash
# Runs the operator from the checkout in the background against the local control plane.
#   bash hack/operator.sh up     # start (no-op while running; starts again after a crash)
#   bash hack/operator.sh down   # SIGTERM, then SIGKILL after 15 s; only the recorded pid
# pid: .cluster/operator.pid, log: .cluster/logs/operator.log, ports: .cluster/operator.ports
# (liveness, metrics and webhook ports, picked free on the first start like `make cluster-up` does,
# so two checkouts on one machine do not collide; STUDIO_{LIVENESS,METRICS,WEBHOOK}_PORT override).
# A start that fails leaves no process and no pid file behind.
# Probes listen on loopback only. S3 trust (docs/storage.md): the loopback S3 endpoint of `make run`
# (hack/s3.py, on a free port recorded in .cluster/s3.endpoint) is an endpoint the administrator
# allowed, and the demo namespace may reach its sample buckets through the shared identity; set
# STUDIO_S3_ALLOWED_ENDPOINTS / STUDIO_S3_SHARED_BUCKETS to change that.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
PIDFILE="$ROOT/.cluster/operator.pid"
LOG="$ROOT/.cluster/logs/operator.log"
BIN="$ROOT/.venv/bin/studio-operator"
KUBECONFIG_FILE="$ROOT/.cluster/kubeconfig"
PORTS_FILE="$ROOT/.cluster/operator.ports"
START_TIMEOUT=${STUDIO_OPERATOR_START_TIMEOUT:-60}
export STUDIO_S3_ALLOWED_ENDPOINTS=${STUDIO_S3_ALLOWED_ENDPOINTS:-http://127.0.0.1:*}
export STUDIO_S3_SHARED_BUCKETS=${STUDIO_S3_SHARED_BUCKETS:-${DEMO_NAMESPACE:-demo}=reference-genomes,scratch}

log() { echo "[operator] $*" >&2; }

# The recorded pid if that process is alive (not a zombie) and is our operator, else nothing.
running_pid() {
  [ -f "$PIDFILE" ] || return 1
  local pid state
  pid=$(tr -dc '0-9' < "$PIDFILE")
  [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] || return 1
  state=$(sed 's/.*) //' "/proc/$pid/stat" 2>/dev/null | cut -d' ' -f1)
  [ "$state" != Z ] || return 1
  tr '\0' ' ' < "/proc/$pid/cmdline" | grep -qF "$BIN run" || return 1
  echo "$pid"
}

# Free TCP ports on loopback, one per argument (asked from the kernel, like hack/cluster.py).
free_ports() {
  python3 - "$@" <<'PY'
import socket, sys
socks = []
for _ in sys.argv[1:]:
    s = socket.socket(); s.bind(("127.0.0.1", 0)); socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
PY
}

port_free() {
  python3 -c 'import socket,sys; s=socket.socket(); s.bind(("127.0.0.1", int(sys.argv[1])))' "$1" 2>/dev/null
}

# LIVENESS_PORT, METRICS_PORT, WEBHOOK_PORT: the environment's, else the recorded ones while they
# are still free, else new free ones (recorded for the next start and for other tools).
load_ports() {
  LIVENESS_PORT="" METRICS_PORT="" WEBHOOK_PORT=""
  # shellcheck disable=SC1090
  [ -f "$PORTS_FILE" ] && . "$PORTS_FILE"
  if [ -z "${LIVENESS_PORT}" ] || ! port_free "$LIVENESS_PORT" || ! port_free "$METRICS_PORT" \
      || ! port_free "$WEBHOOK_PORT"; then
    read -r LIVENESS_PORT METRICS_PORT WEBHOOK_PORT < <(free_ports l m w)
  fi
  LIVENESS_PORT=${STUDIO_LIVENESS_PORT:-$LIVENESS_PORT}
  METRICS_PORT=${STUDIO_METRICS_PORT:-$METRICS_PORT}
  WEBHOOK_PORT=${STUDIO_WEBHOOK_PORT:-$WEBHOOK_PORT}
  mkdir -p "$(dirname "$PORTS_FILE")"
  printf 'LIVENESS_PORT=%s\nMETRICS_PORT=%s\nWEBHOOK_PORT=%s\n' \
    "$LIVENESS_PORT" "$METRICS_PORT" "$WEBHOOK_PORT" > "$PORTS_FILE"
}

healthy() {
  curl --noproxy '*' -fsS -o /dev/null --max-time 2 "http://127.0.0.1:$LIVENESS_PORT/healthz" 2>/dev/null
}

# Stop a process that failed to start: nothing of it may stay behind.
abandon() {
  local pid=$1
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  rm -f "$PIDFILE"
}

up() {
  local pid
  if pid=$(running_pid); then
    log "already running (pid $pid)"; return 0
  fi
  [ -f "$PIDFILE" ] && log "stale pid file (pid $(cat "$PIDFILE") is gone): starting again"
  [ -x "$BIN" ] || { log "$BIN missing: run make venv"; exit 1; }
  [ -f "$KUBECONFIG_FILE" ] || { log "$KUBECONFIG_FILE missing: run make cluster-up"; exit 1; }
  load_ports
  if healthy; then
    log "port $LIVENESS_PORT already answers /healthz: another process holds it"; exit 1
  fi
  mkdir -p "$(dirname "$LOG")"
  echo "=== $(date -Is) starting (liveness $LIVENESS_PORT, metrics $METRICS_PORT, webhook $WEBHOOK_PORT)" >> "$LOG"
  KUBECONFIG="$KUBECONFIG_FILE" nohup "$BIN" run --webhook-mode=local --liveness-port="$LIVENESS_PORT" \
    --metrics-port="$METRICS_PORT" --webhook-port="$WEBHOOK_PORT" >> "$LOG" 2>&1 < /dev/null &
  pid=$!
  echo "$pid" > "$PIDFILE"
  local deadline=$((SECONDS + START_TIMEOUT))
  until healthy; do
    if ! kill -0 "$pid" 2>/dev/null; then
      log "the operator exited during startup; last lines of $LOG:"; tail -n 40 "$LOG" >&2
      rm -f "$PIDFILE"; exit 1
    fi
    if [ $SECONDS -ge $deadline ]; then
      log "no answer on http://127.0.0.1:$LIVENESS_PORT/healthz after ${START_TIMEOUT}s (stopped it); last lines of $LOG:"
      tail -n 40 "$LOG" >&2
      abandon "$pid"; exit 1
    fi
    sleep 0.5
  done
  log "running (pid $pid, log $LOG, liveness http://127.0.0.1:$LIVENESS_PORT/healthz," \
    "metrics http://127.0.0.1:$METRICS_PORT/metrics)"
}

down() {
  local pid
  if ! pid=$(running_pid); then
    [ -f "$PIDFILE" ] && log "not running (stale pid file removed)" || log "not running"
    rm -f "$PIDFILE"; return 0
  fi
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 150); do
    running_pid > /dev/null || break
    sleep 0.1
  done
  if running_pid > /dev/null; then
    log "pid $pid still running after 15 s: SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$PIDFILE"
  log "stopped (pid $pid)"
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  *) echo "usage: $0 up|down" >&2; exit 2 ;;
esac
