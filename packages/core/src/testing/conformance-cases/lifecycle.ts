/**
 * The engine as an object: its name, synchronous answers when it says it is local, `init`,
 * `close` (SPEC section 4: no timers or sockets left behind), and whether two instances from the
 * same options share one store, as remote stores must (section 6).
 */
import { expect } from "vitest";
import {
  conformanceCase,
  isThenable,
  policyOf,
  realSleep,
  type Subject,
  type Suite,
  slots,
  tokenBucket,
  withDeadline,
} from "./harness.js";

/** How long close() may take before it counts as a hang. */
const CLOSE_DEADLINE_MS = 5000;

/** Counts of the process's active handles by type (sockets, timers...), where the runtime tells. */
function activeResources(): Map<string, number> | undefined {
  const info = (globalThis as { process?: { getActiveResourcesInfo?: () => string[] } }).process
    ?.getActiveResourcesInfo;
  if (typeof info !== "function") return undefined;
  const counts = new Map<string, number>();
  for (const type of info()) counts.set(type, (counts.get(type) ?? 0) + 1);
  return counts;
}

/** Handle types with more instances now than in `baseline`, as "type: before → now". */
function leftovers(baseline: Map<string, number>): string[] {
  const now = activeResources() ?? new Map<string, number>();
  const extra: string[] = [];
  for (const [type, count] of now) {
    const before = baseline.get(type) ?? 0;
    if (count > before) extra.push(`${type}: ${before} → ${count}`);
  }
  return extra;
}

/** Registers the lifecycle and shared-store cases. */
export function registerLifecycleCases(suite: Suite): void {
  const shared = { when: suite.options.shared, unless: "needs shared: true" } as const;

  conformanceCase(
    suite,
    "basics: a name, and synchronous answers from an engine that says it is local",
    async (run) => {
      const engine = await run.engine();
      expect(typeof engine.name).toBe("string");
      expect(engine.name.length).toBeGreaterThan(0);
      if (engine.remote !== false) return;
      // remote: false tells the limiter to use the answers without awaiting them (its fast path).
      const target = run.touch(engine, { limiter: run.id("sync"), key: "" });
      const policy = policyOf(tokenBucket(1, 2), slots(1, 10_000));
      const leaseId = run.leaseId();
      const answers: Record<string, unknown> = {
        decide: engine.decide({ ...target, policy, cost: 1, leaseId }),
        peek: engine.peek({ ...target, policy, cost: 1 }),
        renew: engine.renew({ ...target, leaseId, leaseMs: 1000 }),
        release: engine.release({ ...target, leaseId }),
        reset: engine.reset(target),
      };
      for (const [method, answer] of Object.entries(answers)) {
        expect(isThenable(answer), `${method}() of an engine with remote: false returned a promise`).toBe(false);
      }
    },
  );

  conformanceCase(
    suite,
    "init (when the engine has one) is idempotent, safe to call concurrently, and the engine works after it",
    async (run) => {
      const engine = await run.engine();
      const init = engine.init?.bind(engine);
      if (init === undefined) return run.skip("the engine has no init()");
      // initializeAllLimiters calls init() once per limiter of the store, concurrently.
      await Promise.all([init(), init()]);
      await init();
      const s = run.subject(engine, { limiter: run.id("init"), key: "" }, policyOf(tokenBucket(1, 1)));
      expect((await s.decide()).allowed).toBe(true);
    },
  );

  conformanceCase(
    suite,
    "close() resolves promptly with slots held and listeners subscribed, and leaves no timers or sockets",
    async (run) => {
      const baseline = suite.fake ? undefined : activeResources();
      const engine = await run.engine();
      await engine.init?.();
      const s = run.subject(engine, { limiter: run.id("close"), key: "" }, policyOf(tokenBucket(1, 2), slots(2, 2000)));
      const held = await s.decide();
      await s.renew(held.leaseId as string);
      await s.peek();
      const unsubscribe = engine.onRelease?.(s.target, () => {});
      engine.onRelease?.({ ...s.target, key: "still-subscribed" }, () => {});
      unsubscribe?.();
      // Keys are reset before close by the run; here close() itself is the test, with state left in place.
      const closed = await withDeadline(run.close(engine), CLOSE_DEADLINE_MS);
      expect(closed, `close() did not resolve within ${CLOSE_DEADLINE_MS} ms`).toBe(true);
      if (baseline === undefined) return;
      // Sockets close asynchronously after close() resolves: give them a moment.
      let extra = leftovers(baseline);
      for (let waited = 0; extra.length > 0 && waited < 2000; waited += 20) {
        await realSleep(20);
        extra = leftovers(baseline);
      }
      expect(extra, "handles the closed engine left open (they keep the process alive)").toEqual([]);
    },
  );

  conformanceCase(
    suite,
    "independent instances: two engines from create() do not share state",
    async (run) => {
      const first = await run.engine();
      const second = await run.engine();
      const target = { limiter: run.id("independent"), key: "" };
      const policy = policyOf(tokenBucket(1, 1), slots(1, 10_000));
      // Each subject holds its own reference state: any sharing shows up as a mismatch.
      const a = run.subject(first, target, policy);
      const b = run.subject(second, target, policy);
      expect((await a.decide()).allowed).toBe(true);
      expect((await b.decide()).allowed).toBe(true);
    },
    { when: !suite.options.shared, unless: "the engine is shared" },
  );

  conformanceCase(
    suite,
    "shared store: admissions through one instance count on the other",
    async (run) => {
      const first = await run.engine();
      const second = await run.engine();
      const s: Subject = run.subject(first, { limiter: run.id("shared-budget"), key: "" }, policyOf(tokenBucket(1, 3)));
      run.touch(second, s.target);
      const firstCall = await s.decide();
      expect(firstCall.remaining).toBe(2);
      expect((await s.decide(1, { via: second })).remaining).toBe(1);
      expect((await s.decide()).remaining).toBe(0);
      const refused = await s.decide(1, { via: second });
      s.landedBefore(refused, firstCall.now + 1000);
      expect(refused.allowed).toBe(false);
      expect((await s.peek(1, { via: second })).remaining).toBe(0);
      await s.reset({ via: second });
      expect((await s.peek()).remaining, "a reset through the other instance").toBe(3);
    },
    shared,
  );

  conformanceCase(
    suite,
    "shared store: a lease taken through one instance is held for the other, renewed and released there by id",
    async (run) => {
      const first = await run.engine();
      const second = await run.engine();
      const s = run.subject(first, { limiter: run.id("shared-lease"), key: "" }, policyOf(undefined, slots(1, 10_000)));
      run.touch(second, s.target);
      const lease = await s.decide();
      expect(lease.allowed).toBe(true);
      const seen = await s.peek(1, { via: second });
      expect(seen.inUse).toBe(1);
      expect(seen.allowed).toBe(false);
      expect((await s.decide(1, { via: second })).refusedBy).toBe("concurrency");
      expect(await s.renew(lease.leaseId as string, undefined, { via: second })).toBeDefined();
      expect(await s.release(lease.leaseId as string, { via: second })).toBe(true);
      expect((await s.peek()).inUse).toBe(0);
      expect(await s.release(lease.leaseId as string), "released twice, through either instance").toBe(false);
    },
    shared,
  );
}
