/**
 * ratesync installed the way users install it: the packed tarballs, with plain npm, into scratch
 * projects outside the workspace, each combination of packages run as an ES module and as
 * CommonJS against the real servers. Installing core alone pulls no engine client, and a store
 * whose engine package is missing fails with the documented error naming what to install.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { installScratch, programs, type ScratchProject } from "./scratch.js";
import { pack, publishablePackages } from "./workspace.js";

const REDIS_URL = process.env.REDIS_URL ?? "redis://127.0.0.1:6379";
const DATABASE_URL = process.env.DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/test";
const NATS_URL = process.env.NATS_URL ?? "nats://127.0.0.1:4222";

/** The peers each package needs from the registry, at the versions the workspace tests. */
const PEERS = {
  ioredis: "6.0.0",
  postgres: "3.4.9",
  "@nats-io/transport-node": "3.4.0",
  "@nats-io/kv": "3.4.0",
  express: "5.3.0",
  fastify: "5.12.8",
  hono: "4.13.19",
} as const;

/** A key no other run uses, so runs never share a budget on the shared servers. */
const RUN = `${process.pid}-${Date.now()}`;

const destination = mkdtempSync(join(tmpdir(), "ratesync-tarballs-"));
const tarballs: Record<string, string> = {};

beforeAll(async () => {
  for (const pkg of publishablePackages()) tarballs[pkg.name] = (await pack(pkg, destination)).tarball;
}, 120_000);

afterAll(() => rmSync(destination, { recursive: true, force: true }));

/** The tarballs of `names`, for `installScratch`. */
function only(...names: string[]): Record<string, string> {
  return Object.fromEntries(names.map((name) => [name, tarballs[name] as string]));
}

/** Runs `body` as ESM and as CJS in `project` and returns both results, parsed. */
async function both(
  project: () => ScratchProject,
  imports: Readonly<Record<string, readonly string[]>>,
  body: string,
): Promise<[unknown, unknown]> {
  const { esm, cjs } = programs(imports, body);
  const parse = (out: string): unknown => JSON.parse(out.trim().split("\n").at(-1) ?? "null");
  return [parse(await project().run("main.mjs", esm)), parse(await project().run("main.cjs", cjs))];
}

function scratch(label: string, install: () => Promise<ScratchProject>) {
  let project: ScratchProject | undefined;
  beforeAll(async () => {
    project = await install();
  }, 300_000);
  afterAll(() => project?.remove());
  return () => {
    if (project === undefined) throw new Error(`the ${label} project was not installed`);
    return project;
  };
}

describe("@ratesync/core alone", () => {
  const project = scratch("core", () => installScratch("core", only("@ratesync/core")));

  it("pulls in no engine client, no test tool and no other ratesync package", () => {
    const installed = ["ioredis", "postgres", "@nats-io/transport-node", "@nats-io/kv", "pg", "vitest", "fast-check"];
    expect(installed.filter((name) => project().has(name))).toEqual([]);
    expect(["@ratesync/redis", "@ratesync/postgres", "@ratesync/nats"].filter((name) => project().has(name))).toEqual(
      [],
    );
  });

  it("limits in memory, from code and from rate-sync.toml, in ESM and CJS", async () => {
    const results = await both(
      project,
      { "@ratesync/core": ["createRateSync"] },
      `
  const rs = createRateSync({ autoload: false });
  rs.configureStore("local", { engine: "memory" });
  rs.configureLimiter("api", { store: "local", ratePerSecond: 1, burst: 2 });
  const fromCode = [];
  for (let i = 0; i < 3; i++) fromCode.push((await rs.tryAcquire("api", { key: "k" })).allowed);
  rs.loadConfigFromString('[stores.s]\\nengine = "memory"\\n[limiters.toml]\\nstore = "s"\\nalgorithm = "fixed_window"\\nlimit = 1\\nwindow_seconds = 60\\n');
  const fromToml = [(await rs.tryAcquire("toml")).allowed, (await rs.tryAcquire("toml")).allowed];
  await rs.close();
  return { fromCode, fromToml };`,
    );
    for (const result of results) expect(result).toEqual({ fromCode: [true, true, false], fromToml: [true, false] });
  });

  it('answers engine = "redis" without @ratesync/redis with the error naming the package to install', async () => {
    const results = await both(
      project,
      { "@ratesync/core": ["createRateSync"] },
      `
  const rs = createRateSync({ autoload: false });
  rs.loadConfigFromString('[stores.main]\\nengine = "redis"\\nurl = "${REDIS_URL}"\\n[limiters.api]\\nstore = "main"\\nrate_per_second = 5\\n');
  try {
    await rs.tryAcquire("api");
    return { thrown: false };
  } catch (error) {
    return { code: error.code, message: error.message };
  } finally {
    await rs.close();
  }`,
    );
    for (const result of results) {
      expect(result).toMatchObject({ code: "ENGINE_NOT_INSTALLED" });
      expect((result as { message: string }).message).toContain("npm install @ratesync/redis ioredis");
    }
  });
});

