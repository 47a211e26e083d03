import { describe } from "vitest";
import type { Clock } from "../clock.js";
import type { Engine } from "../engines/engine.js";
import { registerConcurrencyCases } from "./conformance-cases/concurrency.js";
import { registerDifferentialCases } from "./conformance-cases/differential.js";
import { Suite } from "./conformance-cases/harness.js";
import { registerKeyCases } from "./conformance-cases/keys.js";
import { registerLifecycleCases } from "./conformance-cases/lifecycle.js";
import { registerLimiterCases } from "./conformance-cases/limiter.js";
import { registerNotificationCases } from "./conformance-cases/notifications.js";
import { registerRateCases } from "./conformance-cases/rate.js";

/** How {@link describeEngineConformance} creates and runs an engine. */
export interface EngineConformanceOptions {
  /** Shown in test names, e.g. `"memory"`, `"redis standalone"`. */
  name: string;
  /**
   * Creates a fresh engine. The suite closes every engine it creates (after resetting every key
   * it wrote). An engine on a `"fake"` clock must take its time from `context.clock`; a `"store"`
   * engine ignores it and takes time from its store.
   */
  create(context: { clock: Clock }): Engine | Promise<Engine>;
  /**
   * Where the engine's time comes from:
   * - `"fake"`: from the clock it is given (memory). The suite passes a `FakeClock` and moves it,
   *   so every time-based check is exact (at the very millisecond) and nothing sleeps.
   * - `"store"`: from its store (Redis `TIME`, PostgreSQL `clock_timestamp()`...). The suite runs in
   *   real time with windows and leases of 100–400 ms, checks every answer against the time the
   *   store reported, and sleeps (a few seconds for the whole suite).
   */
  clock: "fake" | "store";
  /**
   * Whether two engines from `create()` share state, as clients of one remote store do. Enables
   * the cross-instance cases (one budget, leases and notifications seen through both); when
   * false, the suite checks instead that two engines are independent.
   */
  shared: boolean;
}

/**
 * Registers the engine conformance suite for one engine: vitest `describe`/`it` blocks that drive
 * the engine through the `Engine` interface and through a registry, and check it against SPEC
 * section 5 and, call by call, against core's reference algorithms (`decide`, `peek`,
 * `releaseSlot`, `renewSlot`) at the `now` the engine reports. Every engine package runs it
 * against a real server; an engine that passes behaves exactly as the memory engine does.
 *
 * The groups: rate algorithms at their boundaries, refusals that cost nothing, leases and slots,
 * rate and concurrency in one step, peek and reset, key isolation (tricky keys and limiter ids),
 * random differential sequences (fast-check), release notifications, the limiter over the engine
 * (waits, wake-ups, failure policy), `init`/`close`, and shared stores.
 *
 * Every limiter id starts with a random prefix per registration, so suites running at once
 * against one server never see each other's keys. Needs `vitest` and `fast-check` installed
 * (optional peer dependencies of `@ratesync/core`).
 *
 * @example
 * ```ts
 * // packages/redis/src/engine.conformance.integration.test.ts
 * import { describeEngineConformance } from "@ratesync/core/testing";
 * import { createRedisEngine } from "./engine.js";
 *
 * describeEngineConformance({
 *   name: "redis standalone",
 *   clock: "store",
 *   shared: true,
 *   create: () => createRedisEngine({ url: process.env.REDIS_URL }),
 * });
 * ```
 */
export function describeEngineConformance(options: EngineConformanceOptions): void {
  const suite = new Suite(options);
  describe(`engine conformance: ${options.name} (${options.clock === "fake" ? "fake clock" : "store clock, real time"})`, () => {
    describe("rate algorithms", () => registerRateCases(suite));
    describe("slots, peek and reset", () => registerConcurrencyCases(suite));
    describe("key isolation", () => registerKeyCases(suite));
    describe("against the reference algorithms", () => registerDifferentialCases(suite));
    describe("release notifications", () => registerNotificationCases(suite));
    describe("the limiter over the engine", () => registerLimiterCases(suite));
    describe("lifecycle and shared stores", () => registerLifecycleCases(suite));
  });
}
