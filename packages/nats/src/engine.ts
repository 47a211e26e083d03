import { readFileSync } from "node:fs";
import { type KV, type KvEntry, Kvm, type KvStatus, KvWatchInclude } from "@nats-io/kv";
import {
  type ConnectionOptions,
  connect,
  credsAuthenticator,
  type NatsConnection,
  type Status,
} from "@nats-io/transport-node";
import type {
  Clock,
  DecideRequest,
  Engine,
  EngineContext,
  EngineDecision,
  EngineDefinition,
  EngineTarget,
  KeyState,
  LeaseRequest,
  PeekRequest,
  Policy,
  RenewRequest,
} from "@ratesync/core";
import {
  BUILTIN_ENGINE_KEYS,
  DEFAULT_REQUEST_TIMEOUT_MS,
  DeadlineQueue,
  decide,
  peek,
  RateSyncError,
  releaseSlot,
  renewSlot,
  stateExpiresAt,
  systemClock,
  TargetCache,
} from "@ratesync/core";
import { clockProbeKey, encodeKvKey } from "./keys.js";
import { ServerClock } from "./server-clock.js";

/**
 * Options of {@link createNatsEngine} (and of `[stores.<id>]` with `engine = "nats"`, in
 * snake_case there).
 */
export interface NatsEngineOptions {
  /** Server URL, `nats://host:port` (or several, comma-separated). @default "nats://127.0.0.1:4222" */
  url?: string | undefined;
  /** Server URLs of a cluster; used with or instead of `url`. */
  servers?: string | readonly string[] | undefined;
  /**
   * The KV bucket holding the limiter state. One bucket serves every limiter of the store.
   * @default "ratesync"
   */
  bucket?: string | undefined;
  /**
   * Create the bucket when it does not exist (history 1, entries expiring after `ttlSeconds`).
   * When false, a missing bucket is a startup error.
   * @default true
   */
  autoCreate?: boolean | undefined;
  /**
   * How long an entry lives after its last write (the bucket's max age), in seconds. Must cover the
   * longest state of any limiter on the store: `burst / rate_per_second`, `window_seconds`,
   * `lease_seconds`. Used when the engine creates the bucket; an existing bucket keeps its own.
   * @default 86400
   */
  ttlSeconds?: number | undefined;
  /** Authentication token. Never logged, never in an error message. */
  token?: string | undefined;
  /** User name. */
  user?: string | undefined;
  /** Password. Never logged, never in an error message. */
  password?: string | undefined;
  /** Path of a `.creds` file (JWT and NKey seed), read once at connect. */
  credsFile?: string | undefined;
  /** How long to wait for the first connection, in ms. @default 5000 */
  connectTimeoutMs?: number | undefined;
  /**
   * Deadline of one store round trip, in ms. A store configured with `engine = "nats"` passes its
   * own `request_timeout_ms`.
   * @default 1000
   */
  requestTimeoutMs?: number | undefined;
  /**
   * How many times one decision is retried when another process wrote the entry between its read
   * and its compare-and-set, before it fails with a `STORE_ERROR`. Retries back off with jitter.
   * @default 32
   */
  maxConflictRetries?: number | undefined;
  /**
   * A connection you opened (`connect()` from `@nats-io/transport-node`). The engine uses it as
   * is and never closes it.
   */
  connection?: NatsConnection | undefined;
}

/** Default of {@link NatsEngineOptions.bucket}. */
export const DEFAULT_NATS_BUCKET = "ratesync";
/** Default of {@link NatsEngineOptions.ttlSeconds}. */
export const DEFAULT_NATS_TTL_SECONDS = 86_400;
/** Default of {@link NatsEngineOptions.maxConflictRetries}. */
export const DEFAULT_MAX_CONFLICT_RETRIES = 32;

/** Keys whose last write the engine remembers, to decide on it without a read. */
const WRITE_CACHE_SIZE = 10_000;
/** Largest state remembered (serialized): a long sliding window log is read instead. */
const MAX_REMEMBERED_JSON = 1024;
/** How long a key that another process wrote is read before each decision again. */
const READ_FIRST_MS = 1000;
/** Pause before a watch that ended is set up again. */
const WATCH_RETRY_MS = 1000;
/** Every so often the engine measures its offset to the server's clock again. */
const CLOCK_PROBE_INTERVAL_MS = 10_000;
/** Round trips of the first clock measurement (each one narrows the estimate). */
const FIRST_PROBES = 5;
/** Backoff of a conflicted compare-and-set: full jitter below base * 2^attempt, capped. */
const BACKOFF_BASE_MS = 1;
const BACKOFF_CAP_MS = 100;
/** The JetStream API error codes of a compare-and-set that lost: "wrong last sequence". */
const WRONG_LAST_SEQUENCE = 10071;
const WRONG_LAST_SEQUENCE_UNKNOWN = 10164;
/**
 * What the JetStream API answers the loser when processes create the same bucket at once:
 * "stream name already in use" or "subjects overlap with an existing stream".
 */
