/**
 * The http suite: each framework (Fastify, Express 5, Hono on @hono/node-server) serving a
 * trivial route with no limiter, with ratesync's adapter, and with the limiter its users usually
 * pick (@fastify/rate-limit, express-rate-limit, hono-rate-limiter), every limiter on its memory
 * store and keyed by client IP, on the admitted path and on the refused path.
 *
 * The load comes from autocannon over loopback. The server runs in a child process (this file,
 * forked with the `RATESYNC_BENCH_HTTP_SERVER` environment variable), so the load generator and
 * the server do not share a thread. Each contender of a case gets one server for the case (a
 * long-running service, kept warm across rounds; the refused path spends its one admission
 * first); a round starts autocannon on it, waits until every connection answers (untimed), and
 * each timed call of the harness is then one HTTP response received: ops/s is responses/s.
 * Every response of a round is checked: all 200 on the admitted path, all 429 on the refused one.
 */
import { type ChildProcess, fork } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import type { AddressInfo, Server } from "node:net";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import autocannon from "autocannon";
import type { BenchAlgorithm } from "../cli.js";
import { type BenchCase, type Contender, expectCount, type Round, type Suite, type Target } from "../harness.js";
import { ADMIT_ALL, DAY_SECONDS, type Expectation, ratesyncPolicy } from "./policies.js";

/** The frameworks measured. */
export type Framework = "fastify" | "express" | "hono";

/** What stands in front of the route. */
type Variant = "none" | "ratesync" | "peer";

/** What a server child is told to build. */
interface ServerConfig {
  readonly framework: Framework;
  readonly variant: Variant;
  readonly expect: Expectation;
  readonly algorithm: BenchAlgorithm;
}

const SERVER_ENV = "RATESYNC_BENCH_HTTP_SERVER";

/** The usual limiter of each framework, by name as the table shows it. */
const PEERS: Readonly<Record<Framework, string>> = {
  fastify: "@fastify/rate-limit",
  express: "express-rate-limit",
  hono: "hono-rate-limiter",
};

/** Options of {@link createHttpSuite}. */
export interface HttpSuiteOptions {
  /** The algorithm of the ratesync limiters. @default "token_bucket" */
  readonly algorithm?: BenchAlgorithm | undefined;
  /** Connections autocannon keeps open. @default 16 */
  readonly connections?: number | undefined;
  /**
   * Requests autocannon keeps in flight on each connection (HTTP/1.1 pipelining), as Fastify's
   * own benchmarks run it (`-p 10`). With one request per connection the load generator and the
   * kernel's loopback cost most of each response and the servers barely differ; pipelined, the
   * server is the bottleneck, so the figure is the server's, with the limiter in it.
   * @default 10
   */
  readonly pipelining?: number | undefined;
}

/** How autocannon loads a server. */
interface Load {
  readonly connections: number;
  readonly pipelining: number;
}

// --- the server child -------------------------------------------------------------------------

/** The peers' numbers: the same answers as ratesync's policy for the whole run. */
const peerLimit = (expect: Expectation) => (expect === "admitted" ? ADMIT_ALL : 1);
const PEER_WINDOW_MS = DAY_SECONDS * 1000;

async function ratesyncRegistry(config: ServerConfig) {
  const { configureLimiter, configureStore } = await import("@ratesync/core");
  configureStore("bench", { engine: "memory" });
  configureLimiter("bench", { store: "bench", ...ratesyncPolicy(config.algorithm, config.expect) });
}

