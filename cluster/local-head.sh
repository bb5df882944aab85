#!/usr/bin/env bash
# A loopback-only Ray head for development: `harness submit` / `harness jobs` talk to it.
#
#   cluster/local-head.sh start [--dir DIR] [--port P] [--dashboard-port D] [--num-cpus N]
#                               [--num-gpus G] [--object-store-mb M]
#   cluster/local-head.sh status [--dir DIR]
#   cluster/local-head.sh stop   [--dir DIR]
#
# Example:
#   cluster/local-head.sh start --num-cpus 4
#   export RAY_ADDRESS=http://127.0.0.1:8265
#   harness submit --tasks instructions-mini --limit 8 --wait
#   cluster/local-head.sh stop
#
# What it does:
#   * every listener is on 127.0.0.1 (RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0, --dashboard-host 127.0.0.1);
#   * the head lives in its own --temp-dir under DIR (default ${TMPDIR:-/tmp}/harness-head-$UID), so several
#     heads (several developers, CI jobs) can share a machine: give each its own --dir and ports;
#   * `stop` kills only the processes of THIS head: its process group and every process that inherited the
#     marker HARNESS_LOCAL_HEAD=DIR (raylet, gcs, dashboard, workers, job drivers). It never runs `ray stop`,
#     which would kill every Ray cluster on the machine;
#   * auth: if RAY_AUTH_MODE=token is exported, the head uses Ray token auth with Ray's own token lookup
#     (RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH or ~/.ray/auth_token); otherwise RAY_AUTH_MODE=disabled, which is
#     acceptable only because nothing listens beyond loopback. This script never writes a token.
#   * PATH inside the head (and so inside every job) starts with the repo's .venv/bin when it exists, so a
#     job's `python` is the same interpreter you develop with.
#
# Environment overrides: HARNESS_HEAD_DIR, HEAD_PORT (6390), DASHBOARD_PORT (8265), HEAD_NUM_CPUS (all),
# RAY (the ray executable).
set -euo pipefail

usage() { sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
[[ $# -ge 1 ]] || usage
VERB="$1"; shift
DIR="${HARNESS_HEAD_DIR:-${TMPDIR:-/tmp}/harness-head-$(id -u)}"
PORT="${HEAD_PORT:-6390}"
DASH="${DASHBOARD_PORT:-8265}"
NUM_CPUS="${HEAD_NUM_CPUS:-}"
NUM_GPUS=""
STORE_MB=512
while [[ $# -gt 0 ]]; do
  case "$1" in
    --dir) DIR="$2"; shift 2 ;;
    --port) PORT="$2"; shift 2 ;;
    --dashboard-port) DASH="$2"; shift 2 ;;
    --num-cpus) NUM_CPUS="$2"; shift 2 ;;
    --num-gpus) NUM_GPUS="$2"; shift 2 ;;
    --object-store-mb) STORE_MB="$2"; shift 2 ;;
    -h|--help) usage ;;
    *) echo "local-head.sh: unknown option $1" >&2; usage ;;
  esac
done
DIR="$(mkdir -p "$DIR" && cd "$DIR" && pwd)"

if [[ -x "$REPO/.venv/bin/ray" ]]; then
  export PATH="$REPO/.venv/bin:$PATH"
fi
RAY="${RAY:-$(command -v ray || true)}"
[[ -n "$RAY" ]] || { echo "local-head.sh: no 'ray' executable (pip install 'ray[default]')" >&2; exit 1; }
PY="$(dirname "$RAY")/python"
[[ -x "$PY" ]] || PY="$(command -v python3)"

# Live (non-zombie) PIDs among the arguments (/proc when there is one: no process per check).
alive() {
  local p st line
  for p in "$@"; do
    if [[ -d /proc/self ]]; then
      { read -r line < "/proc/$p/stat"; } 2>/dev/null || continue
      st="${line##*) }"
    else
      st="$(ps -o stat= -p "$p" 2>/dev/null)" || continue
    fi
    [[ "$st" == Z* ]] || echo "$p"
  done
}

# PIDs of this head: its process group plus every process carrying our marker in its environment.
head_pids() {
  local pgid="" cands
  [[ -f "$DIR/head.pgid" ]] && pgid="$(cat "$DIR/head.pgid")"
  cands="$(
    if [[ -n "$pgid" ]]; then ps -eo pid=,pgid= | awk -v g="$pgid" '$2 == g {print $1}'; fi
    grep -lzxF "HARNESS_LOCAL_HEAD=$DIR" /proc/[0-9]*/environ 2>/dev/null | cut -d/ -f3 || true
  )"
  # shellcheck disable=SC2086
  alive $(echo "$cands" | grep -vx "$$" | sort -un)
}

job_server_up() {
  "$PY" - "$DASH" <<'EOF' >/dev/null 2>&1
import sys, urllib.request, urllib.error
try:
    urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/api/version", timeout=2)
except urllib.error.HTTPError:
    pass  # 401/403: up, but token auth is on
EOF
}

free_port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

