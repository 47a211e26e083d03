import { type ChildProcess, execFile, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";

const run = promisify(execFile);

/** Waits until `check` resolves true, polling every 50 ms, or throws after `timeoutMs`. */
export async function waitFor(what: string, check: () => Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check().catch(() => false)) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
}

async function pings(port: number): Promise<boolean> {
  const { stdout } = await run("redis-cli", ["-h", "127.0.0.1", "-p", String(port), "ping"], { timeout: 2000 });
  // A server with a password answers NOAUTH: it is up all the same.
  return stdout.includes("PONG") || stdout.includes("NOAUTH");
}

/**
 * A throwaway redis-server on a loopback port, owned by one test file: started, killed and
 * restarted at will, and always stopped (with its directory removed) by `stop()`.
 */
export class RedisServer {
  readonly port: number;
  readonly #args: string[];
  readonly #dir: string;
  #process: ChildProcess | undefined;

  constructor(port: number, extraArgs: string[] = []) {
    this.port = port;
    this.#dir = mkdtempSync(join(tmpdir(), `ratesync-redis-${port}-`));
    this.#args = [
      "--port",
      String(port),
      "--bind",
      "127.0.0.1",
      "--save",
      "",
      "--appendonly",
      "no",
      "--dir",
      this.#dir,
      ...extraArgs,
    ];
  }

  /** The server's URL. */
  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  /** Starts the server and waits until it answers. */
  async start(): Promise<void> {
    if (this.#process !== undefined) return;
    // A server left on this port by an interrupted earlier run would answer in place of ours.
    await run("pkill", ["-f", `redis-server 127.0.0.1:${this.port}`]).catch(() => {});
    this.#process = spawn("redis-server", this.#args, { stdio: "ignore" });
    this.#process.once("exit", () => {
      this.#process = undefined;
    });
    await waitFor(`redis-server on port ${this.port}`, () => pings(this.port));
  }

  /** Kills the server (SIGKILL: a crash, not a shutdown) and waits until it is gone. */
  async kill(): Promise<void> {
    const child = this.#process;
    if (child === undefined) return;
    const exited = new Promise((resolve) => child.once("exit", resolve));
    child.kill("SIGKILL");
    await exited;
  }

  /** Stops the server and removes its directory. */
  async stop(): Promise<void> {
    await this.kill();
    rmSync(this.#dir, { recursive: true, force: true });
  }
}

/**
 * A Redis Cluster of `masters` masters (no replicas) on consecutive loopback ports, created with
 * `redis-cli --cluster create`, for the tests that must run on Cluster.
 */
export class RedisCluster {
  readonly servers: RedisServer[];

  constructor(firstPort: number, masters = 3) {
    this.servers = Array.from(
      { length: masters },
      (_, i) =>
        new RedisServer(firstPort + i, [
          "--cluster-enabled",
          "yes",
          "--cluster-config-file",
          `nodes-${firstPort + i}.conf`,
        ]),
    );
  }

  /** Seed node URLs. */
  get nodes(): string[] {
    return this.servers.map((server) => server.url);
  }

  /** Starts every node, creates the cluster and waits until it reports ok. */
  async start(): Promise<void> {
    await Promise.all(this.servers.map((server) => server.start()));
    await run(
      "redis-cli",
      ["--cluster", "create", ...this.servers.map((server) => `127.0.0.1:${server.port}`), "--cluster-yes"],
      { timeout: 30_000 },
    );
    const first = this.servers[0]?.port ?? 0;
    await waitFor("cluster_state:ok", async () => {
      const { stdout } = await run("redis-cli", ["-p", String(first), "cluster", "info"], { timeout: 2000 });
      return stdout.includes("cluster_state:ok");
    });
  }

  /** Stops every node. */
  async stop(): Promise<void> {
    await Promise.all(this.servers.map((server) => server.stop()));
  }
}
