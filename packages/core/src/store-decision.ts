import type { ConcurrencyUsage, Decision, DecisionPolicy, StoreDecision } from "./decision.js";
import { FreeSlot, type LeasedSlot, type Slot } from "./slot.js";

/**
 * A {@link StoreDecision} as the limiter builds it. A class rather than an object literal so the
 * slot of an admitted rate-only call (which holds nothing and needs no release) is only created
 * if someone asks for it: most callers of `tryAcquire` never do, and the hot path then allocates
 * one object per decision instead of two.
 */
export class StoreOutcome implements StoreDecision {
  readonly degraded = false;
  readonly limiter: string;
  readonly key: string | undefined;
  readonly allowed: boolean;
  readonly policy: DecisionPolicy;
  readonly limit: number;
  readonly remaining: number;
  readonly resetAt: number;
  readonly retryAfterMs: number;
  readonly concurrency: ConcurrencyUsage | undefined;
  #slot: Slot | undefined;
  /** Whether an admitted call gets a slot (false for peeks, which admit nothing). */
  readonly #holdsSlot: boolean;
  /** The store's time of the decision, epoch ms (see {@link decisionTime}). */
  readonly #at: number;

  constructor(
    limiter: string,
    key: string | undefined,
    allowed: boolean,
    policy: DecisionPolicy,
    remaining: number,
    resetAt: number,
    retryAfterMs: number,
    concurrency: ConcurrencyUsage | undefined,
    holdsSlot: boolean,
    at: number,
  ) {
    this.limiter = limiter;
    this.key = key;
    this.allowed = allowed;
    this.policy = policy;
    this.limit = policy.limit;
    this.remaining = remaining;
    this.resetAt = resetAt;
    this.retryAfterMs = retryAfterMs;
    this.concurrency = concurrency;
    this.#holdsSlot = holdsSlot && allowed;
    this.#at = at;
  }

  /** The store's time of the decision, epoch ms. @internal */
  get at(): number {
    return this.#at;
  }

  /** Attaches the lease this admission holds. */
  attach(slot: LeasedSlot): void {
    this.#slot = slot;
    slot.decision = this;
  }

  get slot(): Slot | undefined {
    if (this.#slot === undefined && this.#holdsSlot) this.#slot = new FreeSlot(this);
    return this.#slot;
  }

  /** The plain fields, so decisions log and serialise as data. */
  toJSON(): Omit<StoreDecision, "slot"> {
    const { limiter, key, allowed, degraded, policy, limit, remaining, resetAt, retryAfterMs, concurrency } = this;
    return { limiter, key, allowed, degraded, policy, limit, remaining, resetAt, retryAfterMs, concurrency };
  }
}

/**
 * The store's time of a decision (epoch ms): the instant `resetAt` and `retryAfterMs` are counted
 * from, on the store's clock (Redis `TIME`, PostgreSQL `clock_timestamp()`), so seconds computed
 * from it are right even when this host's clock differs. `undefined` for a degraded decision,
 * taken without the store.
 */
export function decisionTime(decision: Decision): number | undefined {
  return decision instanceof StoreOutcome ? decision.at : undefined;
}

/** The slot of a decision, which must exist (the decision was admitted). */
export function slotOf(decision: Decision): FreeSlot | LeasedSlot {
  return decision.slot as FreeSlot | LeasedSlot;
}
