#!/usr/bin/env bash
# WebSocket benchmark: netloop's `websocket` example against tokio-tungstenite
# (bench/websocket peer-tungstenite) and, when installed, Python's `websockets`.
#
#   echo   ws-load echo: 50 connections, 1 message in flight each, 64-byte binary
#          messages; messages/s and server CPU per message (from
#          /proc/PID/task/*/schedstat over the whole run), with and without
#          permessage-deflate offered (tungstenite does not implement it).
#   idle   memory per idle WebSocket connection: server RSS delta over N
#          connections, against the same figure for idle plain TCP connections
#          on netloop's `echo` example (the "beyond an idle TCP connection" part);
#          netloop with keep-alive off (the goal: <= 128 B beyond idle TCP) and
#          on (a ping timer per connection; the interval is long enough that no
#          ping goes out while the figure is taken).
#
# Every server runs on one thread pinned to CPU 0, the load generator on CPU 1.
# Rounds are interleaved; the table shows the median over rounds.
#
# Usage: bench/scripts/bench-websocket.sh [--quick] [--rounds N] [--conns N] [--idle N] [--out FILE] [--no-build]
#   --quick    2 rounds of 2 s, 2,000 idle connections (~1 minute plus build)
#   default    5 rounds of 10 s, 10,000 idle connections
# Needs: cargo, taskset; python3 + websockets for the third column (skipped otherwise).
# Environment: BASE_PORT (default 19100).
set -euo pipefail

cd "$(dirname "$0")/../.."
ROOT=$(pwd)
# shellcheck source=bench/scripts/bench-lib.sh
. "$ROOT/bench/scripts/bench-lib.sh"

QUICK=0
ROUNDS=""
IDLE=""
CONNS=50
OUT="$ROOT/bench/results/BENCHMARKS-websocket.md"
BUILD=1
while [ $# -gt 0 ]; do
    case "$1" in
        --quick) QUICK=1 ;;
        --rounds) ROUNDS="$2"; shift ;;
        --conns) CONNS="$2"; shift ;;
        --idle) IDLE="$2"; shift ;;
        --out) OUT="$2"; shift ;;
        --no-build) BUILD=0 ;;
        -h|--help) sed -n '2,22p' "$0"; exit 0 ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
    shift
done
if [ "$QUICK" = 1 ]; then
    DUR=2; : "${ROUNDS:=2}"; : "${IDLE:=2000}"
else
    DUR=10; : "${ROUNDS:=5}"; : "${IDLE:=10000}"
fi
BASE_PORT=${BASE_PORT:-19100}

WORK=$(mktemp -d "${TMPDIR:-/tmp}/bench-websocket.XXXXXX")
cleanup() {
    bench_cleanup
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if have taskset && [ "$(nproc)" -ge 2 ]; then
    SERVER_CPU=(taskset -c 0); CLIENT_CPU=(taskset -c 1)
    PINNING="server on CPU 0, load generator on CPU 1"
else
    SERVER_CPU=(); CLIENT_CPU=()
    PINNING="no pinning (taskset missing or one CPU)"
fi

if [ "$BUILD" = 1 ]; then
    note "building release binaries"
    cargo build --release -p netloop --example websocket --example echo >&2
    cargo build --release -p netloop-bench-websocket >&2
fi
BIN="$ROOT/target/release"
LOAD="$BIN/ws-load"

PY_SERVER='
import asyncio, sys
from websockets.asyncio.server import serve
async def echo(ws):
    async for m in ws:
        await ws.send(m)
async def main():
    async with serve(echo, "127.0.0.1", int(sys.argv[1]), max_size=None) as s:
        print("listening", flush=True)
        await asyncio.get_running_loop().create_future()
asyncio.run(main())
'
HAVE_PY=0
if have python3 && python3 -c "import websockets.asyncio.server" 2>/dev/null; then HAVE_PY=1; fi

# start NAME PORT: starts a server, sets SERVER_PID, waits until it listens.
start() {
    local name=$1 port=$2
    case "$name" in
        netloop) "${SERVER_CPU[@]}" "$BIN/examples/websocket" --addr "127.0.0.1:$port" --loops 1 --deflate --ping-interval 0 >"$WORK/$name.log" 2>&1 & ;;
        netloop-keepalive) "${SERVER_CPU[@]}" "$BIN/examples/websocket" --addr "127.0.0.1:$port" --loops 1 --deflate --ping-interval 600 >"$WORK/$name.log" 2>&1 & ;;
        netloop-tcp) "${SERVER_CPU[@]}" "$BIN/examples/echo" --addr "127.0.0.1:$port" --loops 1 >"$WORK/$name.log" 2>&1 & ;;
        tungstenite) "${SERVER_CPU[@]}" "$BIN/peer-tungstenite" --addr "127.0.0.1:$port" >"$WORK/$name.log" 2>&1 & ;;
        python) "${SERVER_CPU[@]}" python3 -c "$PY_SERVER" "$port" >"$WORK/$name.log" 2>&1 & ;;
    esac
    SERVER_PID=$!
    PIDS+=("$SERVER_PID")
    for _ in $(seq 100); do
        kill -0 "$SERVER_PID" 2>/dev/null || break
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    echo "$name did not start; log:" >&2; cat "$WORK/$name.log" >&2; return 1
}
stop() { kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; }