case "$VERB" in
  start)
    if [[ -f "$DIR/head.pid" ]] && kill -0 "$(cat "$DIR/head.pid")" 2>/dev/null; then
      echo "local-head.sh: a head is already running from $DIR (pid $(cat "$DIR/head.pid")); stop it first" >&2
      exit 1
    fi
    if [[ "${RAY_AUTH_MODE:-}" == "token" ]]; then AUTH=token; else AUTH=disabled; fi
    args=(start --head --block --temp-dir "$DIR/ray" --port "$PORT"
          --dashboard-host 127.0.0.1 --dashboard-port "$DASH" --include-dashboard true
          --ray-client-server-port "$(free_port)" --dashboard-agent-listen-port "$(free_port)"
          --dashboard-agent-grpc-port "$(free_port)" --metrics-export-port "$(free_port)"
          --runtime-env-agent-port "$(free_port)" --object-store-memory "$((STORE_MB * 1024 * 1024))"
          --disable-usage-stats)
    [[ -n "$NUM_CPUS" ]] && args+=(--num-cpus "$NUM_CPUS")
    [[ -n "$NUM_GPUS" ]] && args+=(--num-gpus "$NUM_GPUS")
    # setsid: the head gets its own session and process group, so `stop` can signal exactly that group.
    RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 RAY_AUTH_MODE="$AUTH" RAY_USAGE_STATS_ENABLED=0 \
      HARNESS_LOCAL_HEAD="$DIR" setsid "$RAY" "${args[@]}" >"$DIR/head.log" 2>&1 </dev/null &
    pid=$!
    echo "$pid" > "$DIR/head.pid"
    sleep 0.5
    ps -o pgid= -p "$pid" 2>/dev/null | tr -d ' ' > "$DIR/head.pgid" || true
    for _ in $(seq 1 180); do
      if job_server_up; then
        printf 'DASHBOARD=http://127.0.0.1:%s\nGCS=127.0.0.1:%s\nAUTH=%s\nPID=%s\n' "$DASH" "$PORT" "$AUTH" "$pid" > "$DIR/head.env"
        echo "head up (auth: $AUTH, temp dir $DIR/ray, log $DIR/head.log)"
        echo "  export RAY_ADDRESS=http://127.0.0.1:$DASH"
        echo "  harness submit --tasks instructions-mini --limit 8 --wait"
        echo "  $0 stop${DIR:+ --dir $DIR}"
        exit 0
      fi
      if ! kill -0 "$pid" 2>/dev/null; then
        echo "local-head.sh: ray start exited; last lines of $DIR/head.log:" >&2
        tail -n 20 "$DIR/head.log" >&2
        exit 1
      fi
      sleep 0.5
    done
    echo "local-head.sh: the job server on 127.0.0.1:$DASH did not answer within 90 s (see $DIR/head.log)" >&2
    exit 1
    ;;
  status)
    [[ -f "$DIR/head.env" ]] && DASH="$(sed -n 's|^DASHBOARD=http://127.0.0.1:||p' "$DIR/head.env")"
    if [[ -f "$DIR/head.pid" ]] && kill -0 "$(cat "$DIR/head.pid")" 2>/dev/null; then
      [[ -f "$DIR/head.env" ]] && cat "$DIR/head.env"
      echo "processes: $(head_pids | wc -l)"
      if job_server_up; then echo "job server: up"; else echo "job server: not answering"; fi
      exit 0
    fi
    echo "no head running from $DIR"
    exit 1
    ;;
  stop)
    pids="$(head_pids)"
    if [[ -z "$pids" ]]; then echo "no head processes from $DIR"; rm -f "$DIR/head.pid" "$DIR/head.pgid" "$DIR/head.env"; exit 0; fi
    # 1) SIGTERM to `ray start --block` alone: it shuts its own children down in order (a second signal
    #    while it cleans up can wedge it). 2) SIGTERM to whatever is left. 3) SIGKILL after that.
    head="$(cat "$DIR/head.pid" 2>/dev/null || true)"
    step=0
    while [[ $step -lt 3 ]]; do
      # shellcheck disable=SC2086
      left="$(alive $pids; head_pids)"
      left="$(echo "$left" | sed '/^$/d' | sort -un)"
      [[ -z "$left" ]] && break
      case $step in
        # wait for `ray start` itself to finish its cleanup, then for its children a moment
        0) if [[ -n "$head" && -n "$(alive "$head")" ]]; then kill -TERM "$head"; wait_for="$head"; else step=1; continue; fi ;;
        # shellcheck disable=SC2086
        1) kill -TERM $left 2>/dev/null || true; wait_for="$left" ;;
        # shellcheck disable=SC2086
        2) kill -KILL $left 2>/dev/null || true; wait_for="$left" ;;
      esac
      for _ in $(seq 1 15); do
        # shellcheck disable=SC2086
        [[ -z "$(alive $wait_for)" ]] && break
        sleep 0.2
      done
      if [[ $step -eq 0 ]]; then
        for _ in $(seq 1 10); do
          # shellcheck disable=SC2086
          [[ -z "$(alive $left)" ]] && break
          sleep 0.2
        done
      fi
      step=$((step + 1))
    done
    # shellcheck disable=SC2086
    left="$(alive $pids; head_pids)"
    rm -f "$DIR/head.pid" "$DIR/head.pgid" "$DIR/head.env"
    if [[ -n "$left" ]]; then echo "local-head.sh: still alive: $(echo $left)" >&2; exit 1; fi
    echo "head stopped ($(echo "$pids" | wc -w) processes)"
    ;;
  *) usage ;;
esac