const CREATION_RACE_CODES: ReadonlySet<unknown> = new Set([10058, 10065]);
/**
 * Pauses while a bucket that was just created settles (another process's creation not yet
 * visible, the stream not yet listening on its subjects): about 1.5 s in all, then the error stands.
 */
const SETTLE_DELAYS_MS = [10, 25, 50, 100, 200, 400, 700];

/** What the engine stores in one entry. */
interface StoredValue {
  /** The algorithms' state. */
  s: KeyState;
  /** When the state becomes the same as no state (store time, epoch ms). */
  e: number;
  /** 1 when this write freed a slot: watchers wake their waiters. */
  r?: 1;
}

/** One call waiting for its key's next read-decide-write cycle. */
type Operation =
  | {
      readonly kind: "decide";
      readonly policy: Policy;
      readonly cost: number;
      readonly leaseId: string | undefined;
      readonly resolve: (decision: EngineDecision) => void;
      readonly reject: (error: unknown) => void;
    }
  | {
      readonly kind: "peek";
      readonly policy: Policy;
      readonly cost: number;
      readonly resolve: (decision: EngineDecision) => void;
      readonly reject: (error: unknown) => void;
    }
  | {
      readonly kind: "release";
      readonly leaseId: string;
      readonly resolve: (released: boolean) => void;
      readonly reject: (error: unknown) => void;
    }
  | {
      readonly kind: "renew";
      readonly leaseId: string;
      readonly leaseMs: number;
      readonly resolve: (expiresAt: number | undefined) => void;
      readonly reject: (error: unknown) => void;
    };

/**
 * The calls on one KV key. While a cycle (read, decide, compare-and-set) is in flight, new calls
 * queue; the next cycle decides all of them on one read, in arrival order, and writes once. So many
 * callers of one process on a hot key never fight each other in the store (SPEC section 6).
 */
interface Lane {
  readonly key: string;
  queue: Operation[];
  busy: boolean;
  /** Our last write to the key, timed: reading it back gives a free clock sample. */
  written: { revision: number; sent: number; received: number } | undefined;
}

/** Our last write of a key: its value and revision, unless other writers make it not worth keeping. */
interface Remembered {
  json: string;
  revision: number;
  /** Local time until which the key is read before each decision (another process writes it too). */
  readFirstUntil: number;
}

/** The outcome of an operation within a cycle, delivered once the cycle's write has landed. */
type Outcome = EngineDecision | boolean | number | undefined;