describe("@ratesync/core + @ratesync/redis", () => {
  const project = scratch("redis", () =>
    installScratch("redis", only("@ratesync/core", "@ratesync/redis"), { ioredis: PEERS.ioredis }),
  );

  it("loads the engine from rate-sync.toml and limits on the real Redis, in ESM and CJS", async () => {
    const prefix = `ratesync-install-${process.pid}-${Date.now()}`;
    const results = await both(
      project,
      { "@ratesync/core": ["createRateSync"] },
      `
  const rs = createRateSync({ autoload: false });
  const system = typeof require === "function" ? "cjs" : "esm";
  rs.loadConfigFromString('[stores.main]\\nengine = "redis"\\nurl = "${REDIS_URL}"\\nkey_prefix = "${prefix}-' + system + ':"\\nrequest_timeout_ms = 2000\\n[limiters.login]\\nstore = "main"\\nalgorithm = "sliding_window"\\nlimit = 2\\nwindow_seconds = 60\\n');
  const admitted = [];
  for (let i = 0; i < 3; i++) {
    const decision = await rs.tryAcquire("login", { key: "alice" });
    admitted.push(decision.allowed && !decision.degraded);
  }
  await rs.getLimiter("login").reset("alice");
  await rs.close();
  return { admitted };`,
    );
    for (const result of results) expect(result).toEqual({ admitted: [true, true, false] });
  });

  it("creates the engine in code from the package's own export, in ESM and CJS", async () => {
    const prefix = `ratesync-install-code-${process.pid}-${Date.now()}`;
    const results = await both(
      project,
      { "@ratesync/core": ["createRateSync"], "@ratesync/redis": ["createRedisEngine"] },
      `
  const rs = createRateSync({ autoload: false });
  const system = typeof require === "function" ? "cjs" : "esm";
  const engine = createRedisEngine({ url: "${REDIS_URL}", keyPrefix: "${prefix}-" + system + ":" });
  rs.configureStore("main", { engine, requestTimeoutMs: 2000 });
  rs.configureLimiter("api", { store: "main", ratePerSecond: 1, burst: 1, maxConcurrent: 1, leaseSeconds: 5 });
  const slot = await rs.acquire("api", { key: "k" });
  const second = await rs.tryAcquire("api", { key: "k" });
  await slot.release();
  await rs.getLimiter("api").reset("k");
  await rs.close();
  // An engine passed in stays open after close() (it may be shared); its owner closes it.
  await engine.close();
  return { second: second.allowed };`,
    );
    for (const result of results) expect(result).toEqual({ second: false });
  });
});

