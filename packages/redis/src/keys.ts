import { createHash } from "node:crypto";

/** The Redis keys and channel of one (limiter, key). */
export interface RedisKeys {
  /** Rate state: a hash (token bucket `s`/`u`, fixed window `s`/`c`, sliding window `t`/`n`). */
  readonly rate: string;
  /** Sliding window admissions: a sorted set scored by admission time. */
  readonly log: string;
  /** Concurrency leases: a sorted set of lease ids scored by expiry. */
  readonly leases: string;
  /** Pub/sub channel announcing releases of this key's slots. */
  readonly channel: string;
}

/** Past this many characters of encoding, the pair is hashed instead (keys stay short). */
const MAX_ENCODED = 200;

function base64url(text: string): string {
  return Buffer.from(text, "utf8").toString("base64url");
}

/**
 * Encodes (limiter, key) into a Redis hash tag. User keys are data, never syntax: base64url has no
 * braces (so no input can choose the Cluster slot), no separator of ours (so "a:b" + "c" never
 * meets "a" + "b:c"), and the "." between the two parts cannot occur inside either. Very long
 * pairs are replaced by a SHA-256 digest, marked "h." (a base64url part is never one character).
 */
export function encodeTarget(limiter: string, key: string): string {
  const encoded = `${base64url(limiter)}.${base64url(key)}`;
  if (encoded.length <= MAX_ENCODED) return encoded;
  return `h.${createHash("sha256").update(limiter).update("\0").update(key).digest("base64url")}`;
}

/**
 * The keys of one (limiter, key). All of them carry the same `{hash tag}`, so on Redis Cluster
 * they live in one slot and a script can touch them together.
 */
export function keysFor(prefix: string, limiter: string, key: string): RedisKeys {
  const tag = `${prefix}{${encodeTarget(limiter, key)}}`;
  return { rate: `${tag}:r`, log: `${tag}:w`, leases: `${tag}:c`, channel: `${tag}:released` };
}