/** Release listeners of one key, fed by one KV watch. */
interface Watch {
  readonly listeners: Set<() => void>;
  stop: (() => void) | undefined;
  stopped: boolean;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Whether an error is the server refusing a compare-and-set: both forms of "wrong last sequence". */
export function isConflict(error: unknown): boolean {
  if (typeof error !== "object" || error === null) return false;
  const code = (error as { code?: unknown }).code;
  if (code === WRONG_LAST_SEQUENCE || code === WRONG_LAST_SEQUENCE_UNKNOWN) return true;
  const message = (error as { message?: unknown }).message;
  return typeof message === "string" && message.toLowerCase().includes("wrong last sequence");
}

function storeError(message: string, cause?: unknown, details?: Record<string, unknown>): RateSyncError {
  return new RateSyncError("STORE_ERROR", message, {
    ...(cause === undefined ? {} : { cause }),
    ...(details === undefined ? {} : { details }),
  });
}

function asList(servers: string | readonly string[]): string[] {
  return (typeof servers === "string" ? servers.split(",") : [...servers]).map((s) => s.trim()).filter(Boolean);
}

/** The stored value of an entry, or `undefined` for no entry, a delete marker or a foreign value. */
function parseEntry(entry: KvEntry | null): StoredValue | undefined {
  if (entry === null || entry.operation !== "PUT") return undefined;
  try {
    const value = JSON.parse(decoder.decode(entry.value)) as StoredValue;
    return typeof value === "object" && value !== null && typeof value.e === "number" ? value : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The NATS JetStream KV engine. KV runs no code on the server, so a decision is a read of the
 * key's entry, core's pure algorithm (the one the memory engine runs) on it, and a compare-and-set
 * on the entry's revision; a refusal writes nothing. A conflict (another process wrote in between)
 * reads again and retries, a bounded number of times with jittered backoff. Calls of this process
 * on one key share one cycle (one read, one write), and an admission on a key whose last write was
 * this engine's skips the read: the compare-and-set on that write's revision proves it current.
 *
 * Time comes from the server: the engine estimates its offset to the server's clock from the
 * timestamps the server puts on entries (see {@link ServerClock}) and runs the algorithms on that
 * time, so application clocks that disagree do not change decisions.
 *
 * The connection is opened on first use (or one you pass in is used and never closed); the client
 * reconnects by itself after a server restart, and while it is disconnected calls fail at once.
 */
export class NatsEngine implements Engine {
  readonly name = "nats";
  readonly remote = true;
  readonly #options: NatsEngineOptions;
  readonly #bucket: string;
  readonly #timeoutMs: number;
  /**
   * The deadline of every KV operation (the client's own request timeout is not configurable per
   * call for every operation, and a call must settle within the store's deadline): one timer for
   * all pending operations.
   */
  readonly #deadlines: DeadlineQueue;
  readonly #maxRetries: number;
  readonly #ownsConnection: boolean;
  readonly #clock: ServerClock;
  readonly #localClock: Clock;
  readonly #instance = crypto.randomUUID();
  readonly #lanes = new Map<string, Lane>();
  readonly #watches = new Map<string, Watch>();
  /** The KV key of each (limiter, key). */
  readonly #kvKeys = new TargetCache(encodeKvKey);
  /** KV key → our last write of it (insertion order = age). */
  readonly #writes = new Map<string, Omit<Remembered, "json"> & { json: string | undefined }>();
  #connection: NatsConnection | undefined;
  #kv: KV | undefined;
  #ttlMs = 0;
  #ready: Promise<KV> | undefined;
  #probeTimer: ReturnType<typeof setInterval> | undefined;
  #disconnected = false;
  #stopStatus: (() => void) | undefined;
  #closed = false;

  constructor(options: NatsEngineOptions = {}, context?: Partial<Pick<EngineContext, "requestTimeoutMs" | "clock">>) {
    this.#options = options;
    this.#bucket = options.bucket ?? DEFAULT_NATS_BUCKET;
    this.#timeoutMs = context?.requestTimeoutMs ?? options.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
    this.#deadlines = new DeadlineQueue(systemClock, this.#timeoutMs);
    this.#maxRetries = options.maxConflictRetries ?? DEFAULT_MAX_CONFLICT_RETRIES;
    this.#ownsConnection = options.connection === undefined;
    this.#connection = options.connection;
    this.#localClock = context?.clock ?? systemClock;
    this.#clock = new ServerClock(this.#localClock);
    if (!Number.isSafeInteger(this.#maxRetries) || this.#maxRetries < 0) {
      throw new RateSyncError(
        "CONFIG_INVALID",
        `max_conflict_retries (maxConflictRetries) must be a whole number >= 0, got ${String(options.maxConflictRetries)}.`,
        { details: { maxConflictRetries: options.maxConflictRetries } },
      );
    }
    const ttl = options.ttlSeconds;
    if (ttl !== undefined && !(typeof ttl === "number" && ttl > 0 && ttl * 1e9 < Number.MAX_SAFE_INTEGER * 1000)) {
      throw new RateSyncError(
        "CONFIG_INVALID",
        `ttl_seconds (ttlSeconds) must be a number of seconds > 0 (at most about 292 years), got ${String(ttl)}.`,
        { details: { ttlSeconds: ttl } },
      );
    }
    if (!/^[-\w]+$/.test(this.#bucket)) {
      throw new RateSyncError(
        "CONFIG_INVALID",
        `The NATS bucket name ${JSON.stringify(this.#bucket)} is not valid: use letters, digits, "-" and "_" only.`,
        { details: { bucket: this.#bucket } },
      );
    }
  }

  /** The KV bucket in use (after the first call or `init()`); `undefined` before. */
  get kv(): KV | undefined {
    return this.#kv;
  }

  /** The estimated offset of the server's clock to this engine's clock, ms (`undefined` before the first sync). */
  get clockOffsetMs(): number | undefined {
    return this.#clock.offsetMs;
  }

  /** Decides one call: rate and concurrency together, on the server's time; writes only when admitting. */
  decide(request: DecideRequest): Promise<EngineDecision> {
    return new Promise((resolve, reject) =>
      this.#enqueue(request, {
        kind: "decide",
        policy: request.policy,
        cost: request.cost,
        leaseId: request.leaseId,
        resolve,
        reject,
      }),
    );
  }

  /** What a call of `cost` would get now; reads, never writes. */
  peek(request: PeekRequest): Promise<EngineDecision> {
    return new Promise((resolve, reject) =>
      this.#enqueue(request, { kind: "peek", policy: request.policy, cost: request.cost, resolve, reject }),
    );
  }

  /** Frees a live lease (waiters are woken through the KV watch); `false` when it was not live. */
  release(request: LeaseRequest): Promise<boolean> {
    return new Promise((resolve, reject) =>
      this.#enqueue(request, { kind: "release", leaseId: request.leaseId, resolve, reject }),
    );
  }

  /** Extends a live lease from the server's now; its new expiry, or `undefined` when it is gone. */
  renew(request: RenewRequest): Promise<number | undefined> {
    return new Promise((resolve, reject) =>
      this.#enqueue(request, {
        kind: "renew",
        leaseId: request.leaseId,
        leaseMs: request.leaseMs,
        resolve,
        reject,
      }),
    );
  }

  /** Deletes the key's entry (a purge marker); its watchers wake, since slots were freed. */
  async reset(target: EngineTarget): Promise<void> {
    const kv = await this.#store();
    this.#checkConnected();
    const key = this.#kvKeys.get(target.limiter, target.key);
    this.#forget(key, false);
    await this.#bounded(kv.purge(key), "NATS (purge)");
  }

  /**
   * Subscribes to releases of the target's slots, from any process: one KV watch per key with
   * listeners (updates only, no history), stopped when the last listener leaves. A watch that
   * cannot be set up only costs the waiters their fast wake-up: the limiter still polls.
   */
  onRelease(target: EngineTarget, listener: () => void): () => void {
    const key = this.#kvKeys.get(target.limiter, target.key);
    let watch = this.#watches.get(key);
    if (watch === undefined) {
      const created: Watch = { listeners: new Set(), stop: undefined, stopped: false };
      watch = created;
      this.#watches.set(key, created);
      void this.#startWatch(key, created);
    }
    watch.listeners.add(listener);
    const current = watch;
    return () => {
      if (!current.listeners.delete(listener) || current.listeners.size > 0) return;
      current.stopped = true;
      current.stop?.();
      if (this.#watches.get(key) === current) this.#watches.delete(key);
    };
  }

  /** Connects, checks (or creates) the bucket and measures the clock offset; fails fast on a wrong bucket. */
  async init(): Promise<void> {
    await this.#store();
  }

  /** Stops timers and watches and closes the connection if the engine opened it (one passed in stays open). */
  async close(): Promise<void> {
    this.#closed = true;
    if (this.#probeTimer !== undefined) clearInterval(this.#probeTimer);
    this.#probeTimer = undefined;
    for (const watch of this.#watches.values()) {
      watch.stopped = true;
      watch.stop?.();
    }
    this.#watches.clear();
    this.#stopStatus?.();
    this.#stopStatus = undefined;
    const closedError = storeError("The NATS engine was closed; configure the store again to use it.");
    for (const lane of this.#lanes.values()) {
      for (const op of lane.queue) op.reject(closedError);
      lane.queue = [];
    }
    this.#writes.clear();
    this.#kvKeys.clear();
    // Every operation still pending settles now, and no deadline timer outlives the engine.
    this.#deadlines.expireAll();
    const ready = this.#ready;
    this.#ready = undefined;
    this.#kv = undefined;
    // A connection still being opened is closed once it is open.
    if (ready !== undefined) await ready.catch(() => {});
    const connection = this.#connection;
    if (connection !== undefined && this.#ownsConnection) {
      this.#connection = undefined;
      if (!connection.isClosed()) await connection.close().catch(() => {});
    }
  }

  /** `operation`, or a `STORE_ERROR` naming `what` once the store's deadline has passed. */
  #bounded<T>(operation: Promise<T>, what: string): Promise<T> {
    const ms = this.#timeoutMs;
    return this.#deadlines.bound(operation, () =>
      storeError(`${what} did not answer within ${ms} ms.`, undefined, { timeoutMs: ms }),
    );
  }

  #horizonError(horizonMs: number): RateSyncError {
    return new RateSyncError(
      "CONFIG_INVALID",
      `A limiter on NATS bucket "${this.#bucket}" needs its state kept for ${Math.ceil(horizonMs)} ms, longer than the bucket's max age of ${this.#ttlMs} ms: its entries could expire while they still limit. Raise ttl_seconds (a new bucket) or the bucket's max age (nats kv edit ${this.#bucket} --ttl), or shorten the limiter's window, burst or lease.`,
      { details: { bucket: this.#bucket, horizonMs, maxAgeMs: this.#ttlMs } },
    );
  }

  #checkConnected(): void {
    if (this.#closed) throw storeError("The NATS engine was closed; configure the store again to use it.");
    if (this.#disconnected) {
      throw storeError("NATS is disconnected; the client is reconnecting in the background.");
    }
  }

  #enqueue(target: EngineTarget, op: Operation): void {
    if (this.#closed) {
      op.reject(storeError("The NATS engine was closed; configure the store again to use it."));
      return;
    }
    const key = this.#kvKeys.get(target.limiter, target.key);
    let lane = this.#lanes.get(key);
    if (lane === undefined) {
      lane = { key, queue: [], busy: false, written: undefined };
      this.#lanes.set(key, lane);
    }
    lane.queue.push(op);
    if (!lane.busy) void this.#drain(lane);
  }

  /** Runs cycles on the lane until its queue is empty, then forgets the lane. */
  async #drain(lane: Lane): Promise<void> {
    lane.busy = true;
    try {
      while (lane.queue.length > 0) {
        const batch = lane.queue;
        lane.queue = [];
        try {
          const kv = this.#kv ?? (await this.#store());
          await this.#cycle(kv, lane, batch);
        } catch (error) {
          for (const op of batch) op.reject(error);
        }
      }
    } finally {
      lane.busy = false;
      if (lane.queue.length === 0) {
        if (this.#lanes.get(lane.key) === lane) this.#lanes.delete(lane.key);
      } else {
        void this.#drain(lane);
      }
    }
  }

  /**
   * One batch: read the entry, run every operation on its state at the server's now, write once
   * if anything changed (compare-and-set on the revision read), and deliver the outcomes. A lost
   * compare-and-set runs the whole batch again on a fresh read.
   */
  async #cycle(kv: KV, lane: Lane, batch: Operation[]): Promise<void> {
    // Our own last write of the key, when we have it: deciding on it saves the read, and the
    // compare-and-set on its revision proves it was still the latest. Only an admission is proven
    // that way (a refusal writes nothing), so a batch that writes nothing reads after all.
    let remembered = this.#remembered(lane.key);
    for (let attempt = 0; ; ) {
      this.#checkConnected();
      let revision: number;
      let stored: StoredValue | undefined;
      let floor = Number.NEGATIVE_INFINITY;
      if (remembered !== undefined) {
        revision = remembered.revision;
        stored = JSON.parse(remembered.json) as StoredValue;
      } else {
        const entry = await this.#bounded(kv.get(lane.key), "NATS (get)");
        revision = entry === null ? 0 : entry.revision;
        stored = parseEntry(entry);
        if (entry !== null) {
          floor = entry.created.getTime();
          const written = lane.written;
          // Our own last write, read back: its server stamp lies inside the round trip we timed.
          // (The stamp is whole milliseconds, truncated: the server's time was in [floor, floor + 1).)
          if (written !== undefined && written.revision === entry.revision) {
            this.#clock.sample(written.sent, written.received, floor, floor + 1);
            lane.written = undefined;
          }
        }
      }
      const now = this.#clock.now(floor);
      let state = stored !== undefined && stored.e > now ? stored.s : undefined;
      let expiresAt = state === undefined ? 0 : (stored?.e ?? 0);
      let changed = false;
      let freed = false;
      const outcomes: Outcome[] = [];
      for (const op of batch) {
        switch (op.kind) {
          case "decide": {
            const result = decide(state, op.policy, op.cost, op.leaseId, now);
            if (result.changed) {
              state = result.state;
              changed = true;
              if (state !== undefined) expiresAt = Math.max(expiresAt, stateExpiresAt(state, op.policy));
            }
            outcomes.push(result.decision);
            break;
          }
          case "peek":
            outcomes.push(peek(state, op.policy, op.cost, now));
            break;
          case "release": {
            const released = releaseSlot(state, op.leaseId, now);
            if (released) {
              changed = true;
              freed = true;
            }
            outcomes.push(released);
            break;
          }
          case "renew": {
            const renewed = renewSlot(state, op.leaseId, op.leaseMs, now);
            if (renewed !== undefined) {
              changed = true;
              expiresAt = Math.max(expiresAt, renewed);
            }
            outcomes.push(renewed);
            break;
          }
        }
      }
      if (!changed || state === undefined) {
        if (remembered !== undefined) {
          // Unproven: someone may have freed a slot or reset the key since our write. Read.
          remembered = undefined;
          continue;
        }
      } else {
        // The entry lives the bucket's max age after this write: a state that must live longer
        // (a drained bucket refilling slowly, a long window) would be forgotten while it still
        // limits, which admits too much. Refuse instead, saying what to change.
        if (expiresAt - now > this.#ttlMs) throw this.#horizonError(expiresAt - now);
        const json = JSON.stringify(freed ? { s: state, e: expiresAt, r: 1 } : { s: state, e: expiresAt });
        const sent = this.#clock.local();
        try {
          // Revision 0 expects no message on the subject at all (what `create` sends first,
          // without its fallback read); a delete/purge marker or an expired state is updated on
          // its revision like any entry.
          const written = await kv.put(lane.key, encoder.encode(json), {
            previousSeq: revision,
            timeout: this.#timeoutMs,
          });
          lane.written = { revision: written, sent, received: this.#clock.local() };
          this.#remember(lane.key, json, written);
        } catch (error) {
          if (!isConflict(error)) throw this.#wrap(error, "compare-and-set");
          if (remembered !== undefined) {
            // Another process wrote since our last write: read first on this key for a while.
            this.#forget(lane.key, true);
            remembered = undefined;
            continue;
          }
          if (attempt >= this.#maxRetries) {
            throw storeError(
              `NATS: ${attempt + 1} compare-and-set attempts on one key all lost to other writers. Raise max_conflict_retries, or spread the load over more keys.`,
              error,
              { attempts: attempt + 1 },
            );
          }
          await new Promise((resolve) =>
            setTimeout(resolve, Math.random() * Math.min(BACKOFF_CAP_MS, BACKOFF_BASE_MS * 2 ** attempt)),
          );
          attempt++;
          continue;
        }
      }
      for (let i = 0; i < batch.length; i++) (batch[i] as { resolve: (value: Outcome) => void }).resolve(outcomes[i]);
      return;
    }
  }

  /** Our last write of `key`, when it may still be the latest (see {@link #cycle}). */
  #remembered(key: string): Remembered | undefined {
    const remembered = this.#writes.get(key);
    if (remembered === undefined || remembered.json === undefined) return undefined;
    if (remembered.readFirstUntil > this.#localClock.now()) return undefined;
    return remembered as Remembered;
  }

  /**
   * Remembers our write of `key` (small states only, and at most {@link WRITE_CACHE_SIZE} keys,
   * the oldest dropped first), keeping whether the key is known to have other writers.
   */
  #remember(key: string, json: string, revision: number): void {
    const previous = this.#writes.get(key);
    this.#writes.delete(key);
    if (json.length > MAX_REMEMBERED_JSON) return;
    this.#writes.set(key, { json, revision, readFirstUntil: previous?.readFirstUntil ?? 0 });
    this.#trimWrites();
  }

  #trimWrites(): void {
    if (this.#writes.size > WRITE_CACHE_SIZE) {
      const oldest = this.#writes.keys().next();
      if (!oldest.done) this.#writes.delete(oldest.value);
    }
  }

  /** Forgets our write of `key`; `contended`: other processes write it too, so read first for a while. */
  #forget(key: string, contended: boolean): void {
    if (!contended) {
      this.#writes.delete(key);
      return;
    }
    this.#writes.delete(key);
    this.#writes.set(key, { json: undefined, revision: 0, readFirstUntil: this.#localClock.now() + READ_FIRST_MS });
    this.#trimWrites();
  }

  #wrap(error: unknown, what: string): unknown {
    if (error instanceof RateSyncError) return error;
    const message = error instanceof Error ? error.message : String(error);
    return storeError(`NATS ${what} failed: ${message}`, error);
  }

