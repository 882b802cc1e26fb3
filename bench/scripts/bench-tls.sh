#!/usr/bin/env bash
# TLS benchmarks: netloop against tokio-rustls peers serving with the same rustls
# config (built by netloop::tls::ServerConfigBuilder: ring provider, one ECDSA
# P-256 certificate, TLS 1.3, tickets + session cache).
#
#   echo        tls-load echo -c 50 -s 64 (ping-pong): messages/s, server CPU ns per message
#               netloop examples/echo (tls://)  vs  tokio + tokio-rustls (peer-tls-echo)
#   handshakes  tls-load handshakes -c 4, full and resumed (TLS 1.3 tickets):
#               handshakes/s, server CPU µs per handshake (same two servers)
#   https       wrk -t1 -c{50,256} https://.../plaintext: requests/s
#               netloop examples/http (tls://)  vs  hyper 1.x + tokio-rustls (peer-hyper-tls)
#   idle        tls-load idle -c N (10,000; one handshake + 1-byte ping each), then the
#               server's RSS growth per connection (fresh servers)
#
# Every server runs single-threaded pinned to CPU 0, every load generator on CPU 1,
# all on 127.0.0.1. Rounds are interleaved (each round runs every server once, in a
# rotated order); tables report the median over rounds with the min-max spread.
#
# Usage: bench/scripts/bench-tls.sh [--quick] [--rounds N] [--secs N] [--idle-conns N] [--out FILE] [--no-build]
#   --quick     2 rounds, 2 s per run, 2,000 idle connections (~2 minutes)
#   smoke test: --quick --rounds 1 --secs 1 --idle-conns 200 --out /tmp/tls-smoke.md
#   default     5 rounds, 10 s per run, 10,000 idle connections (~15 minutes)
# Needs: cargo, taskset (util-linux), wrk (for the https cell). Environment:
# BASE_PORT (default 18440) picks the ports used.
set -euo pipefail

cd "$(dirname "$0")/../.."
ROOT=$(pwd)
# shellcheck source=bench/scripts/bench-lib.sh
. "$ROOT/bench/scripts/bench-lib.sh"

QUICK=0
ROUNDS=""
IDLE=""
SECS=""
OUT="$ROOT/bench/results/BENCHMARKS-tls.md"
BUILD=1
while [ $# -gt 0 ]; do
    case "$1" in
        --quick) QUICK=1 ;;
        --rounds) ROUNDS="$2"; shift ;;
        --idle-conns) IDLE="$2"; shift ;;
        --secs) SECS="$2"; shift ;;
        --out) OUT="$2"; shift ;;
        --no-build) BUILD=0 ;;
        -h|--help) sed -n '2,30p' "$0"; exit 0 ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
    shift
done
if [ "$QUICK" = 1 ]; then
    MODE=quick; DUR=2; : "${ROUNDS:=2}"; : "${IDLE:=2000}"
else
    MODE=full; DUR=10; : "${ROUNDS:=5}"; : "${IDLE:=10000}"
fi
[ -n "$SECS" ] && DUR=$SECS
BASE_PORT=${BASE_PORT:-18440}
RUN_TIMEOUT=$((DUR + 60))

WORK=$(mktemp -d "${TMPDIR:-/tmp}/bench-tls.XXXXXX")
trap 'bench_cleanup; rm -rf "$WORK"' EXIT
trap 'exit 130' INT TERM
# 10,000 connections need as many descriptors, in the servers and the client.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

if [ "$BUILD" = 1 ]; then
    note "building release binaries"
    cargo build --release -p netloop --features tls --example echo --example http >&2
    cargo build --release -p netloop-bench-http-peers --bin peer-tls-echo --bin peer-hyper-tls --bin tls-load >&2
