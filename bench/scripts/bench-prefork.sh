#!/usr/bin/env bash
# Prefork benchmarks: the `http` example as one process with two loops against
# `--workers 2` (two processes, one loop each) under both ways of sharing the
# listening socket, and requests/s and failures across restarts.
#
#   A. Throughput: wrk GET /plaintext, 50 and 256 connections, rounds
#      interleaved (each round runs every server, in a rotated order); median
#      requests/s over rounds with the min-max spread, and the ratio to one
#      process. Servers:
#        one-process   --loops 2 (one listener, reactor mode)
#        shared        --workers 2 --sharing shared: one listening socket,
#                      inherited by both workers, each waiting on it with
#                      exclusive wake-ups (EPOLLEXCLUSIVE, or io_uring's
#                      multishot accept) — the kernel wakes one waiter per
#                      connection and the workers balance by who is idle.
#        reuseport     --workers 2 --sharing reuseport: one SO_REUSEPORT socket
#                      per worker slot, handed down; the kernel hashes each
#                      connection to a socket (even spread, blind to load).
#   B. Restart storm, per sharing mode: wrk -c 50 for STORM seconds while the
#      supervisor gets SIGHUP every EVERY seconds: restarts completed,
#      requests/s during the storm against the same server's steady requests/s
#      (from A, 50 connections), socket errors (connect, read, write, timeout)
#      and non-2xx responses. The goal is 0 errors.
#
# Usage: bench/scripts/bench-prefork.sh [--quick] [--rounds N] [--every S]
#                                       [--backend epoll|uring] [--out FILE] [--no-build]
#   --quick     1 round, 2 s per wrk run, 6 s storms (~40 s): a smoke test
#   default     5 rounds, 10 s per wrk run, 30 s storms (~6 minutes): final figures
# Needs: cargo, wrk. Nothing is pinned (two worker processes and two loops get
# the same freedom); run it on a quiet machine: servers and wrk share the CPUs.
# Environment: BASE_PORT (default 18180) picks the ports used.
set -euo pipefail

cd "$(dirname "$0")/../.."
ROOT=$(pwd)
# shellcheck source=bench-lib.sh
. "$ROOT/bench/scripts/bench-lib.sh"

QUICK=0
ROUNDS=""
EVERY=1
BACKEND=epoll
OUT="$ROOT/bench/results/BENCHMARKS-prefork.md"
BUILD=1
while [ $# -gt 0 ]; do
    case "$1" in
        --quick) QUICK=1 ;;
        --rounds) ROUNDS="$2"; shift ;;
        --every) EVERY="$2"; shift ;;
        --backend) BACKEND="$2"; shift ;;
        --out) OUT="$2"; shift ;;
        --no-build) BUILD=0 ;;
        -h|--help) sed -n '2,32p' "$0"; exit 0 ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
    shift
done
if [ "$QUICK" = 1 ]; then
    MODE=quick; DUR=2; STORM=6; : "${ROUNDS:=1}"
else
    MODE=full; DUR=10; STORM=30; : "${ROUNDS:=5}"
fi
BASE_PORT=${BASE_PORT:-18180}

WORK=$(mktemp -d "${TMPDIR:-/tmp}/bench-prefork.XXXXXX")
trap 'bench_cleanup; rm -rf "$WORK"' EXIT
trap 'exit 130' INT TERM

if ! have wrk; then
    echo "wrk is not installed (apt-get install wrk): nothing to measure" >&2
    exit 1
fi
if [ "$BUILD" = 1 ]; then
    note "building the release http example"
    cargo build --release -p netloop --example http >&2
fi
HTTP="$ROOT/target/release/examples/http"

# start_http NAME PORT ARGS...: starts the http example unpinned (the lib's
# start_server pins to one CPU, which would serialise the workers), waits until
# it answers, and sets SERVER_PID.
start_http() {
    local name=$1 port=$2
    shift 2
    "$HTTP" --addr "127.0.0.1:$port" --backend "$BACKEND" "$@" >"$WORK/$name.out" 2>"$WORK/$name.err" &
    SERVER_PID=$!
    PIDS+=("$SERVER_PID")
    for _ in $(seq 1 200); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            return 0
        fi
        kill -0 "$SERVER_PID" 2>/dev/null || break
        sleep 0.05
    done
    echo "server $name did not start:" >&2
    cat "$WORK/$name.err" >&2
    exit 1
}
stop_http() {
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
}
# wrk_rps PORT CONNS SECONDS: requests/s.
wrk_rps() {
    wrk -t1 -c"$2" -d"$3s" "http://127.0.0.1:$1/plaintext" | awk '/^Requests\/sec/ {print $2}'
}

