// biome-ignore-all lint/suspicious/noTemplateCurlyInString: "${NAME}" in these strings is the syntax under test.
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { rejectionOf } from "../testing/errors.js";
import { builtinEngineKeys } from "./engine-keys.js";
import type { ConfigIssue } from "./issues.js";
import { loadConfigFile, readConfigFile, resolveConfigPath } from "./load.js";

const SEED =
  '[stores.local]\nengine = "memory"\n\n[limiters.api]\nstore = "local"\nrate_per_second = 10.0\ntimeout = 30.0\n';

let dir: string;
let emptyDir: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "ratesync-config-"));
  emptyDir = join(dir, "empty");
  await mkdir(emptyDir);
  await writeFile(join(dir, "rate-sync.toml"), SEED);
  await writeFile(join(dir, "custom.toml"), '[stores.s]\nengine = "memory"\n');
  await writeFile(join(dir, "broken.toml"), '[limiters.api]\nstore = "nowhere"\nrate_per_second = 0\n');
  await writeFile(join(dir, "env.toml"), '[stores.r]\nengine = "redis"\nurl = "${URL}"\n');
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

afterEach(() => {
  vi.unstubAllEnvs();
  vi.unstubAllGlobals();
});

/** Runs `body` with `cwd` as the working directory. */
async function inDirectory<T>(cwd: string, body: () => Promise<T>): Promise<T> {
  const previous = process.cwd();
  process.chdir(cwd);
  try {
    return await body();
  } finally {
    process.chdir(previous);
  }
}

const options = { engineKeys: builtinEngineKeys, env: {} };

describe("resolveConfigPath", () => {
  it("takes RATESYNC_CONFIG as an explicit path", () => {
    expect(resolveConfigPath({ RATESYNC_CONFIG: "/etc/app/limits.toml" })).toEqual({
      path: "/etc/app/limits.toml",
      explicit: true,
    });
    expect(resolveConfigPath({ RATESYNC_CONFIG: "config/limits.toml" })).toEqual({
      path: "config/limits.toml",
      explicit: true,
    });
  });

  it("falls back to ./rate-sync.toml, not explicit", () => {
    expect(resolveConfigPath({})).toEqual({ path: "rate-sync.toml", explicit: false });
    expect(resolveConfigPath({ RATESYNC_CONFIG: "" })).toEqual({ path: "rate-sync.toml", explicit: false });
  });

  it("reads process.env by default", () => {
    vi.stubEnv("RATESYNC_CONFIG", "/from/env.toml");
    expect(resolveConfigPath()).toEqual({ path: "/from/env.toml", explicit: true });
  });

  it("finds nothing in runtimes without process", () => {
    vi.stubGlobal("process", undefined);
    const location = resolveConfigPath({});
    vi.unstubAllGlobals();
    expect(location).toBeUndefined();
  });

  it("still honours an explicit path given as env without process", () => {
    vi.stubGlobal("process", undefined);
    const location = resolveConfigPath({ RATESYNC_CONFIG: "/x.toml" });
    vi.unstubAllGlobals();
    expect(location).toEqual({ path: "/x.toml", explicit: true });
  });
});

describe("readConfigFile", () => {
  it("reads a file as text", async () => {
    expect(await readConfigFile(join(dir, "rate-sync.toml"))).toBe(SEED);
  });

  it("gives undefined for a file that does not exist", async () => {
    expect(await readConfigFile(join(dir, "missing.toml"))).toBeUndefined();
    // A file in the middle of the path (ENOTDIR) also means "no such file".
    expect(await readConfigFile(join(dir, "custom.toml", "x.toml"))).toBeUndefined();
  });

  it("turns other failures into CONFIG_INVALID with the cause", async () => {
    const error = await rejectionOf(readConfigFile(dir));
    expect(error.code).toBe("CONFIG_INVALID");
    expect(error.message).toMatch(
      new RegExp(
        `^Cannot read the configuration file ${escapeRegExp(dir)}: EISDIR.*\\. Make it a readable TOML file\\.$`,
      ),
    );
    expect((error.cause as { code?: unknown }).code).toBe("EISDIR");
    expect(error.details).toEqual({ path: dir });
  });

  it("resolves relative paths against the working directory", async () => {
    expect(await inDirectory(dir, () => readConfigFile("custom.toml"))).toBe('[stores.s]\nengine = "memory"\n');
  });
});

