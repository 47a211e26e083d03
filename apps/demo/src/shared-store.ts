/**
 * The shared-store scene: several processes, each with its own callers, share one limit through
 * Redis, PostgreSQL or NATS. Every process loads the same `shared/<store>.toml`; the parent starts
 * them at one instant, collects every admission they report, and shows second by second that the
 * combined rate holds, whichever process asks.
 */
import { type ChildProcess, fork } from "node:child_process";
import { setMaxListeners } from "node:events";
import { fileURLToPath } from "node:url";
import { createRateSync, isRateSyncError } from "@ratesync/core";

/** The stores the scene can share a limit through. */
export const SHARED_STORES = ["redis", "postgres", "nats"] as const;

/** One of {@link SHARED_STORES}. */
export type SharedStore = (typeof SHARED_STORES)[number];

/** Options of the scene. */
export interface SharedSceneOptions {
  readonly store: SharedStore;
  /** Worker processes. */
  readonly processes: number;
  /** Concurrent callers in each process. */
  readonly callers: number;
  readonly seconds: number;
}

/** The limiter every process shares, and the one key they all ask for. */
const LIMITER = "shared_api";
const KEY = "partner";

/** What a worker tells the parent. */
type WorkerMessage =
  | { readonly type: "ready" }
  | { readonly type: "admitted"; readonly at: number; readonly degraded: boolean }
  | { readonly type: "failed"; readonly message: string };

/** The configuration file of `store`, beside the app. */
function configFile(store: SharedStore): string {
  return fileURLToPath(new URL(`../shared/${store}.toml`, import.meta.url));
}

/** Where to start `store` when it cannot be reached. */
const HOW_TO_START: Readonly<Record<SharedStore, string>> = {
  redis: "start redis-server, or set REDIS_URL",
  postgres: "start PostgreSQL, or set DATABASE_URL",
  nats: "start nats-server -js, or set NATS_URL",
};

/**
 * Runs the scene in the parent process and prints its report. Resolves `true` when the combined
 * admissions stayed within the limit, `false` otherwise or when the store cannot be reached.
 */
export async function runSharedStoreScene(options: SharedSceneOptions, entry: string): Promise<boolean> {
  const { store, processes, callers, seconds } = options;
  const setup = createRateSync({ autoload: false });
  let ratePerSecond: number;
  let burst: number;
  try {
    await setup.loadConfig(configFile(store));
    await setup.initializeLimiter(LIMITER);
    const limiter = setup.getLimiter(LIMITER);
    // A fresh budget, whatever an earlier run left.
    await limiter.reset(KEY);
    ratePerSecond = limiter.config.ratePerSecond ?? 0;
    burst = limiter.config.burst ?? 1;
  } catch (error) {
    console.error(`Cannot use the ${store} store: ${(error as Error).message}\n(${HOW_TO_START[store]}.)`);
    return false;
  } finally {
    await setup.close();
  }

  console.log(
    `ratesync demo, shared store: ${processes} processes x ${callers} callers share one limit of ${ratePerSecond}/s (burst ${burst}) through ${store}.`,
  );
  console.log(`Every process loads apps/demo/shared/${store}.toml; no process knows about the others.\n`);

  // Workers boot (and connect) first; then all start at the same instant.
  const startAt = Date.now() + 2000;
  const endAt = startAt + seconds * 1000;
  const admissions: number[][] = Array.from({ length: processes }, () => []);
  let degraded = 0;
  const failures: string[] = [];
  const workers: ChildProcess[] = [];
  const exited = Array.from({ length: processes }, (_, index) => {
    const worker = fork(
      entry,
      [
        "--worker",
        "--store",
        store,
        "--callers",
        String(callers),
        "--start-at",
        String(startAt),
        "--end-at",
        String(endAt),
      ],
      { stdio: ["ignore", "inherit", "inherit", "ipc"] },
    );
    workers.push(worker);
    worker.on("message", (message: WorkerMessage) => {
      if (message.type === "admitted") {
        (admissions[index] as number[]).push(message.at);
        if (message.degraded) degraded++;
      } else if (message.type === "failed") {
        failures.push(`process ${index + 1}: ${message.message}`);
      }
    });
    return new Promise<number | null>((resolve) => worker.on("exit", (code) => resolve(code)));
  });
  const codes = await Promise.all(exited);
  const crashed = codes.filter((code) => code !== 0).length;

  printTable(admissions, startAt, seconds, ratePerSecond);
  const all = admissions.flat().sort((a, b) => a - b);
  const bound = burst + ratePerSecond * seconds;
  const busiest = maxInOneSecond(all);
  console.log(
    `\n${all.length} calls admitted in ${seconds} s by ${processes} processes together; the limit allows at most ${burst} + ${ratePerSecond} x ${seconds} = ${bound}.`,
  );
  console.log(
    `Busiest 1-second span: ${busiest} calls (the limit allows ${burst + ratePerSecond}). Degraded decisions (store unreachable): ${degraded}.`,
  );
  for (const failure of failures) console.error(failure);
  if (crashed > 0) console.error(`${crashed} worker process(es) failed.`);
  return crashed === 0 && failures.length === 0 && degraded === 0 && all.length <= bound;
}

