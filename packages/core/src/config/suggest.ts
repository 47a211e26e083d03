/**
 * "Did you mean" hints for misspelled names: config keys, engines, algorithms, store ids.
 */

/**
 * The candidate closest to `input`, or `undefined` when none is close enough to be a plausible
 * typo. A candidate that differs only in case, `_` or `-` (`ratePerSecond` for `rate_per_second`,
 * `Redis` for `redis`) always wins; otherwise the smallest edit distance, counting a swap of two
 * neighbouring characters as one edit, within `max(2, length / 3)`. Ties go to the earlier candidate.
 *
 * @example
 * ```ts
 * closestName("rate_per_secnd", ["rate_per_second", "burst"]); // "rate_per_second"
 * closestName("banana", ["rate_per_second", "burst"]); // undefined
 * ```
 */
export function closestName(input: string, candidates: readonly string[]): string | undefined {
  const folded = fold(input);
  const sameWord = candidates.find((candidate) => fold(candidate) === folded);
  if (sameWord !== undefined) return sameWord;

  const budget = Math.max(2, Math.floor(input.length / 3));
  let best: string | undefined;
  let bestDistance = Number.POSITIVE_INFINITY;
  for (const candidate of candidates) {
    const distance = editDistance(input.toLowerCase(), candidate.toLowerCase());
    // A distance as large as the longer word means "nothing in common" (e.g. "x" for "db").
    const plausible = distance <= budget && distance < Math.max(input.length, candidate.length);
    if (plausible && distance < bestDistance) {
      best = candidate;
      bestDistance = distance;
    }
  }
  return best;
}

/** Folds the spelling differences that are never typos: case and word separators. */
function fold(name: string): string {
  return name.toLowerCase().replace(/[_-]/g, "");
}

/**
 * Optimal string alignment distance: insertions, deletions, substitutions and transpositions of
 * neighbours each cost 1, so `burts` is one edit from `burst`, as a person would count it.
 */
function editDistance(a: string, b: string): number {
  // Three rolling rows: the transposition step looks two rows back.
  let beforePrevious: number[] = [];
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      const substitution = a[i - 1] === b[j - 1] ? 0 : 1;
      let distance = Math.min((previous[j] ?? 0) + 1, (current[j - 1] ?? 0) + 1, (previous[j - 1] ?? 0) + substitution);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) {
        distance = Math.min(distance, (beforePrevious[j - 2] ?? 0) + 1);
      }
      current.push(distance);
    }
    beforePrevious = previous;
    previous = current;
  }
  return previous[b.length] ?? 0;
}

/**
 * Ends a problem statement with a "did you mean" hint when a candidate is close:
 * `unknown engine "rediss"; did you mean "redis"?`, else just `unknown engine "foo".`
 */
export function withSuggestion(problem: string, input: string, candidates: readonly string[]): string {
  const closest = closestName(input, candidates);
  return closest === undefined ? `${problem}.` : `${problem}; did you mean ${JSON.stringify(closest)}?`;
}
