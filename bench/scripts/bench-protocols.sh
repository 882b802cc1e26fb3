#!/usr/bin/env bash
# Protocol benchmarks: netloop's `http` and `redis` examples against peers.
#
#   HTTP  (wrk, GET /plaintext, 50 and 256 connections, plain and pipelined 16):
#         netloop examples/http  vs  hyper 1.x (peer-hyper)  vs  may_minihttp (peer-minihttp)
#   Redis (redis-benchmark -t ping,set,get -c 50, with and without -P 16):
#         netloop examples/redis  vs  redis-server (--save '' --appendonly no)
#
# Every server runs single-threaded pinned to CPU 0 (taskset -c 0), every load
# generator single-threaded pinned to CPU 1, all on 127.0.0.1. Rounds are
# interleaved (each round runs every server once, in a rotated order) and the
# tables report the median requests/s over rounds, with the min-max spread, and
# the median server CPU per request: the server's CPU time over the run (every
# thread, from /proc/PID/task/*/schedstat) divided by the requests it answered.
#
# Usage: bench/scripts/bench-protocols.sh [--quick] [--rounds N] [--out FILE] [--no-build]
#   --quick     3 rounds, 2 s per wrk run, redis-benchmark -n 100000 (~3 minutes)
#   default     5 rounds, 10 s per wrk run, redis-benchmark -n 1000000 (~20 minutes)
# Needs: cargo, taskset (util-linux), wrk, redis-benchmark + redis-cli
# (redis-tools), redis-server, curl. A missing tool skips its part with a note.
# Environment: BASE_PORT (default 18080) picks the ports used.
set -euo pipefail

cd "$(dirname "$0")/../.."
ROOT=$(pwd)

QUICK=0
ROUNDS=""
OUT="$ROOT/bench/results/BENCHMARKS-protocols.md"
BUILD=1
while [ $# -gt 0 ]; do
    case "$1" in
        --quick) QUICK=1 ;;
        --rounds) ROUNDS="$2"; shift ;;
        --out) OUT="$2"; shift ;;
        --no-build) BUILD=0 ;;
        -h|--help) sed -n '2,24p' "$0"; exit 0 ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
    shift
done

if [ "$QUICK" = 1 ]; then
    MODE=quick; DUR=2; REDIS_N=100000; : "${ROUNDS:=3}"
else
    MODE=full; DUR=10; REDIS_N=1000000; : "${ROUNDS:=5}"
fi
BASE_PORT=${BASE_PORT:-18080}
WRK_TIMEOUT=$((DUR + 30))
REDIS_TIMEOUT=300

WORK=$(mktemp -d "${TMPDIR:-/tmp}/bench-protocols.XXXXXX")
# shellcheck source=bench/scripts/bench-lib.sh
. "$ROOT/bench/scripts/bench-lib.sh"
cleanup() {
    bench_cleanup
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [ "$BUILD" = 1 ]; then
    note "building release binaries"
    cargo build --release -p netloop --example http --example redis >&2
    cargo build --release -p netloop-bench-http-peers >&2
fi
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}/release

# The PID of each server, for its CPU time.
declare -A PID_OF

# cpu_per_request CPU0 CPU1 REQUESTS: ns of server CPU per request.
cpu_per_request() {
    awk -v a="$1" -v b="$2" -v n="$3" 'BEGIN { if (n > 0) printf "%.0f\n", (b - a) / n; else print "n/a" }'
}

COMMANDS=()
HTTP_ROWS=()
REDIS_ROWS=()

