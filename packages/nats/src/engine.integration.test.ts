import { jetstreamManager } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import type { Clock, EngineDecision, Policy } from "@ratesync/core";
import { systemClock } from "@ratesync/core";
import { rejectionOf } from "@ratesync/core/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { isConflict, NatsEngine } from "./engine.js";
import { encodeKvKey } from "./keys.js";
import { deleteBucket, NATS_URL, uniqueBucket } from "./test-support/buckets.js";

const bucket = uniqueBucket("engine");
const buckets = [bucket];
let admin: NatsConnection;

beforeAll(async () => {
  admin = await connect({ servers: NATS_URL });
});

afterAll(async () => {
  await admin.close();
  await Promise.all(buckets.map((name) => deleteBucket(name)));
}, 20_000);

/** A clock `skewMs` away from the real one: an application host whose clock is wrong. */
function skewed(skewMs: number): Clock {
  return { now: () => systemClock.now() + skewMs, schedule: systemClock.schedule };
}

const tokenBucket: Policy = {
  rate: { algorithm: "token_bucket", ratePerSecond: 1, burst: 5, intervalMs: 1000 },
  concurrency: undefined,
};
const slidingWindow: Policy = {
  rate: { algorithm: "sliding_window", limit: 4, windowMs: 2000 },
  concurrency: undefined,
};
const slots: Policy = { rate: undefined, concurrency: { maxConcurrent: 2, leaseMs: 10_000 } };

interface Outcome {
  allowed: boolean;
  remaining: number;
  inUse: number;
}

/**
 * One scripted run through two engines taking turns on one key per policy: 8 token bucket calls
 * (burst 5 at 1/s), 6 sliding window calls (4 per 2 s), 3 slot requests (2 slots of 10 s).
 * Everything happens within a few hundred ms, far from any refill or expiry.
 */
async function script(a: NatsEngine, b: NatsEngine, run: string): Promise<{ outcomes: Outcome[]; nows: number[] }> {
  const outcomes: Outcome[] = [];
  const nows: number[] = [];
  const record = (decision: EngineDecision) => {
    outcomes.push({ allowed: decision.allowed, remaining: decision.remaining, inUse: decision.inUse });
    nows.push(decision.now);
  };
  const engines = [a, b];
  for (let i = 0; i < 8; i++) {
    record(
      await (engines[i % 2] as NatsEngine).decide({
        limiter: `${run}.tb`,
        key: "k",
        policy: tokenBucket,
        cost: 1,
        leaseId: undefined,
      }),
    );
  }
  for (let i = 0; i < 6; i++) {
    record(
      await (engines[i % 2] as NatsEngine).decide({
        limiter: `${run}.sw`,
        key: "k",
        policy: slidingWindow,
        cost: 1,
        leaseId: undefined,
      }),
    );
  }
  for (let i = 0; i < 3; i++) {
    record(
      await (engines[i % 2] as NatsEngine).decide({
        limiter: `${run}.cc`,
        key: "k",
        policy: slots,
        cost: 0,
        leaseId: `${run}-${i}`,
      }),
    );
  }
  return { outcomes, nows };
}

describe("NATS engine: time from the server", () => {
  it("decides the same whether the application clocks agree or disagree by 30 s", async () => {
    const run = `skew-${Date.now()}`;
    const agreeing = [new NatsEngine({ url: NATS_URL, bucket }), new NatsEngine({ url: NATS_URL, bucket })] as const;
    const ahead = new NatsEngine({ url: NATS_URL, bucket }, { clock: skewed(30_000) });
    const behind = new NatsEngine({ url: NATS_URL, bucket }, { clock: skewed(-30_000) });
    try {
      const reference = await script(agreeing[0], agreeing[1], `${run}-agree`);
      // 30 s apart (one right, one ahead), and 60 s apart (one ahead, one behind).
      const apart30 = await script(agreeing[0], ahead, `${run}-30`);
      const apart60 = await script(ahead, behind, `${run}-60`);
      // The reference itself is what the policies promise: 5 of 8, 4 of 6, 2 of 3.
      expect(reference.outcomes.filter((o) => o.allowed)).toHaveLength(5 + 4 + 2);
      expect(apart30.outcomes).toEqual(reference.outcomes);
      expect(apart60.outcomes).toEqual(reference.outcomes);
      // The skewed engines report the server's time, not their own: within a second of ours.
      for (const now of [...apart30.nows, ...apart60.nows]) expect(Math.abs(now - Date.now())).toBeLessThan(1000);
      expect(ahead.clockOffsetMs).toBeCloseTo(-30_000, -2);
      expect(behind.clockOffsetMs).toBeCloseTo(30_000, -2);
    } finally {
      await Promise.all([...agreeing, ahead, behind].map((engine) => engine.close()));
    }
  }, 20_000);

  it("keeps one engine's leases alive for another whose clock runs 30 s ahead", async () => {
    const target = { limiter: `lease-${Date.now()}`, key: "" };
    const normal = new NatsEngine({ url: NATS_URL, bucket });
    const ahead = new NatsEngine({ url: NATS_URL, bucket }, { clock: skewed(30_000) });
    try {
      const policy: Policy = { rate: undefined, concurrency: { maxConcurrent: 1, leaseMs: 5000 } };
      expect((await normal.decide({ ...target, policy, cost: 0, leaseId: "held" })).allowed).toBe(true);
      // With its own clock, the engine ahead would see the 5 s lease long expired and take the slot.
      const refused = await ahead.decide({ ...target, policy, cost: 0, leaseId: "thief" });
      expect(refused).toMatchObject({ allowed: false, refusedBy: "concurrency", inUse: 1 });
      expect(await ahead.renew({ ...target, leaseId: "held", leaseMs: 5000 })).toBeGreaterThan(Date.now() + 4000);
    } finally {
      await Promise.all([normal.close(), ahead.close()]);
    }
  });
});

