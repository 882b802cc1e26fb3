#!/usr/bin/env bash
# Instructions per request of netloop's `http` and `redis` examples, and per
# echoed message of its `websocket` example (64-byte binary messages, no
# compression, keep-alive off), counted by callgrind (deterministic on a shared
# machine, unlike requests/s).
#
# Each server runs under `valgrind --tool=callgrind` twice while a client sends
# N1 and then N2 requests or messages (pipelined DEPTH deep over CONNS connections); the
# difference of the two instruction totals over N2-N1 cancels start-up, accept
# and shutdown, leaving the steady user-space cost of one request (kernel work
# is not counted). Profile a run with callgrind_annotate on the kept output.
#
# Usage: bench/scripts/callgrind-protocols.sh [--no-build] [N1 N2 DEPTH CONNS]
# Needs: valgrind, python3. Environment: PORT (default 18190).
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD=1
if [ "${1:-}" = --no-build ]; then BUILD=0; shift; fi
N1=${1:-4000}; N2=${2:-36000}; DEPTH=${3:-16}; CONNS=${4:-4}
PORT=${PORT:-18190}
command -v valgrind >/dev/null || { echo "valgrind missing (apt-get install valgrind)" >&2; exit 1; }
[ "$BUILD" = 1 ] && cargo build --release --example http --example redis --example websocket >&2
TARGET=${CARGO_TARGET_DIR:-target}/release/examples
OUT=$(mktemp -d "${TMPDIR:-/tmp}/callgrind-protocols.XXXXXX")

# client KIND N: N requests over CONNS connections, DEPTH per write, every
# answer read before the next write.
client() {
    python3 - "$1" "$2" "$DEPTH" "$CONNS" "$PORT" <<'PY'
import socket, sys
kind, n, depth, conns, port = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
# count(buf): complete answers in buf (the three servers answer fixed-size
# messages, so counting is exact).
if kind == "http":
    req, mark = b"GET /plaintext HTTP/1.1\r\nHost: b\r\n\r\n", b"Hello, World!"
    count = lambda buf: buf.count(mark)
elif kind == "redis":
    req, mark = b"*2\r\n$3\r\nGET\r\n$3\r\nkey\r\n", b"\r\n$3\r\nval\r\n"[-5:]
    count = lambda buf: buf.count(mark)
else:
    # A masked 64-byte binary frame (mask key 1,2,3,4); the echo is unmasked.
    payload, key = bytes(range(64)), bytes([1, 2, 3, 4])
    req = bytes([0x82, 0x80 | 64]) + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))
    count = lambda buf: len(buf) // (2 + 64)
socks = [socket.create_connection(("127.0.0.1", port)) for _ in range(conns)]
if kind == "redis":
    socks[0].sendall(b"*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$3\r\nval\r\n"); socks[0].recv(16)
if kind == "websocket":
    for s in socks:
        s.sendall(b"GET /echo HTTP/1.1\r\nHost: b\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
        head = b""
        while b"\r\n\r\n" not in head:
            head += s.recv(4096)
        assert head.startswith(b"HTTP/1.1 101 ") and head.endswith(b"\r\n\r\n"), head
per = n // conns // depth
for _ in range(per):
    for s in socks:
        s.sendall(req * depth)
    for s in socks:
        got, buf = 0, b""
        while got < depth:
            buf += s.recv(65536)
            got = count(buf)
for s in socks:
    s.close()
PY
}

# run NAME KIND N: total instructions of the server serving N requests.
run() {
    local name=$1 kind=$2 n=$3 args
    case "$kind" in
        http) args=(--head-timeout 0 --body-timeout 0 --keep-alive 0) ;;
        redis) args=(--command-timeout 0 --idle-timeout 0) ;;
        websocket) args=(--ping-interval 0) ;;
    esac
    valgrind --tool=callgrind --callgrind-out-file="$OUT/$name.$n.out" \
        "$TARGET/$name" --addr "127.0.0.1:$PORT" --loops 1 "${args[@]}" >"$OUT/$name.$n.log" 2>&1 &
    local pid=$!
    for _ in $(seq 1 200); do
        (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break
        sleep 0.1
    done
    client "$kind" "$n"
    kill -INT "$pid"; wait "$pid" || true
    awk '/^summary:|^totals:/ {print $2; exit}' "$OUT/$name.$n.out"
}

for pair in "http http" "redis redis" "websocket websocket"; do
    read -r name kind <<<"$pair"
    a=$(run "$name" "$kind" "$N1"); b=$(run "$name" "$kind" "$N2")
    unit=request; [ "$kind" = websocket ] && unit=message
    awk -v a="$a" -v b="$b" -v n1="$N1" -v n2="$N2" -v k="$name" -v d="$DEPTH" -v u="$unit" \
        'BEGIN { printf "%-9s pipeline %2d: %.0f instructions/%s (%d - %d instructions, %d - %d %ss)\n", k, d, (b-a)/(n2-n1), u, b, a, n2, n1, u }'
done
echo "callgrind output kept in $OUT (callgrind_annotate $OUT/http.$N2.out)"