fi
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}/release
LOAD=("${CLIENT_CPU[@]}" "$TARGET/tls-load")
"$TARGET/tls-load" gencert --dir "$WORK/pki" >/dev/null
CERT=$WORK/pki/cert.pem
KEY=$WORK/pki/key.pem
TLS_ARGS=(--tls-cert "$CERT" --tls-key "$KEY")

# netloop's examples speak TLS once the engine's transport seam is in.
NETLOOP_TLS=0
if "$TARGET/examples/echo" --help 2>&1 | grep -q -- --tls-cert \
    && "$TARGET/examples/http" --help 2>&1 | grep -q -- --tls-cert; then
    NETLOOP_TLS=1
else
    note "netloop's examples take no --tls-cert yet: netloop cells skipped"
fi

declare -A PORT=([netloop-echo]=$BASE_PORT [tokio-rustls]=$((BASE_PORT + 1))
                 [netloop-http]=$((BASE_PORT + 2)) [hyper-rustls]=$((BASE_PORT + 3)))
# cmd NAME: the command line of server NAME.
cmd() {
    local p=${PORT[$1]}
    case "$1" in
        netloop-echo) echo "$TARGET/examples/echo --addr tls://127.0.0.1:$p --loops 1 ${TLS_ARGS[*]}" ;;
        tokio-rustls) echo "$TARGET/peer-tls-echo --addr 127.0.0.1:$p --threads 1 ${TLS_ARGS[*]}" ;;
        netloop-http) echo "$TARGET/examples/http --addr tls://127.0.0.1:$p --loops 1 ${TLS_ARGS[*]}" ;;
        hyper-rustls) echo "$TARGET/peer-hyper-tls --addr 127.0.0.1:$p --threads 1 ${TLS_ARGS[*]}" ;;
    esac
}
ECHO_SERVERS=(tokio-rustls)
HTTP_SERVERS=(hyper-rustls)
if [ "$NETLOOP_TLS" = 1 ]; then
    ECHO_SERVERS=(netloop-echo tokio-rustls)
    HTTP_SERVERS=(netloop-http hyper-rustls)
fi
declare -A PID=()
start_all() {
    for s in "$@"; do
        # shellcheck disable=SC2046
        start_server "$s" "${PORT[$s]}" $(cmd "$s")
        PID[$s]=$SERVER_PID
    done
}
stop_all() {
    for s in "$@"; do
        kill "${PID[$s]}" 2>/dev/null || true
        wait "${PID[$s]}" 2>/dev/null || true
    done
}
COMMANDS=()
for s in "${ECHO_SERVERS[@]}" "${HTTP_SERVERS[@]}"; do
    COMMANDS+=("${SERVER_CPU[*]} $(cmd "$s" | sed "s|$TARGET|target/release|; s|$WORK/pki|PKI|g")")
done

# load_cell NAME KIND ARGS...: runs tls-load KIND against server NAME, appends the
# rate and the server CPU per operation (ns) to $WORK/KIND-NAME.{rate,cpu}.
load_cell() {
    local s=$1 kind=$2
    shift 2
    local before after out ops
    before=$(cpu_ns "${PID[$s]}")
    out=$(timeout "$RUN_TIMEOUT" "${LOAD[@]}" "$@" --addr "127.0.0.1:${PORT[$s]}" --ca "$CERT" --secs "$DUR" | grep '^result')
    after=$(cpu_ns "${PID[$s]}")
    ops=$(field messages "$out")
    [ -n "$ops" ] || ops=$(field handshakes "$out")
    [ "$(field errors "$out")" = 0 ] || note "$s $kind: $out"
    field rate "$out" >>"$WORK/$kind-$s.rate"
    awk -v c=$((after - before)) -v n="$ops" 'BEGIN { if (n > 0) printf "%.0f\n", c / n }' >>"$WORK/$kind-$s.cpu"
}