describe("NATS engine: the bucket", () => {
  it("creates the bucket it needs: history 1 and entries that expire", async () => {
    const name = uniqueBucket("created");
    buckets.push(name);
    const engine = new NatsEngine({ url: NATS_URL, bucket: name, ttlSeconds: 1 });
    try {
      await engine.init();
      const status = await (await new Kvm(admin).open(name)).status();
      expect(status.history).toBe(1);
      expect(status.ttl).toBe(1000);
      const limiter = "expiring";
      const policy: Policy = { rate: { algorithm: "fixed_window", limit: 5, windowMs: 500 }, concurrency: undefined };
      await engine.decide({ limiter, key: "k", policy, cost: 1, leaseId: undefined });
      const kv = await new Kvm(admin).open(name);
      expect((await kv.get(encodeKvKey(limiter, "k")))?.operation).toBe("PUT");
      // The server drops it after the bucket's max age (checked every so often: allow a margin).
      const deadline = Date.now() + 5000;
      let entry = await kv.get(encodeKvKey(limiter, "k"));
      while (entry !== null && entry.operation === "PUT" && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 200));
        entry = await kv.get(encodeKvKey(limiter, "k"));
      }
      expect(entry === null || entry.operation !== "PUT").toBe(true);
    } finally {
      await engine.close();
    }
  }, 15_000);

  it("refuses an existing bucket with the wrong history or no expiry, naming the setting", async () => {
    const kvm = new Kvm(admin);
    const history = uniqueBucket("history");
    const forever = uniqueBucket("forever");
    buckets.push(history, forever);
    await kvm.create(history, { history: 5, ttl: 60_000 });
    await kvm.create(forever, { history: 1 });
    for (const [name, setting] of [
      [history, /history is 5, must be 1/],
      [forever, /ttl \(max age\) is 0/],
    ] as const) {
      const engine = new NatsEngine({ url: NATS_URL, bucket: name });
      try {
        const error = await rejectionOf(engine.init());
        expect(error.code).toBe("CONFIG_INVALID");
        expect(error.message).toMatch(setting);
        expect(error.message).toContain(name);
      } finally {
        await engine.close();
      }
    }
  });

  it("uses the bucket another process created at the same moment, when the server refuses our creation", async () => {
    // The server's answer to the loser of a creation race, made to happen every time: a stream
    // of another name holds the bucket's subjects when the engine creates it, and is replaced by
    // the real bucket (as the winner would make it) just after.
    const name = uniqueBucket("race");
    buckets.push(name);
    const jsm = await jetstreamManager(admin);
    const blocker = `blocker-${name}`;
    await jsm.streams.add({ name: blocker, subjects: [`$KV.${name}.>`] });
    const creation = admin.subscribe(`$JS.API.STREAM.CREATE.KV_${name}`, { max: 1 });
    const engine = new NatsEngine({ url: NATS_URL, bucket: name, ttlSeconds: 60 });
    try {
      const init = engine.init();
      init.catch(() => {}); // awaited below
      for await (const _ of creation) break;
      await new Promise((resolve) => setTimeout(resolve, 20));
      await jsm.streams.delete(blocker);
      await new Kvm(admin).create(name, { history: 1, ttl: 60_000 });
      await init;
      const decision = await engine.decide({
        limiter: "race",
        key: "k",
        policy: tokenBucket,
        cost: 1,
        leaseId: undefined,
      });
      expect(decision.allowed).toBe(true);
    } finally {
      await engine.close();
      await jsm.streams.delete(blocker).catch(() => {});
    }
  });

  it("with auto_create off, a missing bucket is a startup error that says what to do", async () => {
    const engine = new NatsEngine({ url: NATS_URL, bucket: uniqueBucket("missing"), autoCreate: false });
    try {
      const error = await rejectionOf(engine.init());
      expect(error.code).toBe("CONFIG_INVALID");
      expect(error.message).toMatch(/does not exist and auto_create is false/);
    } finally {
      await engine.close();
    }
  });

  it("refuses a limiter whose state would outlive the bucket's entries", async () => {
    const name = uniqueBucket("short");
    buckets.push(name);
    const engine = new NatsEngine({ url: NATS_URL, bucket: name, ttlSeconds: 10 });
    try {
      await engine.init();
      const policy: Policy = {
        rate: { algorithm: "sliding_window", limit: 5, windowMs: 60_000 },
        concurrency: undefined,
      };
      const error = await rejectionOf(engine.decide({ limiter: "long", key: "", policy, cost: 1, leaseId: undefined }));
      expect(error.code).toBe("CONFIG_INVALID");
      expect(error.message).toMatch(/needs its state kept for 60000 ms, longer than the bucket's max age of 10000 ms/);
    } finally {
      await engine.close();
    }
  });

  it("rejects bad options at once, naming the value", () => {
    expect(() => new NatsEngine({ bucket: "a.b" })).toThrow(/bucket name "a.b" is not valid/);
    expect(() => new NatsEngine({ maxConflictRetries: -1 })).toThrow(/max_conflict_retries .* got -1/);
    expect(() => new NatsEngine({ maxConflictRetries: 1.5 })).toThrow(/got 1.5/);
    expect(() => new NatsEngine({ ttlSeconds: 0 })).toThrow(/ttl_seconds .* got 0/);
  });
});

