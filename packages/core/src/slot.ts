import type { Decision } from "./decision.js";
import { RateSyncError } from "./errors.js";

/**
 * What a successful acquire holds until it is released. On a limiter with `maxConcurrent` it is a
 * lease on one of the slots, renewed in the background while held; on a rate-only limiter there
 * is nothing to give back and `release()` does nothing, so code can treat both alike.
 *
 * A `Slot` is `AsyncDisposable`:
 *
 * @example
 * ```ts
 * {
 *   await using slot = await acquire("db");
 *   await db.query(sql, { signal: slot.signal }); // stop if the lease is lost
 * } // released here, even on throw
 * ```
 */
export interface Slot extends AsyncDisposable {
  /** The limiter the slot belongs to. */
  readonly limiter: string;
  /** The key it was acquired for; `undefined` for the shared budget. */
  readonly key: string | undefined;
  /** The lease id in the store; `undefined` when no concurrency slot is held. */
  readonly leaseId: string | undefined;
  /** When the lease expires unless renewed (epoch ms, store clock); `undefined` without a lease. */
  readonly expiresAt: number | undefined;
  /** Whether the slot is still held: false after release, or once the lease was lost. */
  readonly held: boolean;
  /**
   * Aborted (with a `LEASE_LOST` {@link RateSyncError} as its reason) when the lease could not be
   * renewed and may now be someone else's. Pass it to work that should stop then.
   */
  readonly signal: AbortSignal;
  /** The decision that admitted this slot. */
  readonly decision: Decision;
  /** How long the acquire waited for this slot, in ms (0 for `tryAcquire`). */
  readonly waitedMs: number;
  /** Gives the slot back. Idempotent: a second call, or a call after the lease was lost, does nothing. */
  release(): Promise<void>;
}

let neverAborted: AbortSignal | undefined;

/**
 * One shared signal that never aborts, made on first use: edge runtimes (Workers) refuse to
 * create an AbortController while a module is being loaded.
 */
function neverAbortedSignal(): AbortSignal {
  neverAborted ??= new AbortController().signal;
  return neverAborted;
}

/** `Symbol.asyncDispose`, or the well-known fallback on runtimes that do not define it yet. */
export const asyncDispose: typeof Symbol.asyncDispose =
  (Symbol as { asyncDispose?: typeof Symbol.asyncDispose }).asyncDispose ??
  (Symbol.for("Symbol.asyncDispose") as typeof Symbol.asyncDispose);

/** The slot of a rate-only limiter, or of a degraded decision: there is nothing to give back. */
export class FreeSlot implements Slot {
  readonly leaseId = undefined;
  readonly expiresAt = undefined;
  readonly decision: Decision;
  waitedMs = 0;
  #held = true;

  constructor(decision: Decision) {
    this.decision = decision;
  }

  get limiter(): string {
    return this.decision.limiter;
  }

  get key(): string | undefined {
    return this.decision.key;
  }

  get held(): boolean {
    return this.#held;
  }

  get signal(): AbortSignal {
    return neverAbortedSignal();
  }

  release(): Promise<void> {
    this.#held = false;
    return Promise.resolve();
  }

  [asyncDispose](): Promise<void> {
    return this.release();
  }
}

/** What a leased slot needs from its limiter: renewal, release and bookkeeping. */
export interface LeaseOwner {
  /** Renews the lease; the new expiry, `undefined` when lost. Throws when the store failed. */
  renew(slot: LeasedSlot): Promise<number | undefined>;
  /** Releases the lease in the store. */
  release(slot: LeasedSlot): Promise<void>;
  /** Schedules `callback` after `delayMs` without keeping the process alive; returns a cancel function. */
  schedule(callback: () => void, delayMs: number): () => void;
  /** The local clock, epoch ms. */
  now(): number;
  /** Called once when the slot stops being held (released or lost). */
  settled(slot: LeasedSlot, lost: boolean): void;
}

