/**
 * The demo.
 *
 * - `pnpm demo`: in one process, many callers share a limited partner API; then an HTTP API
 *   answers two clients, one of which pushes too hard and gets 429s (memory engine, limits from
 *   `rate-sync.toml` beside this app, loaded on first use).
 * - `pnpm demo --store redis|postgres|nats`: several processes share one limit through that
 *   store, and the combined rate holds (`--processes`, default 3).
 *
 * Options: `--callers N` (per process), `--seconds S`.
 */
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { runHttpScene } from "./http-scene.js";
import { runPartnerScene } from "./partner-scene.js";
import { runSharedStoreScene, runSharedStoreWorker, SHARED_STORES, type SharedStore } from "./shared-store.js";

const USAGE = `Usage: pnpm demo [--callers N] [--seconds S] [--store ${SHARED_STORES.join("|")} [--processes P]]`;

function fail(message: string): never {
  console.error(`${message}\n${USAGE}`);
  process.exit(2);
}

const { values } = parseArgs({
  args: process.argv.slice(2).filter((arg) => arg !== "--"),
  options: {
    callers: { type: "string" },
    seconds: { type: "string", default: "6" },
    store: { type: "string" },
    processes: { type: "string", default: "3" },
    // Internal: how the shared-store scene starts its worker processes.
    worker: { type: "boolean", default: false },
    "start-at": { type: "string" },
    "end-at": { type: "string" },
  },
});

function positiveInteger(name: string, text: string): number {
  const value = Number(text);
  if (!Number.isInteger(value) || value < 1) fail(`--${name} must be a whole number >= 1, got "${text}".`);
  return value;
}

const seconds = Number(values.seconds);
if (!Number.isFinite(seconds) || seconds <= 0) fail(`--seconds must be a number > 0, got "${values.seconds}".`);
const store = values.store as SharedStore | undefined;
if (store !== undefined && !SHARED_STORES.includes(store)) {
  fail(`--store must be one of ${SHARED_STORES.join(", ")}, got "${values.store}".`);
}

let ok: boolean;
if (values.worker) {
  if (store === undefined) fail("--worker needs --store.");
  await runSharedStoreWorker({
    store,
    callers: positiveInteger("callers", values.callers ?? "1"),
    startAt: Number(values["start-at"]),
    endAt: Number(values["end-at"]),
  });
  ok = process.exitCode === undefined || process.exitCode === 0;
} else if (store !== undefined) {
  ok = await runSharedStoreScene(
    {
      store,
      processes: positiveInteger("processes", values.processes),
      callers: positiveInteger("callers", values.callers ?? "8"),
      seconds,
    },
    fileURLToPath(import.meta.url),
  );
} else {
  ok = await runPartnerScene(positiveInteger("callers", values.callers ?? "24"), seconds);
  ok = (await runHttpScene(Math.min(seconds, 3))) && ok;
}
if (!ok) process.exitCode = 1;
