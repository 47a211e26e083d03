/**
 * The multi-process harness: N worker processes (child processes, not threads: each has its own
 * event loop, its own client and its own engine instance, as separate application instances do)
 * hammering one limiter through a given store configuration, recording every admission. Engine
 * packages run it against a real server to check the accuracy and concurrency claims of SPEC
 * section 5 across processes; the checks themselves are the pure functions of
 * `multiprocess-checks.ts`.
 *
 * Node.js only. Every wait is bounded, stragglers are killed, and no worker outlives the test
 * process: workers exit when their IPC channel closes, and {@link killAllWorkers} (call it in
 * `afterAll`) plus an exit hook SIGKILL whatever is left.
 */

import { type ChildProcess, fork } from "node:child_process";
import { createRequire } from "node:module";
import { isAbsolute, resolve as resolvePath } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import type { HoldInterval } from "./multiprocess-checks.js";
import { harnessNow } from "./multiprocess-clock.js";
import type {
  Command,
  HeldSlotInfo,
  HeldSlotStatus,
  ParentMessage,
  ReleaseReport,
  StoreCallCounts,
  WireError,
  WorkerMessage,
  WorkerPeek,
  WorkerRunResult,
  Workload,
} from "./multiprocess-protocol.js";

export { harnessNow };

/** How to start workers and what they load. */
export interface WorkerOptions {
  /**
   * The store configuration, as `rate-sync.toml` text: the store(s) and the limiter(s) the
   * workers use. Give it a key prefix (or schema, bucket...) unique to the test run, so runs
   * sharing a server do not share state; see {@link uniqueRunId}.
   */
  readonly config: string;
  /**
   * Modules each worker imports before loading `config`, as URLs or absolute paths: each one's
   * `engine` export (an `EngineDefinition`, as engine packages export it), or `engines` array,
   * is registered. Needed for engine packages because under pnpm they are not resolvable from
   * `@ratesync/core`'s own directory; pass the package's entry, e.g.
   * `new URL("./index.ts", import.meta.url)` from the engine package's own tests.
   */
  readonly setup?: string | URL | readonly (string | URL)[] | undefined;
  /** Fallback poll of concurrency waiters in the workers, ms. @default the library default (1000) */
  readonly pollMs?: number | undefined;
  /** Variables added to the workers' environment (`${VAR}` in `config` expands from it). */
  readonly env?: Readonly<Record<string, string>> | undefined;
  /**
   * The worker module. @default `multiprocess-worker` beside this module, `.ts` in development
   * (run with tsx and the `@ratesync/source` condition), `.js`/`.cjs` in the published build.
   */
  readonly workerModule?: string | URL | undefined;
  /** Node.js options of the worker processes. @default tsx for a `.ts` worker, none otherwise */
  readonly execArgv?: readonly string[] | undefined;
  /** How long a worker may take to start, load and connect, ms. @default 30000 */
  readonly readyTimeoutMs?: number | undefined;
  /** A name for messages. @default "worker <pid>" */
  readonly name?: string | undefined;
}

/** How a worker process ended. */
export interface WorkerExit {
  /** The exit code, when it exited by itself. */
  readonly code: number | null;
  /** The signal that ended it, when one did (`"SIGKILL"`...). */
  readonly signal: NodeJS.Signals | null;
}

/** Options of {@link WorkerProcess.acquire}. */
export interface HoldOptions {
  /** The key; absent: the limiter's shared budget. */
  readonly key?: string | undefined;
  /** How many slots to take (concurrently). @default 1 */
  readonly count?: number | undefined;
  /** The acquire timeout, seconds. @default the limiter's */
  readonly timeoutSeconds?: number | undefined;
  /** How long to wait for the worker's answer, ms. @default 30000 */
  readonly replyTimeoutMs?: number | undefined;
}

/** The error a worker reported for a command, with its code (`ACQUIRE_TIMEOUT`...). */
export class WorkerCommandError extends Error {
  /** The `RateSyncError` code, or the error's name. */
  readonly code: string;

  constructor(worker: string, command: string, error: WireError) {
    super(`${worker}: ${command} failed with ${error.code}: ${error.message}`);
    this.name = "WorkerCommandError";
    this.code = error.code;
  }
}

const DEFAULT_READY_TIMEOUT_MS = 30_000;
const DEFAULT_REPLY_TIMEOUT_MS = 30_000;
/** How much of a worker's stdout and stderr is kept, for failure messages. */
const OUTPUT_TAIL = 16_384;

