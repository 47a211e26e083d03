import { execFileSync } from "node:child_process";
import { describe, expect, it } from "vitest";
import { harnessNow } from "./multiprocess-clock.js";

describe("harnessNow", () => {
  it("reads one clock in every process: a child's reading falls between two of the parent's", () => {
    for (let i = 0; i < 3; i++) {
      const before = harnessNow();
      // The same expression as harnessNow, in a fresh process (its startup is where per-process
      // clocks such as performance.timeOrigin's take their offset).
      const child = Number(
        execFileSync(process.execPath, ["-e", "process.stdout.write(String(Number(process.hrtime.bigint()) / 1e6))"], {
          encoding: "utf8",
        }),
      );
      const after = harnessNow();
      expect(child).toBeGreaterThanOrEqual(before);
      expect(child).toBeLessThanOrEqual(after);
    }
  });

  it("never goes back and tells microseconds apart", () => {
    let last = harnessNow();
    let distinct = 0;
    for (let i = 0; i < 1000; i++) {
      const now = harnessNow();
      expect(now).toBeGreaterThanOrEqual(last);
      if (now > last) distinct++;
      last = now;
    }
    expect(distinct).toBeGreaterThan(100);
  });
});
