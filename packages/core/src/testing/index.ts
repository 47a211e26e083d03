/**
 * `@ratesync/core/testing`: what tests of ratesync and of engines need. A fake clock that never
 * sleeps, and an engine that fails on demand.
 *
 * @packageDocumentation
 */

export { rejectionOf, thrownBy } from "./errors.js";
export { FakeClock, flushMicrotasks } from "./fake-clock.js";
export { type FailureMode, FlakyEngine } from "./flaky-engine.js";