# ---------------------------------------------------- echo + handshakes ----
start_all "${ECHO_SERVERS[@]}"
COMMANDS+=("${CLIENT_CPU[*]} target/release/tls-load echo --addr 127.0.0.1:PORT --ca PKI/cert.pem -c 50 -s 64 --secs $DUR")
COMMANDS+=("${CLIENT_CPU[*]} target/release/tls-load handshakes --addr 127.0.0.1:PORT --ca PKI/cert.pem -c 4 --secs $DUR [--resume]")
for ((r = 0; r < ROUNDS; r++)); do
    for s in $(rotate "$r" "${ECHO_SERVERS[@]}"); do
        note "echo round $((r + 1))/$ROUNDS: $s"
        load_cell "$s" echo echo -c 50 -s 64
        note "full handshakes round $((r + 1))/$ROUNDS: $s"
        load_cell "$s" full handshakes -c 4
        note "resumed handshakes round $((r + 1))/$ROUNDS: $s"
        load_cell "$s" resumed handshakes -c 4 --resume
    done
done
stop_all "${ECHO_SERVERS[@]}"

# ---------------------------------------------------------------- https ----
HTTPS_ROWS=()
if have wrk; then
    start_all "${HTTP_SERVERS[@]}"
    for s in "${HTTP_SERVERS[@]}"; do
        body=$(curl -sS --max-time 5 --cacert "$CERT" "https://localhost:${PORT[$s]}/plaintext" 2>&1 || true)
        [ "$body" = "Hello, World!" ] || { echo "$s: bad /plaintext answer over TLS: $body" >&2; exit 1; }
    done
    COMMANDS+=("${CLIENT_CPU[*]} wrk -t1 -c{50,256} -d${DUR}s https://127.0.0.1:PORT/plaintext")
    for conns in 50 256; do
        for ((r = 0; r < ROUNDS; r++)); do
            for s in $(rotate "$r" "${HTTP_SERVERS[@]}"); do
                note "https c=$conns round $((r + 1))/$ROUNDS: $s"
                out=$(timeout "$RUN_TIMEOUT" "${CLIENT_CPU[@]}" wrk -t1 "-c$conns" "-d${DUR}s" \
                    "https://127.0.0.1:${PORT[$s]}/plaintext" 2>&1) || { echo "$out" >&2; exit 1; }
                awk '/^Requests\/sec:/ {print $2}' <<<"$out" >>"$WORK/https-$s-$conns"
                errs=$(awk '/Non-2xx|Socket errors/' <<<"$out")
                [ -n "$errs" ] && note "$s: $errs"
            done
        done
        row="| $conns |"
        for s in netloop-http hyper-rustls; do
            f="$WORK/https-$s-$conns"
            if [ -f "$f" ]; then row+=" $(fmt_num "$(median "$f")") ($(spread "$f")) |"; else row+=" skipped |"; fi
        done
        HTTPS_ROWS+=("$row")
    done
    stop_all "${HTTP_SERVERS[@]}"
else
    note "wrk missing: skipping HTTPS (apt-get install wrk)"
fi

# ----------------------------------------------------------------- idle ----
declare -A IDLE_KB=()
COMMANDS+=("${CLIENT_CPU[*]} target/release/tls-load idle --addr 127.0.0.1:PORT --ca PKI/cert.pem -c $IDLE --hold 600")
for s in "${ECHO_SERVERS[@]}"; do
    start_all "$s"
    sleep 0.5
    before=$(rss_kb "${PID[$s]}")
    note "idle: $IDLE connections to $s"
    "${LOAD[@]}" idle --addr "127.0.0.1:${PORT[$s]}" --ca "$CERT" -c "$IDLE" --hold 600 >"$WORK/idle-$s.out" 2>&1 &
    load=$!
    for _ in $(seq 1 600); do
        grep -q 'ready=1' "$WORK/idle-$s.out" && break
        kill -0 "$load" 2>/dev/null || break
        sleep 0.5
    done
    if grep -q 'ready=1' "$WORK/idle-$s.out"; then
        sleep 1
        after=$(rss_kb "${PID[$s]}")
        IDLE_KB[$s]=$(awk -v a="$after" -v b="$before" -v n="$IDLE" 'BEGIN { printf "%.2f", (a - b) * 1024 / n / 1000 }')
    else
        note "$s: idle connections failed: $(tail -n 3 "$WORK/idle-$s.out")"
        IDLE_KB[$s]=failed
    fi
    kill "$load" 2>/dev/null || true
    wait "$load" 2>/dev/null || true
    stop_all "$s"