/** Builds the app of `config`, listens on a free loopback port, and returns the listening server. */
async function serve(config: ServerConfig): Promise<Server> {
  if (config.variant === "ratesync") await ratesyncRegistry(config);
  if (config.framework === "fastify") {
    const { default: Fastify } = await import("fastify");
    const app = Fastify({ logger: false });
    if (config.variant === "ratesync") {
      const { ratesync } = await import("@ratesync/fastify");
      await app.register(ratesync, { limiter: "bench" });
    } else if (config.variant === "peer") {
      const { default: fastifyRateLimit } = await import("@fastify/rate-limit");
      await app.register(fastifyRateLimit, { max: peerLimit(config.expect), timeWindow: PEER_WINDOW_MS });
    }
    app.get("/", async () => "ok");
    await app.listen({ port: 0, host: "127.0.0.1" });
    return app.server;
  }
  if (config.framework === "express") {
    const { default: express } = await import("express");
    const app = express();
    if (config.variant === "ratesync") {
      const { rateLimit } = await import("@ratesync/express");
      app.use(rateLimit({ limiter: "bench" }));
    } else if (config.variant === "peer") {
      const { rateLimit } = await import("express-rate-limit");
      app.use(rateLimit({ windowMs: PEER_WINDOW_MS, limit: peerLimit(config.expect) }));
    }
    app.get("/", (_req, res) => {
      res.send("ok");
    });
    const server = app.listen(0, "127.0.0.1");
    await new Promise((resolve) => server.once("listening", resolve));
    return server;
  }
  const { Hono } = await import("hono");
  const { serve: serveNode } = await import("@hono/node-server");
  const app = new Hono();
  if (config.variant === "ratesync") {
    const { rateLimit } = await import("@ratesync/hono");
    app.use(rateLimit({ limiter: "bench" }));
  } else if (config.variant === "peer") {
    const { rateLimiter } = await import("hono-rate-limiter");
    app.use(
      rateLimiter({
        windowMs: PEER_WINDOW_MS,
        limit: peerLimit(config.expect),
        // What its documentation shows for Node.js: the socket address @hono/node-server passes.
        keyGenerator: (c) =>
          (c.env as { incoming?: { socket?: { remoteAddress?: string } } } | undefined)?.incoming?.socket
            ?.remoteAddress ?? "",
      }),
    );
  }
  app.get("/", (c) => c.text("ok"));
  return new Promise((resolve) => {
    const server = serveNode({ fetch: app.fetch, port: 0, hostname: "127.0.0.1" }, () => resolve(server as Server));
  });
}

/**
 * Waits until the last round's connections are closed (at most a second), then collects garbage:
 * what a round leaves behind (its sockets, parsers, requests) is then never collected on the next
 * round's clock. Without it, whichever contender ran last in one round and first in the next
 * (the harness alternates A B C, C B A) paid for its own previous round, and the one in the middle
 * never did.
 */
async function settle(server: Server): Promise<void> {
  const until = performance.now() + 1000;
  for (;;) {
    const open = await new Promise<number>((resolve) => server.getConnections((_error, count) => resolve(count)));
    if (open === 0 || performance.now() >= until) break;
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  const gc = (globalThis as { gc?: () => void }).gc;
  gc?.();
  gc?.();
}

if (process.env[SERVER_ENV] !== undefined) {
  const config = JSON.parse(process.env[SERVER_ENV]) as ServerConfig;
  serve(config).then(
    (server) => {
      const port = (server.address() as AddressInfo).port;
      // Forked by the suite: the port goes back over IPC. Run by hand (scripts/http-instructions.sh): on stdout.
      if (process.send === undefined) process.stdout.write(`${port}\n`);
      process.send?.({ port });
      process.on("message", (message) => {
        // CPU time so far (user + system, µs), for the parent's per-response figure.
        if (message === "cpu") {
          const usage = process.cpuUsage();
          process.send?.({ cpu: usage.user + usage.system });
        } else if (message === "settle") {
          void settle(server).then(() => process.send?.({ settled: true }));
        }
      });
    },
    (error: unknown) => {
      process.stderr.write(`bench http server failed: ${error instanceof Error ? error.stack : String(error)}\n`);
      process.exit(1);
    },
  );
  // The parent going away (end of case, or a crash) ends the server.
  process.on("disconnect", () => process.exit(0));
}

// --- the parent: contenders and cases ---------------------------------------------------------

/** Forks a server child for `config`; resolves to it and its port once it listens. */
function startServer(config: ServerConfig): Promise<{ child: ChildProcess; port: number }> {
  return new Promise((resolve, reject) => {
    const child = fork(fileURLToPath(import.meta.url), [], {
      env: { ...process.env, [SERVER_ENV]: JSON.stringify(config) },
      // gc() for settle(), between rounds.
      execArgv: [...process.execArgv, "--expose-gc"],
      stdio: ["ignore", "ignore", "inherit", "ipc"],
    });
    const onExit = (code: number | null) => reject(new Error(`the ${config.framework} server exited with ${code}`));
    child.once("exit", onExit);
    child.once("error", reject);
    child.once("message", (message) => {
      child.off("exit", onExit);
      resolve({ child, port: (message as { port: number }).port });
    });
  });
}

/** Sends `message` to the server child and resolves to the value of `field` in its answer. */
function ask<T>(child: ChildProcess, message: string, field: string): Promise<T> {
  return new Promise((resolve) => {
    const onMessage = (answer: unknown) => {
      if (typeof answer !== "object" || answer === null || !(field in answer)) return;
      child.off("message", onMessage);
      resolve((answer as Record<string, T>)[field] as T);
    };
    child.on("message", onMessage);
    child.send(message);
  });
}

/** The server child's CPU time so far (user + system), in µs. */
function cpuOf(child: ChildProcess): Promise<number> {
  return ask<number>(child, "cpu", "cpu");
}

function stopServer(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    child.once("exit", () => resolve());
    child.kill("SIGTERM");
  });
}

