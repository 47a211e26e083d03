import { createHash } from "node:crypto";

/**
 * The Redis keys and channel of one (limiter, key). Each algorithm has a key of its own, so a
 * limiter whose algorithm changes starts afresh instead of reading another algorithm's state.
 */
export interface RedisKeys {
  /** Token bucket: a string `"since units"`. */
  readonly tokenBucket: string;
  /** Fixed window: a string `"start count"`. */
  readonly fixedWindow: string;
  /** Sliding window totals: a hash (`t` cost in the log, `n` sequence). */
  readonly slidingWindow: string;
  /** Sliding window admissions: a sorted set scored by admission time. */
  readonly log: string;
  /** Concurrency leases: a sorted set of lease ids scored by expiry. */
  readonly leases: string;
  /** Pub/sub channel announcing releases of this key's slots. */
  readonly channel: string;
  /** Every key above (not the channel), for `reset`. */
  readonly all: readonly string[];
}

/** Past this many characters of encoding, the pair is hashed instead (keys stay short). */
const MAX_ENCODED = 200;

/**
 * base64url of the text's UTF-8, or for a string with lone surrogates (which UTF-8 cannot carry:
 * they would all become U+FFFD and collide) "~" and the base64url of its UTF-16 code units. "~" is
 * outside the base64url alphabet, so the two forms never meet.
 */
function base64url(text: string): string {
  return text.isWellFormed()
    ? Buffer.from(text, "utf8").toString("base64url")
    : `~${Buffer.from(text, "utf16le").toString("base64url")}`;
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
  const keys = {
    tokenBucket: `${tag}:t`,
    fixedWindow: `${tag}:f`,
    slidingWindow: `${tag}:s`,
    log: `${tag}:w`,
    leases: `${tag}:c`,
  };
  return { ...keys, channel: `${tag}:released`, all: Object.values(keys) };
}
