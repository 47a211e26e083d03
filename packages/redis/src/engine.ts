import { createHash } from "node:crypto";
import type {
  DecideRequest,
  Engine,
  EngineContext,
  EngineDecision,
  EngineDefinition,
  EngineTarget,
  LeaseRequest,
  PeekRequest,
  Policy,
  RatePolicy,
  RateState,
  RenewRequest,
} from "@ratesync/core";
import {
  BUILTIN_ENGINE_KEYS,
  DEFAULT_REQUEST_TIMEOUT_MS,
  decide as decideLocally,
  RateSyncError,
  TargetCache,
  TIME_EPSILON_MS,
} from "@ratesync/core";
import { Cluster, Redis } from "ioredis";
import { keysFor, type RedisKeys } from "./keys.js";
import {
  DECIDE,
  FIXED_WINDOW,
  fixedWindowScript,
  RELEASE,
  RENEW,
  RESET,
  TOKEN_BUCKET,
  tokenBucketScript,
} from "./scripts.js";

/** The part of a socket {@link RedisEngine} uses to write a tick's calls at once. */
interface CorkableStream {
  cork(): void;
  uncork(): void;
}

/** A client the engine can use: a standalone connection or a Cluster. */
export type RedisClient = Redis | Cluster;

/**
 * Options of {@link createRedisEngine} (and of `[stores.<id>]` with `engine = "redis"`, in
 * snake_case there).
 */
export interface RedisEngineOptions {
  /** Connection URL, `redis://[user:password@]host:port[/db]` (`rediss://` for TLS). */
  url?: string | undefined;
  /** Host, when no URL is given. @default "127.0.0.1" */
  host?: string | undefined;
  /** Port, when no URL is given. @default 6379 */
  port?: number | undefined;
  /** Database number (standalone only). @default 0 */
  db?: number | undefined;
  /** ACL user name. */
  username?: string | undefined;
  /** Password. Never logged, never in an error message. */
  password?: string | undefined;
  /** Connect with TLS. @default false */
  tls?: boolean | undefined;
  /** Redis Cluster seed nodes, as URLs (`redis://host:port`). Setting this selects cluster mode. */
  nodes?: string | readonly string[] | undefined;
  /**
   * Prefix of every key the engine writes (and of its pub/sub channels).
   * @default "ratesync:"
   */
  keyPrefix?: string | undefined;
  /** How long to wait for a connection, in ms. @default 5000 */
  connectTimeoutMs?: number | undefined;
  /**
   * Deadline of one call, in ms, given to ioredis as its command timeout. A store configured with
   * `engine = "redis"` passes its own `request_timeout_ms`; set this when you create the engine
   * yourself and want the engine (rather than a timer per call in the limiter) to enforce it.
   */
  requestTimeoutMs?: number | undefined;
  /**
   * A client you created (standalone or Cluster). The engine uses it as is and never closes it;
   * give it `enableOfflineQueue: false` so calls fail fast while it reconnects.
   */
  client?: RedisClient | undefined;
}

/** A Lua script, run by its SHA-1 (EVALSHA) and sent whole only when Redis does not know it. */
interface Script {
  readonly lua: string;
  readonly sha: string;
  readonly keys: number;
}

function script(lua: string, keys: number): Script {
  return { lua, sha: createHash("sha1").update(lua).digest("hex"), keys };
}

const SCRIPTS = {
  tokenBucket: script(TOKEN_BUCKET, 1),
  fixedWindow: script(FIXED_WINDOW, 1),
  decide: script(DECIDE, 3),
  release: script(RELEASE, 1),
  renew: script(RENEW, 1),
  reset: script(RESET, 5),
};

/**
 * Rate policies that get scripts of their own (their numbers written in, for calls at cost 1),
 * per engine: beyond this many, calls pass the numbers in ARGV, so a process that makes policies
 * on the fly never fills Redis's script cache.
 */
const MAX_POLICY_SCRIPTS = 64;

/** A token bucket or fixed window policy: the ones with a small script of their own. */
type SimpleRatePolicy = Exclude<RatePolicy, { algorithm: "sliding_window" }>;