/**
 * One contender: a server with `variant` in front of its route. A round's calls are the
 * responses autocannon receives, taken in order; they must all be 200 (admitted) or 429 (refused).
 */
/** The running servers of the current case, by framework, path and variant. */
type Servers = Map<string, Promise<{ child: ChildProcess; port: number }>>;

function contender(
  name: string,
  role: Contender["role"],
  config: ServerConfig,
  load: Load,
  servers: Servers,
): Contender {
  return {
    name,
    role,
    async start(): Promise<Round> {
      // One server per contender for the whole case, started on first use and warmed by every
      // round (as a long-running service is); the suite's close() stops them all.
      const key = `${config.framework} ${config.expect} ${config.variant}`;
      // A new case: the servers of the previous one are done.
      for (const [other, running] of servers) {
        if (other.startsWith(`${config.framework} ${config.expect} `)) continue;
        servers.delete(other);
        await running.then(
          ({ child }) => stopServer(child),
          () => {},
        );
      }
      let server = servers.get(key);
      if (server === undefined) {
        server = startServer(config).then(async (started) => {
          // The refused path: spend the one admission before any timed request.
          if (config.expect === "refused" && config.variant !== "none") {
            const first = await fetch(`http://127.0.0.1:${started.port}/`);
            await first.text();
            expectCount(`${name}: the priming request's status`, first.status, 200);
          }
          return started;
        });
        servers.set(key, server);
      }
      const { child, port } = await server;
      const url = `http://127.0.0.1:${port}/`;
      const wanted = config.expect === "refused" && config.variant !== "none" ? 429 : 200;
      let received = 0;
      let consumed = 0;
      let wrong = 0;
      let failed = 0;
      let wake: (() => void) | undefined;
      // With a callback, autocannon returns the running instance (the result is not used: every
      // response is counted as it arrives).
      const instance = autocannon({ url, ...load, duration: 3600 }, () => {});
      instance.on("response", (_client, statusCode) => {
        if (statusCode !== wanted) wrong++;
        received++;
        const resume = wake;
        wake = undefined;
        resume?.();
      });
      instance.on("reqError", () => {
        failed++;
      });
      // Untimed: until every connection is open and answering, then count from there.
      const rampUntil = performance.now() + 5000;
      while (received < load.connections * load.pipelining * 8 && performance.now() < rampUntil) {
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
      consumed = received;
      // Server CPU per response, beside the harness's responses/s: a wall-clock rate swings with
      // whatever else the machine runs, the CPU the server spent on each response much less.
      const cpuStart = await cpuOf(child);
      const countStart = received;
      return {
        call(): Promise<void> {
          if (received > consumed) {
            consumed++;
            return Promise.resolve();
          }
          return new Promise<void>((resolve) => {
            wake = () => {
              consumed++;
              resolve();
            };
          });
        },
        verify(): void {
          expectCount(`${name}: responses with another status than ${wanted}`, wrong, 0);
          expectCount(`${name}: failed requests`, failed, 0);
        },
        async dispose(): Promise<void> {
          instance.stop();
          const cpu = await cpuOf(child);
          // Untimed: the round's connections closed and its garbage collected before the next.
          await ask(child, "settle", "settled");
          const responses = received - countStart;
          process.stderr.write(
            `http / ${config.framework} ${config.expect}: ${name} server CPU ${(responses === 0 ? 0 : (cpu - cpuStart) / responses).toFixed(1)} µs/response (${responses} responses)\n`,
          );
        },
      };
    },
  };
}

function httpCase(
  framework: Framework,
  expect: Expectation,
  algorithm: BenchAlgorithm,
  load: Load,
  servers: Servers,
): BenchCase {
  const peer = PEERS[framework];
  const label = framework === "express" ? "express 5" : framework === "hono" ? "hono (node-server)" : framework;
  const targets: Target[] = [{ against: peer, minRatio: 1.0 }];
  return {
    suite: "http",
    name: `${label}, all ${expect}`,
    description:
      `GET / on ${label} over loopback (autocannon, ${load.connections} connections x ${load.pipelining} pipelined), keyed by client IP: ` +
      `${expect === "admitted" ? "every request admitted (200)" : "every request refused (429) after one admission"}; ` +
      `ratesync's adapter vs ${peer}, and the route with no limiter as the ceiling. One op = one response.`,
    inFlight: 1,
    latency: false,
    contenders: [
      contender("ratesync", "ours", { framework, variant: "ratesync", expect, algorithm }, load, servers),
      contender(peer, "peer", { framework, variant: "peer", expect, algorithm }, load, servers),
      contender("no limiter", "ceiling", { framework, variant: "none", expect, algorithm }, load, servers),
    ],
    targets,
  };
}

/**
 * The http suite, one case per framework and path (admitted, refused).
 *
 * @example
 * ```ts
 * const suite = createHttpSuite({ algorithm: "token_bucket" });
 * console.log(suite.cases.map((benchCase) => benchCase.name));
 * ```
 */
export function createHttpSuite(options: HttpSuiteOptions = {}): Suite {
  const algorithm = options.algorithm ?? "token_bucket";
  const load: Load = { connections: options.connections ?? 16, pipelining: options.pipelining ?? 10 };
  const frameworks: Framework[] = ["fastify", "express", "hono"];
  const servers: Servers = new Map();
  return {
    name: "http",
    cases: frameworks.flatMap((framework) =>
      (["admitted", "refused"] as const).map((expect) => httpCase(framework, expect, algorithm, load, servers)),
    ),
    // More rounds than the in-process suites: a loopback HTTP round swings with every other process.
    defaultRounds: { full: 7, quick: 4 },
    packages: ["@ratesync/core", "fastify", "@fastify/rate-limit", "express", "autocannon"],
    async close() {
      const started = [...servers.values()];
      servers.clear();
      await Promise.all(
        started.map((server) =>
          server.then(
            ({ child }) => stopServer(child),
            () => {},
          ),
        ),
      );
    },
    // These do not export their package.json, so the report's version lookup cannot read it:
    // their versions come from here, found beside their entry points.
    open: async () =>
      Object.fromEntries(
        ["express-rate-limit", "hono", "@hono/node-server", "hono-rate-limiter"].map((name) => [
          name,
          versionNear(name),
        ]),
      ),
  };
}

/** The version of an installed package whose exports hide its package.json. */
function versionNear(name: string): string {
  let dir = dirname(createRequire(import.meta.url).resolve(name));
  for (;;) {
    const manifest = join(dir, "package.json");
    if (existsSync(manifest)) {
      const parsed = JSON.parse(readFileSync(manifest, "utf8")) as { name?: string; version?: string };
      if (parsed.name === name) return parsed.version ?? "unknown";
    }
    const parent = dirname(dir);
    if (parent === dir) return "unknown";
    dir = parent;
  }
}
