# Helpers shared by the benchmark scripts (sourced, not run): server start-up and
# cleanup, CPU pinning, per-process CPU time and memory, medians over rounds,
# rotation of the server order per round.
#
# The sourcing script sets WORK (a scratch directory) before calling start_server.

PIDS=()
bench_cleanup() {
    for pid in "${PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
}

note() { echo "== $*" >&2; }
have() { command -v "$1" >/dev/null 2>&1; }

# CPU pinning: server on CPU 0, load generator on CPU 1 (when there is one).
if have taskset && [ "$(nproc)" -ge 2 ]; then
    SERVER_CPU=(taskset -c 0)
    CLIENT_CPU=(taskset -c 1)
    PINNING="server on CPU 0, load generator on CPU 1 (taskset)"
else
    SERVER_CPU=()
    CLIENT_CPU=()
    PINNING="no pinning (taskset missing or fewer than 2 CPUs)"
fi

# start_server NAME PORT CMD...: starts CMD pinned to the server CPU, waits until
# the port accepts connections, and sets SERVER_PID.
start_server() {
    local name=$1 port=$2
    shift 2
    "${SERVER_CPU[@]}" "$@" >"$WORK/$name.log" 2>&1 &
    SERVER_PID=$!
    PIDS+=("$SERVER_PID")
    for _ in $(seq 1 100); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            return 0
        fi
        if ! kill -0 "$SERVER_PID" 2>/dev/null; then
            break
        fi
        sleep 0.1
    done
    echo "server $name did not come up on port $port:" >&2
    cat "$WORK/$name.log" >&2
    exit 1
}

# cpu_ns PID: CPU time of every thread of PID so far, in ns (schedstat).
cpu_ns() {
    cat /proc/"$1"/task/*/schedstat 2>/dev/null | awk '{s += $1} END {printf "%.0f\n", s}'
}

# rss_kb PID: resident memory of PID in KiB.
rss_kb() {
    awk '/^VmRSS:/ {print $2}' /proc/"$1"/status
}

# median FILE / spread FILE: median and min-max of the numbers in FILE.
median() {
    sort -g "$1" | awk '{v[NR]=$1} END {if (NR==0) {print "n/a"} else if (NR%2) {print v[(NR+1)/2]} else {print (v[NR/2]+v[NR/2+1])/2}}'
}
spread() {
    sort -g "$1" | awk 'NR==1{lo=$1} {hi=$1} END {if (NR==0) print "n/a"; else printf "%.0f-%.0f", lo, hi}'
}
fmt_num() { awk -v v="$1" 'BEGIN { if (v=="n/a") print v; else printf "%.0f", v }'; }

# rotate N ITEMS...: the items rotated left by N (interleaved order per round).
rotate() {
    local n=$1
    shift
    local items=("$@") out=() i
    for ((i = 0; i < ${#items[@]}; i++)); do
        out+=("${items[$(((i + n) % ${#items[@]}))]}")
    done
    echo "${out[@]}"
}

# field KEY LINE: the value of KEY=VALUE in a `result ...` line.
field() {
    tr ' ' '\n' <<<"$2" | awk -F= -v k="$1" '$1 == k {print $2}'
}
