import { describe, expect, it } from "vitest";
import type { CaseResult, RatioResult } from "./harness.js";
import { formatTargets } from "./report.js";

function caseWith(name: string, ratio: Partial<RatioResult>): CaseResult {
  return {
    suite: "test",
    case: name,
    description: "",
    inFlight: 1,
    contenders: [],
    ratios: [
      {
        against: "peer",
        role: "peer",
        ratio: 1,
        roundRatios: [1],
        interval: { low: 1, high: 1, confidence: 0 },
        minRatio: 1,
        verdict: "met",
        ...ratio,
      },
    ],
  };
}

describe("formatTargets", () => {
  it("prints each target's ratio, its range and what the run shows of it", () => {
    const text = formatTargets([
      caseWith("clear win", { ratio: 1.3, interval: { low: 1.1, high: 1.5, confidence: 0.98 }, verdict: "met" }),
      caseWith("clear miss", { ratio: 0.5, interval: { low: 0.45, high: 0.6, confidence: 0.98 }, verdict: "missed" }),
      caseWith("too close", {
        ratio: 1.02,
        interval: { low: 0.9, high: 1.2, confidence: 0.98 },
        verdict: "unresolved",
      }),
    ]);
    const lines = text.split("\n");
    expect(lines[0]).toMatch(/case\s+comparison\s+target\s+measured\s+range\s+verdict/);
    expect(lines.find((line) => line.includes("clear win"))).toMatch(/>= 1\.0x\s+1\.30x\s+1\.10-1\.50x\s+PASS$/);
    expect(lines.find((line) => line.includes("clear miss"))).toMatch(
      /0\.50x\s+0\.45-0\.60x\s+BELOW TARGET \(needs 100% more ops\/s\)$/,
    );
    expect(lines.find((line) => line.includes("too close"))).toMatch(/1\.02x\s+0\.90-1\.20x\s+UNRESOLVED/);
  });

  it("shows the confidence of a range that too few rounds left below 90%", () => {
    const text = formatTargets([
      caseWith("three rounds", { ratio: 1.2, interval: { low: 1.1, high: 1.3, confidence: 0.75 }, verdict: "met" }),
    ]);
    expect(text).toMatch(/1\.10-1\.30x \(75%\)\s+PASS$/m);
  });

  it("says so when no case run has a target", () => {
    expect(formatTargets([caseWith("no target", { minRatio: undefined, verdict: undefined })])).toBe(
      "No targets for the cases run.",
    );
  });
});