  /** The bucket, once connected and checked: the first call (or `init()`) opens it. */
  #store(): Promise<KV> {
    if (this.#closed) {
      return Promise.reject(storeError("The NATS engine was closed; configure the store again to use it."));
    }
    if (this.#kv !== undefined) return Promise.resolve(this.#kv);
    if (this.#ready === undefined) {
      const opening = this.#open();
      this.#ready = opening;
      opening.catch(() => {
        // Let the next call try again.
        if (this.#ready === opening) this.#ready = undefined;
      });
    }
    return this.#ready;
  }

  async #open(): Promise<KV> {
    const connection = this.#connection ?? (await this.#connect());
    if (this.#stopStatus === undefined) void this.#followStatus(connection);
    const kv = await this.#openBucket(connection);
    // The first write to a bucket created a moment ago (by us or by a process starting with us)
    // can find no stream listening yet.
    await whileSettling(() => this.#probeClock(kv, FIRST_PROBES), isNoResponders);
    if (this.#closed) throw storeError("The NATS engine was closed; configure the store again to use it.");
    this.#kv = kv;
    this.#probeTimer = setInterval(() => {
      if (!this.#disconnected) void this.#probeClock(kv, 1).catch(() => {});
    }, CLOCK_PROBE_INTERVAL_MS);
    this.#probeTimer.unref?.();
    return kv;
  }

  async #connect(): Promise<NatsConnection> {
    const options = this.#options;
    const servers = [
      ...(options.url === undefined ? [] : asList(options.url)),
      ...(options.servers === undefined ? [] : asList(options.servers)),
    ];
    const connectOptions: ConnectionOptions = {
      servers: servers.length === 0 ? ["nats://127.0.0.1:4222"] : servers,
      name: "ratesync",
      timeout: options.connectTimeoutMs ?? 5000,
      // Reconnect for ever, quickly: a store outage should end for the limiter soon after it
      // ends for NATS.
      maxReconnectAttempts: -1,
      reconnectTimeWait: 250,
      reconnectJitter: 100,
      pingInterval: 10_000,
      noAsyncTraces: true,
      ...(options.token === undefined ? {} : { token: options.token }),
      ...(options.user === undefined ? {} : { user: options.user }),
      ...(options.password === undefined ? {} : { pass: options.password }),
      ...(options.credsFile === undefined
        ? {}
        : { authenticator: credsAuthenticator(readFileSync(options.credsFile)) }),
    };
    let connection: NatsConnection;
    try {
      connection = await connect(connectOptions);
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      // Server addresses only: credentials never reach a message.
      throw storeError(`Could not connect to NATS at ${connectOptions.servers}: ${message}`, error);
    }
    if (this.#closed) {
      await connection.close().catch(() => {});
      throw storeError("The NATS engine was closed; configure the store again to use it.");
    }
    this.#connection = connection;
    return connection;
  }

  /**
   * Tracks disconnects (of our connection or one passed in), so calls fail at once instead of
   * waiting out their deadline. The listener is removed by `close()`.
   */
  async #followStatus(connection: NatsConnection): Promise<void> {
    // Typed as an AsyncIterable, it is the client's queued iterator, whose stop() removes the listener.
    const statuses = connection.status() as AsyncIterable<Status> & { stop?: () => void };
    this.#stopStatus = () => statuses.stop?.();
    for await (const status of statuses) {
      if (status.type === "disconnect") this.#disconnected = true;
      else if (status.type === "reconnect") this.#disconnected = false;
    }
  }

