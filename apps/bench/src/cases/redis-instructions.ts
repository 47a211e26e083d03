/**
 * The client of `scripts/redis-instructions.sh`: one contender of the redis suite making
 * decisions one at a time, as in the suite's "1 in flight" cases, while callgrind counts the
 * instructions of this process and of the Redis server it talks to.
 *
 * Run by the script, not by hand: `node --single-threaded --import tsx
 * src/cases/redis-instructions.ts` with `RATESYNC_BENCH_REDIS_INSTRUCTIONS` set to `{"url",
 * "contender", "expect", "keys", "warm", "measured"}`. It primes the keys and makes `warm` calls,
 * prints `warm` and waits for a line on stdin (the script zeroes both counters meanwhile), makes
 * `measured` calls, prints `done` and waits for another line (the script dumps both counters),
 * then exits.
 */
import { once } from "node:events";
import { createInterface } from "node:readline";
import { createRateSync } from "@ratesync/core";
import { createRedisEngine } from "@ratesync/redis";
import { Redis } from "ioredis";
import { RateLimiterRedis, RateLimiterRes } from "rate-limiter-flexible";
import { type Expectation, peerPolicy, ratesyncPolicy } from "./policies.js";
import { CLIENT_OPTIONS } from "./redis.js";

/** What the script asks for. */
interface Settings {
  readonly url: string;
  readonly contender: "ratesync" | "peer";
  readonly expect: Expectation;
  /** Distinct keys; call `i` uses key `i % keys`. */
  readonly keys: number;
  readonly warm: number;
  readonly measured: number;
}

/** One decision on `key`: whether it was admitted. */
type Call = (key: string) => Promise<boolean>;

function contender(settings: Settings, client: Redis): Call {
  const prefix = `ratesync-instructions-${process.pid}:`;
  if (settings.contender === "ratesync") {
    const rs = createRateSync({ autoload: false });
    rs.configureStore("redis", { engine: createRedisEngine({ client, keyPrefix: prefix }) });
    rs.configureLimiter("bench", { store: "redis", ...ratesyncPolicy("token_bucket", settings.expect) });
    const limiter = rs.getLimiter("bench");
    return async (key) => (await limiter.tryAcquire({ key })).allowed;
  }
  const limiter = new RateLimiterRedis({ storeClient: client, keyPrefix: prefix, ...peerPolicy(settings.expect) });
  return (key) =>
    limiter.consume(key).then(
      () => true,
      (error: unknown) => {
        if (error instanceof RateLimiterRes) return false;
        throw error;
      },
    );
}

async function main(): Promise<void> {
  const settings = JSON.parse(process.env.RATESYNC_BENCH_REDIS_INSTRUCTIONS ?? "") as Settings;
  const client = new Redis(settings.url, CLIENT_OPTIONS);
  await client.connect();
  const call = contender(settings, client);
  const keys = Array.from({ length: settings.keys }, (_, i) => `user:${i}`);
  const input = createInterface({ input: process.stdin });
  const lines = input[Symbol.asyncIterator]();
  // Every key's first call is admitted: on the refused path it spends the key's only admission.
  for (const key of keys) {
    if (!(await call(key))) throw new Error(`The priming call for "${key}" was refused.`);
  }
  const run = async (count: number) => {
    let answered = 0;
    for (let i = 0; i < count; i++) {
      if ((await call(keys[i % keys.length] as string)) === (settings.expect === "admitted")) answered++;
    }
    if (answered !== count) throw new Error(`${count - answered} of ${count} calls were not ${settings.expect}.`);
  };
  await run(settings.warm);
  process.stdout.write("warm\n");
  await lines.next();
  await run(settings.measured);
  process.stdout.write("done\n");
  await lines.next();
  input.close();
  client.disconnect();
  await once(client, "end");
}

main().catch((error: unknown) => {
  process.stderr.write(`${error instanceof Error ? error.stack : String(error)}\n`);
  process.exit(1);
});
