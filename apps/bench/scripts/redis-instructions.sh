#!/usr/bin/env bash
# Instructions per decision at one call in flight, counted by valgrind's callgrind in both
# processes: the Redis server's and the client's (ratesync's limiter or rate-limiter-flexible on
# ioredis, as in the redis suite). A loopback round trip on a shared VM moves by tens of percent;
# these counts repeat to within a few percent whatever else the machine does. They count work, not
# time: system calls, the kernel's loopback and cache misses are not in them.
#
# Usage (from apps/bench, after `pnpm build`; needs valgrind and redis-server):
#   scripts/redis-instructions.sh <ratesync|peer> <admitted|refused> [keys]
# keys: distinct keys the calls cycle through (default 10000; 1 is the hot key).
# Environment: WARM (calls before counting, default 10000), MEASURED (counted calls, default 10000),
# PORT (of the throwaway Redis the script starts, default 6399).
set -euo pipefail
contender=${1:?contender: ratesync or peer}
expect=${2:?path: admitted or refused}
keys=${3:-10000}
warm=${WARM:-10000}
measured=${MEASURED:-10000}
port=${PORT:-6399}
cd "$(dirname "$0")/.."
command -v valgrind >/dev/null || { echo "valgrind is not installed (apt-get install valgrind)" >&2; exit 1; }
command -v redis-server >/dev/null || { echo "redis-server is not installed (apt-get install redis-server)" >&2; exit 1; }
work=$(mktemp -d)
cleanup() {
  kill "${client_pid:-}" 2>/dev/null || true
  redis-cli -p "$port" shutdown nosave >/dev/null 2>&1 || kill "${server:-}" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
valgrind --tool=callgrind --callgrind-out-file="$work/server.%p" \
  redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no >"$work/server.log" 2>&1 &
server=$!
for _ in $(seq 300); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.2; done
redis-cli -p "$port" ping >/dev/null 2>&1 || { echo "redis-server did not start on port $port:" >&2; cat "$work/server.log" >&2; exit 1; }
settings="{\"url\":\"redis://127.0.0.1:$port\",\"contender\":\"$contender\",\"expect\":\"$expect\",\"keys\":$keys,\"warm\":$warm,\"measured\":$measured}"
coproc CLIENT {
  RATESYNC_BENCH_REDIS_INSTRUCTIONS="$settings" exec valgrind --tool=callgrind --smc-check=all-non-file \
    --callgrind-out-file="$work/client.%p" node --single-threaded --import tsx src/cases/redis-instructions.ts 2>"$work/client.log"
}
client_pid=$CLIENT_PID
read -r line <&"${CLIENT[0]}" || { echo "the client failed:" >&2; cat "$work/client.log" >&2; exit 1; }
[ "$line" = warm ] || { echo "unexpected from the client: $line" >&2; exit 1; }
callgrind_control -z "$server" >/dev/null 2>&1
callgrind_control -z "$client_pid" >/dev/null 2>&1
echo go >&"${CLIENT[1]}"
read -r line <&"${CLIENT[0]}" || { echo "the client failed:" >&2; cat "$work/client.log" >&2; exit 1; }
[ "$line" = done ] || { echo "unexpected from the client: $line" >&2; exit 1; }
callgrind_control -d "$server" >/dev/null 2>&1
callgrind_control -d "$client_pid" >/dev/null 2>&1
echo end >&"${CLIENT[1]}"
wait "$client_pid" || true
count() { grep -h '^summary' "$work"/"$1".*.1 | awk '{ print $2 }'; }
server_total=$(count server)
client_total=$(count client)
echo "$contender $expect, $keys keys: server $((server_total / measured)), client $((client_total / measured)), together $(((server_total + client_total) / measured)) instructions per decision (callgrind, $measured calls after $warm)"