done

# --------------------------------------------------------------- report ----
cell() { # cell FILE: "median (min-max)" or skipped
    if [ -f "$1" ]; then echo "$(fmt_num "$(median "$1")") ($(spread "$1"))"; else echo skipped; fi
}
ratio() { # ratio FILE_A FILE_B: median(A) / median(B)
    if [ -f "$1" ] && [ -f "$2" ]; then
        awk -v a="$(median "$1")" -v b="$(median "$2")" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'
    else echo "n/a"; fi
}
{
    echo "# TLS benchmarks"
    echo
    echo "Generated by \`bench/scripts/bench-tls.sh$([ "$MODE" = quick ] && echo " --quick")\` ($MODE run: $ROUNDS interleaved rounds, ${DUR} s per run)."
    echo "Median over rounds (min-max). Servers share one rustls config (ring, ECDSA P-256, TLS 1.3, tickets + cache)."
    echo
    echo "- date: $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
    echo "- machine: $(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo), $(nproc) CPUs; kernel $(uname -sr)"
    echo "- load average at the end: $(cut -d' ' -f1-3 /proc/loadavg) (compare columns, not absolute numbers)"
    echo "- rustc: $(rustc --version 2>/dev/null || echo unknown); pinning: $PINNING"
    echo
    echo "## TLS echo (50 connections, 64 B ping-pong) and handshakes (4 client threads)"
    echo
    echo "| cell | netloop | tokio + tokio-rustls | netloop / tokio-rustls |"
    echo "|---|---:|---:|---:|"
    for kind in echo full resumed; do
        case $kind in
            echo) label="echo messages/s"; cpul="echo server CPU ns/message" ;;
            full) label="full handshakes/s"; cpul="full handshake server CPU ns" ;;
            resumed) label="resumed handshakes/s"; cpul="resumed handshake server CPU ns" ;;
        esac
        echo "| $label | $(cell "$WORK/$kind-netloop-echo.rate") | $(cell "$WORK/$kind-tokio-rustls.rate") | $(ratio "$WORK/$kind-netloop-echo.rate" "$WORK/$kind-tokio-rustls.rate") |"
        echo "| $cpul | $(cell "$WORK/$kind-netloop-echo.cpu") | $(cell "$WORK/$kind-tokio-rustls.cpu") | $(ratio "$WORK/$kind-netloop-echo.cpu" "$WORK/$kind-tokio-rustls.cpu") |"
    done
    echo
    if [ ${#HTTPS_ROWS[@]} -gt 0 ]; then
        echo "## HTTPS plaintext (wrk -t1, requests/s)"
        echo
        echo "| connections | netloop | hyper + tokio-rustls |"
        echo "|---:|---:|---:|"
        printf '%s\n' "${HTTPS_ROWS[@]}"
        echo
    fi
    echo "## Memory per idle TLS connection ($IDLE connections, server RSS growth, kB = 1000 B)"
    echo
    echo "| netloop | tokio + tokio-rustls |"
    echo "|---:|---:|"
    echo "| ${IDLE_KB[netloop-echo]:-skipped} | ${IDLE_KB[tokio-rustls]:-skipped} |"
    echo
    echo "## Commands"
    echo
    echo '```text'
    printf '%s\n' "${COMMANDS[@]}"
    echo '```'
} >"$OUT"
note "wrote $OUT"
cat "$OUT"
