import type { Policy, RatePolicy } from "../policy.js";
import {
  applyConcurrency,
  type ConcurrencyCheck,
  checkConcurrency,
  type LeaseState,
  leasesExpireAt,
  releaseLease,
  renewLease,
} from "./concurrency.js";
import { applyFixedWindow, checkFixedWindow, type FixedWindowState, fixedWindowExpiresAt } from "./fixed-window.js";
import type { RateCheck } from "./rate-check.js";
import {
  applySlidingWindow,
  checkSlidingWindow,
  type SlidingWindowState,
  slidingWindowExpiresAt,
} from "./sliding-window.js";
import { applyTokenBucket, checkTokenBucket, type TokenBucketState, tokenBucketExpiresAt } from "./token-bucket.js";

/** The state of one rate algorithm for one key. */
export type RateState = TokenBucketState | SlidingWindowState | FixedWindowState;

/**
 * Everything a store keeps for one (limiter, key): the rate state and the live leases. A missing
 * part is the fresh state (a full bucket, an empty window, no slots held).
 */
export interface KeyState {
  rate?: RateState | undefined;
  leases?: LeaseState | undefined;
}

/**
 * The raw outcome of one decision, as every engine reports it. `@ratesync/core` turns it into the
 * public {@link Decision}. Engines that reimplement the algorithms in their store (Lua, SQL) must
 * produce exactly what {@link decide} produces for the same state, call and time; the conformance
 * suite checks it.
 */
export interface EngineDecision {
  /** Whether the call was admitted (rate and concurrency both). */
  allowed: boolean;
  /** Which part refused, when refused; `rate` wins when both refuse. */
  refusedBy: "rate" | "concurrency" | undefined;
  /** The store's clock at the decision, epoch ms. */
  now: number;
  /** Rate budget left (after this call when admitted). 0 when the policy has no rate part. */
  remaining: number;
  /** Epoch ms at which the rate budget is full again. `now` when the policy has no rate part. */
  resetAt: number;
  /** Milliseconds until the same call could be admitted; 0 when admitted. */
  retryAfterMs: number;
  /** Slots held after this call. 0 when the policy has no concurrency part. */
  inUse: number;
  /** Expiry of the lease taken by this call, epoch ms; 0 when no lease was taken. */
  leaseExpiresAt: number;
}

/** The result of {@link decide}: the outcome and the state to store when `changed`. */
export interface DecideResult {
  readonly decision: EngineDecision;
  /** The state after the call. The same object as the input when it was updated in place. */
  readonly state: KeyState | undefined;
  /** Whether anything must be written: refused calls never write. */
  readonly changed: boolean;
}

function checkRate(state: RateState | undefined, rate: RatePolicy, cost: number, now: number): RateCheck {
  switch (rate.algorithm) {
    case "token_bucket":
      return checkTokenBucket(state as TokenBucketState | undefined, rate, cost, now);
    case "sliding_window":
      return checkSlidingWindow(state as SlidingWindowState | undefined, rate, cost, now);
    case "fixed_window":
      return checkFixedWindow(state as FixedWindowState | undefined, rate, cost, now);
  }
}

function applyRate(state: RateState | undefined, rate: RatePolicy, cost: number, now: number): RateState {
  switch (rate.algorithm) {
    case "token_bucket":
      return applyTokenBucket(state as TokenBucketState | undefined, rate, cost, now);
    case "sliding_window":
      return applySlidingWindow(state as SlidingWindowState | undefined, rate, cost, now);
    case "fixed_window":
      return applyFixedWindow(state as FixedWindowState | undefined, rate, cost, now);
  }
}

/**
 * One decision: rate and concurrency checked together and applied only if both admit, so a
 * refusal by either consumes nothing from the other. Mutates `state` in place when admitting.
 *
 * @param leaseId required when the policy has a concurrency part: the id of the slot to create.
 */
