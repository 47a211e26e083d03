#!/usr/bin/env bash
# Instructions per HTTP response, counted by valgrind's callgrind: a figure that does not move
# with whatever else the machine runs (a loopback round on a shared VM swings by tens of percent;
# this repeats to within about 3 %). It counts work, not time: system calls and cache misses are
# not in it, so it complements the http suite's responses/s rather than replacing it.
#
# Usage (from apps/bench, after `pnpm build`; needs valgrind):
#   scripts/http-instructions.sh <fastify|express|hono> <ratesync|peer|none> <admitted|refused>
# Environment: WARM (untimed requests first, default 10000), MEASURED (counted requests, default 10000).
#
# The server is the http suite's own (src/cases/http.ts), run under valgrind; autocannon loads it
# as the suite does (pipelined), and callgrind counts only between the warm-up and the end.
set -euo pipefail
framework=${1:?framework: fastify, express or hono}
variant=${2:?variant: ratesync, peer or none}
expect=${3:?path: admitted or refused}
warm=${WARM:-10000}
measured=${MEASURED:-10000}
cd "$(dirname "$0")/.."
command -v valgrind >/dev/null || { echo "valgrind is not installed (apt-get install valgrind)" >&2; exit 1; }
work=$(mktemp -d)
trap 'kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; rm -rf "$work"' EXIT
RATESYNC_BENCH_HTTP_SERVER="{\"framework\":\"$framework\",\"variant\":\"$variant\",\"expect\":\"$expect\",\"algorithm\":\"token_bucket\"}" \
  valgrind --tool=callgrind --smc-check=all-non-file --callgrind-out-file="$work/callgrind.%p" \
  node --import tsx src/cases/http.ts >"$work/port" 2>"$work/valgrind.log" &
server=$!
for _ in $(seq 900); do [ -s "$work/port" ] && break; sleep 0.2; done
port=$(head -1 "$work/port")
[ -n "$port" ] || { echo "the server did not start; see valgrind's log:" >&2; cat "$work/valgrind.log" >&2; exit 1; }
url="http://127.0.0.1:$port/"
load() { node_modules/.bin/autocannon -c 4 -p 10 -a "$1" "$url" >/dev/null 2>&1; }
# The refused path spends its one admission first.
if [ "$expect" = refused ] && [ "$variant" != none ]; then node -e 'fetch(process.argv[1]).then((r) => r.text())' "$url"; fi
load "$warm"
callgrind_control -z "$server" >/dev/null 2>&1
load "$measured"
callgrind_control -d "$server" >/dev/null 2>&1
total=$(grep -h '^summary' "$work"/callgrind.*.1 | awk '{ print $2 }')
echo "$framework $variant $expect: $((total / measured)) instructions per response (callgrind, $measured responses after $warm)"