  /** Opens the bucket, creating it when allowed, and checks the settings the engine relies on. */
  async #openBucket(connection: NatsConnection): Promise<KV> {
    const kvm = new Kvm(connection);
    const name = this.#bucket;
    let status: KvStatus | undefined;
    try {
      status = await (await kvm.open(name)).status();
    } catch (error) {
      if (!isMissingBucket(error)) throw this.#wrap(error, `opening bucket "${name}"`);
    }
    if (status === undefined) {
      if (this.#options.autoCreate === false) {
        throw new RateSyncError(
          "CONFIG_INVALID",
          `The NATS KV bucket "${name}" does not exist and auto_create is false. Create it (nats kv add ${name} --history 1 --ttl 24h) or set auto_create = true.`,
          { details: { bucket: name } },
        );
      }
      const ttlSeconds = this.#options.ttlSeconds ?? DEFAULT_NATS_TTL_SECONDS;
      status = await kvm
        .create(name, { history: 1, ttl: ttlSeconds * 1000, allow_direct: true, description: "ratesync limiter state" })
        .then((created) => created.status())
        .catch(async (error: unknown) => {
          // Another process created it at the same moment: use theirs (its settings are checked below).
          if (!isCreationRace(error)) throw error;
          return whileSettling(async () => (await kvm.open(name)).status(), isMissingBucket);
        })
        .catch((error: unknown) => {
          throw this.#wrap(error, `creating bucket "${name}"`);
        });
    }
    checkBucket(name, status);
    this.#ttlMs = status.ttl;
    // Direct gets (any replica answers, no API round trip through the leader) when the bucket allows them.
    return kvm.open(name, { allow_direct: status.streamInfo.config.allow_direct === true });
  }

  /** Takes `count` clock samples: a timed write of this instance's probe key, read back by revision. */
  async #probeClock(kv: KV, count: number): Promise<void> {
    const key = clockProbeKey(this.#instance);
    for (let i = 0; i < count; i++) {
      const sent = this.#clock.local();
      const revision = await this.#bounded(kv.put(key, encoder.encode("")), "NATS (clock probe)");
      const received = this.#clock.local();
      const entry = await this.#bounded(kv.get(key, { revision }), "NATS (clock probe)");
      if (entry !== null) this.#clock.sample(sent, received, entry.created.getTime(), entry.created.getTime() + 1);
    }
  }

  /**
   * Feeds the watch's listeners until it is stopped. A watch that ends or fails (the server
   * restarted, the connection dropped) is set up again a second later while listeners remain;
   * meanwhile the waiters poll.
   */
  async #startWatch(key: string, watch: Watch): Promise<void> {
    while (!watch.stopped && !this.#closed) {
      try {
        const kv = await this.#store();
        if (watch.stopped) return;
        const iterator = await kv.watch({ key, include: KvWatchInclude.UpdatesOnly });
        if (watch.stopped) {
          iterator.stop();
          return;
        }
        watch.stop = () => iterator.stop();
        for await (const entry of iterator) {
          if (entry.operation !== "PUT" || parseEntry(entry)?.r === 1) {
            for (const listener of [...watch.listeners]) listener();
          }
        }
      } catch {
        // Set up again below.
      }
      if (watch.stopped || this.#closed) return;
      // A release missed meanwhile is found by the waiters' fallback poll.
      await new Promise((resolve) => setTimeout(resolve, WATCH_RETRY_MS).unref());
    }
  }
}