export function decide(
  state: KeyState | undefined,
  policy: Policy,
  cost: number,
  leaseId: string | undefined,
  now: number,
): DecideResult {
  const rate = policy.rate;
  const concurrency = policy.concurrency;
  if (concurrency !== undefined && leaseId === undefined) {
    throw new TypeError("decide: a concurrency policy needs a lease id");
  }
  const rateCheck = rate === undefined ? undefined : checkRate(state?.rate, rate, cost, now);
  const slotCheck = concurrency === undefined ? undefined : checkConcurrency(state?.leases, concurrency, now);
  const rateAllowed = rateCheck === undefined || rateCheck.allowed;
  const slotAllowed = slotCheck === undefined || slotCheck.allowed;

  if (!rateAllowed || !slotAllowed) {
    // Refused: report the rate budget as it stands (a refusal spends nothing).
    const standing = rate !== undefined && rateAllowed ? checkRate(state?.rate, rate, 0, now) : rateCheck;
    return {
      decision: {
        allowed: false,
        refusedBy: rateAllowed ? "concurrency" : "rate",
        now,
        remaining: standing?.remaining ?? 0,
        resetAt: standing?.resetAt ?? now,
        retryAfterMs: refusalWait(rateCheck, slotCheck),
        inUse: slotCheck?.inUse ?? 0,
        leaseExpiresAt: 0,
      },
      state,
      changed: false,
    };
  }

  const next: KeyState = state ?? {};
  if (rate !== undefined) next.rate = applyRate(next.rate, rate, cost, now);
  let leaseExpiresAt = 0;
  if (concurrency !== undefined) {
    next.leases = applyConcurrency(next.leases, concurrency, leaseId as string, now);
    leaseExpiresAt = now + concurrency.leaseMs;
  }
  return {
    decision: {
      allowed: true,
      refusedBy: undefined,
      now,
      remaining: rateCheck?.remaining ?? 0,
      resetAt: rateCheck?.resetAt ?? now,
      retryAfterMs: 0,
      inUse: slotCheck === undefined ? 0 : slotCheck.inUse + 1,
      leaseExpiresAt,
    },
    state: next,
    changed: true,
  };
}

/**
 * What a call of `cost` would get now, without consuming anything: the peek behind
 * `limiter.state()`. Never changes the state.
 */
export function peek(state: KeyState | undefined, policy: Policy, cost: number, now: number): EngineDecision {
  const rate = policy.rate;
  const concurrency = policy.concurrency;
  const rateCheck = rate === undefined ? undefined : checkRate(state?.rate, rate, cost, now);
  // The budget as it stands is what a call of cost 0 would see: it spends nothing.
  const standing = rate === undefined ? undefined : cost === 0 ? rateCheck : checkRate(state?.rate, rate, 0, now);
  const slotCheck = concurrency === undefined ? undefined : checkConcurrency(state?.leases, concurrency, now);
  const rateAllowed = rateCheck === undefined || rateCheck.allowed;
  const slotAllowed = slotCheck === undefined || slotCheck.allowed;
  return {
    allowed: rateAllowed && slotAllowed,
    refusedBy: !rateAllowed ? "rate" : !slotAllowed ? "concurrency" : undefined,
    now,
    remaining: standing?.remaining ?? 0,
    resetAt: standing?.resetAt ?? now,
    retryAfterMs: refusalWait(rateCheck, slotCheck),
    inUse: slotCheck?.inUse ?? 0,
    leaseExpiresAt: 0,
  };
}

/**
 * The wait a refusal reports. A rate refusal's wait is exact and is the least the caller must
 * wait even if slots are also full, so it wins: mixing in the concurrency bound (the earliest lease
 * expiry, often a minute away while holders release in milliseconds) would make waiters give up
 * on a prediction that is not one. Only a refusal by concurrency alone reports that bound.
 */
function refusalWait(rateCheck: RateCheck | undefined, slotCheck: ConcurrencyCheck | undefined): number {
  if (rateCheck !== undefined && !rateCheck.allowed) return rateCheck.retryAfterMs;
  if (slotCheck !== undefined && !slotCheck.allowed) return slotCheck.retryAfterMs;
  return 0;
}

function rateExpiresAt(state: RateState, rate: RatePolicy): number {
  switch (rate.algorithm) {
    case "token_bucket":
      return tokenBucketExpiresAt(state as TokenBucketState, rate);
    case "sliding_window":
      return slidingWindowExpiresAt(state as SlidingWindowState, rate);
    case "fixed_window":
      return fixedWindowExpiresAt(state as FixedWindowState, rate);
  }
}

/**
 * The epoch millisecond after which `state` is the same as no state under `policy`: the moment a
 * store may forget the key (its TTL). Never earlier than any live lease.
 */
export function stateExpiresAt(state: KeyState, policy: Policy): number {
  let at = 0;
  if (state.rate !== undefined && policy.rate !== undefined) at = rateExpiresAt(state.rate, policy.rate);
  if (state.leases !== undefined) {
    const leases = leasesExpireAt(state.leases);
    if (leases > at) at = leases;
  }
  return at;
}

/** Releases the lease `leaseId` in `state`. Returns whether a live lease was removed. */
export function releaseSlot(state: KeyState | undefined, leaseId: string, now: number): boolean {
  return releaseLease(state?.leases, leaseId, now);
}

/** Renews the lease `leaseId` in `state`; the new expiry, or `undefined` when the lease is gone. */
export function renewSlot(
  state: KeyState | undefined,
  leaseId: string,
  leaseMs: number,
  now: number,
): number | undefined {
  return renewLease(state?.leases, leaseId, leaseMs, now);
}
