import { describe, expect, it } from "vitest";
import type { ConcurrencyPolicy } from "../policy.js";
import {
  applyConcurrency,
  checkConcurrency,
  type LeaseState,
  leasesExpireAt,
  pruneLeases,
  releaseLease,
  renewLease,
} from "./concurrency.js";

const T0 = 1_700_000_000_000;
const LEASE = 30_000;
const policy: ConcurrencyPolicy = { maxConcurrent: 2, leaseMs: LEASE };

/** Takes a slot when one is free; returns whether it did. */
function acquire(leases: LeaseState, id: string, now: number): boolean {
  const check = checkConcurrency(leases, policy, now);
  if (check.allowed) applyConcurrency(leases, policy, id, now);
  return check.allowed;
}

describe("concurrency: slots", () => {
  it("no state means no slot held", () => {
    expect(checkConcurrency(undefined, policy, T0)).toEqual({ allowed: true, inUse: 0, retryAfterMs: 0 });
  });

  it("admits maxConcurrent slots, then refuses until the earliest lease expires", () => {
    const leases: LeaseState = {};
    expect(checkConcurrency(leases, policy, T0)).toEqual({ allowed: true, inUse: 0, retryAfterMs: 0 });
    expect(acquire(leases, "a", T0)).toBe(true);
    expect(checkConcurrency(leases, policy, T0)).toEqual({ allowed: true, inUse: 1, retryAfterMs: 0 });
    expect(acquire(leases, "b", T0 + 1000)).toBe(true);
    expect(leases).toEqual({ a: T0 + LEASE, b: T0 + 1000 + LEASE });
    expect(checkConcurrency(leases, policy, T0 + 1000)).toEqual({
      allowed: false,
      inUse: 2,
      retryAfterMs: LEASE - 1000,
    });
    expect(acquire(leases, "c", T0 + 1000)).toBe(false);
    expect(leases).toEqual({ a: T0 + LEASE, b: T0 + 1000 + LEASE });
  });

  it("a lease frees its slot at exactly expiresAt, not a millisecond before", () => {
    const leases: LeaseState = {};
    acquire(leases, "a", T0);
    acquire(leases, "b", T0 + 1000);
    expect(checkConcurrency(leases, policy, T0 + LEASE - 1)).toEqual({ allowed: false, inUse: 2, retryAfterMs: 1 });
    expect(checkConcurrency(leases, policy, T0 + LEASE)).toEqual({ allowed: true, inUse: 1, retryAfterMs: 0 });
    expect(acquire(leases, "c", T0 + LEASE)).toBe(true);
    // The expired lease was pruned when the new one was added.
    expect(leases).toEqual({ b: T0 + 1000 + LEASE, c: T0 + 2 * LEASE });
  });

  it("with a single slot, retryAfterMs is the time left on the holder's lease", () => {
    const one: ConcurrencyPolicy = { maxConcurrent: 1, leaseMs: 500 };
    const leases = applyConcurrency(undefined, one, "x", T0);
    expect(leases).toEqual({ x: T0 + 500 });
    expect(checkConcurrency(leases, one, T0 + 123)).toEqual({ allowed: false, inUse: 1, retryAfterMs: 377 });
  });
});

describe("concurrency: release", () => {
  it("frees a live lease once; a second release is false and frees nothing", () => {
    const leases: LeaseState = {};
    acquire(leases, "a", T0);
    acquire(leases, "b", T0);
    expect(releaseLease(leases, "a", T0 + 10)).toBe(true);
    expect(checkConcurrency(leases, policy, T0 + 10)).toEqual({ allowed: true, inUse: 1, retryAfterMs: 0 });
    expect(acquire(leases, "c", T0 + 10)).toBe(true);
    expect(releaseLease(leases, "a", T0 + 20)).toBe(false);
    expect(checkConcurrency(leases, policy, T0 + 20)).toEqual({ allowed: false, inUse: 2, retryAfterMs: LEASE - 20 });
    expect(leases).toEqual({ b: T0 + LEASE, c: T0 + 10 + LEASE });
  });

  it("an expired lease's release is false and never frees someone else's slot", () => {
    const leases: LeaseState = {};
    acquire(leases, "a", T0);
    acquire(leases, "b", T0 + 1000);
    // a expires; c takes its place.
    expect(acquire(leases, "c", T0 + LEASE)).toBe(true);
    expect(checkConcurrency(leases, policy, T0 + LEASE).inUse).toBe(2);
    expect(releaseLease(leases, "a", T0 + LEASE + 5)).toBe(false);
    expect(checkConcurrency(leases, policy, T0 + LEASE + 5)).toEqual({ allowed: false, inUse: 2, retryAfterMs: 995 });
    expect(leases).toEqual({ b: T0 + 1000 + LEASE, c: T0 + 2 * LEASE });
  });

  it("release at exactly expiresAt counts as expired", () => {
    const leases: LeaseState = {};
    acquire(leases, "a", T0);
    expect(releaseLease(leases, "a", T0 + LEASE)).toBe(false);
    expect(leases).toEqual({});
  });

  it("an expired lease that is still in the state is released as false and not counted", () => {
    const leases: LeaseState = { a: T0 + 100 };
    expect(checkConcurrency(leases, policy, T0 + 200).inUse).toBe(0);
    expect(releaseLease(leases, "a", T0 + 200)).toBe(false);
    expect(checkConcurrency(leases, policy, T0 + 200)).toEqual({ allowed: true, inUse: 0, retryAfterMs: 0 });
  });

  it("unknown lease ids and missing state release nothing", () => {
    const leases: LeaseState = { a: T0 + LEASE };
    expect(releaseLease(leases, "zzz", T0)).toBe(false);
    expect(leases).toEqual({ a: T0 + LEASE });
    expect(releaseLease(undefined, "a", T0)).toBe(false);
  });
});