/** Every worker started and not yet exited, so none is ever left behind. */
const live = new Set<ChildProcess>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  // The last chance, synchronous: a test process that ends without killAllWorkers() (a crash, a
  // forgotten afterAll) still takes its workers along, stopped ones included (SIGKILL ends them).
  process.once("exit", () => {
    for (const child of live) child.kill("SIGKILL");
  });
}

/**
 * SIGKILLs every worker still running (paused ones too) and waits until they are gone. Call it in
 * `afterAll`, so a failing test leaves no process behind.
 */
export async function killAllWorkers(): Promise<void> {
  const children = [...live];
  await Promise.all(
    children.map(
      (child) =>
        new Promise<void>((resolve) => {
          if (child.exitCode !== null || child.signalCode !== null) {
            live.delete(child);
            resolve();
            return;
          }
          child.once("exit", () => resolve());
          child.kill("SIGKILL");
        }),
    ),
  );
}

/**
 * A run id unique to this process and moment (`<pid>-<time>-<random>`), for key prefixes, schemas
 * or buckets, so test runs sharing one server (parallel test files, CI jobs) never share state.
 */
export function uniqueRunId(): string {
  return `${process.pid}-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
}

function thisModuleUrl(): string {
  // import.meta.url in ESM (and in the TypeScript sources); __filename in the CommonJS build.
  if (typeof __filename === "string") return pathToFileURL(__filename).href;
  return import.meta.url;
}

/** The worker module beside this one, in this module's own form (.ts sources, or the built .js/.cjs). */
function defaultWorkerModule(): URL {
  const here = thisModuleUrl();
  const extension = here.endsWith(".ts") ? ".ts" : here.endsWith(".cjs") ? ".cjs" : ".js";
  return new URL(`./multiprocess-worker${extension}`, here);
}

/** The Node.js options a worker module needs: none for JavaScript, tsx for TypeScript. */
function defaultExecArgv(modulePath: string): string[] {
  if (!/\.[cm]?ts$/.test(modulePath)) return [];
  // Node 20 cannot run TypeScript: load tsx, resolved from here (under pnpm it is not resolvable
  // from an arbitrary working directory), and resolve workspace packages to their sources.
  let tsx: string;
  try {
    tsx = pathToFileURL(createRequire(thisModuleUrl()).resolve("tsx")).href;
  } catch (error) {
    throw new Error(
      "The multi-process harness runs its TypeScript worker with tsx, which was not found from @ratesync/core. Add tsx as a devDependency of @ratesync/core, or pass workerModule/execArgv.",
      { cause: error },
    );
  }
  return ["--import", tsx, "--conditions=@ratesync/source"];
}

/** A setup module as a URL the worker can import whatever its working directory. */
function setupUrl(spec: string | URL): string {
  if (spec instanceof URL) return spec.href;
  if (isAbsolute(spec)) return pathToFileURL(spec).href;
  if (spec.startsWith("./") || spec.startsWith("../")) return pathToFileURL(resolvePath(spec)).href;
  // A URL (file:, data:...) or a bare specifier, imported as is.
  return spec;
}

function setupUrls(setup: WorkerOptions["setup"]): string[] {
  if (setup === undefined) return [];
  if (typeof setup === "string" || setup instanceof URL) return [setupUrl(setup)];
  return setup.map(setupUrl);
}

type CommandBody = Command extends infer C ? (C extends Command ? Omit<C, "id"> : never) : never;

interface Pending {
  readonly command: string;
  readonly resolve: (value: unknown) => void;
  readonly reject: (error: Error) => void;
  readonly timer: ReturnType<typeof setTimeout>;
}

/**
 * A running worker process, for fault tests: make it take and hold slots, release them, run a
 * workload, peek; and kill it, freeze it (SIGSTOP) and thaw it (SIGCONT). Get one with
 * {@link spawnWorker}.
 *
 * @example
 * ```ts
 * const holder = await spawnWorker({ config, setup });
 * await holder.acquire("db", { count: 2 });
 * holder.kill("SIGKILL"); // its leases must come back within lease_seconds
 * ```
 */
export class WorkerProcess {
  /** A name for messages. */
  readonly name: string;
  /** The process id. */
  readonly pid: number;
  /** Resolves when the process has ended, however it ended. */
  readonly exited: Promise<WorkerExit>;
  readonly #child: ChildProcess;
  readonly #messages: WorkerMessage[] = [];
  readonly #pending = new Map<number, Pending>();
  #nextId = 1;
  #output = "";
  #exit: WorkerExit | undefined;
  #paused = false;

  /** @internal use {@link spawnWorker} */
  constructor(child: ChildProcess, name: string | undefined) {
    if (child.pid === undefined) throw new Error("the worker process did not start");
    this.#child = child;
    this.pid = child.pid;
    this.name = name ?? `worker ${child.pid}`;
    const keep = (chunk: Buffer) => {
      this.#output = (this.#output + chunk.toString("utf8")).slice(-OUTPUT_TAIL);
    };
    child.stdout?.on("data", keep);
    child.stderr?.on("data", keep);
    child.on("message", (message: WorkerMessage) => this.#onMessage(message));
    // A failed send or kill is reported here; without a listener it would crash the test process.
    child.on("error", (error) => keep(Buffer.from(`[harness] ${error.message}\n`)));
    this.exited = new Promise<WorkerExit>((resolve) => {
      child.once("exit", (code, signal) => {
        live.delete(child);
        this.#exit = { code, signal };
        for (const [id, pending] of this.#pending) {
          this.#pending.delete(id);
          clearTimeout(pending.timer);
          pending.reject(new Error(`${this.name} exited (${this.#describeExit()}) before answering.${this.#tail()}`));
        }
        resolve(this.#exit);
      });
    });
  }

  /** Every message the worker sent, in order. */
  get messages(): readonly WorkerMessage[] {
    return this.#messages;
  }

  /** Whether the process is still running (possibly paused). */
  get alive(): boolean {
    return this.#exit === undefined;
  }

  /** Whether it was paused with {@link pause} and not resumed. */
  get paused(): boolean {
    return this.#paused;
  }

  /** The last 16 KiB of what the worker wrote to stdout and stderr. */
  output(): string {
    return this.#output;
  }

  /**
   * Takes `count` slots of `limiter` (waiting as `acquire` does) and holds them, renewing their
   * leases, until {@link release}. Rejects with a {@link WorkerCommandError} when the acquire fails.
   */
  acquire(limiter: string, options: HoldOptions = {}): Promise<HeldSlotInfo[]> {
    return this.#request(
      {
        type: "acquire",
        limiter,
        key: options.key,
        count: options.count ?? 1,
        timeoutSeconds: options.timeoutSeconds,
      },
      options.replyTimeoutMs ?? DEFAULT_REPLY_TIMEOUT_MS,
    ) as Promise<HeldSlotInfo[]>;
  }

  /**
   * Releases every slot taken with {@link acquire}. With `direct`, each lease id is then released
   * once more straight through the engine, as a frozen or buggy holder could: the report's
   * `storeReleased` says whether the store freed anything (it must not, for a stale lease).
   */
  release(options: { direct?: boolean | undefined } = {}): Promise<ReleaseReport[]> {
    return this.#request({ type: "release", direct: options.direct ?? false }) as Promise<ReleaseReport[]>;
  }

  /** The slots taken with {@link acquire}, as the worker sees them now (held, lost). */
  slots(): Promise<HeldSlotStatus[]> {
    return this.#request({ type: "slots" }) as Promise<HeldSlotStatus[]>;
  }

  /** Peeks at the limiter's state for `key` from inside the worker (consumes nothing). */
  state(limiter: string, key?: string): Promise<WorkerPeek> {
    return this.#request({ type: "state", limiter, key }) as Promise<WorkerPeek>;
  }

  /** Store calls the worker made so far. */
  calls(): Promise<StoreCallCounts> {
    return this.#request({ type: "calls" }) as Promise<StoreCallCounts>;
  }

  /**
   * Runs `workload` from `startAt` (ms on the harness clock, {@link harnessNow}) for its duration, and
   * resolves with what the worker recorded. {@link runWorkers} does this for N workers at once.
   */
  run(workload: Workload, startAt: number, replyTimeoutMs?: number): Promise<WorkerRunResult> {
    const timeout =
      replyTimeoutMs ?? Math.max(0, startAt - harnessNow()) + workload.durationMs + DEFAULT_REPLY_TIMEOUT_MS;
    return this.#request({ type: "run", workload, startAt }, timeout) as Promise<WorkerRunResult>;
  }

  /** Sends `signal` to the process. @default "SIGKILL" (no cleanup: leases stay until they expire) */
  kill(signal: NodeJS.Signals = "SIGKILL"): void {
    if (this.alive) this.#child.kill(signal);
  }

  /** Freezes the process (SIGSTOP): it neither renews nor releases, as a stalled holder. */
  pause(): void {
    if (!this.alive) return;
    this.#child.kill("SIGSTOP");
    this.#paused = true;
  }

  /** Thaws a paused process (SIGCONT): its timers, renewals included, run late. */
  resume(): void {
    if (!this.alive) return;
    this.#child.kill("SIGCONT");
    this.#paused = false;
  }

  /**
   * Ends the worker: it closes its stores and exits; past `timeoutMs` (or when paused) it is
   * SIGKILLed. Resolves when the process is gone.
   */
  async close(timeoutMs = 5000): Promise<WorkerExit> {
    if (!this.alive) return this.exited;
    if (this.#paused) {
      this.kill("SIGKILL");
      return this.exited;
    }
    const timer = setTimeout(() => this.kill("SIGKILL"), timeoutMs);
    try {
      await this.#request({ type: "exit" }, timeoutMs).catch(() => this.kill("SIGKILL"));
      return await this.exited;
    } finally {
      clearTimeout(timer);
    }
  }

  /** @internal Waits for the worker's `ready` (or its failure), bounded by `timeoutMs`. */
  waitReady(timeoutMs: number): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const finish = (error?: Error) => {
        clearTimeout(timer);
        this.#child.off("message", onMessage);
        if (error === undefined) resolve();
        else reject(error);
      };
      const onMessage = (message: WorkerMessage) => {
        if (message.type === "ready") finish();
        else if (message.type === "fatal") {
          finish(
            new Error(`${this.name} failed to start: ${message.error.code}: ${message.error.message}${this.#tail()}`),
          );
        }
      };
      const timer = setTimeout(
        () => finish(new Error(`${this.name} was not ready within ${timeoutMs} ms.${this.#tail()}`)),
        timeoutMs,
      );
      this.#child.on("message", onMessage);
      void this.exited.then(() =>
        finish(new Error(`${this.name} exited (${this.#describeExit()}) before it was ready.${this.#tail()}`)),
      );
    });
  }

  /** @internal */
  post(message: ParentMessage): void {
    this.#child.send(message);
  }

  #request(body: CommandBody, timeoutMs = DEFAULT_REPLY_TIMEOUT_MS): Promise<unknown> {
    if (!this.alive) return Promise.reject(new Error(`${this.name} has exited (${this.#describeExit()}).`));
    const id = this.#nextId++;
    return new Promise<unknown>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        const state = this.#paused ? " (it is paused)" : "";
        reject(new Error(`${this.name} did not answer ${body.type} within ${timeoutMs} ms${state}.${this.#tail()}`));
      }, timeoutMs);
      this.#pending.set(id, { command: body.type, resolve, reject, timer });
      this.#child.send({ ...body, id } as Command, (error) => {
        if (error === null) return;
        const pending = this.#pending.get(id);
        if (pending === undefined) return;
        this.#pending.delete(id);
        clearTimeout(timer);
        pending.reject(new Error(`${this.name}: could not send ${body.type}: ${error.message}`));
      });
    });
  }

  #onMessage(message: WorkerMessage): void {
    this.#messages.push(message);
    if (message.type !== "reply") return;
    const pending = this.#pending.get(message.id);
    if (pending === undefined) return;
    this.#pending.delete(message.id);
    clearTimeout(pending.timer);
    if (message.ok) pending.resolve(message.value);
    else pending.reject(new WorkerCommandError(this.name, pending.command, message.error));
  }

  #describeExit(): string {
    const exit = this.#exit;
    if (exit === undefined) return "running";
    return exit.signal === null ? `code ${exit.code}` : `signal ${exit.signal}`;
  }

  #tail(): string {
    const output = this.#output.trim();
    return output === "" ? "" : `\n--- ${this.name} output (tail) ---\n${output}`;
  }
}

