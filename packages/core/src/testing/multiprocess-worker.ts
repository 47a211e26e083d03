/**
 * A worker process of the multi-process harness: started by `spawnWorker` / `runWorkers` with
 * `child_process.fork`, it loads a store configuration, then obeys commands over IPC: run a
 * workload at a common start time and report what it recorded, take slots and hold them, release
 * them, peek. It never outlives its parent: when the IPC channel closes, it exits.
 *
 * Not a module to import: it does its work at load, and only inside a forked child.
 */

import type { Decision } from "../decision.js";
import type { EngineDefinition } from "../engines/engine.js";
import { registerEngine, resolveEngine } from "../engines/registry.js";
import { isRateSyncError } from "../errors.js";
import { createRateSync, type RateSync } from "../rate-sync.js";
import type { Slot } from "../slot.js";
import type { HoldInterval } from "./multiprocess-checks.js";
import { harnessNow } from "./multiprocess-clock.js";
import { callsBetween, countingDefinition, StoreRecorder } from "./multiprocess-engine.js";
import type {
  Command,
  HeldSlotInfo,
  HeldSlotStatus,
  ParentMessage,
  ReleaseReport,
  StoreCallCounts,
  WireError,
  WorkerInit,
  WorkerMessage,
  WorkerPeek,
  WorkerRunResult,
  Workload,
} from "./multiprocess-protocol.js";

// The harness's clock (the machine's monotonic clock), the one the parent and every worker share.
const now = harnessNow;

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, Math.max(0, ms)));

/** Sends a message; resolves once it is written, so a process.exit() after it cannot swallow it. */
function send(message: WorkerMessage): Promise<void> {
  return new Promise((resolve) => {
    if (process.send === undefined || !process.connected) {
      resolve();
      return;
    }
    process.send(message, undefined, {}, () => resolve());
  });
}

function wireError(error: unknown): WireError {
  if (isRateSyncError(error)) return { code: error.code, message: error.message };
  if (error instanceof Error) return { code: error.name, message: error.stack ?? error.message };
  return { code: "unknown", message: String(error) };
}

function errorCode(error: unknown): string {
  return wireError(error).code;
}

const recorder = new StoreRecorder();
let rateSync: RateSync | undefined;

/** Slots taken on command, until released on command. */
interface HeldEntry {
  readonly slot: Slot;
  readonly limiter: string;
  readonly key: string | undefined;
  lost: boolean;
}
let held: HeldEntry[] = [];

function registry(): RateSync {
  if (rateSync === undefined) throw new Error("the worker received a command before its init");
  return rateSync;
}

async function init({ config, setup, pollMs }: WorkerInit): Promise<void> {
  // Engine packages are not resolvable from @ratesync/core's directory under pnpm: the parent
  // names the modules that provide them, and the worker registers what they export.
  for (const url of setup) {
    const loaded = (await import(url)) as { engine?: EngineDefinition; engines?: readonly EngineDefinition[] };
    if (loaded.engine !== undefined) registerEngine(loaded.engine);
    for (const definition of loaded.engines ?? []) registerEngine(definition);
  }
  const rs = createRateSync({ autoload: false, ...(pollMs === undefined ? {} : { pollMs }) });
  rs.loadConfigFromString(config, { file: "multiprocess harness config" });
  // Wrap each engine before its store opens (stores create their engine on first use): every
  // store call of this process is then counted, and every admission's store time recorded.
  const wrapped = new Set<string>();
  for (const store of Object.values(rs.listStores())) {
    if (wrapped.has(store.engine)) continue;
    wrapped.add(store.engine);
    registerEngine(countingDefinition(await resolveEngine(store.engine, store.id), recorder));
  }
  // Connect now, so a run's start is not spent connecting and a dead store fails the start.
  await rs.initializeAllLimiters();
  rateSync = rs;
}