describe("concurrency: renew", () => {
  it("extends a live lease to now + leaseMs and returns the new expiry", () => {
    const leases: LeaseState = {};
    acquire(leases, "a", T0);
    acquire(leases, "b", T0);
    expect(renewLease(leases, "a", LEASE, T0 + 10_000)).toBe(T0 + 10_000 + LEASE);
    expect(leases).toEqual({ a: T0 + 10_000 + LEASE, b: T0 + LEASE });
    // b expires on time; a is still held past its original expiry.
    expect(checkConcurrency(leases, policy, T0 + LEASE)).toEqual({ allowed: true, inUse: 1, retryAfterMs: 0 });
    expect(checkConcurrency(leases, policy, T0 + 10_000 + LEASE - 1).inUse).toBe(1);
    expect(checkConcurrency(leases, policy, T0 + 10_000 + LEASE).inUse).toBe(0);
  });

  it("may use a lease length other than the policy's", () => {
    const leases: LeaseState = { a: T0 + LEASE };
    expect(renewLease(leases, "a", 5, T0 + 1)).toBe(T0 + 6);
    expect(leases).toEqual({ a: T0 + 6 });
  });

  it("returns undefined for an expired lease (at or after expiresAt) and never revives it", () => {
    const leases: LeaseState = { a: T0 + LEASE };
    expect(renewLease(leases, "a", LEASE, T0 + LEASE)).toBeUndefined();
    expect(renewLease(leases, "a", LEASE, T0 + LEASE + 1)).toBeUndefined();
    expect(leases).toEqual({ a: T0 + LEASE });
    expect(checkConcurrency(leases, policy, T0 + LEASE + 1).inUse).toBe(0);
  });

  it("returns undefined for a released lease, an unknown id and a missing state", () => {
    const leases: LeaseState = {};
    acquire(leases, "a", T0);
    releaseLease(leases, "a", T0 + 1);
    expect(renewLease(leases, "a", LEASE, T0 + 2)).toBeUndefined();
    expect(leases).toEqual({});
    expect(renewLease(leases, "nope", LEASE, T0 + 2)).toBeUndefined();
    expect(renewLease(undefined, "a", LEASE, T0 + 2)).toBeUndefined();
  });
});

describe("concurrency: state helpers", () => {
  it("applyConcurrency creates a state, or updates the given one in place", () => {
    const fresh = applyConcurrency(undefined, policy, "a", T0);
    expect(fresh).toEqual({ a: T0 + LEASE });
    const same = applyConcurrency(fresh, policy, "b", T0 + 5);
    expect(same).toBe(fresh);
    expect(fresh).toEqual({ a: T0 + LEASE, b: T0 + 5 + LEASE });
  });

  it("pruneLeases drops leases at or past expiry only", () => {
    const leases: LeaseState = { a: T0, b: T0 + 1, c: T0 - 1 };
    pruneLeases(leases, T0);
    expect(leases).toEqual({ b: T0 + 1 });
  });

  it("leasesExpireAt is the latest expiry (0 when none); after it the leases count as none", () => {
    const leases: LeaseState = { a: T0 + 10, b: T0 + 30, c: T0 + 20 };
    expect(leasesExpireAt(leases)).toBe(T0 + 30);
    expect(leasesExpireAt({})).toBe(0);
    expect(checkConcurrency(leases, { maxConcurrent: 1, leaseMs: 1 }, T0 + 30)).toEqual(
      checkConcurrency(undefined, { maxConcurrent: 1, leaseMs: 1 }, T0 + 30),
    );
    expect(checkConcurrency(leases, { maxConcurrent: 1, leaseMs: 1 }, T0 + 29).allowed).toBe(false);
  });

  it("checkConcurrency never changes the state", () => {
    const leases: LeaseState = { a: T0 - 1, b: T0 + 10 };
    checkConcurrency(leases, policy, T0);
    expect(leases).toEqual({ a: T0 - 1, b: T0 + 10 });
  });
});