SERVERS=(netloop tungstenite)
[ "$HAVE_PY" = 1 ] && SERVERS+=(python)

# ----- echo throughput -----
port=$BASE_PORT
for round in $(seq "$ROUNDS"); do
    for name in "${SERVERS[@]}"; do
        for deflate in "" "--deflate"; do
            [ "$name" = tungstenite ] && [ -n "$deflate" ] && continue
            port=$((port + 1))
            start "$name" "$port"
            before=$(cpu_ns "$SERVER_PID")
            out=$("${CLIENT_CPU[@]}" "$LOAD" echo --addr "127.0.0.1:$port" -c "$CONNS" -d 1 -s 64 \
                --duration "$DUR" --warmup 1 $deflate || echo "failed")
            after=$(cpu_ns "$SERVER_PID")
            stop
            key="$name${deflate:+-deflate}"
            rate=$(echo "$out" | awk '{for (i = 1; i < NF; i++) if ($i == "msgs_per_s") print $(i + 1)}')
            total=$(echo "$out" | awk '{for (i = 1; i < NF; i++) if ($i == "total") print $(i + 1)}')
            comp=$(echo "$out" | awk '{for (i = 1; i < NF; i++) if ($i == "compressed") print $(i + 1)}')
            if [ -n "$rate" ] && [ "${total:-0}" -gt 0 ]; then
                echo "$rate" >>"$WORK/rate-$key"
                echo $(( (after - before) / total )) >>"$WORK/cpu-$key"
                echo "$comp" >"$WORK/comp-$key"
                note "round $round $key: $rate msgs/s, $(( (after - before) / total )) ns CPU/msg, compressed=$comp"
            else
                note "round $round $key: $out"
            fi
        done
    done
done

# ----- idle memory -----
idle_per_conn() { # NAME PORT [ws-load flags...] -> bytes per connection
    local name=$1 port=$2; shift 2
    start "$name" "$port"
    sleep 0.5
    local base; base=$(rss_kb "$SERVER_PID")
    "${CLIENT_CPU[@]}" "$LOAD" idle --addr "127.0.0.1:$port" -c "$IDLE" --hold 600 "$@" >"$WORK/idle.out" 2>&1 &
    local lpid=$!
    PIDS+=("$lpid")
    for _ in $(seq 3000); do grep -q '^ready' "$WORK/idle.out" && break; kill -0 "$lpid" 2>/dev/null || break; sleep 0.1; done
    sleep 1
    local held; held=$(rss_kb "$SERVER_PID")
    kill "$lpid" 2>/dev/null || true; wait "$lpid" 2>/dev/null || true
    stop
    if grep -q '^ready' "$WORK/idle.out"; then
        echo $(( (held - base) * 1024 / IDLE ))
    else
        note "idle $name failed: $(cat "$WORK/idle.out")"; echo "n/a"
    fi
}
port=$((port + 1)); TCP=$(idle_per_conn netloop-tcp "$port" --plain)
declare -A IDLE_WS IDLE_WSZ
for name in "${SERVERS[@]}" netloop-keepalive; do
    port=$((port + 1)); IDLE_WS[$name]=$(idle_per_conn "$name" "$port")
    port=$((port + 1)); IDLE_WSZ[$name]=$(idle_per_conn "$name" "$port" --deflate)
done

# ----- report -----
{
    echo "# WebSocket benchmark"
    echo
    echo "\`bench/scripts/bench-websocket.sh $([ "$QUICK" = 1 ] && echo --quick)\` on $(nproc) CPUs, $(date -u +%Y-%m-%d); $PINNING."
    echo "Echo: $CONNS connections, 1 message of 64 bytes in flight each, ${DUR} s per run, median of $ROUNDS rounds."
    echo
    echo "| server | compression | msgs/s | server CPU ns/msg |"
    echo "|---|---|---:|---:|"
    for name in "${SERVERS[@]}"; do
        for key in "$name" "$name-deflate"; do
            [ -f "$WORK/rate-$key" ] || continue
            echo "| $name | $(cat "$WORK/comp-$key") | $(median "$WORK/rate-$key") | $(median "$WORK/cpu-$key") |"
        done
    done
    echo
    echo "Idle connections: $IDLE, server RSS delta per connection (bytes). Idle plain TCP on netloop's echo: $TCP."
    echo
    echo "| server | WebSocket | WebSocket, deflate offered | beyond idle TCP (netloop) |"
    echo "|---|---:|---:|---:|"
    for name in "${SERVERS[@]}" netloop-keepalive; do
        beyond="-"
        if [ "${name#netloop}" != "$name" ] && [ "$TCP" != n/a ] && [ "${IDLE_WS[$name]}" != n/a ] && [ "${IDLE_WSZ[$name]}" != n/a ]; then
            beyond="$(( IDLE_WS[$name] - TCP )) / $(( IDLE_WSZ[$name] - TCP ))"
        fi
        echo "| $name | ${IDLE_WS[$name]} | ${IDLE_WSZ[$name]} | $beyond |"
    done
} | tee "$OUT"