async function run(workload: Workload, startAt: number): Promise<WorkerRunResult> {
  const limiter = registry().getLimiter(workload.limiter);
  const { mode, key, callers, durationMs } = workload;
  const [holdMin, holdMax] = workload.holdMs ?? [5, 20];
  const admissions: number[] = [];
  const holds: HoldInterval[] = [];
  const errors: Record<string, number> = {};
  let degraded = 0;
  let endedWaiting = 0;

  // Timers may fire up to a millisecond early against performance.now(): nobody starts before the start.
  while (now() < startAt) await sleep(startAt - now());
  const endAt = startAt + durationMs;
  recorder.recording = true;
  recorder.storeAdmissions = [];
  recorder.maxInUse = 0;
  const callsAtStart = recorder.snapshot();
  let callsAtEnd: StoreCallCounts | undefined;
  const stop = new AbortController();
  const endTimer = setTimeout(() => {
    callsAtEnd = recorder.snapshot();
    // Waits in progress end now instead of running past the end of the run.
    stop.abort();
  }, endAt - now());
  const startedAt = now();

  const failed = (error: unknown): "stop" | "retry" => {
    // The run ending while a call waits (the abort, or a predicted wait past the end) ends the caller.
    if (isRateSyncError(error, "ACQUIRE_TIMEOUT") || isRateSyncError(error, "ABORTED")) {
      endedWaiting++;
      return "stop";
    }
    const code = errorCode(error);
    errors[code] = (errors[code] ?? 0) + 1;
    return "retry";
  };

  const acquireUntilEnd = async (): Promise<Slot | undefined> => {
    for (;;) {
      if (now() >= endAt) return undefined;
      try {
        return await limiter.acquire({ key, timeout: Math.max(0, endAt - now()) / 1000, signal: stop.signal });
      } catch (error) {
        if (failed(error) === "stop") return undefined;
        // An unexpected error: do not spin on it.
        await sleep(5);
      }
    }
  };

  const rateCaller = async (): Promise<void> => {
    while (now() < endAt) {
      if (workload.rateCall === "tryAcquire") {
        let decision: Decision;
        try {
          decision = await limiter.tryAcquire({ key });
        } catch (error) {
          failed(error);
          await sleep(5);
          continue;
        }
        if (decision.allowed) {
          admissions.push(now());
          if (decision.degraded) degraded++;
          // A limiter with max_concurrent also gave a slot: hand it back, as a rate caller holds nothing.
          await decision.slot?.release();
        } else {
          // The same jitter as acquire's, so callers that got the same answer do not all ask at once.
          const wait = decision.retryAfterMs + Math.random() * Math.min(decision.retryAfterMs * 0.02, 50);
          await sleep(Math.min(wait, endAt - now()));
        }
        continue;
      }
      const slot = await acquireUntilEnd();
      if (slot === undefined) return;
      admissions.push(now());
      if (slot.decision.degraded) degraded++;
      await slot.release();
    }
  };

  const holdCaller = async (): Promise<void> => {
    while (now() < endAt) {
      const slot = await acquireUntilEnd();
      if (slot === undefined) return;
      // The holder's own view: from when it has the slot to when it lets go, a sub-interval of
      // what the store counts, so overlaps measured here never overstate concurrency.
      const start = now();
      admissions.push(start);
      if (slot.decision.degraded) degraded++;
      await sleep(holdMin + Math.random() * (holdMax - holdMin));
      holds.push({ start, end: now() });
      await slot.release();
    }
  };

  const waitCaller = async (): Promise<void> => {
    const slot = await acquireUntilEnd();
    if (slot === undefined) return;
    const start = now();
    admissions.push(start);
    if (slot.decision.degraded) degraded++;
    await sleep(endAt - now());
    holds.push({ start, end: now() });
    await slot.release();
  };

  const caller = mode === "rate" ? rateCaller : mode === "hold" ? holdCaller : waitCaller;
  try {
    await Promise.all(Array.from({ length: callers }, caller));
  } finally {
    clearTimeout(endTimer);
    recorder.recording = false;
  }
  return {
    pid: process.pid,
    callers,
    startedAt,
    endedAt: now(),
    admissions,
    storeAdmissions: recorder.storeAdmissions,
    holds,
    maxInUse: recorder.maxInUse,
    calls: callsBetween(callsAtStart, callsAtEnd ?? recorder.snapshot()),
    degraded,
    endedWaiting,
    errors,
  };
}