/** Whether Redis did not know a script: after `SCRIPT FLUSH`, a restart, or on a new Cluster node. */
function isNoScript(error: unknown): boolean {
  return error instanceof Error && error.message.startsWith("NOSCRIPT");
}

/** The fields of a script's reply: whole numbers separated by spaces (see `scripts.ts`). */
function fields(reply: unknown): string[] {
  return (reply as string).split(" ");
}

/**
 * The decision of a token bucket or fixed window script, whose reply is Redis's verdict, its
 * `TIME` and the state before the call (see `scripts.ts`). The numbers of the decision come from
 * `@ratesync/core`'s algorithm run on that state at that time: the same computation the script
 * made, in the same floating-point order, so they are exactly the memory engine's.
 */
function simpleDecision(reply: unknown, request: DecideRequest): EngineDecision {
  const [allowed, seconds, micros, first, second] = fields(reply);
  const now = (Number(seconds) * 1_000_000 + Number(micros)) / 1000;
  let state: RateState | undefined;
  if (first !== undefined && first !== "") {
    state =
      request.policy.rate?.algorithm === "token_bucket"
        ? { since: Number(first) / 1000, units: Number(second) }
        : { start: Number(first), count: Number(second) };
  }
  const { decision } = decideLocally(
    state === undefined ? undefined : { rate: state },
    request.policy,
    request.cost,
    undefined,
    now,
  );
  const admitted = allowed === "1";
  if (decision.allowed === admitted) return decision;
  // Redis's verdict stands. The two computations agree (the conformance suite holds them to it);
  // this only keeps a decision consistent if a future change ever made them differ.
  return admitted
    ? { ...decision, allowed: true, refusedBy: undefined, retryAfterMs: 0 }
    : {
        ...decision,
        allowed: false,
        refusedBy: "rate",
        retryAfterMs: Math.max(decision.retryAfterMs, TIME_EPSILON_MS),
      };
}

/**
 * The reply of the general script: allowed, refusedBy, now (epoch us), remaining, reset in (us),
 * retry after (us, -1 for never), in use, lease expires in (us).
 */
function generalDecision(reply: unknown): EngineDecision {
  const [allowed, refusedBy, nowUs, remaining, resetInUs, retryUs, inUse, leaseInUs] = fields(reply);
  const now = Number(nowUs) / 1000;
  const retry = Number(retryUs);
  return {
    allowed: allowed === "1",
    refusedBy: refusedBy === "1" ? "rate" : refusedBy === "2" ? "concurrency" : undefined,
    now,
    remaining: Number(remaining),
    resetAt: now + Number(resetInUs) / 1000,
    retryAfterMs: retry < 0 ? Number.POSITIVE_INFINITY : retry / 1000,
    inUse: Number(inUse),
    leaseExpiresAt: leaseInUs === "0" ? 0 : now + Number(leaseInUs) / 1000,
  };
}

/** The general script's policy arguments: kind, a, b; and the key of the algorithm's state. */
function generalArgs(policy: Policy, keys: RedisKeys): [rateKey: string, kind: number, a: number, b: number] {
  const rate = policy.rate;
  if (rate === undefined) return [keys.tokenBucket, 0, 0, 0];
  switch (rate.algorithm) {
    case "token_bucket":
      return [keys.tokenBucket, 1, rate.intervalMs, rate.burst];
    case "sliding_window":
      return [keys.slidingWindow, 2, rate.windowMs, rate.limit];
    case "fixed_window":
      return [keys.fixedWindow, 3, rate.windowMs, rate.limit];
  }
}

/**
 * Calls written together while the socket is corked. Large enough to save most system calls,
 * small enough that Redis works on one batch while the next is being prepared.
 */
const WRITE_BATCH = 16;

/** Reconnect quickly (a store outage should end for the limiter soon after it ends for Redis). */
function retryStrategy(times: number): number {
  return Math.min(50 * 2 ** Math.min(times, 5), 1000);
}

/**
 * `promise`, or a `STORE_ERROR` after `ms`: waiting for a connection is bounded by the same
 * deadline as a command, so every call of the engine settles in time.
 */