describe("loadConfigFile", () => {
  it("loads and parses an explicit path, naming it in messages", async () => {
    const parsed = await loadConfigFile(join(dir, "rate-sync.toml"), options);
    expect([...(parsed?.stores.keys() ?? [])]).toEqual(["local"]);
    expect(parsed?.limiters.get("api")?.policy.rate).toEqual({
      algorithm: "token_bucket",
      ratePerSecond: 10,
      burst: 1,
      intervalMs: 100,
    });
  });

  it("loads ./rate-sync.toml from the working directory", async () => {
    const parsed = await inDirectory(dir, () => loadConfigFile(undefined, options));
    expect(parsed?.limiters.get("api")?.timeout).toBe(30);
  });

  it("loads the file RATESYNC_CONFIG names, relative to the working directory", async () => {
    const parsed = await inDirectory(dir, () =>
      loadConfigFile(undefined, { ...options, env: { RATESYNC_CONFIG: "custom.toml" } }),
    );
    expect([...(parsed?.stores ?? [])]).toEqual([["s", { engine: "memory" }]]);
  });

  it("gives undefined when the implicit ./rate-sync.toml does not exist", async () => {
    expect(await inDirectory(emptyDir, () => loadConfigFile(undefined, options))).toBeUndefined();
  });

  it("throws CONFIG_NOT_FOUND for a missing explicit path", async () => {
    const error = await inDirectory(dir, () => rejectionOf(loadConfigFile("nope.toml", options)));
    expect(error.code).toBe("CONFIG_NOT_FOUND");
    expect(error.message).toBe(
      `The configuration file nope.toml does not exist (looked for ${join(dir, "nope.toml")}). Create the file or pass the right path.`,
    );
    expect(error.details).toEqual({ path: "nope.toml", absolutePath: join(dir, "nope.toml") });
  });

  it("does not repeat an absolute path that is already absolute", async () => {
    const missing = join(dir, "missing.toml");
    const error = await rejectionOf(loadConfigFile(missing, options));
    expect(error.message).toBe(
      `The configuration file ${missing} does not exist. Create the file or pass the right path.`,
    );
  });

  it("throws CONFIG_NOT_FOUND when RATESYNC_CONFIG names a missing file", async () => {
    const error = await inDirectory(dir, () =>
      rejectionOf(loadConfigFile(undefined, { ...options, env: { RATESYNC_CONFIG: "gone/limits.toml" } })),
    );
    expect(error.code).toBe("CONFIG_NOT_FOUND");
    expect(error.message).toBe(
      `The configuration file gone/limits.toml named by RATESYNC_CONFIG does not exist (looked for ${resolve(dir, "gone/limits.toml")}). Fix RATESYNC_CONFIG, create the file, or unset RATESYNC_CONFIG to use ./rate-sync.toml.`,
    );
  });

  it("reads RATESYNC_CONFIG from process.env when no env is given", async () => {
    vi.stubEnv("RATESYNC_CONFIG", join(dir, "custom.toml"));
    const parsed = await loadConfigFile(undefined, { engineKeys: builtinEngineKeys });
    expect([...(parsed?.stores.keys() ?? [])]).toEqual(["s"]);
  });

  it("passes env to the parser", async () => {
    const parsed = await loadConfigFile(join(dir, "env.toml"), { ...options, env: { URL: "redis://x" } });
    expect(parsed?.stores.get("r")).toEqual({ engine: "redis", url: "redis://x" });
  });

  it("reports an invalid file with its path", async () => {
    const file = join(dir, "broken.toml");
    const error = await rejectionOf(loadConfigFile(file, options));
    expect(error.code).toBe("CONFIG_INVALID");
    const issues = error.details?.issues as ConfigIssue[];
    expect(issues.map((issue) => [issue.file, issue.key])).toEqual([
      [file, "rate_per_second"],
      [file, "store"],
    ]);
    expect(error.message.split("\n")[1]).toBe(
      `  - ${file}: [limiters.api] rate_per_second: expected a number > 0, got 0. Fix the value or remove the key.`,
    );
  });
});

describe("loadConfigFile without a file system", () => {
  afterEach(() => {
    vi.doUnmock("node:fs/promises");
    vi.resetModules();
  });

  async function loadWithoutFileSystem(): Promise<typeof import("./load.js")> {
    vi.resetModules();
    vi.doMock("node:fs/promises", () => {
      throw new Error("No such built-in module: node:fs/promises");
    });
    return import("./load.js");
  }

  it("gives undefined when no file was asked for, even where ./rate-sync.toml exists", async () => {
    const load = await loadWithoutFileSystem();
    expect(await inDirectory(dir, () => load.loadConfigFile(undefined, options))).toBeUndefined();
  });

  it("throws CONFIG_NOT_FOUND for an explicit path, pointing at loadConfigFromString", async () => {
    const load = await loadWithoutFileSystem();
    const error = await rejectionOf(load.loadConfigFile("/etc/limits.toml", options));
    expect(error.code).toBe("CONFIG_NOT_FOUND");
    expect(error.message).toBe(
      "Cannot read the configuration file /etc/limits.toml: this runtime has no file system. Pass the TOML text to loadConfigFromString() instead.",
    );
    const readError = await rejectionOf(load.readConfigFile("/etc/limits.toml"));
    expect(readError.code).toBe("CONFIG_NOT_FOUND");
  });
});

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}
