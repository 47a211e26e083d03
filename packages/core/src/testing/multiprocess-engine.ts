/**
 * The engine proxy a harness worker puts around every engine it uses: it counts store calls (to
 * measure what waiting costs) and records the store's own time of every admission (the exact log
 * the rate checks need). Engine-agnostic: it only uses the {@link Engine} interface.
 */

import type { EngineDecision } from "../algorithms/decide.js";
import type {
  DecideRequest,
  Engine,
  EngineDefinition,
  EngineTarget,
  LeaseRequest,
  MaybePromise,
  PeekRequest,
  RenewRequest,
} from "../engines/engine.js";
import type { StoreCallCounts } from "./multiprocess-protocol.js";

/** Store calls counted and admissions recorded by the proxies of one worker process. */
export class StoreRecorder {
  /** Calls so far, by method. */
  readonly calls: StoreCallCounts = { decide: 0, peek: 0, release: 0, renew: 0, reset: 0, total: 0 };
  /** Whether admissions are being recorded (during a run). */
  recording = false;
  /** Store times of admitting decisions while recording, epoch ms. */
  storeAdmissions: number[] = [];
  /** The largest `inUse` reported on an admitting decision while recording. */
  maxInUse = 0;

  /** Counts one call of `method`. */
  count(method: Exclude<keyof StoreCallCounts, "total">): void {
    this.calls[method]++;
    this.calls.total++;
  }

  /** A copy of the counters now. */
  snapshot(): StoreCallCounts {
    return { ...this.calls };
  }

  /** Records what a `decide` answered. */
  decided(decision: EngineDecision): void {
    if (!this.recording || !decision.allowed) return;
    this.storeAdmissions.push(decision.now);
    if (decision.inUse > this.maxInUse) this.maxInUse = decision.inUse;
  }
}

/** Counters between two snapshots. */
export function callsBetween(before: StoreCallCounts, after: StoreCallCounts): StoreCallCounts {
  return {
    decide: after.decide - before.decide,
    peek: after.peek - before.peek,
    release: after.release - before.release,
    renew: after.renew - before.renew,
    reset: after.reset - before.reset,
    total: after.total - before.total,
  };
}

/** Calls `then` with the value, synchronously for a plain value: a local engine must stay synchronous. */
function tap<T>(result: MaybePromise<T>, then: (value: T) => void): MaybePromise<T> {
  if (typeof (result as { then?: unknown } | null)?.then === "function") {
    return (result as Promise<T>).then((value) => {
      then(value);
      return value;
    });
  }
  then(result as T);
  return result;
}

/**
 * An engine that forwards every call to `inner`, counting it in `recorder`. It has exactly the
 * optional methods `inner` has: a missing `onRelease` must stay missing, because the limiter
 * polls faster for engines that cannot notify, and the measurement would change what it measures.
 */
export function countingEngine(inner: Engine, recorder: StoreRecorder): Engine {
  const engine: Engine = {
    name: inner.name,
    remote: inner.remote ?? true,
    decide(request: DecideRequest): MaybePromise<EngineDecision> {
      recorder.count("decide");
      return tap(inner.decide(request), (decision) => recorder.decided(decision));
    },
    peek(request: PeekRequest): MaybePromise<EngineDecision> {
      recorder.count("peek");
      return inner.peek(request);
    },
    release(request: LeaseRequest): MaybePromise<boolean> {
      recorder.count("release");
      return inner.release(request);
    },
    renew(request: RenewRequest): MaybePromise<number | undefined> {
      recorder.count("renew");
      return inner.renew(request);
    },
    reset(target: EngineTarget): MaybePromise<void> {
      recorder.count("reset");
      return inner.reset(target);
    },
    close: () => inner.close(),
  };
  const { onRelease, init } = inner;
  if (onRelease !== undefined) engine.onRelease = (target, listener) => onRelease.call(inner, target, listener);
  if (init !== undefined) engine.init = () => init.call(inner);
  return engine;
}

/** The definition `definition` with every engine it creates wrapped in {@link countingEngine}. */
export function countingDefinition(definition: EngineDefinition, recorder: StoreRecorder): EngineDefinition {
  return {
    name: definition.name,
    ...(definition.optionKeys === undefined ? {} : { optionKeys: definition.optionKeys }),
    create: (options, context) => countingEngine(definition.create(options, context), recorder),
  };
}