# ---------------------------------------------------------------- HTTP ----
if have wrk && have curl; then
    declare -A HTTP_PORT=([netloop]=$BASE_PORT [hyper]=$((BASE_PORT + 1)) [minihttp]=$((BASE_PORT + 2)))
    HTTP_SERVERS=()
    start_server netloop-http "${HTTP_PORT[netloop]}" "$TARGET/examples/http" --addr "127.0.0.1:${HTTP_PORT[netloop]}" --loops 1
    HTTP_SERVERS+=(netloop)
    PID_OF[http-netloop]=$SERVER_PID
    start_server hyper "${HTTP_PORT[hyper]}" "$TARGET/peer-hyper" --addr "127.0.0.1:${HTTP_PORT[hyper]}" --threads 1
    HTTP_SERVERS+=(hyper)
    PID_OF[http-hyper]=$SERVER_PID
    if [ -x "$TARGET/peer-minihttp" ]; then
        start_server minihttp "${HTTP_PORT[minihttp]}" "$TARGET/peer-minihttp" --addr "127.0.0.1:${HTTP_PORT[minihttp]}" --threads 1
        HTTP_SERVERS+=(minihttp)
        PID_OF[http-minihttp]=$SERVER_PID
    else
        note "peer-minihttp not built: skipping may_minihttp"
    fi
    COMMANDS+=("${SERVER_CPU[*]} target/release/examples/http --addr 127.0.0.1:${HTTP_PORT[netloop]} --loops 1")
    COMMANDS+=("${SERVER_CPU[*]} target/release/peer-hyper --addr 127.0.0.1:${HTTP_PORT[hyper]} --threads 1")
    COMMANDS+=("${SERVER_CPU[*]} target/release/peer-minihttp --addr 127.0.0.1:${HTTP_PORT[minihttp]} --threads 1")
    for s in "${HTTP_SERVERS[@]}"; do
        body=$(curl -sS --max-time 5 "http://127.0.0.1:${HTTP_PORT[$s]}/plaintext")
        [ "$body" = "Hello, World!" ] || { echo "$s: bad /plaintext answer: $body" >&2; exit 1; }
        body=$(curl -sS --max-time 5 "http://127.0.0.1:${HTTP_PORT[$s]}/json")
        [ "$body" = '{"message":"Hello, World!"}' ] || { echo "$s: bad /json answer: $body" >&2; exit 1; }
    done
    CONFIGS=("50 1" "50 16" "256 1" "256 16")
    COMMANDS+=("${CLIENT_CPU[*]} wrk -t1 -c{50,256} -d${DUR}s http://127.0.0.1:PORT/plaintext")
    COMMANDS+=("${CLIENT_CPU[*]} wrk -t1 -c{50,256} -d${DUR}s -s bench/scripts/wrk-pipeline.lua http://127.0.0.1:PORT/plaintext -- 16")
    for cfg in "${CONFIGS[@]}"; do
        read -r conns depth <<<"$cfg"
        for ((r = 0; r < ROUNDS; r++)); do
            for s in $(rotate "$r" "${HTTP_SERVERS[@]}"); do
                url="http://127.0.0.1:${HTTP_PORT[$s]}/plaintext"
                if [ "$depth" = 1 ]; then
                    args=(-t1 "-c$conns" "-d${DUR}s" "$url")
                else
                    args=(-t1 "-c$conns" "-d${DUR}s" -s "$ROOT/bench/scripts/wrk-pipeline.lua" "$url" -- "$depth")
                fi
                note "http c=$conns pipeline=$depth round $((r + 1))/$ROUNDS: $s"
                cpu0=$(cpu_ns "${PID_OF[http-$s]}")
                out=$(timeout "$WRK_TIMEOUT" "${CLIENT_CPU[@]}" wrk "${args[@]}" 2>&1) || { echo "$out" >&2; exit 1; }
                cpu1=$(cpu_ns "${PID_OF[http-$s]}")
                rps=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
                reqs=$(awk '/ requests in / {print $1}' <<<"$out")
                errs=$(awk '/Non-2xx|Socket errors/' <<<"$out")
                [ -n "$errs" ] && note "$s: $errs"
                echo "${rps:-0}" >>"$WORK/http-$s-$conns-$depth"
                cpu_per_request "$cpu0" "$cpu1" "${reqs:-0}" >>"$WORK/http-cpu-$s-$conns-$depth"
            done
        done
        row="| $conns | $depth |"
        for s in netloop hyper minihttp; do
            f="$WORK/http-$s-$conns-$depth"
            if [ -f "$f" ]; then
                row+=" $(fmt_num "$(median "$f")") ($(spread "$f")) |"
            else
                row+=" skipped |"
            fi
        done
        for s in netloop hyper minihttp; do
            f="$WORK/http-cpu-$s-$conns-$depth"
            if [ -f "$f" ]; then row+=" $(fmt_num "$(median "$f")") |"; else row+=" - |"; fi
        done
        HTTP_ROWS+=("$row")
    done
else
    note "wrk or curl missing: skipping HTTP (apt-get install wrk curl)"
fi