async function acquire(
  limiterId: string,
  key: string | undefined,
  count: number,
  timeoutSeconds: number | undefined,
): Promise<HeldSlotInfo[]> {
  const limiter = registry().getLimiter(limiterId);
  const outcomes = await Promise.allSettled(
    Array.from({ length: count }, async () => {
      const slot = await limiter.acquire({ key, timeout: timeoutSeconds });
      return { slot, acquiredAt: now() };
    }),
  );
  const failure = outcomes.find((outcome) => outcome.status === "rejected");
  const slots = outcomes.flatMap((outcome) => (outcome.status === "fulfilled" ? [outcome.value] : []));
  if (failure !== undefined) {
    // All or nothing: slots taken before another acquire failed would otherwise stay held
    // (and renewed) with nobody to release them.
    await Promise.all(slots.map(({ slot }) => slot.release()));
    throw failure.reason;
  }
  return slots.map(({ slot, acquiredAt }) => {
    const entry: HeldEntry = { slot, limiter: limiterId, key, lost: false };
    // The slot tells its holder when renewal found the lease gone: record it for the parent.
    slot.signal.addEventListener("abort", () => {
      entry.lost = isRateSyncError(slot.signal.reason, "LEASE_LOST");
    });
    held.push(entry);
    return { leaseId: slot.leaseId, expiresAt: slot.expiresAt, acquiredAt, waitedMs: slot.waitedMs };
  });
}

function status(entry: HeldEntry): HeldSlotStatus {
  return { leaseId: entry.slot.leaseId, held: entry.slot.held, lost: entry.lost };
}

async function release(direct: boolean): Promise<ReleaseReport[]> {
  const entries = held;
  held = [];
  const reports: ReleaseReport[] = [];
  for (const entry of entries) {
    const before = status(entry);
    await entry.slot.release();
    let storeReleased: boolean | undefined;
    const leaseId = entry.slot.leaseId;
    if (direct && leaseId !== undefined) {
      // Past the slot's bookkeeping, straight to the store: the release a buggy or frozen holder
      // could still send with a stale lease id. It must never free a slot that is not this lease.
      const store = registry().getLimiter(entry.limiter).store;
      const engine = store.engine ?? (await store.open());
      storeReleased = await engine.release({ limiter: entry.limiter, key: entry.key ?? "", leaseId });
    }
    reports.push({ ...before, storeReleased });
  }
  return reports;
}

async function peek(limiterId: string, key: string | undefined): Promise<WorkerPeek> {
  const decision = await registry().getLimiter(limiterId).state(key);
  return { allowed: decision.allowed, remaining: decision.remaining, inUse: decision.concurrency?.inUse };
}

async function exit(): Promise<void> {
  // Never hang on a store that does not answer: the parent is waiting for this process to end.
  const forced = setTimeout(() => process.exit(0), 2000);
  try {
    await rateSync?.close();
  } finally {
    clearTimeout(forced);
    process.exit(0);
  }
}

async function answer(command: Command): Promise<unknown> {
  switch (command.type) {
    case "run":
      return run(command.workload, command.startAt);
    case "acquire":
      return acquire(command.limiter, command.key, command.count, command.timeoutSeconds);
    case "release":
      return release(command.direct);
    case "slots":
      return held.map(status);
    case "state":
      return peek(command.limiter, command.key);
    case "calls":
      return recorder.snapshot();
    case "exit":
      return undefined;
  }
}

async function onMessage(message: ParentMessage): Promise<void> {
  if (message.type === "init") {
    try {
      await init(message.init);
      await send({ type: "ready", pid: process.pid });
    } catch (error) {
      await send({ type: "fatal", error: wireError(error) });
      process.exit(1);
    }
    return;
  }
  try {
    const value = await answer(message);
    await send({ type: "reply", id: message.id, ok: true, value });
  } catch (error) {
    await send({ type: "reply", id: message.id, ok: false, error: wireError(error) });
  }
  if (message.type === "exit") await exit();
}

if (typeof process.send !== "function") {
  console.error("multiprocess-worker runs only as a child of the ratesync harness (runWorkers / spawnWorker).");
  process.exit(2);
}
process.on("message", (message: ParentMessage) => void onMessage(message));
// The parent is gone (finished, crashed or killed): a worker must never be left behind.
process.on("disconnect", () => process.exit(0));
process.on("uncaughtException", (error) => {
  void send({ type: "fatal", error: wireError(error) }).finally(() => process.exit(1));
});