describe("@ratesync/core + @ratesync/postgres + @ratesync/express", () => {
  const project = scratch("postgres-express", () =>
    installScratch("postgres-express", only("@ratesync/core", "@ratesync/postgres", "@ratesync/express"), {
      postgres: PEERS.postgres,
      express: PEERS.express,
    }),
  );

  it("answers 429 from an Express app limited on the real PostgreSQL, in ESM and CJS", async () => {
    const results = await both(
      project,
      { "@ratesync/core": ["createRateSync"], "@ratesync/express": ["rateLimit"], express: ["default:express"] },
      `
  const system = typeof require === "function" ? "cjs" : "esm";
  const rs = createRateSync({ autoload: false });
  rs.loadConfigFromString('[stores.main]\\nengine = "postgres"\\nurl = "${DATABASE_URL}"\\ntable = "ratesync_install"\\nauto_create = true\\nrequest_timeout_ms = 3000\\n[limiters.api]\\nstore = "main"\\nalgorithm = "fixed_window"\\nlimit = 2\\nwindow_seconds = 60\\n');
  const app = express();
  app.use(rateLimit({ limiter: "api", rateSync: rs, key: (req) => req.get("x-user") }));
  app.get("/hello", (_req, res) => { res.send("hello"); });
  const server = app.listen(0, "127.0.0.1");
  await new Promise((resolve) => server.once("listening", resolve));
  const statuses = [];
  for (let i = 0; i < 3; i++) {
    const response = await fetch("http://127.0.0.1:" + server.address().port + "/hello", { headers: { "x-user": "${RUN}-" + system } });
    statuses.push(response.status);
    await response.text();
  }
  await new Promise((resolve) => server.close(resolve));
  await rs.close();
  return { statuses };`,
    );
    for (const result of results) expect(result).toEqual({ statuses: [200, 200, 429] });
  });
});

describe("@ratesync/core + @ratesync/nats + @ratesync/fastify", () => {
  const project = scratch("nats-fastify", () =>
    installScratch("nats-fastify", only("@ratesync/core", "@ratesync/nats", "@ratesync/fastify"), {
      "@nats-io/transport-node": PEERS["@nats-io/transport-node"],
      "@nats-io/kv": PEERS["@nats-io/kv"],
      fastify: PEERS.fastify,
    }),
  );

  it("answers 429 from a Fastify app limited on the real NATS JetStream KV, in ESM and CJS", async () => {
    const results = await both(
      project,
      { "@ratesync/core": ["createRateSync"], "@ratesync/fastify": ["ratesync"], fastify: ["default:Fastify"] },
      `
  const system = typeof require === "function" ? "cjs" : "esm";
  const rs = createRateSync({ autoload: false });
  rs.loadConfigFromString('[stores.main]\\nengine = "nats"\\nurl = "${NATS_URL}"\\nbucket = "ratesync_install"\\nauto_create = true\\nrequest_timeout_ms = 3000\\n[limiters.api]\\nstore = "main"\\nalgorithm = "fixed_window"\\nlimit = 2\\nwindow_seconds = 60\\n');
  const app = Fastify();
  await app.register(ratesync, { limiter: "api", rateSync: rs, key: (request) => request.headers["x-user"] });
  app.get("/hello", async () => "hello");
  const statuses = [];
  for (let i = 0; i < 3; i++) {
    const response = await app.inject({ url: "/hello", headers: { "x-user": "${RUN}-" + system } });
    statuses.push(response.statusCode);
  }
  await app.close();
  await rs.close();
  return { statuses };`,
    );
    for (const result of results) expect(result).toEqual({ statuses: [200, 200, 429] });
  });
});

describe("@ratesync/core + @ratesync/hono", () => {
  const project = scratch("hono", () =>
    installScratch("hono", only("@ratesync/core", "@ratesync/hono"), { hono: PEERS.hono }),
  );

  it("answers 429 with the RateLimit headers from a Hono app, in ESM and CJS", async () => {
    const results = await both(
      project,
      { "@ratesync/core": ["createRateSync"], "@ratesync/hono": ["rateLimit"], hono: ["Hono"] },
      `
  const rs = createRateSync({ autoload: false });
  rs.configureStore("local", { engine: "memory" });
  rs.configureLimiter("api", { store: "local", algorithm: "fixed_window", limit: 2, windowSeconds: 60 });
  const app = new Hono();
  app.use("*", rateLimit({ limiter: "api", rateSync: rs, key: (c) => c.req.header("x-user") }));
  app.get("/hello", (c) => c.text("hello"));
  const statuses = [];
  let last;
  for (let i = 0; i < 3; i++) {
    last = await app.request("/hello", { headers: { "x-user": "alice" } });
    statuses.push(last.status);
  }
  await rs.close();
  return { statuses, policy: last.headers.get("ratelimit-policy"), retryAfter: last.headers.get("retry-after") !== null };`,
    );
    for (const result of results) {
      expect(result).toMatchObject({ statuses: [200, 200, 429], retryAfter: true });
      expect((result as { policy: string }).policy).toContain('"api"');
    }
  });
});