# --------------------------------------------------------------- Redis ----
if have redis-benchmark && have redis-server && have redis-cli; then
    declare -A REDIS_PORT=([netloop]=$((BASE_PORT + 10)) [redis]=$((BASE_PORT + 11)))
    start_server netloop-redis "${REDIS_PORT[netloop]}" "$TARGET/examples/redis" --addr "127.0.0.1:${REDIS_PORT[netloop]}" --loops 1
    PID_OF[redis-netloop]=$SERVER_PID
    start_server redis-server "${REDIS_PORT[redis]}" redis-server --port "${REDIS_PORT[redis]}" --bind 127.0.0.1 \
        --save '' --appendonly no --daemonize no --protected-mode no
    PID_OF[redis-redis]=$SERVER_PID
    COMMANDS+=("${SERVER_CPU[*]} target/release/examples/redis --addr 127.0.0.1:${REDIS_PORT[netloop]} --loops 1")
    COMMANDS+=("${SERVER_CPU[*]} redis-server --port ${REDIS_PORT[redis]} --bind 127.0.0.1 --save '' --appendonly no --daemonize no --protected-mode no")
    COMMANDS+=("${CLIENT_CPU[*]} redis-benchmark -h 127.0.0.1 -p PORT -t {ping_inline,ping_mbulk,set,get} -n $REDIS_N -c 50 --csv [-P 16]")
    for s in netloop redis; do
        [ "$(redis-cli -h 127.0.0.1 -p "${REDIS_PORT[$s]}" ping)" = PONG ] || { echo "$s: no PONG" >&2; exit 1; }
    done
    for pipe in 1 16; do
        for ((r = 0; r < ROUNDS; r++)); do
            for s in $(rotate "$r" netloop redis); do
                note "redis -P $pipe round $((r + 1))/$ROUNDS: $s"
                # One test per run, so the server's CPU time is that test's.
                for t in ping_inline ping_mbulk set get; do
                    cpu0=$(cpu_ns "${PID_OF[redis-$s]}")
                    out=$(timeout "$REDIS_TIMEOUT" "${CLIENT_CPU[@]}" redis-benchmark -h 127.0.0.1 -p "${REDIS_PORT[$s]}" \
                        -t "$t" -n "$REDIS_N" -c 50 -P "$pipe" --csv 2>/dev/null) || { echo "$out" >&2; exit 1; }
                    cpu1=$(cpu_ns "${PID_OF[redis-$s]}")
                    # CSV lines: "TEST","rps",...
                    while IFS=, read -r test rps _; do
                        test=${test//\"/}
                        rps=${rps//\"/}
                        case "$test" in
                            PING_INLINE|PING_MBULK|SET|GET)
                                echo "$rps" >>"$WORK/redis-$s-$test-$pipe"
                                cpu_per_request "$cpu0" "$cpu1" "$REDIS_N" >>"$WORK/redis-cpu-$s-$test-$pipe"
                                ;;
                        esac
                    done <<<"$out"
                done
            done
        done
        for test in PING_INLINE PING_MBULK SET GET; do
            row="| $test | $pipe |"
            for s in netloop redis; do
                f="$WORK/redis-$s-$test-$pipe"
                if [ -f "$f" ]; then
                    row+=" $(fmt_num "$(median "$f")") ($(spread "$f")) |"
                else
                    row+=" n/a |"
                fi
            done
            for s in netloop redis; do
                f="$WORK/redis-cpu-$s-$test-$pipe"
                if [ -f "$f" ]; then row+=" $(fmt_num "$(median "$f")") |"; else row+=" - |"; fi
            done
            REDIS_ROWS+=("$row")
        done
    done
else
    note "redis-benchmark/redis-cli/redis-server missing: skipping Redis (apt-get install redis-tools redis-server)"
fi

# -------------------------------------------------------------- report ----
{
    echo "# Protocol benchmarks"
    echo
    echo "Generated by \`bench/scripts/bench-protocols.sh$([ "$MODE" = quick ] && echo " --quick")\` ($MODE run: $ROUNDS interleaved rounds, "
    echo "wrk ${DUR} s per run, redis-benchmark -n $REDIS_N per test). Numbers are requests/s: median over rounds (min-max);"
    echo "server CPU is ns of the server's CPU time per request answered (median over rounds; lower is better)."
    echo
    echo "- date: $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
    echo "- machine: $(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo), $(nproc) CPUs, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo)"
    echo "- kernel: $(uname -sr)"
    echo "- load average at the end: $(cut -d' ' -f1-3 /proc/loadavg) (the machine may be shared: compare columns, not absolute numbers)"
    echo "- rustc: $(rustc --version 2>/dev/null || echo unknown); release profile (thin LTO, codegen-units 1)"
    echo "- wrk: $(wrk -v 2>&1 | head -n1 | cut -d' ' -f1-2 || true); redis-server: $(redis-server --version 2>/dev/null | awk '{print $3}' || true)"
    echo "- pinning: $PINNING; every server single-threaded (netloop --loops 1, hyper current-thread runtime, may_minihttp 1 worker, redis-server)"
    echo
    if [ ${#HTTP_ROWS[@]} -gt 0 ]; then
        echo "## HTTP plaintext (wrk)"
        echo
        echo "| connections | pipeline | netloop | hyper 1.x | may_minihttp | CPU ns/req netloop | hyper | may |"
        echo "|---:|---:|---:|---:|---:|---:|---:|---:|"
        printf '%s\n' "${HTTP_ROWS[@]}"
        echo
    fi
    if [ ${#REDIS_ROWS[@]} -gt 0 ]; then
        echo "## Redis (redis-benchmark, 50 clients)"
        echo
        echo "| test | pipeline (-P) | netloop | redis-server | CPU ns/req netloop | redis-server |"
        echo "|---|---:|---:|---:|---:|---:|"
        printf '%s\n' "${REDIS_ROWS[@]}"
        echo
    fi
    echo "## Commands"
    echo
    echo '```text'
    printf '%s\n' "${COMMANDS[@]}"
    echo '```'
} >"$OUT"
note "wrote $OUT"
cat "$OUT"
