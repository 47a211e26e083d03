import type { ConcurrencyPolicy } from "../policy.js";

/**
 * Concurrency state: the live leases, by lease id, each with the epoch millisecond it expires at.
 *
 * Slots are leases rather than counters so that a holder that dies (or freezes) loses its slot
 * after `leaseMs` instead of leaking it forever, and so that a release names what it frees: a
 * stale or repeated release finds no lease and frees nothing that belongs to someone else.
 */
export type LeaseState = Record<string, number>;

/** The answer of the concurrency check, without changing the state. */
export interface ConcurrencyCheck {
  /** Whether one more slot may be taken now. */
  readonly allowed: boolean;
  /** Live slots now (before this call). */
  readonly inUse: number;
  /**
   * Milliseconds until the earliest live lease expires if nobody renews it: the longest a refused
   * caller could have to wait for a crashed holder. Live holders usually release much sooner, and
   * waiters are woken by the release itself. 0 when allowed.
   */
  readonly retryAfterMs: number;
}

/** Counts the live leases at `now` and whether one more fits. */
export function checkConcurrency(
  leases: LeaseState | undefined,
  policy: ConcurrencyPolicy,
  now: number,
): ConcurrencyCheck {
  if (leases === undefined) return { allowed: true, inUse: 0, retryAfterMs: 0 };
  let inUse = 0;
  let earliest = Number.POSITIVE_INFINITY;
  for (const id in leases) {
    const expiresAt = leases[id] as number;
    if (expiresAt > now) {
      inUse++;
      if (expiresAt < earliest) earliest = expiresAt;
    }
  }
  if (inUse < policy.maxConcurrent) return { allowed: true, inUse, retryAfterMs: 0 };
  return { allowed: false, inUse, retryAfterMs: earliest - now };
}

/**
 * Adds the lease `leaseId` expiring at `now + leaseMs`, dropping expired ones. Call only after
 * {@link checkConcurrency} allowed it.
 */
export function applyConcurrency(
  leases: LeaseState | undefined,
  policy: ConcurrencyPolicy,
  leaseId: string,
  now: number,
): LeaseState {
  const next: LeaseState = leases ?? {};
  pruneLeases(next, now);
  next[leaseId] = now + policy.leaseMs;
  return next;
}

/** Removes expired leases in place. */
export function pruneLeases(leases: LeaseState, now: number): void {
  for (const id in leases) {
    if ((leases[id] as number) <= now) delete leases[id];
  }
}

/**
 * Removes the lease `leaseId` if it is still live. Returns whether a live lease was removed: a
 * lease that expired (and may have been replaced by someone else's) is never counted as released.
 */
export function releaseLease(leases: LeaseState | undefined, leaseId: string, now: number): boolean {
  if (leases === undefined) return false;
  const expiresAt = leases[leaseId];
  if (expiresAt === undefined) return false;
  delete leases[leaseId];
  return expiresAt > now;
}

/**
 * Extends the live lease `leaseId` to `now + leaseMs`. Returns the new expiry, or `undefined` when
 * the lease is gone (released, or expired: an expired lease is never revived, its slot may be
 * someone else's by now).
 */
export function renewLease(
  leases: LeaseState | undefined,
  leaseId: string,
  leaseMs: number,
  now: number,
): number | undefined {
  if (leases === undefined) return undefined;
  const expiresAt = leases[leaseId];
  if (expiresAt === undefined || expiresAt <= now) return undefined;
  const next = now + leaseMs;
  leases[leaseId] = next;
  return next;
}

/** The epoch millisecond after which these leases are the same as none. */
export function leasesExpireAt(leases: LeaseState): number {
  let latest = 0;
  for (const id in leases) {
    const expiresAt = leases[id] as number;
    if (expiresAt > latest) latest = expiresAt;
  }
  return latest;
}
