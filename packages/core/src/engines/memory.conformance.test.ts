import type { Clock } from "../clock.js";
import { describeEngineConformance } from "../testing/conformance.js";
import type { Engine } from "./engine.js";
import { MemoryEngine } from "./memory.js";

// The memory engine on the suite's fake clock: every time-based check exact, nothing sleeps.
describeEngineConformance({
  name: "memory",
  clock: "fake",
  shared: false,
  create: ({ clock }) => new MemoryEngine({}, clock),
});

// The real-time variants, on the system clock, as a remote engine runs them: proves they hold
// (and do not flake) before an engine that needs them arrives.
describeEngineConformance({
  name: "memory",
  clock: "store",
  shared: false,
  create: () => new MemoryEngine(),
});

/**
 * One memory engine seen through several "clients", as a remote store is: each client's close()
 * unsubscribes its own listeners and leaves the store's state alone. Runs the cross-instance
 * cases (shared: true) on a fake clock; one store per clock, so per test.
 */
class MemoryClient implements Engine {
  readonly name = "memory-client";
  readonly remote = false;
  readonly #store: MemoryEngine;
  readonly #subscriptions = new Set<() => void>();

  constructor(store: MemoryEngine) {
    this.#store = store;
  }

  decide: Engine["decide"] = (request) => this.#store.decide(request);
  release: Engine["release"] = (request) => this.#store.release(request);
  renew: Engine["renew"] = (request) => this.#store.renew(request);
  peek: Engine["peek"] = (request) => this.#store.peek(request);
  reset: Engine["reset"] = (target) => this.#store.reset(target);

  onRelease(target: Parameters<MemoryEngine["onRelease"]>[0], listener: () => void): () => void {
    const unsubscribe = this.#store.onRelease(target, listener);
    this.#subscriptions.add(unsubscribe);
    return () => {
      this.#subscriptions.delete(unsubscribe);
      unsubscribe();
    };
  }

  async close(): Promise<void> {
    for (const unsubscribe of this.#subscriptions) unsubscribe();
    this.#subscriptions.clear();
  }
}

const stores = new WeakMap<Clock, MemoryEngine>();

describeEngineConformance({
  name: "memory, one store behind several clients",
  clock: "fake",
  shared: true,
  create: ({ clock }) => {
    let store = stores.get(clock);
    if (store === undefined) {
      store = new MemoryEngine({}, clock);
      stores.set(clock, store);
    }
    return new MemoryClient(store);
  },
});
