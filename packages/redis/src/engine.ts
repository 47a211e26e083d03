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
  RenewRequest,
} from "@ratesync/core";
import { RateSyncError } from "@ratesync/core";
import { Cluster, Redis } from "ioredis";
import { keysFor, type RedisKeys } from "./keys.js";
import { DECIDE, RELEASE, RENEW, RESET } from "./scripts.js";

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
   * A client you created (standalone or Cluster). The engine uses it as is and never closes it;
   * give it `enableOfflineQueue: false` so calls fail fast while it reconnects.
   */
  client?: RedisClient | undefined;
}

/** The Lua commands the engine defines on its client. */
interface ScriptedClient {
  ratesyncDecide(...args: (string | number)[]): Promise<string[]>;
  ratesyncRelease(...args: string[]): Promise<number>;
  ratesyncRenew(...args: string[]): Promise<string | null>;
  ratesyncReset(...args: string[]): Promise<number>;
}

/** Policy arguments of the decide script: kind, a, b, cost follows; see scripts.ts. */
function rateArgs(policy: Policy): [kind: number, a: number, b: number] {
  const rate = policy.rate;
  if (rate === undefined) return [0, 0, 0];
  switch (rate.algorithm) {
    case "token_bucket":
      return [1, rate.intervalMs, rate.burst];
    case "sliding_window":
      return [2, rate.windowMs, rate.limit];
    case "fixed_window":
      return [3, rate.windowMs, rate.limit];
  }
}

function parseNumber(text: string): number {
  // Lua prints infinities as "inf"; Number() would read them as NaN.
  if (text === "inf") return Number.POSITIVE_INFINITY;
  if (text === "-inf") return Number.NEGATIVE_INFINITY;
  return Number(text);
}

function toDecision(reply: string[]): EngineDecision {
  const refusedBy = reply[1];
  return {
    allowed: reply[0] === "1",
    refusedBy: refusedBy === "1" ? "rate" : refusedBy === "2" ? "concurrency" : undefined,
    now: parseNumber(reply[2] as string),
    remaining: parseNumber(reply[3] as string),
    resetAt: parseNumber(reply[4] as string),
    retryAfterMs: parseNumber(reply[5] as string),
    inUse: parseNumber(reply[6] as string),
    leaseExpiresAt: parseNumber(reply[7] as string),
  };
}

/** Most (limiter, key) encodings kept; see `RedisEngine.#keys`. */
const KEY_CACHE_SIZE = 10_000;

