import { existsSync, readdirSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { Miniflare } from "miniflare";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

// The built package, as a user's bundler would ship it to Cloudflare Workers (no nodejs_compat).
const dist = fileURLToPath(new URL("../dist/index.js", import.meta.url));

const worker = `
import { createRateSync, tryAcquire, configureStore, configureLimiter } from "./index.js";

let rs;
export default {
  async fetch(request) {
    const url = new URL(request.url);
    if (url.pathname === "/default") {
      // The top-level API: no file system, so zero-config finds nothing and code configures.
      configureStore("edge", { engine: "memory" });
      configureLimiter("edge-api", { store: "edge", ratePerSecond: 1, burst: 1 });
      const results = [];
      for (let i = 0; i < 2; i++) results.push((await tryAcquire("edge-api")).allowed);
      return Response.json(results);
    }
    rs ??= createRateSync();
    if (rs.listStores().m === undefined) {
      rs.loadConfigFromString('[stores.m]\\nengine = "memory"\\n[limiters.api]\\nstore = "m"\\nrate_per_second = 1\\nburst = 2\\nmax_concurrent = 5\\n');
    }
    const key = url.searchParams.get("key") ?? "anon";
    const decision = await rs.tryAcquire("api", { key });
    await decision.slot?.release();
    return Response.json({ allowed: decision.allowed, remaining: decision.remaining, retryAfterMs: decision.retryAfterMs });
  },
};
`;

describe("@ratesync/core on the Workers runtime (workerd)", () => {
  let mf: Miniflare;

  beforeAll(async () => {
    if (!existsSync(dist)) throw new Error(`${dist} is missing: run \`pnpm build\` before the tests`);
    // Every ESM file of dist/ (the entry and the chunks it imports), as a bundler would ship them.
    const chunks = readdirSync(dirname(dist)).filter((file) => file.endsWith(".js"));
    mf = new Miniflare({
      modules: [
        { type: "ESModule", path: "worker.js", contents: worker },
        ...chunks.map((file) => ({
          type: "ESModule" as const,
          path: file,
          contents: readFileSync(join(dirname(dist), file), "utf8"),
        })),
      ],
      compatibilityDate: "2025-09-01",
    });
    await mf.ready;
  }, 60_000);

  afterAll(async () => {
    await mf?.dispose();
  });

  it("loads without Node.js globals and limits per key", async () => {
    const results = [];
    for (let i = 0; i < 3; i++) results.push(await (await mf.dispatchFetch("http://edge/?key=alice")).json());
    expect(results.map((result) => (result as { allowed: boolean }).allowed)).toEqual([true, true, false]);
    expect(results[2]).toMatchObject({ remaining: 0 });
    expect((results[2] as { retryAfterMs: number }).retryAfterMs).toBeGreaterThan(0);
    expect(await (await mf.dispatchFetch("http://edge/?key=bob")).json()).toMatchObject({ allowed: true });
  });

  it("runs the top-level API with programmatic configuration", async () => {
    expect(await (await mf.dispatchFetch("http://edge/default")).json()).toEqual([true, false]);
  });
});
