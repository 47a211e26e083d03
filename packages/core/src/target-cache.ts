/**
 * A bounded memo of what an engine derives from a (limiter, key) target, such as its store keys
 * or its row id: deriving (base64, maybe a SHA-256) costs more than a Map lookup, and hot keys are
 * asked for again and again. Emptied when it grows past its size, so a flood of distinct keys
 * cannot grow it without bound.
 *
 * Exported for engines.
 *
 * @example
 * ```ts
 * import { TargetCache } from "@ratesync/core";
 *
 * const ids = new TargetCache((limiter, key) => `${limiter}/${encodeURIComponent(key)}`);
 * ids.get("api", "user:42"); // "api/user%3A42", derived once
 * ```
 */
export class TargetCache<T> {
  readonly #derive: (limiter: string, key: string) => T;
  readonly #size: number;
  readonly #byLimiter = new Map<string, Map<string, T>>();
  #count = 0;

  /**
   * @param derive - what to keep for a target, called once per target while it stays cached
   * @param size - how many targets to keep before emptying the cache
   */
  constructor(derive: (limiter: string, key: string) => T, size = 10_000) {
    this.#derive = derive;
    this.#size = size;
  }

  /** What `derive` gives for (limiter, key), from the cache when it holds it. */
  get(limiter: string, key: string): T {
    let byKey = this.#byLimiter.get(limiter);
    if (byKey === undefined) {
      byKey = new Map();
      this.#byLimiter.set(limiter, byKey);
    }
    let value = byKey.get(key);
    if (value === undefined) {
      if (++this.#count > this.#size) {
        this.#byLimiter.clear();
        this.#count = 1;
        byKey = new Map();
        this.#byLimiter.set(limiter, byKey);
      }
      value = this.#derive(limiter, key);
      byKey.set(key, value);
    }
    return value;
  }

  /** Forgets every target. */
  clear(): void {
    this.#byLimiter.clear();
    this.#count = 0;
  }
}