/**
 * Runs `attempt`, and again after each of {@link SETTLE_DELAYS_MS} while it fails with an error
 * that `transient` recognises; any other error, or the last one, is thrown.
 */
async function whileSettling<T>(attempt: () => Promise<T>, transient: (error: unknown) => boolean): Promise<T> {
  for (const delay of SETTLE_DELAYS_MS) {
    try {
      return await attempt();
    } catch (error) {
      if (!transient(error)) throw error;
    }
    await new Promise((resolve) => setTimeout(resolve, delay));
  }
  return attempt();
}

function isCreationRace(error: unknown): boolean {
  return typeof error === "object" && error !== null && CREATION_RACE_CODES.has((error as { code?: unknown }).code);
}

/** No stream listens on the subject yet: JetStream answers a publish with "no responders". */
function isNoResponders(error: unknown): boolean {
  for (let cause = error; typeof cause === "object" && cause !== null; cause = (cause as { cause?: unknown }).cause) {
    const { name } = cause as { name?: unknown };
    if (name === "NoRespondersError" || name === "JetStreamNotEnabled") return true;
  }
  return false;
}

function isMissingBucket(error: unknown): boolean {
  if (typeof error !== "object" || error === null) return false;
  const { code, message, name } = error as { code?: unknown; message?: unknown; name?: unknown };
  return (
    code === 10059 ||
    name === "StreamNotFoundError" ||
    (typeof message === "string" && message.toLowerCase().includes("stream not found"))
  );
}