SERVERS=("one-process:--loops 2"
         "shared:--workers 2 --loops 1 --sharing shared"
         "reuseport:--workers 2 --loops 1 --sharing reuseport")
NAMES=(one-process shared reuseport)

note "A: throughput ($ROUNDS rounds, ${DUR}s per run, $BACKEND)"
port=$((BASE_PORT + 1))
for conns in 50 256; do
    for r in $(seq 1 "$ROUNDS"); do
        for i in $(rotate "$r" 0 1 2); do
            entry=${SERVERS[$i]}
            name=${entry%%:*}
            # shellcheck disable=SC2086
            start_http "$name" "$port" ${entry#*:}
            rps=$(wrk_rps "$port" "$conns" "$DUR")
            stop_http
            echo "$rps" >>"$WORK/rps-$name-$conns"
            note "round $r, $name, $conns connections: $rps requests/s"
        done
    done
done

note "B: restart storms (${STORM}s, SIGHUP every ${EVERY}s)"
port=$((BASE_PORT + 2))
for sharing in shared reuseport; do
    RUST_LOG=info start_http "storm-$sharing" "$port" --workers 2 --loops 1 --sharing "$sharing"
    wrk -t1 -c50 -d"${STORM}s" "http://127.0.0.1:$port/plaintext" >"$WORK/storm-$sharing.wrk" &
    WRK_PID=$!
    end=$((SECONDS + STORM))
    while [ $((SECONDS + EVERY)) -le "$end" ]; do
        sleep "$EVERY"
        kill -HUP "$SERVER_PID" 2>/dev/null || true
    done
    wait "$WRK_PID" || true
    stop_http
    note "storm, $sharing: $(grep -h "Requests/sec" "$WORK/storm-$sharing.wrk")"
done

# storm_row SHARING: the table row of that storm.
storm_row() {
    local s=$1 wrk="$WORK/storm-$1.wrk" restarts requests rps steady errors non2xx
    restarts=$(grep -c "generation serving" "$WORK/storm-$s.err" || true)
    restarts=$((restarts > 0 ? restarts - 1 : 0))
    requests=$(awk '/requests in/ {print $1}' "$wrk")
    rps=$(awk '/^Requests\/sec/ {printf "%.0f", $2}' "$wrk")
    steady=$(median "$WORK/rps-$s-50")
    errors=$(awk -F'[ ,]+' '/Socket errors/ {print $4+$6+$8+$10}' "$wrk")
    non2xx=$(awk '/Non-2xx/ {print $NF}' "$wrk")
    echo "| $s | $restarts | ${requests:-0} | ${rps:-0} | $(fmt_num "$steady") | $(awk -v a="${rps:-0}" -v b="$steady" 'BEGIN {printf "%.2f", a / b}') | ${errors:-0} | ${non2xx:-0} |"
}

{
    echo "# Prefork benchmarks ($MODE run, $(date -u +%Y-%m-%d))"
    echo
    echo "Machine: $(nproc) CPUs, $(uname -r). Backend: $BACKEND. Command: \`bench/scripts/bench-prefork.sh$([ "$MODE" = quick ] && echo " --quick")$([ "$BACKEND" != epoll ] && echo " --backend $BACKEND")\`."
    echo "wrk -t1, GET /plaintext, ${DUR}s per run, $ROUNDS interleaved rounds; median (min-max) requests/s; ratio to one process."
    echo
    echo "| connections | one process, 2 loops | prefork shared (exclusive wake-ups) | ratio | prefork reuseport | ratio |"
    echo "|---|---|---|---|---|---|"
    for conns in 50 256; do
        one=$(median "$WORK/rps-one-process-$conns")
        row="| $conns | $(fmt_num "$one") ($(spread "$WORK/rps-one-process-$conns"))"
        for s in shared reuseport; do
            m=$(median "$WORK/rps-$s-$conns")
            row="$row | $(fmt_num "$m") ($(spread "$WORK/rps-$s-$conns")) | $(awk -v a="$m" -v b="$one" 'BEGIN {printf "%.2f", a / b}')"
        done
        echo "$row |"
    done
    echo
    echo "Restart storms: wrk -c 50 for ${STORM}s, SIGHUP every ${EVERY}s (each restart starts 2 workers, waits for them, retires the old 2)."
    echo
    echo "| sharing | restarts completed | requests | requests/s in the storm | steady requests/s | storm / steady | socket errors | non-2xx |"
    echo "|---|---|---|---|---|---|---|---|"
    for s in shared reuseport; do storm_row "$s"; done
} >"$OUT"
note "wrote $OUT"
cat "$OUT"
