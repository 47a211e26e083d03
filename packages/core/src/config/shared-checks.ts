/**
 * Checks that store and limiter validation share: the id, and keys nobody knows.
 */
import type { IssueCollector } from "./issues.js";
import { closestName } from "./suggest.js";
import { describeGot } from "./values.js";

/** Reports an id that is not a non-empty string. Ids are otherwise free-form (`:` and `.` are fine). */
export function checkId(id: unknown, kind: "limiter" | "store", issues: IssueCollector): void {
  if (typeof id === "string" && id !== "") return;
  issues.add(undefined, `the ${kind} id must be a non-empty string, got ${describeGot(id, "ts")}. Name the ${kind}.`);
}

/** Reports every key of `raw` outside `known`, with the closest valid name, else the valid names. */
export function reportUnknownKeys(
  raw: Readonly<Record<string, unknown>>,
  known: readonly string[],
  issues: IssueCollector,
): void {
  for (const key of Object.keys(raw)) {
    if (known.includes(key)) continue;
    const closest = closestName(key, known);
    const hint =
      closest === undefined ? `valid keys: ${known.join(", ")}.` : `did you mean ${JSON.stringify(closest)}?`;
    issues.add(key, `unknown key ${JSON.stringify(key)}; ${hint} Fix the name or remove the key.`);
  }
}