describe("NATS engine: deciding on its own last write", () => {
  it("never decides on a remembered state that another process has changed", async () => {
    const a = new NatsEngine({ url: NATS_URL, bucket });
    const b = new NatsEngine({ url: NATS_URL, bucket });
    const target = { limiter: `remembered-${Date.now()}`, key: "k" };
    const rate: Policy = {
      rate: { algorithm: "token_bucket", ratePerSecond: 0.001, burst: 10, intervalMs: 1_000_000 },
      concurrency: undefined,
    };
    const slot: Policy = { rate: undefined, concurrency: { maxConcurrent: 1, leaseMs: 10_000 } };
    try {
      // a writes (and remembers), b spends two more, a's next admission must see them.
      expect((await a.decide({ ...target, policy: rate, cost: 1, leaseId: undefined })).remaining).toBe(9);
      expect((await b.decide({ ...target, policy: rate, cost: 2, leaseId: undefined })).remaining).toBe(7);
      expect((await a.decide({ ...target, policy: rate, cost: 1, leaseId: undefined })).remaining).toBe(6);
      // a holds the only slot (remembered as full); b releases it; a's refusal would be stale.
      const slots = { ...target, key: "slots" };
      expect((await a.decide({ ...slots, policy: slot, cost: 0, leaseId: "first" })).allowed).toBe(true);
      expect(await b.release({ ...slots, leaseId: "first" })).toBe(true);
      expect(await a.decide({ ...slots, policy: slot, cost: 0, leaseId: "second" })).toMatchObject({
        allowed: true,
        inUse: 1,
      });
      // A reset by b: a's remembered state is gone too.
      await b.reset(target);
      expect((await a.decide({ ...target, policy: rate, cost: 1, leaseId: undefined })).remaining).toBe(9);
      await a.reset(slots);
    } finally {
      await Promise.all([a.close(), b.close()]);
    }
  });
});

describe("NATS engine: compare-and-set conflicts", () => {
  it("recognises both forms of the server's wrong-last-sequence refusal", () => {
    expect(isConflict({ code: 10071, message: "wrong last sequence: 41" })).toBe(true);
    expect(isConflict({ code: 10164, message: "wrong last sequence" })).toBe(true);
    expect(isConflict(new Error("wrong last sequence: 7"))).toBe(true);
    expect(isConflict({ code: 10059, message: "stream not found" })).toBe(false);
    expect(isConflict(new Error("timeout"))).toBe(false);
    expect(isConflict(undefined)).toBe(false);
  });

  it("sees the conflict the server really returns, and retries through it", async () => {
    const kv = await new Kvm(admin).open(bucket);
    const key = `conflict-${Date.now()}`;
    const first = await kv.create(key, new TextEncoder().encode("a"));
    await kv.update(key, new TextEncoder().encode("b"), first);
    const error = await kv.update(key, new TextEncoder().encode("c"), first).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(isConflict(error)).toBe(true);
    await kv.purge(key);
  });
});
