#!/usr/bin/env bash
# Prefork benchmarks: throughput of `http --workers 2` (two processes, one loop
# each) against one process with two loops, and failed requests during a
# restart storm (SIGHUP every second while wrk runs).
#
#   A. wrk GET /plaintext, 50 and 256 connections, rounds interleaved
#      (each round runs both servers, in a rotated order); median requests/s
#      over rounds with the min-max spread, and the ratio prefork / one process.
#   B. `http --workers 2` under wrk -c 50 for STORM seconds, SIGHUP every
#      second: restarts completed, requests, socket errors (connect, read,
#      write, timeout) and non-2xx responses. The goal is 0 errors.
#
# Usage: bench/scripts/bench-prefork.sh [--quick] [--rounds N] [--out FILE] [--no-build]
#   --quick     2 rounds, 2 s per wrk run, 6 s storm (~1 minute): a smoke test
#   default     5 rounds, 10 s per wrk run, 30 s storm (~4 minutes): final figures
# Needs: cargo, wrk. The machine has few cores: run it on a quiet machine, the
# servers and wrk share the CPUs (nothing is pinned, for both sides alike).
# Environment: BASE_PORT (default 18180) picks the ports used.
set -euo pipefail

cd "$(dirname "$0")/../.."
ROOT=$(pwd)

QUICK=0
ROUNDS=""
OUT="$ROOT/bench/results/BENCHMARKS-prefork.md"
BUILD=1
while [ $# -gt 0 ]; do
    case "$1" in
        --quick) QUICK=1 ;;
        --rounds) ROUNDS="$2"; shift ;;
        --out) OUT="$2"; shift ;;
        --no-build) BUILD=0 ;;
        -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
    shift
done
if [ "$QUICK" = 1 ]; then
    MODE=quick; DUR=2; STORM=6; : "${ROUNDS:=2}"
else
    MODE=full; DUR=10; STORM=30; : "${ROUNDS:=5}"
fi
BASE_PORT=${BASE_PORT:-18180}

WORK=$(mktemp -d "${TMPDIR:-/tmp}/bench-prefork.XXXXXX")
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
note() { echo "== $*" >&2; }
have() { command -v "$1" >/dev/null 2>&1; }

if ! have wrk; then
    echo "wrk is not installed (apt-get install wrk): nothing to measure" >&2
    exit 1
fi
if [ "$BUILD" = 1 ]; then
    note "building the release http example"
    cargo build --release -p netloop --example http >&2
fi
HTTP="$ROOT/target/release/examples/http"
if ! "$HTTP" --help 2>/dev/null | grep -q -- "--workers"; then
    PREFORK=0
    note "examples/http has no --workers yet (engine support for inherited listeners pending): prefork runs skipped"
else
    PREFORK=1
fi

