import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";

const run = promisify(execFile);
const app = fileURLToPath(new URL("..", import.meta.url));
const tsx = fileURLToPath(new URL("../node_modules/.bin/tsx", import.meta.url));

function demo(...args: string[]) {
  return run(tsx, ["--conditions=@ratesync/source", "src/main.ts", ...args], { cwd: app, timeout: 45_000 });
}

describe("the demo", () => {
  it("runs end to end and the partner never sees its limits broken", async () => {
    const { stdout } = await demo("--seconds", "2", "--callers", "12");
    expect(stdout).toContain("Calls the partner would have refused: 0.");
    expect(stdout).toMatch(/Peak in flight: [1-4] of 4 allowed/);
    expect(stdout).toContain("0 slots still held");
    // 2 s at 20/s with a burst of 5 allows at most 45 calls.
    const calls = Number(/(\d+) calls in 2 s/.exec(stdout)?.[1]);
    expect(calls).toBeGreaterThan(30);
    expect(calls).toBeLessThanOrEqual(45);

    // Then the HTTP scene: alice pushes past her key's limit, bob never reaches his.
    const alice = /alice\s+(\d+) answered 200,\s+(\d+) answered 429/.exec(stdout);
    const bob = /bob\s+(\d+) answered 200,\s+(\d+) answered 429/.exec(stdout);
    // 2 s at 5/s with a burst of 5 allows alice at most 15 requests.
    expect(Number(alice?.[1])).toBeGreaterThanOrEqual(5);
    expect(Number(alice?.[1])).toBeLessThanOrEqual(15);
    expect(Number(alice?.[2])).toBeGreaterThan(0);
    expect(Number(bob?.[1])).toBeGreaterThan(0);
    expect(Number(bob?.[2])).toBe(0);
    expect(stdout).toContain("content-type: application/problem+json");
    expect(stdout).toMatch(/retry-after: \d+/);
    expect(stdout).toMatch(/ratelimit-policy: "http_api";q=5;w=1/);
  }, 40_000);

  it.each(["redis", "postgres", "nats"])(
    "shares one limit between 3 processes through %s, and the combined rate holds",
    async (store) => {
      const { stdout } = await demo("--store", store, "--seconds", "2", "--processes", "3", "--callers", "4");
      // 2 s at 30/s with a burst of 5 allows at most 65 calls, whichever process makes them.
      const calls = Number(/(\d+) calls admitted in 2 s by 3 processes together/.exec(stdout)?.[1]);
      // A lower bound only for liveness (a loaded machine starts the workers late); the engines'
      // own multi-process tests hold the exact counts.
      expect(calls).toBeGreaterThan(25);
      expect(calls).toBeLessThanOrEqual(65);
      const busiest = Number(/Busiest 1-second span: (\d+) calls/.exec(stdout)?.[1]);
      // 5 + 30 x 1, plus 1 for the span's edges, plus 1 for the jitter of times taken by the
      // clients (after the answer came back), not by the store.
      expect(busiest).toBeLessThanOrEqual(37);
      expect(stdout).toContain("Degraded decisions (store unreachable): 0.");
      // Every process admitted some: the limit is shared, not owned by the first to ask.
      const rows = stdout.split("\n").filter((line) => /^\s+\d+ \|/.test(line));
      const perProcess = [0, 1, 2].map((column) =>
        rows.reduce((sum, row) => sum + Number(row.split("|")[column + 1]), 0),
      );
      expect(perProcess.every((count) => count > 0)).toBe(true);
    },
    60_000,
  );

  it("explains a wrong option and exits with 2", async () => {
    const failure = await demo("--store", "mongo").then(
      () => undefined,
      (error: unknown) => error as { code: number; stderr: string },
    );
    expect(failure?.code).toBe(2);
    expect(failure?.stderr).toContain('--store must be one of redis, postgres, nats, got "mongo".');
  });
});
