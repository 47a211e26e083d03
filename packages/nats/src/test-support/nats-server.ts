import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { connect as tcpConnect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** Whether something accepts TCP connections on the loopback port. */
function listening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = tcpConnect({ host: "127.0.0.1", port });
    socket.once("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("error", () => resolve(false));
  });
}

async function until(what: string, check: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/**
 * A throwaway `nats-server -js` on a loopback port, owned by one test file: started, stopped and
 * restarted at will (its JetStream directory survives restarts), and always stopped, with its
 * directory removed, by `dispose()`.
 */
export class NatsServer {
  readonly port: number;
  readonly #dir: string;
  readonly #extraArgs: readonly string[];
  #process: ChildProcess | undefined;

  /** @param extraArgs more `nats-server` arguments, e.g. `["--auth", "token"]`. */
  constructor(port: number, extraArgs: readonly string[] = []) {
    this.port = port;
    this.#extraArgs = extraArgs;
    this.#dir = mkdtempSync(join(tmpdir(), `ratesync-nats-${port}-`));
  }

  /** The server's URL. */
  get url(): string {
    return `nats://127.0.0.1:${this.port}`;
  }

  /** Starts the server and waits until it accepts connections. */
  async start(): Promise<void> {
    if (this.#process !== undefined) return;
    if (await listening(this.port)) throw new Error(`port ${this.port} is already in use`);
    const child = spawn(
      "nats-server",
      ["-js", "-a", "127.0.0.1", "-p", String(this.port), "-sd", this.#dir, ...this.#extraArgs],
      {
        stdio: "ignore",
      },
    );
    this.#process = child;
    child.once("exit", () => {
      if (this.#process === child) this.#process = undefined;
    });
    await until(`nats-server on port ${this.port}`, () => listening(this.port), 10_000);
  }

  /** Stops the server (SIGTERM: JetStream flushes its files) and waits until it is gone. */
  async stop(signal: NodeJS.Signals = "SIGTERM"): Promise<void> {
    const child = this.#process;
    if (child === undefined) return;
    const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
    child.kill(signal);
    const timer = setTimeout(() => child.kill("SIGKILL"), 5000);
    await exited;
    clearTimeout(timer);
    this.#process = undefined;
  }

  /** Stops the server and removes its directory. */
  async dispose(): Promise<void> {
    await this.stop();
    rmSync(this.#dir, { recursive: true, force: true });
  }
}
