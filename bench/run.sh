#!/bin/bash
# run.sh - the side-by-side benchmark (make bench): jupyterhub-go and Python JupyterHub 5.2.1 +
# configurable-http-proxy in one Debian trixie systemd-nspawn guest that shares the host's
# network, so both hubs, the load generator (bench/hubbench, on the host) and the backend share
# one kernel, the same cores and loopback. Then the Go benchmarks of the hot paths.
#
# Equal settings: the same users (alice spawns; 1,000 more are created), the same page limits
# (default 50, max 1000), log level warn, and the same spawned command, bench/backend (HTTP and
# WebSocket echo at JUPYTERHUB_SERVICE_URL), or for the singleuser spawn figure Debian's
# jupyterhub-singleuser on jupyter_server (no JupyterLab). JupyterHub uses its LocalProcessSpawner and an API
# token of a service with the admin role; jupyterhub-go the same through [[service]].
#
# Needs root, mmdebstrap and systemd-container (installed with apt if missing); the guest rootfs
# is built once and cached (bench/rootfs.sh). Env: BENCH_DURATION (5s per load run), BENCH_REPS
# (3), BENCH_ONLY (figure groups, comma-separated), BENCH_GO_BENCH=0 skips the Go benchmarks,
# BENCH_GUEST=0 runs only them; BENCH_GO_LOG_LEVEL (warn) is jupyterhub-go's log level, and
# BENCH_JOURNAL=FILE keeps the guest's journal there (both for finding where a figure's time goes).
# Internal: run.sh hook pids|stop|start|fill go|py [N], set-cmd go|py backend|singleuser and
# own-singleuser start|t0|stop PORT are how hubbench reaches the guest.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
log() { printf '[bench %s] %s\n' "$(date +%T)" "$*" >&2; }

hook() {
  local W=${BENCH_WORK:?} init; init=$(cat "$W/init")
  local ns=(nsenter -t "$init" -a)
  case "$1 $2" in
    "pids go") pgrep --ns "$init" --nslist pid -f '^/bench/jupyterhub-go' | paste -sd' ' ;;
    "pids py") echo "$(pgrep --ns "$init" --nslist pid -f 'bin/jupyterhub -f' | head -1) $(pgrep --ns "$init" --nslist pid -f 'configurable-http-proxy' | head -1)" ;;
    "stop go") "${ns[@]}" systemctl stop gohub ;;
    "stop py") "${ns[@]}" systemctl stop pyhub ;;
    "start go") "${ns[@]}" /bench/guest.sh start-go ;;
    "start py") "${ns[@]}" /bench/guest.sh start-py ;;
    "fill go") "${ns[@]}" /bench/guest.sh fill-go "$3" "$(cat "$W/go-token")" ;;
    "fill py") "${ns[@]}" /bench/guest.sh fill-py "$3" ;;
    "set-cmd go"|"set-cmd py") "${ns[@]}" /bench/guest.sh set-cmd "$2" "$3" ;;
    "own-singleuser "*) "${ns[@]}" /bench/guest.sh own-singleuser "$2" "$3" ;;
    *) echo "run.sh hook: unknown $*" >&2; return 2 ;;
  esac
}
if [[ ${1:-} == hook ]]; then shift; hook "$@"; exit; fi

gobench() {
  log "Go benchmarks of the hot paths"
  (cd "$REPO" && go test -run '^$' -bench . -benchmem -benchtime "${BENCH_GO_BENCHTIME:-1s}" \
    ./agent/router ./agent/store ./agent/scopes ./agent/auth ./agent/servers ./agent/api ./agent 2>&1 | grep -E '^(Benchmark|ok|FAIL|---|pkg:)|_test.go:[0-9]+:')
}

if [[ ${BENCH_GUEST:-1} == 0 ]]; then gobench; exit; fi

((EUID == 0)) || { echo "run.sh: needs root (systemd-nspawn, nsenter)" >&2; exit 1; }
. "$REPO/packaging/lib.sh" 2>/dev/null || true
say() { log "$@"; }
if declare -F need >/dev/null; then need mmdebstrap:mmdebstrap systemd-nspawn:systemd-container nsenter:util-linux pgrep:procps curl:curl; fi
ROOT=$("$HERE/rootfs.sh")