/**
 * Starts a worker process, loads `options.config` in it (after the `setup` modules), connects its
 * stores, and resolves once it is ready for commands. Rejects (and kills the process) when it
 * fails to start or is not ready within `readyTimeoutMs`.
 *
 * @example
 * ```ts
 * const frozen = await spawnWorker({ config, setup: new URL("./index.ts", import.meta.url) });
 * await frozen.acquire("db");
 * frozen.pause(); // SIGSTOP, past its lease
 * ```
 */
export async function spawnWorker(options: WorkerOptions): Promise<WorkerProcess> {
  const module = options.workerModule ?? defaultWorkerModule();
  const modulePath = module instanceof URL || module.startsWith("file:") ? fileURLToPath(module) : module;
  const execArgv = [...(options.execArgv ?? defaultExecArgv(modulePath))];
  installExitHook();
  const child = fork(modulePath, [], {
    execArgv,
    env: { ...process.env, ...options.env },
    stdio: ["ignore", "pipe", "pipe", "ipc"],
    // Structured clone: numbers such as Infinity cross the channel intact.
    serialization: "advanced",
  });
  live.add(child);
  let worker: WorkerProcess;
  try {
    worker = new WorkerProcess(child, options.name);
  } catch (error) {
    child.kill("SIGKILL");
    throw error;
  }
  const ready = worker.waitReady(options.readyTimeoutMs ?? DEFAULT_READY_TIMEOUT_MS);
  worker.post({
    type: "init",
    init: {
      config: options.config,
      setup: setupUrls(options.setup),
      ...(options.pollMs === undefined ? {} : { pollMs: options.pollMs }),
    },
  });
  try {
    await ready;
  } catch (error) {
    worker.kill("SIGKILL");
    await worker.exited;
    throw error;
  }
  return worker;
}

