import type { EngineDecision } from "../algorithms/decide.js";
import type {
  DecideRequest,
  Engine,
  EngineTarget,
  LeaseRequest,
  PeekRequest,
  RenewRequest,
} from "../engines/engine.js";

/** How a {@link FlakyEngine} misbehaves while it is down. */
export type FailureMode = "error" | "hang";

/**
 * Wraps a working engine and makes it fail on demand: every call throws (`"error"`) or never
 * settles (`"hang"`) while `down` is set. For testing the failure policy and the per-call deadline
 * without a real outage.
 *
 * @example
 * ```ts
 * const engine = new FlakyEngine(createMemoryEngine());
 * rateSync.configureStore("s", { engine, requestTimeoutMs: 50 });
 * engine.fail("hang");
 * ```
 */
export class FlakyEngine implements Engine {
  readonly name = "flaky";
  readonly remote = true;
  readonly inner: Engine;
  #mode: FailureMode | undefined;
  /** Store calls made so far, by method. */
  readonly calls = { decide: 0, release: 0, renew: 0, peek: 0, reset: 0 };

  constructor(inner: Engine) {
    this.inner = inner;
    const subscribe = inner.onRelease?.bind(inner);
    this.onRelease = subscribe === undefined ? undefined : (target, listener) => subscribe(target, listener);
  }

  /** Starts failing in the given way. */
  fail(mode: FailureMode = "error"): void {
    this.#mode = mode;
  }

  /** Works again. */
  recover(): void {
    this.#mode = undefined;
  }

  async #call<T>(run: () => T | Promise<T>): Promise<T> {
    if (this.#mode === "error") throw new Error("connection refused (simulated outage)");
    if (this.#mode === "hang") return new Promise<T>(() => {});
    return run();
  }

  decide(request: DecideRequest): Promise<EngineDecision> {
    this.calls.decide++;
    return this.#call(() => this.inner.decide(request));
  }

  release(request: LeaseRequest): Promise<boolean> {
    this.calls.release++;
    return this.#call(() => this.inner.release(request));
  }

  renew(request: RenewRequest): Promise<number | undefined> {
    this.calls.renew++;
    return this.#call(() => this.inner.renew(request));
  }

  peek(request: PeekRequest): Promise<EngineDecision> {
    this.calls.peek++;
    return this.#call(() => this.inner.peek(request));
  }

  reset(target: EngineTarget): Promise<void> {
    this.calls.reset++;
    return this.#call(() => this.inner.reset(target));
  }

  /** The inner engine's release notifications; absent when it has none, as on the inner engine. */
  readonly onRelease: ((target: EngineTarget, listener: () => void) => () => void) | undefined;

  close(): Promise<void> {
    return this.inner.close();
  }
}