/** Refuses a bucket whose settings would break the engine, naming the setting. */
function checkBucket(name: string, status: KvStatus): void {
  const problems: string[] = [];
  if (status.history !== 1) {
    problems.push(
      `history is ${status.history}, must be 1 (only the latest state matters; older revisions waste space)`,
    );
  }
  if (!(status.ttl > 0)) {
    problems.push("ttl (max age) is 0, must be set so that entries expire (for example --ttl 24h)");
  }
  if (problems.length > 0) {
    throw new RateSyncError(
      "CONFIG_INVALID",
      `The NATS KV bucket "${name}" has settings the engine cannot use: ${problems.join("; ")}. Change them (nats kv edit ${name}) or use another bucket.`,
      { details: { bucket: name, history: status.history, ttlMs: status.ttl } },
    );
  }
}

/**
 * Creates a NATS JetStream KV engine.
 *
 * @example
 * ```ts
 * import { configureLimiter, configureStore } from "@ratesync/core";
 * import { createNatsEngine } from "@ratesync/nats";
 *
 * configureStore("main", { engine: createNatsEngine({ url: "nats://127.0.0.1:4222", bucket: "ratesync" }) });
 * // or simply: configureStore("main", { engine: "nats", url: "nats://127.0.0.1:4222" });
 * configureLimiter("api", { store: "main", ratePerSecond: 100, burst: 20 });
 * ```
 */
export function createNatsEngine(options: NatsEngineOptions = {}): NatsEngine {
  return new NatsEngine(options);
}

/** The engine definition `@ratesync/core` loads for `engine = "nats"`. */
export const engine: EngineDefinition<NatsEngineOptions> = {
  name: "nats",
  // The keys core validates for `engine = "nats"` before this package is even loaded.
  optionKeys: BUILTIN_ENGINE_KEYS.nats,
  create: (options, context) => new NatsEngine(options, context),
};
