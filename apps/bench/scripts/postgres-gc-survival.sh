#!/usr/bin/env bash
# How much of the young generation survives each scavenge while the PostgreSQL engine's hot path
# runs (one call in flight on one hot key, every call admitted), next to the bench's raw upsert
# through postgres.js. A call's objects should die young: when V8 keeps them through scavenges
# (they are promoted, and the old generation fills and is marked and compacted over and over),
# garbage collection costs more than the engine's own work. `PostgresEngine#lone` in
# packages/postgres/src/engine.ts is shaped to keep this low: measure before and after reshaping
# it. Which code shapes make V8 keep calls' objects is not understood (see that function); the
# figure repeats within a few percent from run to run for most builds, but some flip between two
# levels, so run it three times: in December 2026 ratesync gave 0.24 MB twice and 1.2 MB once,
# the raw query 3 KB. There is more to find.
#
# Usage (from apps/bench, after `pnpm build`; needs a PostgreSQL server, see BENCH_POSTGRES_URL):
#   scripts/postgres-gc-survival.sh [ratesync|raw]...   (default: both)
# Environment: SECONDS (measured, default 3), BENCH_POSTGRES_URL.
set -euo pipefail
cd "$(dirname "$0")/.."
contenders=("$@")
[ ${#contenders[@]} -gt 0 ] || contenders=(ratesync raw)
for contender in "${contenders[@]}"; do
  node --trace-gc-nvp scripts/postgres-gc-survival.mjs "$contender" | awk -v who="$contender" '
    /^measure$/ { on = 1; next }
    /^calls / { calls = $2; next }
    on && / gc=s / {
      for (i = 1; i <= NF; i++) {
        split($i, kv, "=")
        if (kv[1] == "new_space_survived") survived[++n] = kv[2]
        if (kv[1] == "promoted") promoted += kv[2]
      }
    }
    END {
      if (n == 0) { printf "%-9s no scavenge while measuring (raise SECONDS)\n", who; exit }
      asort(survived)
      printf "%-9s %6.0f KB survived a scavenge (median of %d), %5.0f bytes promoted per call (%d calls)\n",
        who, survived[int((n + 1) / 2)] / 1024, n, promoted / calls, calls
    }'
done