/**
 * A workload for several workers at once: {@link Workload}, with the callers given for all
 * processes or per process.
 */
export interface SharedWorkload extends Omit<Workload, "callers"> {
  /**
   * Concurrent callers per process: one number for all, or one per process (`[1, 5, 20]`), to
   * compare a lone waiter with a crowd.
   */
  readonly callers: number | readonly number[];
  /**
   * Time between the start message and the common start, ms: the message must reach every
   * worker before the start. @default 300
   */
  readonly startDelayMs?: number | undefined;
  /** How long past the end of the run the workers may take to report, ms. @default 30000 */
  readonly resultTimeoutMs?: number | undefined;
}

/** Options of {@link runWorkers}: how to start the workers, and the workload each one runs. */
export interface RunWorkersOptions extends WorkerOptions, SharedWorkload {
  /** Worker processes. */
  readonly processes: number;
}

/** What a run recorded, every worker's logs merged. Times are on the harness clock, store times on the store's (epoch ms). */
export interface RunResult {
  /** Each worker's own report, in the order of the workers. */
  readonly workers: readonly WorkerRunResult[];
  /** The common start, on the harness clock. */
  readonly startAt: number;
  /** The run's length, ms. */
  readonly durationMs: number;
  /** Every admission as the callers saw it, sorted. */
  readonly admissions: number[];
  /**
   * Every admission at the store's time (`EngineDecision.now`), sorted: what rate checks use,
   * since the callers' own times carry network and event-loop delays of up to tens of ms.
   */
  readonly storeAdmissions: number[];
  /** Every hold interval (`"hold"`, `"wait"`), sorted by start. */
  readonly holds: HoldInterval[];
  /** The largest `inUse` any admitting decision reported. */
  readonly maxInUse: number;
  /** Store calls of all workers during the run, summed. */
  readonly calls: StoreCallCounts;
  /** Degraded admissions, summed (should be 0 against a healthy store). */
  readonly degraded: number;
  /** Errors other than the run ending, by code, summed. */
  readonly errors: Record<string, number>;
  /** From the call (the first fork, for {@link runWorkers}) to the last report, ms. */
  readonly elapsedMs: number;
}