/**
 * A lease on a concurrency slot. Renewed every third of the lease while held; when renewal finds
 * the lease gone (or keeps failing until the lease would have expired) the slot aborts its
 * signal with `LEASE_LOST` and stops counting as held.
 */
export class LeasedSlot implements Slot {
  readonly limiter: string;
  readonly key: string | undefined;
  readonly leaseId: string;
  readonly leaseMs: number;
  decision!: Decision;
  waitedMs = 0;
  #expiresAt: number;
  /** Local time by which the lease has surely expired if no renewal got through. */
  #localDeadline: number;
  #held = true;
  #controller: AbortController | undefined;
  #lostReason: RateSyncError | undefined;
  #cancelRenewal: (() => void) | undefined;
  #releasing: Promise<void> | undefined;
  readonly #owner: LeaseOwner;

  constructor(
    owner: LeaseOwner,
    limiter: string,
    key: string | undefined,
    leaseId: string,
    expiresAt: number,
    leaseMs: number,
  ) {
    this.#owner = owner;
    this.limiter = limiter;
    this.key = key;
    this.leaseId = leaseId;
    this.#expiresAt = expiresAt;
    this.leaseMs = leaseMs;
    this.#localDeadline = owner.now() + leaseMs;
    this.#scheduleRenewal();
  }

  get expiresAt(): number {
    return this.#expiresAt;
  }

  get held(): boolean {
    return this.#held;
  }

  get signal(): AbortSignal {
    if (this.#controller === undefined) {
      this.#controller = new AbortController();
      if (this.#lostReason !== undefined) this.#controller.abort(this.#lostReason);
    }
    return this.#controller.signal;
  }

  release(): Promise<void> {
    if (this.#releasing !== undefined) return this.#releasing;
    if (!this.#held) return Promise.resolve();
    this.#held = false;
    this.#cancelRenewal?.();
    this.#owner.settled(this, false);
    this.#releasing = this.#owner.release(this);
    return this.#releasing;
  }

  [asyncDispose](): Promise<void> {
    return this.release();
  }

  /**
   * Stops renewing without telling the store (the registry is closing): the lease then expires
   * on its own after `leaseMs`.
   */
  abandon(): void {
    if (!this.#held) return;
    this.#held = false;
    this.#cancelRenewal?.();
    this.#owner.settled(this, false);
  }

  #scheduleRenewal(): void {
    const every = Math.max(1, Math.floor(this.leaseMs / 3));
    this.#cancelRenewal = this.#owner.schedule(() => void this.#renew(), every);
  }

  async #renew(): Promise<void> {
    if (!this.#held) return;
    let expiresAt: number | undefined;
    const attemptedAt = this.#owner.now();
    try {
      expiresAt = await this.#owner.renew(this);
    } catch (error) {
      // The store failed: the lease may still be alive, so keep trying until it would have expired.
      // Compared on the local clock: the store's clock may be skewed from ours.
      if (this.#held && this.#owner.now() < this.#localDeadline) {
        this.#scheduleRenewal();
        return;
      }
      this.#lose(error);
      return;
    }
    if (!this.#held) return;
    if (expiresAt === undefined) {
      this.#lose(undefined);
      return;
    }
    this.#expiresAt = expiresAt;
    this.#localDeadline = attemptedAt + this.leaseMs;
    this.#scheduleRenewal();
  }

  #lose(cause: unknown): void {
    if (!this.#held) return;
    this.#held = false;
    this.#lostReason = new RateSyncError(
      "LEASE_LOST",
      `The slot of limiter "${this.limiter}" (lease ${this.leaseId}) could not be renewed and may now be held by someone else. Stop the work it guarded; acquire again to continue.`,
      { cause, details: { limiter: this.limiter, leaseId: this.leaseId } },
    );
    this.#controller?.abort(this.#lostReason);
    this.#owner.settled(this, true);
  }
}
