/**
 * Finding and reading `rate-sync.toml`. Node's file system is imported on demand under a
 * specifier built at run time, so it is never on the static import graph: bundlers for edge
 * runtimes neither resolve nor inline it, and runtimes without it simply have no config file.
 */
import { RateSyncError } from "../errors.js";
import { type EnvSource, processEnv } from "./env.js";
import { type ParseConfigOptions, type ParsedConfig, parseConfig } from "./parse.js";

/** The file looked for in the working directory when `RATESYNC_CONFIG` is not set. */
export const DEFAULT_CONFIG_FILE = "rate-sync.toml";

/** The environment variable naming the configuration file. */
export const CONFIG_PATH_ENV = "RATESYNC_CONFIG";

/** Where the configuration file is, and whether someone asked for it explicitly. */
export interface ConfigLocation {
  /** The path as given; a relative path is relative to `process.cwd()`. */
  readonly path: string;
  /** `true` for `RATESYNC_CONFIG` or a path given to `loadConfig`: a missing file is then an error. */
  readonly explicit: boolean;
}

/** Options of {@link loadConfigFile}: those of `parseConfig`, whose `file` is the path read. */
export type LoadConfigFileOptions = Omit<ParseConfigOptions, "file">;

interface NodeFileSystem {
  readonly fs: typeof import("node:fs/promises");
  readonly path: typeof import("node:path");
}

/**
 * Where to look for the configuration: `RATESYNC_CONFIG` when set (and not empty), else
 * `rate-sync.toml` in the working directory. `undefined` in runtimes without `process` (edge
 * runtimes), which have no working directory to look in.
 */
export function resolveConfigPath(env: EnvSource = processEnv()): ConfigLocation | undefined {
  const fromEnv = env[CONFIG_PATH_ENV];
  if (typeof fromEnv === "string" && fromEnv !== "") return { path: fromEnv, explicit: true };
  if (typeof process === "undefined" || typeof process.cwd !== "function") return undefined;
  return { path: DEFAULT_CONFIG_FILE, explicit: false };
}

/**
 * Reads a configuration file as UTF-8 text; `undefined` when it does not exist. Other failures
 * (a directory, no permission) throw `CONFIG_INVALID` with the cause, and a runtime without a file
 * system throws `CONFIG_NOT_FOUND`.
 */
export async function readConfigFile(path: string): Promise<string | undefined> {
  const node = await nodeFileSystem();
  if (node === undefined) throw noFileSystemError(path);
  return readText(node, path);
}

/**
 * Reads and parses the configuration file at `path`, or the one {@link resolveConfigPath} finds.
 * An explicit file (`path`, or `RATESYNC_CONFIG`) that does not exist throws `CONFIG_NOT_FOUND`;
 * a missing `./rate-sync.toml` is not an error and gives `undefined`, as does a runtime without a
 * file system when no file was asked for.
 *
 * @example
 * ```ts
 * const parsed = await loadConfigFile(undefined, { engineKeys: builtinEngineKeys });
 * ```
 */
export async function loadConfigFile(
  path: string | undefined,
  options: LoadConfigFileOptions,
): Promise<ParsedConfig | undefined> {
  const location = path === undefined ? resolveConfigPath(options.env) : { path, explicit: true };
  if (location === undefined) return undefined;
  const node = await nodeFileSystem();
  if (node === undefined) {
    if (location.explicit) throw noFileSystemError(location.path);
    return undefined;
  }
  const text = await readText(node, location.path);
  if (text !== undefined) return parseConfig(text, { ...options, file: location.path });
  if (!location.explicit) return undefined;

  const absolute = node.path.resolve(location.path);
  const lookedAt = absolute === location.path ? "" : ` (looked for ${absolute})`;
  const fix =
    path === undefined
      ? `Fix ${CONFIG_PATH_ENV}, create the file, or unset ${CONFIG_PATH_ENV} to use ./${DEFAULT_CONFIG_FILE}.`
      : "Create the file or pass the right path.";
  const source = path === undefined ? ` named by ${CONFIG_PATH_ENV}` : "";
  throw new RateSyncError(
    "CONFIG_NOT_FOUND",
    `The configuration file ${location.path}${source} does not exist${lookedAt}. ${fix}`,
    { details: { path: location.path, absolutePath: absolute } },
  );
}

/** Node's file system modules, or `undefined` in runtimes that do not have them. */
async function nodeFileSystem(): Promise<NodeFileSystem | undefined> {
  try {
    const [fs, path] = await Promise.all([
      importBuiltin<NodeFileSystem["fs"]>("fs/promises"),
      importBuiltin<NodeFileSystem["path"]>("path"),
    ]);
    return { fs, path };
  } catch {
    return undefined;
  }
}

function importBuiltin<T>(name: string): Promise<T> {
  // The specifier is built at run time so that no bundler follows it into an edge build.
  return import(/* @vite-ignore */ ["node", name].join(":")) as Promise<T>;
}

async function readText(node: NodeFileSystem, path: string): Promise<string | undefined> {
  try {
    return await node.fs.readFile(path, "utf8");
  } catch (error) {
    const code = (error as { code?: unknown } | null)?.code;
    // ENOTDIR: a directory on the way is a file, so the file cannot exist either.
    if (code === "ENOENT" || code === "ENOTDIR") return undefined;
    const reason = error instanceof Error ? error.message : String(error);
    throw new RateSyncError(
      "CONFIG_INVALID",
      `Cannot read the configuration file ${path}: ${reason}. Make it a readable TOML file.`,
      { cause: error, details: { path } },
    );
  }
}

function noFileSystemError(path: string): RateSyncError {
  return new RateSyncError(
    "CONFIG_NOT_FOUND",
    `Cannot read the configuration file ${path}: this runtime has no file system. Pass the TOML text to loadConfigFromString() instead.`,
    { details: { path } },
  );
}