# The guest shares the host's network: the hubs' fixed ports must be free.
for port in 18000 18001 18081 18100 18200; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "run.sh: 127.0.0.1:$port is in use (a bench left running?); the bench needs 18000, 18001, 18081, 18100, 18200" >&2; exit 1
  fi
done
W=$(mktemp -d /tmp/jhgo-bench.XXXXXX); export BENCH_WORK=$W
chmod 755 "$W"
NSPID='' DIRECT=''
cleanup() {
  [[ -n $DIRECT ]] && kill "$DIRECT" 2>/dev/null || true
  if [[ -n $NSPID ]]; then
    if [[ -n ${BENCH_JOURNAL:-} && -f $W/init ]]; then
      nsenter -t "$(cat "$W/init")" -a journalctl -o short-precise --no-pager > "$BENCH_JOURNAL" 2>&1 || true
    fi
    [[ -f $W/init ]] && nsenter -t "$(cat "$W/init")" -a systemctl poweroff --no-block >/dev/null 2>&1 || true
    timeout 30 tail --pid="$NSPID" -f /dev/null || kill "$NSPID" 2>/dev/null || true
  fi
  rm -rf "$W"
}
trap cleanup EXIT

log "building the hub, the backend and the load generator"
(cd "$REPO" && make -s build >/dev/null && cp bin/jupyterhub-go "$W/jupyterhub-go" &&
  CGO_ENABLED=0 go build -o "$W/backend" ./bench/backend && go build -o "$W/hubbench" ./bench/hubbench)
cp "$REPO/packaging/pam.d/jupyterhub-go" "$W/pam.d-jupyterhub-go"
cp "$HERE/guest.sh" "$W/guest.sh"
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$W/go-token"
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$W/py-token"
chmod 644 "$W/go-token" "$W/py-token" "$W/pam.d-jupyterhub-go"; chmod 755 "$W/guest.sh" "$W/backend" "$W/jupyterhub-go"

log "booting the guest ($ROOT)"
systemd-nspawn -q -D "$ROOT" --boot --register=no --keep-unit -M "jhgobench-$$" --volatile=overlay \
  --bind-ro="$W:/bench" --console=read-only > "$W/console.log" 2>&1 < /dev/null &
NSPID=$!
container_init() {
  local p
  for p in $(pgrep -P "$NSPID"); do
    [[ $(awk '/^NSpid:/{print NF-1, $NF}' "/proc/$p/status" 2>/dev/null) == "2 1" &&
       $(cat "/proc/$p/comm" 2>/dev/null) == systemd ]] && { echo "$p"; return 0; }
  done
  return 1
}
deadline=$((SECONDS + 120))
until init=$(container_init); do
  ((SECONDS < deadline)) && kill -0 "$NSPID" 2>/dev/null || { tail -30 "$W/console.log" >&2; exit 1; }
  sleep 0.2
done
echo "$init" > "$W/init"
state=''
while ((SECONDS < deadline)); do
  state=$(timeout 60 nsenter -t "$init" -a systemctl is-system-running --wait 2>/dev/null) || true
  [[ $state == running || $state == degraded ]] && break
  sleep 0.5
done
[[ $state == running || $state == degraded ]] || { echo "run.sh: the guest did not boot (state ${state:-unknown})" >&2; tail -30 "$W/console.log" >&2; exit 1; }
[[ $state == running ]] || nsenter -t "$init" -a systemctl --failed --no-pager --no-legend >&2 || true
log "guest up; starting both hubs"
nsenter -t "$init" -a /bench/guest.sh setup "$(cat "$W/go-token")" "$(cat "$W/py-token")"

"$W/backend" -listen 127.0.0.1:18200 -prefix /user/alice/ & DIRECT=$!

args=(-backend "$W/backend" -hook "$0 hook" -d "${BENCH_DURATION:-5s}" -reps "${BENCH_REPS:-3}")
[[ -n ${BENCH_ONLY:-} ]] && args+=(-only "$BENCH_ONLY")
BENCH_GO_TOKEN=$(cat "$W/go-token") BENCH_PY_TOKEN=$(cat "$W/py-token") "$W/hubbench" "${args[@]}"
[[ ${BENCH_GO_BENCH:-1} == 0 ]] || gobench
