import { createHash } from "node:crypto";

/** Past this many characters, the pair is hashed instead: subjects stay short. */
const MAX_ENCODED = 200;

/**
 * One part of a KV key: "_" and the base64url of the text's UTF-8, or for a string with lone
 * surrogates (which UTF-8 cannot carry: they would all become U+FFFD and collide) "=" and the
 * base64url of its UTF-16 code units. base64url has neither "=" (no padding) nor ".", so the two
 * forms never meet and the part never contains the separator between parts.
 */
function part(text: string): string {
  return text.isWellFormed()
    ? `_${Buffer.from(text, "utf8").toString("base64url")}`
    : `=${Buffer.from(text, "utf16le").toString("base64url")}`;
}

/**
 * Encodes (limiter, key) into a valid NATS KV key. User keys are data, never syntax: the result
 * uses only `A-Z a-z 0-9 - _ =` plus one `.` between two non-empty tokens, so no input can reach a
 * subject wildcard (`*`, `>`), a space or an empty token, and no two pairs meet ("a.b" + "c" never
 * equals "a" + "b.c"). Very long pairs become `h.` and the SHA-256 digest of that encoding (an ordinary pair's first
 * token starts with "_" or "=", never "h").
 *
 * @example
 * ```ts
 * import { encodeKvKey } from "@ratesync/nats";
 *
 * encodeKvKey("api", "2001:db8::1"); // "_YXBp._MjAwMTpkYjg6OjE"
 * ```
 */
export function encodeKvKey(limiter: string, key: string): string {
  const encoded = `${part(limiter)}.${part(key)}`;
  if (encoded.length <= MAX_ENCODED) return encoded;
  // The digest of the injective encoding itself: no separator trick can make two pairs meet.
  return `h.${createHash("sha256").update(encoded).digest("base64url")}`;
}

/** The key of an engine instance's clock probe: never a possible {@link encodeKvKey} result. */
export function clockProbeKey(instance: string): string {
  return `t.${instance}`;
}