function merge(
  workers: readonly WorkerRunResult[],
): Omit<RunResult, "workers" | "startAt" | "durationMs" | "elapsedMs"> {
  const calls: StoreCallCounts = { decide: 0, peek: 0, release: 0, renew: 0, reset: 0, total: 0 };
  const errors: Record<string, number> = {};
  for (const worker of workers) {
    for (const method of Object.keys(calls) as (keyof StoreCallCounts)[]) calls[method] += worker.calls[method];
    for (const [code, count] of Object.entries(worker.errors)) errors[code] = (errors[code] ?? 0) + count;
  }
  return {
    admissions: workers.flatMap((worker) => worker.admissions).sort((a, b) => a - b),
    storeAdmissions: workers.flatMap((worker) => worker.storeAdmissions).sort((a, b) => a - b),
    holds: workers.flatMap((worker) => worker.holds).sort((a, b) => a.start - b.start),
    maxInUse: Math.max(0, ...workers.map((worker) => worker.maxInUse)),
    calls,
    degraded: workers.reduce((sum, worker) => sum + worker.degraded, 0),
    errors,
  };
}

/**
 * Starts `count` workers in parallel (see {@link spawnWorker}), named `<name> i/count`. When one
 * fails to start, the others are ended and the first failure is thrown.
 */