function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new RateSyncError("STORE_ERROR", `${what} (waited ${ms} ms).`, { details: { timeoutMs: ms } })),
      ms,
    );
    promise.then(
      (value) => {
        clearTimeout(timer);
        resolve(value);
      },
      (error: unknown) => {
        clearTimeout(timer);
        reject(error);
      },
    );
  });
}

/**
 * Closes a connection for good and resolves once its socket is gone, so `close()` leaves nothing
 * behind. `graceful` lets pending replies arrive first (QUIT); either way it never reconnects.
 */
async function shutDown(client: RedisClient, graceful: boolean): Promise<void> {
  if (client.status === "end") return;
  const ended = new Promise<void>((resolve) => {
    client.once("end", () => resolve());
    // Never hang a close() on a connection that will not say goodbye.
    setTimeout(resolve, 2000).unref();
  });
  if (graceful && client.status === "ready") await client.quit().catch(() => {});
  client.disconnect();
  await ended;
}

function asList(nodes: string | readonly string[]): string[] {
  return typeof nodes === "string" ? [nodes] : [...nodes];
}

/**
 * The Redis engine. Each decision is one Lua script run (EVALSHA; ioredis reloads a script that
 * `SCRIPT FLUSH` or a restart removed), on Redis's clock. Works on standalone Redis and on Redis
 * Cluster: every key of one (limiter, key) shares a hash slot.
 *
 * The client is created on first use, with no offline queue: while Redis is unreachable calls
 * fail at once, the limiter applies its failure policy, and ioredis reconnects in the background.
 */
export class RedisEngine implements Engine {
  readonly name = "redis";
  readonly remote = true;
  /**
   * With a client of its own and a known deadline, the engine bounds every call itself (ioredis'
   * command timeout, and a bounded wait for the connection), so the limiter needs no timer per
   * call. Otherwise (a client passed in, no deadline given, or a Cluster, whose client queues
   * calls while it reconnects) the limiter keeps its own.
   */
  readonly enforcesDeadline: boolean;
  readonly #options: RedisEngineOptions;
  readonly #prefix: string;
  readonly #commandTimeoutMs: number;
  readonly #ownsClient: boolean;
  #client: RedisClient | undefined;
  #ready: Promise<void> | undefined;
  #subscriber: RedisClient | undefined;
  readonly #listeners = new Map<string, Set<() => void>>();
  /** Each rate policy's own script for calls at cost 1, or null when it has none (see {@link MAX_POLICY_SCRIPTS}). */
  readonly #policyScripts = new WeakMap<SimpleRatePolicy, Script | null>();
  /** The policy scripts made so far, by algorithm and numbers: policies with equal numbers share one. */
  readonly #policyScriptsByNumbers = new Map<string, Script>();
  /** The keys of each (limiter, key). */
  readonly #keys = new TargetCache((limiter, key) => keysFor(this.#prefix, limiter, key));
  #closed = false;
  /** The socket corked for this tick's calls, if any (see {@link RedisEngine.#batchWrites}). */
  #corked: CorkableStream | undefined;
  /** Calls written to {@link RedisEngine.#corked} since it was last flushed. */
  #batched = 0;
  /** Whether this tick made a call already (the next one corks the socket). */
  #inTick = false;

  constructor(options: RedisEngineOptions = {}, context?: Pick<EngineContext, "requestTimeoutMs">) {
    this.#options = options;
    this.#prefix = options.keyPrefix ?? "ratesync:";
    const deadline = context?.requestTimeoutMs ?? options.requestTimeoutMs;
    this.#commandTimeoutMs = deadline ?? DEFAULT_REQUEST_TIMEOUT_MS;
    this.#ownsClient = options.client === undefined;
    this.enforcesDeadline = this.#ownsClient && deadline !== undefined && options.nodes === undefined;
    if (options.client !== undefined) this.#client = this.#withErrorListener(options.client);
  }

