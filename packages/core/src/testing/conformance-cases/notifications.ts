/**
 * Release notifications (`onRelease`, optional): what wakes a waiting acquire at once instead of
 * at the next poll. A release or reset of a key must reach that key's listeners, in this process
 * and (for shared stores) in others, and no other key's: with pattern subscriptions or channel
 * names built from keys, "*" or "a:b" are the keys that leak.
 */
import { expect } from "vitest";
import type { Engine, EngineTarget } from "../../engines/engine.js";
import {
  conformanceCase,
  describeTarget,
  policyOf,
  type Run,
  realSleep,
  type Suite,
  slots,
  waitFor,
} from "./harness.js";

/** How long a notification may take to arrive, in real time. Generous: a miss is a hang, not a delay. */
const DELIVERY_MS = 2000;

/** In real time: how long one release waits to be heard before another is tried, and how many tries. */
const RETRY_AFTER_MS = 400;
const ATTEMPTS = 5;

/** Counts notifications per label. */
class Ears {
  readonly heard = new Map<string, number>();

  /** Subscribes a listener named `label`; returns its unsubscribe function. */
  listen(engine: Engine, target: EngineTarget, label: string): () => void {
    const subscribe = engine.onRelease?.bind(engine);
    if (subscribe === undefined) throw new Error("conformance suite bug: listen() on an engine without onRelease");
    this.heard.set(label, this.heard.get(label) ?? 0);
    return subscribe(target, () => this.heard.set(label, (this.heard.get(label) ?? 0) + 1));
  }

  count(label: string): number {
    return this.heard.get(label) ?? 0;
  }

  /** Waits until `label` has heard at least `times` notifications; whether it did in time. */
  until(label: string, times: number): Promise<boolean> {
    return waitFor(() => this.count(label) >= times, DELIVERY_MS);
  }
}

const POLICY = policyOf(undefined, slots(2, 60_000));

/** Takes a slot on `target` through `engine` and releases it. */
async function takeAndRelease(run: Run, engine: Engine, target: EngineTarget): Promise<void> {
  run.touch(engine, target);
  const leaseId = run.leaseId();
  const taken = await engine.decide({ ...target, policy: POLICY, cost: 1, leaseId });
  expect(taken.allowed, `a slot on ${describeTarget(target)}`).toBe(true);
  expect(await engine.release({ ...target, leaseId })).toBe(true);
}

/**
 * Frees a slot of `target` (with `free`, default a release) until every listener in `labels` has
 * heard one more notification. A remote store's subscription can take a moment to be in place,
 * so a first release may go unheard; a listener that hears none of several fails the test.
 */
async function freeUntilHeard(
  run: Run,
  ears: Ears,
  engine: Engine,
  target: EngineTarget,
  labels: readonly string[],
  free: () => Promise<void> = () => takeAndRelease(run, engine, target),
): Promise<void> {
  const before = new Map(labels.map((label) => [label, ears.count(label)]));
  const unheard = (): string[] => labels.filter((label) => ears.count(label) <= (before.get(label) ?? 0));
  for (let attempt = 0; attempt < ATTEMPTS; attempt++) {
    await free();
    if (await waitFor(() => unheard().length === 0, run.clock === undefined ? RETRY_AFTER_MS : DELIVERY_MS)) return;
  }
  expect(unheard(), `listeners of ${describeTarget(target)} that heard no release`).toEqual([]);
}

/**
 * Makes sure stray notifications would have arrived by now: frees a slot of a "fence" key and
 * waits for its own notification (stores deliver in order on one subscription), plus a little
 * slack in real time for stores that do not.
 */
async function fence(run: Run, ears: Ears, engine: Engine, target: EngineTarget): Promise<void> {
  await freeUntilHeard(run, ears, engine, target, ["fence"]);
  if (run.clock === undefined) await realSleep(50);
}

/** The engine, or a skip when it has no notifications (its waiters poll instead). */
async function notifyingEngine(run: Run): Promise<Engine> {
  const engine = await run.engine();
  if (engine.onRelease === undefined) run.skip("the engine has no onRelease: waiters poll instead");
  return engine;
}

