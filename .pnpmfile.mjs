/**
 * pnpm hooks. `beforePacking` runs when `pnpm pack` or `pnpm publish` writes a package's
 * manifest into its tarball: it removes the `@ratesync/source` export condition, which points
 * into src/ for the workspace's own tools (TypeScript, vitest, tsx) and would point at files that
 * are not published.
 */

const SOURCE_CONDITION = "@ratesync/source";

/** A copy of an `exports` value without the source condition, at any depth. */
function withoutSource(value) {
  if (Array.isArray(value)) return value.map(withoutSource);
  if (value === null || typeof value !== "object") return value;
  return Object.fromEntries(
    Object.entries(value)
      .filter(([key]) => key !== SOURCE_CONDITION)
      .map(([key, inner]) => [key, withoutSource(inner)]),
  );
}

export const hooks = {
  beforePacking(pkg) {
    if (pkg.exports !== undefined) pkg.exports = withoutSource(pkg.exports);
    return pkg;
  },
};
