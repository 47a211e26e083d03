/**
 * What the multi-process harness (`multiprocess.ts`, in the test process) and its workers
 * (`multiprocess-worker.ts`, one per child process) say to each other over the IPC channel, and
 * what workers report. Types only: both sides import it, neither imports the other.
 */

import type { HoldInterval } from "./multiprocess-checks.js";

/**
 * How the callers of a worker use the limiter during a run.
 * - `"rate"`: each caller loops on `acquire` (or `tryAcquire` and a sleep of `retryAfterMs`) and
 *   records every admission.
 * - `"hold"`: each caller loops on `acquire`, holds the slot for a random time in `holdMs`,
 *   then releases it, recording when it held it.
 * - `"wait"`: each caller acquires once and keeps the slot until the end; meant for callers
 *   that wait on slots someone else holds, to count the store calls waiting costs.
 */
export type WorkloadMode = "rate" | "hold" | "wait";

/** What every caller of a worker does during a run. */
export interface Workload {
  /** See {@link WorkloadMode}. */
  readonly mode: WorkloadMode;
  /** The limiter id (from the configuration the worker loaded). */
  readonly limiter: string;
  /** The key; absent: the limiter's shared budget. */
  readonly key?: string | undefined;
  /** Concurrent callers in the process. */
  readonly callers: number;
  /** How long the callers run, ms from the common start. */
  readonly durationMs: number;
  /** `"hold"`: the shortest and longest time a slot is held, ms. @default [5, 20] */
  readonly holdMs?: readonly [min: number, max: number] | undefined;
  /** `"rate"`: wait with `acquire`, or ask with `tryAcquire` and sleep `retryAfterMs`. @default "acquire" */
  readonly rateCall?: "acquire" | "tryAcquire" | undefined;
}

/** Store calls a worker made, by engine method (counted by a proxy around its engines). */
export interface StoreCallCounts {
  /** `decide` calls (each acquire attempt). */
  decide: number;
  /** `peek` calls (`state()`). */
  peek: number;
  /** `release` calls. */
  release: number;
  /** `renew` calls (lease renewals). */
  renew: number;
  /** `reset` calls. */
  reset: number;
  /** All of them. */
  total: number;
}

/** What one worker recorded during a run. Times are ms on the harness clock (`harnessNow`), unless a field says the store's. */
export interface WorkerRunResult {
  /** The worker's process id. */
  readonly pid: number;
  /** Callers that ran. */
  readonly callers: number;
  /** When the callers started and when the last one finished, on the harness clock. */
  readonly startedAt: number;
  /** See `startedAt`. */
  readonly endedAt: number;
  /** Admissions as the callers saw them: when each acquire (or allowed tryAcquire) resolved. */
  readonly admissions: number[];
  /**
   * Admissions as the store decided them: the store's time (`EngineDecision.now`) of every
   * admitting `decide` this process made during the run. The exact log to check rate claims
   * against: it carries no network or event-loop delay.
   */
  readonly storeAdmissions: number[];
  /** `"hold"` and `"wait"`: when each caller held a slot. */
  readonly holds: HoldInterval[];
  /** The largest `inUse` the store reported on an admitting decision (0 without `max_concurrent`). */
  readonly maxInUse: number;
  /** Store calls made between the start and the end of the run (not after). */
  readonly calls: StoreCallCounts;
  /** Admissions that were degraded (the store did not answer and the limiter failed open). */
  readonly degraded: number;
  /** Acquires that ended with `ACQUIRE_TIMEOUT` or `ABORTED` (the run ending while they waited). */
  readonly endedWaiting: number;
  /** Other errors, by error code (or name). */
  readonly errors: Record<string, number>;
}

/** A slot a worker took on command (see `WorkerProcess.acquire`). */
export interface HeldSlotInfo {
  /** The lease id in the store (`undefined` on a limiter without `max_concurrent`). */
  readonly leaseId: string | undefined;
  /** The lease expiry the store reported, epoch ms (store clock). */
  readonly expiresAt: number | undefined;
  /** When the acquire resolved, on the harness clock. */
  readonly acquiredAt: number;
  /** How long the acquire waited, ms. */
  readonly waitedMs: number;
}

/** A held slot as the worker sees it now. */
export interface HeldSlotStatus {
  /** The lease id. */
  readonly leaseId: string | undefined;
  /** Whether the worker still holds it (false once the lease was lost). */
  readonly held: boolean;
  /** Whether its signal aborted with `LEASE_LOST` (renewal found the lease gone). */
  readonly lost: boolean;
}

/** What happened when a worker released a slot on command. */
export interface ReleaseReport extends HeldSlotStatus {
  /**
   * With `direct: true`, the engine's own answer to releasing this lease id once more, straight
   * to the store (bypassing the slot's bookkeeping): `true` means the store freed a live lease.
   * A stale lease id must never free anything. `undefined` without `direct`.
   */
  readonly storeReleased: boolean | undefined;
}

/** What `state()` (a peek, which consumes nothing) reported inside a worker. */
export interface WorkerPeek {
  /** Whether a call would be admitted now. */
  readonly allowed: boolean;
  /** Rate budget left (or free slots, for a concurrency-only limiter). */
  readonly remaining: number;
  /** Slots held across every process; `undefined` without `max_concurrent`. */
  readonly inUse: number | undefined;
}

/** What the worker needs to start: its configuration and how to load its engines. */
export interface WorkerInit {
  /** `rate-sync.toml` text: the stores and limiters the worker uses. */
  readonly config: string;
  /** URLs of modules to import first; each `engine` (or `engines`) export is registered. */
  readonly setup: readonly string[];
  /** The fallback poll of concurrency waiters, ms (`createRateSync({ pollMs })`); absent: the default. */
  readonly pollMs?: number | undefined;
}

/** Commands from the parent; each is answered by one {@link ReplyMessage} with the same id. */
export type Command =
  | { readonly type: "run"; readonly id: number; readonly workload: Workload; readonly startAt: number }
  | {
      readonly type: "acquire";
      readonly id: number;
      readonly limiter: string;
      readonly key: string | undefined;
      readonly count: number;
      readonly timeoutSeconds: number | undefined;
    }
  | { readonly type: "release"; readonly id: number; readonly direct: boolean }
  | { readonly type: "slots"; readonly id: number }
  | { readonly type: "state"; readonly id: number; readonly limiter: string; readonly key: string | undefined }
  | { readonly type: "calls"; readonly id: number }
  | { readonly type: "exit"; readonly id: number };

/** Every message the parent sends: the one-time init, then commands. */
export type ParentMessage = { readonly type: "init"; readonly init: WorkerInit } | Command;

/** A failure, as it crosses the IPC channel. */
export interface WireError {
  /** The `RateSyncError` code, or the error's name. */
  readonly code: string;
  /** The message. */
  readonly message: string;
}

/** The answer to a {@link Command}. */
export type ReplyMessage =
  | { readonly type: "reply"; readonly id: number; readonly ok: true; readonly value: unknown }
  | { readonly type: "reply"; readonly id: number; readonly ok: false; readonly error: WireError };

/** Every message a worker sends. */
export type WorkerMessage =
  | { readonly type: "ready"; readonly pid: number }
  | { readonly type: "fatal"; readonly error: WireError }
  | ReplyMessage;
