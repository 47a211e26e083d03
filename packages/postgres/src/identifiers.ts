import { createHash } from "node:crypto";
import { RateSyncError } from "@ratesync/core";

/**
 * Longest table name accepted. PostgreSQL truncates identifiers at 63 bytes, and the engine's
 * functions are named after the table (`<table>_decide`, `<table>_release`...), so the table
 * name keeps 15 bytes free for the longest suffix.
 */
export const MAX_TABLE_LENGTH = 48;

/** Longest schema name accepted: PostgreSQL's identifier limit (NAMEDATALEN - 1). */
export const MAX_SCHEMA_LENGTH = 63;

/** Letters, digits and underscores, not starting with a digit: a name that needs no explanation. */
const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]*$/;

/**
 * Checks a schema or table name and returns it. Names are quoted wherever they are used, so the
 * check is not what keeps SQL safe; it keeps names to the plain ones every tool and psql prompt
 * handles, and gives a clear error for a typo such as `"rate-limits"` or `"my schema"`.
 *
 * @throws RateSyncError `CONFIG_INVALID`, naming the option and the value.
 */
export function checkIdentifier(option: "schema" | "table", value: unknown): string {
  const max = option === "table" ? MAX_TABLE_LENGTH : MAX_SCHEMA_LENGTH;
  if (typeof value !== "string" || !IDENTIFIER.test(value) || value.length > max) {
    const shown = typeof value === "string" ? JSON.stringify(value) : String(value);
    throw new RateSyncError(
      "CONFIG_INVALID",
      `Invalid PostgreSQL ${option} name ${shown}: use 1 to ${max} letters, digits or underscores, not starting with a digit (for example "ratesync").`,
      { details: { option, value } },
    );
  }
  return value;
}

/** `name` as a quoted SQL identifier (double quotes doubled, though checked names have none). */
export function quoteIdentifier(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

/** `text` as a quoted SQL string literal. */
export function quoteLiteral(text: string): string {
  return `'${text.replaceAll("'", "''")}'`;
}

/** Past this many characters of encoding, the pair is hashed instead (the primary key stays short). */
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
 * The row id of (limiter, key). Keys are data: PostgreSQL `text` cannot hold a NUL character and
 * user keys may contain anything, so both parts are base64url-encoded and joined by ".", which
 * neither part can contain ("a.b" + "c" never meets "a" + "b.c"). Very long pairs are replaced by
 * a SHA-256 digest, marked "h." (a base64url part is never one character).
 */
export function rowId(limiter: string, key: string): string {
  const encoded = `${base64url(limiter)}.${base64url(key)}`;
  if (encoded.length <= MAX_ENCODED) return encoded;
  return `h.${createHash("sha256").update(limiter).update("\0").update(key).digest("base64url")}`;
}

/**
 * The LISTEN/NOTIFY channel announcing releases in one table: a hash of the qualified name, so
 * two tables (in one schema or in two) never wake each other's waiters.
 */
export function releaseChannel(schema: string, table: string): string {
  return `ratesync_${createHash("sha256").update(`${schema}.${table}`).digest("hex").slice(0, 20)}`;
}
