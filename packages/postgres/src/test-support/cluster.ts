import { execFile } from "node:child_process";
import { chownSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { userInfo } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";

const run = promisify(execFile);
const BIN = process.env.PG_BIN ?? "/usr/lib/postgresql/15/bin";

/**
 * A throwaway PostgreSQL cluster on a loopback port, owned by one test file: `initdb` once, then
 * started and stopped at will (`stop()` is an immediate shutdown, as a crash), and always removed
 * by `destroy()`. initdb refuses to run as root, so as root the cluster belongs to `postgres`.
 */
export class ThrowawayCluster {
  readonly port: number;
  readonly #dir: string;
  readonly #asRoot: boolean;
  #running = false;

  constructor(port: number) {
    this.port = port;
    this.#asRoot = userInfo().uid === 0;
    const parent = mkdtempSync("/tmp/ratesync-pg-");
    this.#dir = join(parent, "data");
    if (this.#asRoot) {
      const { uid, gid } = postgresIds();
      chownSync(parent, uid, gid);
    }
  }

  /** The URL of its `postgres` database. */
  get url(): string {
    return `postgres://postgres@127.0.0.1:${this.port}/postgres`;
  }

  async #as(command: string, args: string[]): Promise<void> {
    const file = join(BIN, command);
    if (this.#asRoot) await run("runuser", ["-u", "postgres", "--", file, ...args], { timeout: 60_000 });
    else await run(file, args, { timeout: 60_000 });
  }

  /** Creates the data directory (trust auth, user postgres). */
  async init(): Promise<void> {
    await this.#as("initdb", ["-D", this.#dir, "-A", "trust", "-U", "postgres", "--no-sync"]);
  }

  /** Starts the server and waits until it accepts connections. */
  async start(): Promise<void> {
    await this.#as("pg_ctl", [
      "-D",
      this.#dir,
      "-o",
      `-p ${this.port} -k /tmp -c listen_addresses=127.0.0.1 -c fsync=off`,
      "-l",
      join(this.#dir, "..", "server.log"),
      "-w",
      "start",
    ]);
    this.#running = true;
  }

  /** Stops the server at once, as a crash would (`-m immediate`). */
  async stop(): Promise<void> {
    if (!this.#running) return;
    await this.#as("pg_ctl", ["-D", this.#dir, "-m", "immediate", "-w", "stop"]);
    this.#running = false;
  }

  /** Stops the server if it runs and removes its directory. */
  async destroy(): Promise<void> {
    try {
      await this.stop();
    } finally {
      rmSync(join(this.#dir, ".."), { recursive: true, force: true });
    }
  }
}

function postgresIds(): { uid: number; gid: number } {
  // The ids of the postgres user, from the passwd database.
  const line = readFileSync("/etc/passwd", "utf8")
    .split("\n")
    .find((entry) => entry.startsWith("postgres:"));
  if (line === undefined) throw new Error("no postgres user: cannot run initdb as root");
  const [, , uid, gid] = line.split(":");
  return { uid: Number(uid), gid: Number(gid) };
}
