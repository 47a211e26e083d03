/**
 * `@ratesync/core/testing`: what tests of ratesync and of engines need. A fake clock that never
 * sleeps, an engine that fails on demand, and the engine conformance suite every engine runs.
 *
 * @packageDocumentation
 */

export { describeEngineConformance, type EngineConformanceOptions } from "./conformance.js";
export { rejectionOf, thrownBy } from "./errors.js";
export { FakeClock, flushMicrotasks } from "./fake-clock.js";
export { type FailureMode, FlakyEngine } from "./flaky-engine.js";
export {
  type HoldOptions,
  harnessNow,
  killAllWorkers,
  type RunResult,
  type RunWorkersOptions,
  runWorkers,
  runWorkload,
  type SharedWorkload,
  spawnWorker,
  spawnWorkers,
  uniqueRunId,
  WorkerCommandError,
  type WorkerExit,
  type WorkerOptions,
  WorkerProcess,
} from "./multiprocess.js";
export {
  type BusiestInterval,
  busiestInterval,
  checkSlidingWindowLog,
  checkTokenBucketLog,
  type HoldInterval,
  type LogViolation,
  maxConcurrentFromIntervals,
  maxInAnyInterval,
  type SlidingWindowLogOptions,
  type TokenBucketLogOptions,
} from "./multiprocess-checks.js";
export type {
  HeldSlotInfo,
  HeldSlotStatus,
  ReleaseReport,
  StoreCallCounts,
  WorkerPeek,
  WorkerRunResult,
  Workload,
  WorkloadMode,
} from "./multiprocess-protocol.js";
export { describeMultiprocessSuite, type MultiprocessSuiteOptions } from "./multiprocess-suite.js";
