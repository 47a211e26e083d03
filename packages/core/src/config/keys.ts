/**
 * Key spellings: `rate-sync.toml` writes `rate_per_second`, TypeScript options write
 * `ratePerSecond`. Validation works on the TOML names and reports in the source's spelling.
 */

/** Which spelling a configuration source uses: snake_case TOML keys or camelCase TypeScript options. */
export type Spelling = "toml" | "ts";

/**
 * The camelCase twin of a snake_case key.
 *
 * @example
 * ```ts
 * snakeToCamel("rate_per_second"); // "ratePerSecond"
 * ```
 */
export function snakeToCamel(name: string): string {
  return name.replace(/_([a-z0-9])/g, (_match, letter: string) => letter.toUpperCase());
}

/** A key's name in the given spelling, from its TOML (snake_case) name. */
export function keyName(tomlName: string, spelling: Spelling): string {
  return spelling === "toml" ? tomlName : snakeToCamel(tomlName);
}

/**
 * A table's name as TOML writes it, for messages: `limiters.api`, or `limiters."v1.api"` when the
 * id is not a bare key.
 */
export function tableName(section: "stores" | "limiters", id: string): string {
  return /^[A-Za-z0-9_-]+$/.test(id) ? `${section}.${id}` : `${section}.${JSON.stringify(id)}`;
}