/** Registers the notification cases. */
export function registerNotificationCases(suite: Suite): void {
  conformanceCase(
    suite,
    "onRelease: a release notifies every listener of that key, and no listener of any other",
    async (run) => {
      const engine = await notifyingEngine(run);
      const limiter = run.id("notify");
      const released: EngineTarget = { limiter, key: "a" };
      const ears = new Ears();
      ears.listen(engine, released, "a#1");
      ears.listen(engine, released, "a#2");
      // Keys and limiters that a pattern, a prefix or a naive channel name would confuse with "a".
      const decoys: EngineTarget[] = [
        { limiter, key: "" },
        { limiter, key: "b" },
        { limiter, key: "A" },
        { limiter, key: "a:b" },
        { limiter, key: "a " },
        { limiter, key: "*" },
        { limiter, key: "a*" },
        { limiter, key: "?" },
        { limiter, key: "{a}" },
        { limiter: `${limiter}a`, key: "" },
        { limiter: `${limiter}:a`, key: "" },
        { limiter: `${limiter}:`, key: "a" },
        { limiter: `${limiter}*`, key: "a" },
      ];
      for (const [i, decoy] of decoys.entries()) ears.listen(engine, decoy, `decoy ${i}: ${describeTarget(decoy)}`);
      const fenceTarget = { limiter, key: "fence" };
      ears.listen(engine, fenceTarget, "fence");
      // A remote store's subscription takes a round trip to be in place.
      await run.settle();

      await freeUntilHeard(run, ears, engine, released, ["a#1", "a#2"]);
      await fence(run, ears, engine, fenceTarget);
      for (const [label, count] of ears.heard) {
        if (label.startsWith("decoy")) expect(count, `${label} heard a release of key "a"`).toBe(0);
      }
    },
  );

  conformanceCase(suite, "onRelease: a reset of a key holding a slot notifies its listeners", async (run) => {
    const engine = await notifyingEngine(run);
    const target = run.touch(engine, { limiter: run.id("notify-reset"), key: "k" });
    const ears = new Ears();
    ears.listen(engine, target, "k");
    await run.settle();
    await freeUntilHeard(run, ears, engine, target, ["k"], async () => {
      const taken = await engine.decide({ ...target, policy: POLICY, cost: 1, leaseId: run.leaseId() });
      expect(taken.allowed).toBe(true);
      await engine.reset(target);
    });
  });

  conformanceCase(
    suite,
    "onRelease: unsubscribing stops that listener only, twice is harmless, and a new listener hears again",
    async (run) => {
      const engine = await notifyingEngine(run);
      const limiter = run.id("unsubscribe");
      const target: EngineTarget = { limiter, key: "k" };
      const fenceTarget: EngineTarget = { limiter, key: "fence" };
      const ears = new Ears();
      const stopFirst = ears.listen(engine, target, "first");
      const stopSecond = ears.listen(engine, target, "second");
      ears.listen(engine, fenceTarget, "fence");
      await run.settle();

      stopFirst();
      stopFirst();
      await freeUntilHeard(run, ears, engine, target, ["second"]);
      await fence(run, ears, engine, fenceTarget);
      expect(ears.count("first"), "an unsubscribed listener was called").toBe(0);

      stopSecond();
      const heardBySecond = ears.count("second");
      await takeAndRelease(run, engine, target);
      await fence(run, ears, engine, fenceTarget);
      expect(ears.count("second"), "an unsubscribed listener was called").toBe(heardBySecond);

      // The key's subscription was torn down with its last listener: a new one must set it up again.
      ears.listen(engine, target, "third");
      await run.settle();
      await freeUntilHeard(run, ears, engine, target, ["third"]);
    },
  );

  conformanceCase(
    suite,
    "onRelease: a release through one engine instance notifies the listeners of another",
    async (run) => {
      const first = await notifyingEngine(run);
      const second = await run.engine();
      const target = run.touch(second, { limiter: run.id("notify-shared"), key: "k" });
      const ears = new Ears();
      ears.listen(second, target, "k");
      await run.settle();
      await freeUntilHeard(run, ears, first, target, ["k"]);
    },
    { when: suite.options.shared, unless: "needs shared: true" },
  );
}
