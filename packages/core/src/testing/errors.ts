import { isRateSyncError, type RateSyncError } from "../errors.js";

/**
 * The {@link RateSyncError} that `run` throws. Throws itself when `run` returns, or throws
 * something else, so a test using it cannot pass by accident.
 *
 * @example
 * ```ts
 * expect(thrownBy(() => configureLimiter("api", { store: "nope", ratePerSecond: 1 })).code).toBe("STORE_NOT_FOUND");
 * ```
 */
export function thrownBy(run: () => unknown): RateSyncError {
  try {
    run();
  } catch (error) {
    if (isRateSyncError(error)) return error;
    throw error;
  }
  throw new Error("expected a RateSyncError to be thrown, but the call returned");
}

/**
 * The {@link RateSyncError} that `promise` rejects with. Rejects itself when `promise` resolves,
 * or rejects with something else.
 */
export async function rejectionOf(promise: Promise<unknown>): Promise<RateSyncError> {
  try {
    await promise;
  } catch (error) {
    if (isRateSyncError(error)) return error;
    throw error;
  }
  throw new Error("expected a RateSyncError rejection, but the promise resolved");
}
