import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";

const run = promisify(execFile);
const app = fileURLToPath(new URL("..", import.meta.url));

describe("the demo", () => {
  it("runs end to end and the partner never sees its limits broken", async () => {
    const { stdout } = await run(
      fileURLToPath(new URL("../node_modules/.bin/tsx", import.meta.url)),
      ["--conditions=@ratesync/source", "src/main.ts", "--seconds", "2", "--callers", "12"],
      { cwd: app, timeout: 30_000 },
    );
    expect(stdout).toContain("Calls the partner would have refused: 0.");
    expect(stdout).toMatch(/Peak in flight: [1-4] of 4 allowed/);
    expect(stdout).toContain("0 slots still held");
    // 2 s at 20/s with a burst of 5 allows at most 45 calls.
    const calls = Number(/(\d+) calls in 2 s/.exec(stdout)?.[1]);
    expect(calls).toBeGreaterThan(30);
    expect(calls).toBeLessThanOrEqual(45);
  }, 40_000);
});
