import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { Miniflare } from "miniflare";
import type { Rollup } from "vite";
import { build } from "vite";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

// A Worker as a user would write it, bundled the way Wrangler does (one ES module, every package
// resolved through its published "import" entry: the built dist of @ratesync/hono and core).
const worker = `
import { configureLimiter, configureStore } from "@ratesync/core";
import { rateLimit } from "@ratesync/hono";
import { Hono } from "hono";

configureStore("edge", { engine: "memory" });
configureLimiter("api", { store: "edge", algorithm: "fixed_window", limit: 2, windowSeconds: 60 });

const app = new Hono();
app.use("/api/*", rateLimit({ limiter: "api" }));
app.get("/api/hello", (c) => c.json({ remaining: c.get("rateLimit").decisions[0].remaining }));
export default app;
`;

describe("@ratesync/hono on the Workers runtime (workerd)", () => {
  let mf: Miniflare | undefined;
  let dir: string | undefined;

  beforeAll(async () => {
    // Inside this package, so that the worker's imports resolve from its node_modules.
    const packageDir = fileURLToPath(new URL("..", import.meta.url));
    const cache = join(packageDir, "node_modules", ".cache");
    mkdirSync(cache, { recursive: true });
    dir = mkdtempSync(join(cache, "hono-worker-"));
    const entry = join(dir, "worker.js");
    writeFileSync(entry, worker);
    const output = (await build({
      configFile: false,
      logLevel: "silent",
      root: dir,
      resolve: { conditions: ["workerd", "worker", "browser", "import"] },
      build: {
        write: false,
        minify: false,
        target: "es2022",
        lib: { entry, formats: ["es"], fileName: "worker" },
        rollupOptions: { external: [/^node:/] },
      },
    })) as Rollup.RollupOutput[] | Rollup.RollupOutput;
    const chunk = (Array.isArray(output) ? output[0] : output)?.output[0];
    if (chunk === undefined || chunk.type !== "chunk") throw new Error("the worker bundle is missing");
    expect(chunk.code).not.toMatch(/from\s+["']node:/);
    mf = new Miniflare({
      modules: [{ type: "ESModule", path: "worker.js", contents: chunk.code }],
      compatibilityDate: "2025-09-01",
    });
    await mf.ready;
  }, 60_000);

  afterAll(async () => {
    await mf?.dispose();
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  });

  it("limits per client (CF-Connecting-IP) with the memory engine, with headers and a problem body", async () => {
    const ask = (ip: string) =>
      (mf as Miniflare).dispatchFetch("http://edge/api/hello", { headers: { "cf-connecting-ip": ip } });
    const first = await ask("203.0.113.1");
    expect(first.status).toBe(200);
    expect(await first.json()).toEqual({ remaining: 1 });
    expect(first.headers.get("ratelimit-policy")).toBe('"api";q=2;w=60');
    expect((await ask("203.0.113.1")).status).toBe(200);
    const refused = await ask("203.0.113.1");
    expect(refused.status).toBe(429);
    expect(refused.headers.get("content-type")).toBe("application/problem+json");
    expect(Number(refused.headers.get("retry-after"))).toBeGreaterThan(0);
    expect(await refused.json()).toMatchObject({ status: 429 });
    expect((await ask("203.0.113.2")).status).toBe(200);
  });
});
