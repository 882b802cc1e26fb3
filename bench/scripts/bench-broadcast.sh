#!/usr/bin/env bash
# Fan-out cost before and after async_write took `Bytes` (issue 11): the broadcast
# example's self-test (N clients x R rounds x S-byte lines, all in one process),
# run alternately with the example built at two git revisions; prints CPU and peak
# RSS of each run and the medians.
#
#   bench/scripts/bench-broadcast.sh [BEFORE_REV] [RUNS]
#
# BEFORE_REV defaults to the commit before async_write took Bytes (5f53d6c^);
# BEFORE_BIN=path skips building it. CLIENTS, ROUNDS, SIZE override the shape.
set -euo pipefail
cd "$(dirname "$0")/../.."
before_rev=${1:-5f53d6c^}
runs=${2:-3}
clients=${CLIENTS:-4000}
rounds=${ROUNDS:-5}
size=${SIZE:-65536}

cargo build --release -q --example broadcast
after_bin=target/release/examples/broadcast
before_bin=${BEFORE_BIN:-}
if [ -z "$before_bin" ]; then
  tmp=$(mktemp -d)
  git worktree add -q --detach "$tmp/src" "$before_rev"
  (cd "$tmp/src" && CARGO_TARGET_DIR="$tmp/target" cargo build --release -q --example broadcast)
  before_bin="$tmp/target/release/examples/broadcast"
  trap 'git worktree remove --force "$tmp/src"; rm -rf "$tmp"' EXIT
fi

ulimit -n 20000
run() { # $1 = binary; prints "cpu_ms rss_mib"
  "$1" --addr 127.0.0.1:0 --clients "$clients" --rounds "$rounds" --size "$size" --interval-ms 200 2>/dev/null |
    sed -n 's/.*cpu \([0-9]*\) ms, peak rss \([0-9.]*\) MiB.*/\1 \2/p'
}
declare -a bc br ac ar
for i in $(seq 1 "$runs"); do
  read -r c r < <(run "$before_bin"); bc+=("$c"); br+=("$r")
  echo "run $i before (Vec copy per connection): cpu ${c} ms, peak rss ${r} MiB"
  read -r c r < <(run "$after_bin"); ac+=("$c"); ar+=("$r")
  echo "run $i after  (one shared Bytes):        cpu ${c} ms, peak rss ${r} MiB"
done
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
echo "machine: $(nproc) cores, $(uname -r); ${clients} clients x ${rounds} rounds x ${size} B"
echo "median before: cpu $(median "${bc[@]}") ms, peak rss $(median "${br[@]}") MiB"
echo "median after:  cpu $(median "${ac[@]}") ms, peak rss $(median "${ar[@]}") MiB"