# start_server NAME PORT ARGS... : starts the server, waits for it to listen.
start_server() {
    local name=$1 port=$2; shift 2
    "$HTTP" --addr "127.0.0.1:$port" "$@" >"$WORK/$name.out" 2>"$WORK/$name.err" &
    SERVER_PID=$!
    PIDS+=("$SERVER_PID")
    for _ in $(seq 1 200); do
        if curl -sf "http://127.0.0.1:$port/plaintext" >/dev/null 2>&1 \
           || (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            return 0
        fi
        sleep 0.05
    done
    echo "server $name did not start:" >&2; cat "$WORK/$name.err" >&2; return 1
}
stop_server() {
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
}
# wrk_rps PORT CONNS SECONDS -> requests/s
wrk_rps() {
    wrk -t1 -c"$2" -d"$3s" "http://127.0.0.1:$1/plaintext" | awk '/^Requests\/sec/ {print $2}'
}
median() { sort -g | awk '{a[NR]=$1} END {if (NR==0) {print "n/a"} else if (NR%2) {print a[(NR+1)/2]} else {print (a[NR/2]+a[NR/2+1])/2}}'; }
spread() { sort -g | awk 'NR==1 {lo=$1} {hi=$1} END {if (NR) printf "%.0f-%.0f", lo, hi; else print "n/a"}'; }

SERVERS=("one-process:--loops 2")
[ "$PREFORK" = 1 ] && SERVERS+=("prefork:--workers 2 --loops 1")

note "A: throughput ($ROUNDS rounds, ${DUR}s per run)"
for conns in 50 256; do
    for r in $(seq 1 "$ROUNDS"); do
        n=${#SERVERS[@]}
        for i in $(seq 0 $((n - 1))); do
            entry=${SERVERS[$(( (i + r) % n ))]}
            name=${entry%%:*}; args=${entry#*:}
            port=$((BASE_PORT + 1))
            # shellcheck disable=SC2086
            start_server "$name" "$port" $args
            rps=$(wrk_rps "$port" "$conns" "$DUR")
            stop_server
            echo "$rps" >>"$WORK/rps-$name-$conns"
            note "round $r, $name, $conns connections: $rps requests/s"
        done
    done
done

STORM_LINE="| restart storm | skipped: examples/http has no --workers yet | | | | |"
if [ "$PREFORK" = 1 ]; then
    note "B: restart storm (${STORM}s, SIGHUP every second)"
    port=$((BASE_PORT + 2))
    RUST_LOG=info start_server storm "$port" --workers 2 --loops 1
    wrk -t1 -c50 -d"${STORM}s" "http://127.0.0.1:$port/plaintext" >"$WORK/storm.wrk" &
    WRK_PID=$!
    for _ in $(seq 1 "$STORM"); do
        sleep 1
        kill -HUP "$SERVER_PID" 2>/dev/null || true
    done
    wait "$WRK_PID" || true
    sleep 1
    stop_server
    restarts=$(grep -c "generation serving" "$WORK/storm.err" || true)
    restarts=$((restarts > 0 ? restarts - 1 : 0))
    requests=$(awk '/requests in/ {print $1}' "$WORK/storm.wrk")
    errors=$(awk -F'[ ,]+' '/Socket errors/ {print $4+$6+$8+$10}' "$WORK/storm.wrk")
    non2xx=$(awk '/Non-2xx/ {print $NF}' "$WORK/storm.wrk")
    STORM_LINE="| restart storm, ${STORM}s, SIGHUP every 1 s | $restarts | ${requests:-0} | ${errors:-0} | ${non2xx:-0} | $(grep -h "Socket errors" "$WORK/storm.wrk" || echo none) |"
fi

{
    echo "# Prefork benchmarks ($MODE run, $(date -u +%Y-%m-%d))"
    echo
    echo "Machine: $(nproc) CPUs, $(uname -r). Command: \`bench/scripts/bench-prefork.sh$([ "$MODE" = quick ] && echo " --quick")\`."
    echo "wrk -t1, GET /plaintext, ${DUR}s per run, $ROUNDS interleaved rounds; median (min-max) requests/s."
    echo
    echo "| connections | one process, 2 loops | prefork, 2 workers x 1 loop | prefork / one process |"
    echo "|---|---|---|---|"
    for conns in 50 256; do
        one=$(median <"$WORK/rps-one-process-$conns")
        onesp=$(spread <"$WORK/rps-one-process-$conns")
        if [ -f "$WORK/rps-prefork-$conns" ]; then
            pre=$(median <"$WORK/rps-prefork-$conns")
            presp=$(spread <"$WORK/rps-prefork-$conns")
            ratio=$(awk -v a="$pre" -v b="$one" 'BEGIN {printf "%.2f", a / b}')
            echo "| $conns | $one ($onesp) | $pre ($presp) | $ratio |"
        else
            echo "| $conns | $one ($onesp) | skipped | |"
        fi
    done
    echo
    echo "| run | restarts completed | requests | socket errors | non-2xx | wrk's error line |"
    echo "|---|---|---|---|---|---|"
    echo "$STORM_LINE"
} >"$OUT"
note "wrote $OUT"
cat "$OUT"
