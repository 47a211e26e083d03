// Types for the string-only entry point of @iarna/toml, which the package documents but does not
// type. It is imported instead of the main entry, which also loads the stream parser and with it
// Node's "stream" module, which edge runtimes do not have.
declare module "@iarna/toml/parse-string.js" {
  /**
   * Parses TOML text into plain objects. Throws a `TomlError` on a syntax error, with 0-based
   * `line` and `col`.
   */
  function parseString(text: string): Record<string, unknown>;
  export = parseString;
}
