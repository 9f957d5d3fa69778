#!/usr/bin/env bash
# Runs the operator from the checkout in the background against the local control plane.
#   bash hack/operator.sh up     # start (no-op while running; starts again after a crash)
#   bash hack/operator.sh down   # SIGTERM, then SIGKILL after 15 s; only the recorded pid
# pid: .cluster/operator.pid, log: .cluster/logs/operator.log,
# liveness: http://127.0.0.1:${STUDIO_LIVENESS_PORT:-8089}/healthz (loopback only, as are metrics)
# S3 trust (docs/storage.md): the loopback S3 endpoint of `make run` (hack/s3.py) is an endpoint the
# administrator allowed, and the demo namespace may reach its sample buckets through the shared
# identity; set STUDIO_S3_ALLOWED_ENDPOINTS / STUDIO_S3_SHARED_BUCKETS to change that.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
PIDFILE="$ROOT/.cluster/operator.pid"
LOG="$ROOT/.cluster/logs/operator.log"
BIN="$ROOT/.venv/bin/studio-operator"
KUBECONFIG_FILE="$ROOT/.cluster/kubeconfig"
PORT=${STUDIO_LIVENESS_PORT:-8089}
START_TIMEOUT=${STUDIO_OPERATOR_START_TIMEOUT:-60}
export STUDIO_S3_ALLOWED_ENDPOINTS=${STUDIO_S3_ALLOWED_ENDPOINTS:-http://127.0.0.1:${S3_PORT:-9000}}
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

healthy() {
  curl --noproxy '*' -fsS -o /dev/null --max-time 2 "http://127.0.0.1:$PORT/healthz" 2>/dev/null
}

up() {
  local pid
  if pid=$(running_pid); then
    log "already running (pid $pid)"; return 0
  fi
  [ -f "$PIDFILE" ] && log "stale pid file (pid $(cat "$PIDFILE") is gone): starting again"
  [ -x "$BIN" ] || { log "$BIN missing: run make venv"; exit 1; }
  [ -f "$KUBECONFIG_FILE" ] || { log "$KUBECONFIG_FILE missing: run make cluster-up"; exit 1; }
  if healthy; then
    log "port $PORT already answers /healthz: another process holds it (set STUDIO_LIVENESS_PORT)"; exit 1
  fi
  mkdir -p "$(dirname "$LOG")"
  echo "=== $(date -Is) starting" >> "$LOG"
  KUBECONFIG="$KUBECONFIG_FILE" nohup "$BIN" run --webhook-mode=local --liveness-port="$PORT" \
    >> "$LOG" 2>&1 < /dev/null &
  pid=$!
  echo "$pid" > "$PIDFILE"
  local deadline=$((SECONDS + START_TIMEOUT))
  until healthy; do
    if ! kill -0 "$pid" 2>/dev/null; then
      log "the operator exited during startup; last lines of $LOG:"; tail -n 40 "$LOG" >&2
      rm -f "$PIDFILE"; exit 1
    fi
    if [ $SECONDS -ge $deadline ]; then
      log "no answer on http://127.0.0.1:$PORT/healthz after ${START_TIMEOUT}s; last lines of $LOG:"
      tail -n 40 "$LOG" >&2
      exit 1
    fi
    sleep 0.5
  done
  log "running (pid $pid, log $LOG, liveness http://127.0.0.1:$PORT/healthz)"
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