/** Reconnect quickly (a store outage should end for the limiter soon after it ends for Redis). */
function retryStrategy(times: number): number {
  return Math.min(50 * 2 ** Math.min(times, 5), 1000);
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
  readonly #options: RedisEngineOptions;
  readonly #prefix: string;
  readonly #commandTimeoutMs: number;
  readonly #ownsClient: boolean;
  #client: RedisClient | undefined;
  #ready: Promise<void> | undefined;
  #subscriber: RedisClient | undefined;
  readonly #listeners = new Map<string, Set<() => void>>();
  readonly #keyCache = new Map<string, Map<string, RedisKeys>>();
  #cachedKeys = 0;
  #closed = false;

  constructor(options: RedisEngineOptions = {}, context?: Pick<EngineContext, "requestTimeoutMs">) {
    this.#options = options;
    this.#prefix = options.keyPrefix ?? "ratesync:";
    this.#commandTimeoutMs = context?.requestTimeoutMs ?? 1000;
    this.#ownsClient = options.client === undefined;
    if (options.client !== undefined) this.#client = this.#withScripts(options.client);
  }

  /** The client, created on first use. */
  get client(): RedisClient {
    if (this.#client === undefined) this.#client = this.#withScripts(this.#createClient());
    return this.#client;
  }

  async decide(request: DecideRequest): Promise<EngineDecision> {
    const keys = this.#keys(request.limiter, request.key);
    const [kind, a, b] = rateArgs(request.policy);
    const concurrency = request.policy.concurrency;
    const client = this.#readyClient() ?? (await this.#scripted());
    const reply = await client.ratesyncDecide(
      keys.rate,
      keys.log,
      keys.leases,
      0,
      kind,
      a,
      b,
      request.cost,
      concurrency?.maxConcurrent ?? 0,
      concurrency?.leaseMs ?? 0,
      request.leaseId ?? "",
    );
    return toDecision(reply);
  }

  async peek(request: PeekRequest): Promise<EngineDecision> {
    const keys = this.#keys(request.limiter, request.key);
    const [kind, a, b] = rateArgs(request.policy);
    const concurrency = request.policy.concurrency;
    const client = this.#readyClient() ?? (await this.#scripted());
    const reply = await client.ratesyncDecide(
      keys.rate,
      keys.log,
      keys.leases,
      1,
      kind,
      a,
      b,
      request.cost,
      concurrency?.maxConcurrent ?? 0,
      concurrency?.leaseMs ?? 0,
      "",
    );
    return toDecision(reply);
  }

  async release(request: LeaseRequest): Promise<boolean> {
    const keys = this.#keys(request.limiter, request.key);
    const client = this.#readyClient() ?? (await this.#scripted());
    return (await client.ratesyncRelease(keys.leases, request.leaseId, keys.channel)) === 1;
  }

  async renew(request: RenewRequest): Promise<number | undefined> {
    const keys = this.#keys(request.limiter, request.key);
    const client = this.#readyClient() ?? (await this.#scripted());
    const reply = await client.ratesyncRenew(keys.leases, request.leaseId, String(request.leaseMs));
    return reply === null ? undefined : parseNumber(reply);
  }

  async reset(target: EngineTarget): Promise<void> {
    const keys = this.#keys(target.limiter, target.key);
    const client = this.#readyClient() ?? (await this.#scripted());
    await client.ratesyncReset(keys.rate, keys.log, keys.leases, keys.channel);
  }

  /**
   * Subscribes to releases of the target's slots, from any process: one subscriber connection per
   * engine, one channel per key with listeners, unsubscribed when the last listener leaves.
   */
  onRelease(target: EngineTarget, listener: () => void): () => void {
    const channel = this.#keys(target.limiter, target.key).channel;
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

  /** Connects and checks that Redis answers. */
  async init(): Promise<void> {
    const client = this.#readyClient() ?? (await this.#scripted());
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

  /**
   * The keys of (limiter, key), from a small cache: encoding them (base64, maybe a SHA-256) costs
   * more than a Map lookup, and hot keys are asked for again and again. Cleared when it grows past
   * {@link KEY_CACHE_SIZE}, so a flood of distinct keys cannot grow it without bound.
   */
  #keys(limiter: string, key: string): RedisKeys {
    let byKey = this.#keyCache.get(limiter);
    if (byKey === undefined) {
      byKey = new Map();
      this.#keyCache.set(limiter, byKey);
    }
    let keys = byKey.get(key);
    if (keys === undefined) {
      if (++this.#cachedKeys > KEY_CACHE_SIZE) {
        this.#keyCache.clear();
        this.#cachedKeys = 1;
        byKey = new Map();
        this.#keyCache.set(limiter, byKey);
      }
      keys = keysFor(this.#prefix, limiter, key);
      byKey.set(key, keys);
    }
    return keys;
  }

  /** The client when it is connected now: the common case, answered without an await. */
  #readyClient(): (RedisClient & ScriptedClient) | undefined {
    const client = this.#client;
    return client !== undefined && client.status === "ready" && !this.#closed
      ? (client as RedisClient & ScriptedClient)
      : undefined;
  }

  /** The client, once it has connected for the first time (later outages fail fast instead). */
  async #scripted(): Promise<RedisClient & ScriptedClient> {
    if (this.#closed) {
      throw new RateSyncError("STORE_ERROR", "The Redis engine was closed; configure the store again to use it.");
    }
    const client = this.client;
    if (client.status !== "ready") {
      this.#ready ??= this.#connect(client);
      await this.#ready;
    }
    return client as RedisClient & ScriptedClient;
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
      commandTimeout: this.#commandTimeoutMs,
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
        enableOfflineQueue: false,
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

  #withScripts(client: RedisClient): RedisClient {
    const scripted = client as RedisClient & Partial<ScriptedClient>;
    if (typeof scripted.ratesyncDecide !== "function") {
      client.defineCommand("ratesyncDecide", { numberOfKeys: 3, lua: DECIDE });
      client.defineCommand("ratesyncRelease", { numberOfKeys: 1, lua: RELEASE });
      client.defineCommand("ratesyncRenew", { numberOfKeys: 1, lua: RENEW });
      client.defineCommand("ratesyncReset", { numberOfKeys: 3, lua: RESET });
    }
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
  optionKeys: [
    "url",
    "host",
    "port",
    "db",
    "username",
    "password",
    "tls",
    "nodes",
    "key_prefix",
    "connect_timeout_ms",
    "client",
  ],
  create: (options, context) => new RedisEngine(options, context),
};