/** The per-second table: admissions of each process and together. */
function printTable(admissions: readonly number[][], startAt: number, seconds: number, ratePerSecond: number): void {
  const columns = admissions.map((_, index) => `process ${index + 1}`);
  console.log(` second | ${columns.join(" | ")} | together | limit/s`);
  console.log(` -------+${columns.map((column) => "-".repeat(column.length + 2)).join("+")}+----------+--------`);
  for (let second = 0; second < Math.ceil(seconds); second++) {
    const counts = admissions.map(
      (times) => times.filter((at) => at >= startAt + second * 1000 && at < startAt + (second + 1) * 1000).length,
    );
    const together = counts.reduce((sum, count) => sum + count, 0);
    const cells = counts.map((count, index) => String(count).padStart((columns[index] as string).length));
    console.log(
      `${String(second + 1).padStart(7)} | ${cells.join(" | ")} | ${String(together).padStart(8)} | ${String(ratePerSecond).padStart(7)}`,
    );
  }
}

/** The most admissions in any span of one second, over sorted timestamps. */
function maxInOneSecond(sorted: readonly number[]): number {
  let best = 0;
  let first = 0;
  for (let last = 0; last < sorted.length; last++) {
    while ((sorted[last] as number) - (sorted[first] as number) >= 1000) first++;
    best = Math.max(best, last - first + 1);
  }
  return best;
}

/** Options of a worker process, as the parent passes them. */
export interface SharedWorkerOptions {
  readonly store: SharedStore;
  readonly callers: number;
  readonly startAt: number;
  readonly endAt: number;
}

/**
 * A worker process: loads the shared configuration, waits for the common start, then its callers
 * acquire the shared limit until the end, reporting every admission to the parent.
 */
export async function runSharedStoreWorker(options: SharedWorkerOptions): Promise<void> {
  const send = (message: WorkerMessage) => process.send?.(message);
  const rs = createRateSync({ autoload: false });
  try {
    await rs.loadConfig(configFile(options.store));
    await rs.initializeLimiter(LIMITER);
    send({ type: "ready" });
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, options.startAt - Date.now())));
    const stop = AbortSignal.timeout(Math.max(1, options.endAt - Date.now()));
    setMaxListeners(options.callers + 1, stop);
    const caller = async (): Promise<void> => {
      while (!stop.aborted) {
        try {
          const slot = await rs.acquire(LIMITER, { key: KEY, signal: stop });
          if (Date.now() < options.endAt) send({ type: "admitted", at: Date.now(), degraded: slot.decision.degraded });
          await slot.release();
        } catch (error) {
          if (isRateSyncError(error, "ABORTED")) return;
          throw error;
        }
      }
    };
    await Promise.all(Array.from({ length: options.callers }, caller));
  } catch (error) {
    send({ type: "failed", message: (error as Error).message });
    process.exitCode = 1;
  } finally {
    await rs.close();
    process.disconnect?.();
  }
}