export async function spawnWorkers(count: number, options: WorkerOptions): Promise<WorkerProcess[]> {
  if (!Number.isSafeInteger(count) || count < 1) throw new RangeError(`count must be >= 1, got ${count}`);
  const started = await Promise.allSettled(
    Array.from({ length: count }, (_, index) =>
      spawnWorker({ ...options, name: `${options.name ?? "worker"} ${index + 1}/${count}` }),
    ),
  );
  const failure = started.find((outcome) => outcome.status === "rejected");
  if (failure === undefined) return started.map((outcome) => (outcome as PromiseFulfilledResult<WorkerProcess>).value);
  await Promise.all(started.map((outcome) => (outcome.status === "fulfilled" ? outcome.value.close() : undefined)));
  throw (failure as PromiseRejectedResult).reason;
}

/**
 * Runs a workload on workers already started, all at one common instant, and merges what they
 * recorded. The workers keep running (reuse them: starting a worker costs about a second of CPU).
 *
 * @example
 * ```ts
 * const pool = await spawnWorkers(4, { config, setup });
 * const result = await runWorkload(pool, { mode: "hold", limiter: "db", callers: 50, durationMs: 5000 });
 * expect(maxConcurrentFromIntervals(result.holds)).toBeLessThanOrEqual(5);
 * ```
 */
export async function runWorkload(workers: readonly WorkerProcess[], workload: SharedWorkload): Promise<RunResult> {
  const began = harnessNow();
  const { mode, limiter, key, callers, durationMs, holdMs, rateCall } = workload;
  if (workers.length === 0) throw new RangeError("runWorkload needs at least one worker");
  const perProcess = typeof callers === "number" ? workers.map(() => callers) : [...callers];
  if (perProcess.length !== workers.length || perProcess.some((count) => !Number.isSafeInteger(count) || count < 1)) {
    throw new RangeError(`callers must be an integer >= 1, or one per worker, got ${JSON.stringify(callers)}`);
  }
  if (!(Number.isFinite(durationMs) && durationMs > 0))
    throw new RangeError(`durationMs must be > 0, got ${durationMs}`);
  const own = (index: number): Workload => ({
    mode,
    limiter,
    key,
    callers: perProcess[index] as number,
    durationMs,
    ...(holdMs === undefined ? {} : { holdMs }),
    ...(rateCall === undefined ? {} : { rateCall }),
  });
  const startAt = harnessNow() + (workload.startDelayMs ?? 300);
  const timeout = startAt - harnessNow() + durationMs + (workload.resultTimeoutMs ?? DEFAULT_REPLY_TIMEOUT_MS);
  const reports = await Promise.all(workers.map((worker, index) => worker.run(own(index), startAt, timeout)));
  return { workers: reports, startAt, durationMs, ...merge(reports), elapsedMs: harnessNow() - began };
}

/**
 * Forks `processes` workers, waits until all are connected, starts the workload in every one at
 * a common instant, collects what each recorded, and ends them. Whatever happens, no worker is
 * left running when it settles.
 *
 * @example
 * ```ts
 * const result = await runWorkers({
 *   config: `[stores.s]\nengine = "redis"\nkey_prefix = "mp-${uniqueRunId()}:"\n[limiters.tb]\nstore = "s"\nrate_per_second = 100\nburst = 20\n`,
 *   setup: new URL("./index.ts", import.meta.url),
 *   processes: 4, callers: 50, durationMs: 10_000, mode: "rate", limiter: "tb", key: "k",
 * });
 * expect(checkTokenBucketLog(result.storeAdmissions, { ratePerSecond: 100, burst: 20, durationMs: 10_000 })).toEqual([]);
 * ```
 */
export async function runWorkers(options: RunWorkersOptions): Promise<RunResult> {
  const began = harnessNow();
  const workers = await spawnWorkers(options.processes, options);
  try {
    const result = await runWorkload(workers, options);
    return { ...result, elapsedMs: harnessNow() - began };
  } finally {
    await Promise.all(workers.map((worker) => worker.close()));
  }
}