  /** The client, created on first use. */
  get client(): RedisClient {
    if (this.#client === undefined) this.#client = this.#withErrorListener(this.#createClient());
    return this.#client;
  }

  decide(request: DecideRequest): Promise<EngineDecision> {
    const keys = this.#keys.get(request.limiter, request.key);
    const { rate, concurrency } = request.policy;
    // The common limiters get their own small script: one key, GET and SET. At cost 1 (nearly
    // every call), one made for the policy, with its numbers written in: no ARGV to read.
    if (concurrency === undefined && rate !== undefined && rate.algorithm !== "sliding_window") {
      const tokenBucket = rate.algorithm === "token_bucket";
      const key = tokenBucket ? keys.tokenBucket : keys.fixedWindow;
      const a = tokenBucket ? rate.intervalMs : rate.windowMs;
      const b = tokenBucket ? rate.burst : rate.limit;
      const map = (reply: unknown) => simpleDecision(reply, request);
      const own = request.cost === 1 ? this.#policyScript(rate, a, b) : null;
      if (own !== null) return this.#run(own, map, key);
      return this.#run(tokenBucket ? SCRIPTS.tokenBucket : SCRIPTS.fixedWindow, map, key, a, b, request.cost);
    }
    return this.#general(0, request, keys, request.leaseId ?? "");
  }

  peek(request: PeekRequest): Promise<EngineDecision> {
    return this.#general(1, request, this.#keys.get(request.limiter, request.key), "");
  }

  release(request: LeaseRequest): Promise<boolean> {
    const keys = this.#keys.get(request.limiter, request.key);
    return this.#run(SCRIPTS.release, (reply) => reply === 1, keys.leases, request.leaseId, keys.channel);
  }

  renew(request: RenewRequest): Promise<number | undefined> {
    const keys = this.#keys.get(request.limiter, request.key);
    return this.#run(
      SCRIPTS.renew,
      (reply) => (typeof reply === "string" ? Number(reply) : undefined),
      keys.leases,
      request.leaseId,
      String(request.leaseMs),
    );
  }

  async reset(target: EngineTarget): Promise<void> {
    const keys = this.#keys.get(target.limiter, target.key);
    await this.#run(SCRIPTS.reset, () => undefined, ...keys.all, keys.channel);
  }

  /**
   * The script of a token bucket or fixed window policy (whose numbers are `a` and `b`) for calls
   * at cost 1, made on its first call; null once {@link MAX_POLICY_SCRIPTS} scripts exist, or for
   * numbers a script cannot hold (not finite): its calls then use the ARGV script.
   */
  #policyScript(rate: SimpleRatePolicy, a: number, b: number): Script | null {
    const known = this.#policyScripts.get(rate);
    if (known !== undefined) return known;
    const id = `${rate.algorithm} ${a} ${b}`;
    let made = this.#policyScriptsByNumbers.get(id) ?? null;
    const writable = Number.isFinite(a) && Number.isFinite(b);
    if (made === null && writable && this.#policyScriptsByNumbers.size < MAX_POLICY_SCRIPTS) {
      made = script(rate.algorithm === "token_bucket" ? tokenBucketScript({ a, b }) : fixedWindowScript({ a, b }), 1);
      this.#policyScriptsByNumbers.set(id, made);
    }
    this.#policyScripts.set(rate, made);
    return made;
  }

  #general(mode: 0 | 1, request: PeekRequest, keys: RedisKeys, leaseId: string): Promise<EngineDecision> {
    const [rateKey, kind, a, b] = generalArgs(request.policy, keys);
    const concurrency = request.policy.concurrency;
    return this.#run(
      SCRIPTS.decide,
      generalDecision,
      rateKey,
      keys.log,
      keys.leases,
      mode,
      kind,
      a,
      b,
      request.cost,
      concurrency?.maxConcurrent ?? 0,
      concurrency?.leaseMs ?? 0,
      leaseId,
    );
  }

  /**
   * Runs a script and maps its reply, in one promise step: EVALSHA, and EVAL once when Redis has
   * lost the script (SCRIPT FLUSH, restart, new node). Before the first connection it waits for
   * it (bounded); after that nothing waits: without an offline queue a call fails at once while
   * ioredis reconnects.
   */
  #run<T>(script: Script, map: (reply: unknown) => T, ...args: (string | number)[]): Promise<T> {
    const send = (client: RedisClient): Promise<T> =>
      client.evalsha(script.sha, script.keys, ...args).then(map, (error: unknown) => {
        if (!isNoScript(error)) throw error;
        return client.eval(script.lua, script.keys, ...args).then(map);
      });
    const client = this.#readyClient();
    if (client === undefined) return this.#scripted().then(send);
    this.#batchWrites(client);
    return send(client);
  }

  /**
   * Writes the calls made in one tick in batches, with one system call each instead of one per
   * call. The first call of a tick is written at once: a lone call (one in flight) gains nothing
   * from waiting. From the second on, the socket is corked, flushed every {@link WRITE_BATCH}
   * calls (so Redis starts on the first ones while this process still prepares the rest), and
   * uncorked once the tick's synchronous work and promise jobs are done (`process.nextTick` runs
   * after them). Replies, order and errors are ioredis' own, call by call. Standalone connections
   * only: a Cluster client spreads calls over several sockets.
   */
  #batchWrites(client: RedisClient): void {
    const corked = this.#corked;
    if (corked !== undefined) {
      if (++this.#batched < WRITE_BATCH) return;
      corked.uncork();
      corked.cork();
      this.#batched = 0;
      return;
    }
    if (!this.#inTick) {
      this.#inTick = true;
      process.nextTick(this.#endTick);
      return;
    }
    if (client instanceof Cluster) return;
    const stream = client.stream as CorkableStream | undefined;
    if (stream === undefined || typeof stream.cork !== "function") return;
    stream.cork();
    this.#corked = stream;
    this.#batched = 0;
  }

  /** The end of a tick that made calls: flushes what is corked (see {@link RedisEngine.#batchWrites}). */
  readonly #endTick = (): void => {
    this.#inTick = false;
    const corked = this.#corked;
    if (corked === undefined) return;
    this.#corked = undefined;
    corked.uncork();
  };

  /**
   * Subscribes to releases of the target's slots, from any process: one subscriber connection per
   * engine, one channel per key with listeners, unsubscribed when the last listener leaves.
   */
  onRelease(target: EngineTarget, listener: () => void): () => void {
    const channel = this.#keys.get(target.limiter, target.key).channel;
    let listeners = this.#listeners.get(channel);
    if (listeners === undefined) {
      listeners = new Set();
      this.#listeners.set(channel, listeners);
      // A failed subscription only costs the waiter its fast wake-up: it still polls.
      this.#subscriberClient()
        .subscribe(channel)
        .catch(() => {});
    }
    listeners.add(listener);
    return () => {
      const current = this.#listeners.get(channel);
      if (current === undefined || !current.delete(listener) || current.size > 0) return;
      this.#listeners.delete(channel);
      this.#subscriber?.unsubscribe(channel).catch(() => {});
    };
  }

  /**
   * Connects and checks that Redis answers, waiting up to `connectTimeoutMs` (a fresh Cluster can
   * take longer than one call's deadline to discover its slots).
   */
  async init(): Promise<void> {
    const client = this.#readyClient() ?? (await this.#scripted(this.#options.connectTimeoutMs ?? 5000));
    await client.ping();
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#listeners.clear();
    const subscriber = this.#subscriber;
    this.#subscriber = undefined;
    const closing: Promise<void>[] = [];
    if (subscriber !== undefined) closing.push(shutDown(subscriber, false));
    const client = this.#client;
    if (client !== undefined && this.#ownsClient) {
      this.#client = undefined;
      this.#ready = undefined;
      closing.push(shutDown(client, true));
    }
    await Promise.all(closing);
  }

  /** The client when it is connected now: the common case, answered without an await. */
  #readyClient(): RedisClient | undefined {
    const client = this.#client;
    return client !== undefined && client.status === "ready" && !this.#closed ? client : undefined;
  }

  /** The client, once it has connected for the first time (later outages fail fast instead). */
  async #scripted(waitMs = this.#commandTimeoutMs): Promise<RedisClient> {
    if (this.#closed) {
      throw new RateSyncError("STORE_ERROR", "The Redis engine was closed; configure the store again to use it.");
    }
    const client = this.client;
    if (client.status !== "ready") {
      this.#ready ??= this.#connect(client);
      await withTimeout(this.#ready, waitMs, "Redis is not connected");
    }
    return client;
  }

  async #connect(client: RedisClient): Promise<void> {
    try {
      if (client.status === "wait") await client.connect();
      else if (client.status !== "ready") await new Promise<void>((resolve) => client.once("ready", resolve));
    } catch (error) {
      // Let the next call try again (ioredis keeps reconnecting in the background meanwhile).
      this.#ready = undefined;
      throw error;
    }
  }

  #createClient(): RedisClient {
    const options = this.#options;
    const common = {
      lazyConnect: true,
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      ...(this.enforcesDeadline ? { commandTimeout: this.#commandTimeoutMs } : {}),
      connectTimeout: options.connectTimeoutMs ?? 5000,
      retryStrategy,
      ...(options.username === undefined ? {} : { username: options.username }),
      ...(options.password === undefined ? {} : { password: options.password }),
      ...(options.tls === true ? { tls: {} } : {}),
    };
    if (options.nodes !== undefined) {
      const nodes = asList(options.nodes).map((node) => {
        const url = new URL(node);
        return { host: url.hostname, port: Number(url.port || 6379) };
      });
      return new Cluster(nodes, {
        lazyConnect: true,
        // ioredis' Cluster checks its own readiness (CLUSTER INFO) through its command queue, so
        // it needs the offline queue; calls on a Cluster are bounded by the limiter's deadline.
        enableOfflineQueue: true,
        clusterRetryStrategy: retryStrategy,
        redisOptions: { ...common, lazyConnect: false },
      });
    }
    const standalone = {
      ...common,
      ...(options.host === undefined ? {} : { host: options.host }),
      ...(options.port === undefined ? {} : { port: options.port }),
      ...(options.db === undefined ? {} : { db: options.db }),
    };
    return options.url === undefined ? new Redis(standalone) : new Redis(options.url, standalone);
  }

  #withErrorListener(client: RedisClient): RedisClient {
    // Errors are reported per call; an unhandled "error" event would crash the process.
    if (client.listenerCount("error") === 0) client.on("error", () => {});
    return client;
  }

  #subscriberClient(): RedisClient {
    if (this.#subscriber === undefined) {
      // A connection of its own: a subscribed connection cannot run scripts.
      const client = this.client;
      // Unlike commands, subscriptions may wait for the connection: queue them, and ioredis
      // subscribes again by itself after a reconnect.
      const subscriber: RedisClient =
        client instanceof Cluster
          ? client.duplicate(undefined, { lazyConnect: false, enableOfflineQueue: true })
          : client.duplicate({ lazyConnect: false, enableOfflineQueue: true });
      subscriber.on("error", () => {});
      subscriber.on("message", (channel: string) => {
        const listeners = this.#listeners.get(channel);
        if (listeners !== undefined) for (const listener of [...listeners]) listener();
      });
      this.#subscriber = subscriber;
      return subscriber;
    }
    return this.#subscriber;
  }
}

/**
 * Creates a Redis engine.
 *
 * @example
 * ```ts
 * import { configureLimiter, configureStore } from "@ratesync/core";
 * import { createRedisEngine } from "@ratesync/redis";
 *
 * configureStore("main", { engine: createRedisEngine({ url: process.env.REDIS_URL }) });
 * // or simply: configureStore("main", { engine: "redis", url: process.env.REDIS_URL });
 * configureLimiter("api", { store: "main", ratePerSecond: 100, burst: 20 });
 * ```
 */
export function createRedisEngine(options: RedisEngineOptions = {}): RedisEngine {
  return new RedisEngine(options);
}

/** The engine definition `@ratesync/core` loads for `engine = "redis"`. */
export const engine: EngineDefinition<RedisEngineOptions> = {
  name: "redis",
  // The keys core validates for `engine = "redis"` before this package is even loaded.
  optionKeys: BUILTIN_ENGINE_KEYS.redis,
  create: (options, context) => new RedisEngine(options, context),
};
