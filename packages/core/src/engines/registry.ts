import { RateSyncError } from "../errors.js";
import type { EngineDefinition } from "./engine.js";
import { memoryEngine } from "./memory.js";

/** The engines that ship as separate packages, by name: what to import, and what to install. */
export const ENGINE_PACKAGES: Readonly<Record<string, { readonly packageName: string; readonly peers: string }>> = {
  redis: { packageName: "@ratesync/redis", peers: "ioredis" },
  nats: { packageName: "@ratesync/nats", peers: "@nats-io/transport-node @nats-io/kv" },
  postgres: { packageName: "@ratesync/postgres", peers: "postgres" },
};

/**
 * Registered engine definitions. Kept on `globalThis` so that two copies of `@ratesync/core` in one
 * process (an ESM and a CJS copy) see the same engines.
 */
const definitions: Map<string, EngineDefinition> = (() => {
  const slot = Symbol.for("@ratesync/core/engines@1");
  const holder = globalThis as unknown as Record<symbol, Map<string, EngineDefinition> | undefined>;
  let map = holder[slot];
  if (map === undefined) {
    map = new Map();
    holder[slot] = map;
  }
  if (!map.has(memoryEngine.name)) map.set(memoryEngine.name, memoryEngine as EngineDefinition);
  return map;
})();

/**
 * Registers an engine under its name, so stores can use it with `engine = "<name>"`. Register
 * custom engines before loading a configuration that names them.
 *
 * @example
 * ```ts
 * registerEngine({ name: "dynamo", optionKeys: ["table"], create: (options) => new DynamoEngine(options) });
 * ```
 */
export function registerEngine<O>(definition: EngineDefinition<O>): void {
  if (typeof definition?.name !== "string" || definition.name === "" || typeof definition.create !== "function") {
    throw new RateSyncError(
      "INVALID_ARGUMENT",
      "registerEngine needs { name: a non-empty string, create: a function returning an engine }.",
    );
  }
  definitions.set(definition.name, definition as unknown as EngineDefinition);
}

/**
 * The option keys (TOML spelling) a registered engine accepts; `undefined` when no engine of that
 * name is registered. A registered engine that declares no keys accepts none.
 */
export function registeredEngineKeys(name: string): readonly string[] | undefined {
  const definition = definitions.get(name);
  return definition === undefined ? undefined : (definition.optionKeys ?? []);
}

/** Whether an engine with this name is registered now. */
export function isEngineRegistered(name: string): boolean {
  return definitions.has(name);
}

/** The names of registered engines and of the engine packages that can be loaded on demand. */
export function knownEngineNames(): string[] {
  return [...new Set([...definitions.keys(), ...Object.keys(ENGINE_PACKAGES)])];
}

type ModuleLoader = (specifier: string) => Promise<unknown>;

// A specifier in a variable keeps bundlers from trying to resolve optional packages at build time.
const importModule: ModuleLoader = (specifier) => import(/* @vite-ignore */ specifier);

function isModuleNotFound(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return code === "ERR_MODULE_NOT_FOUND" || code === "MODULE_NOT_FOUND";
}

/**
 * Imports an engine package, or resolves `undefined` when it is not installed. First as a plain import (resolved from `@ratesync/core`'s own place,
 * which works with npm's flat `node_modules`); then resolved from the application's directory,
 * which is where pnpm's strict layout puts the packages the application depends on.
 */
export async function importEnginePackage(packageName: string): Promise<unknown> {
  try {
    return await importModule(packageName);
  } catch (error) {
    if (!isModuleNotFound(error)) throw error;
  }
  if (typeof process === "undefined" || typeof process.cwd !== "function") return undefined;
  try {
    const { createRequire } = (await importModule(["node", "module"].join(":"))) as typeof import("node:module");
    const { pathToFileURL } = (await importModule(["node", "url"].join(":"))) as typeof import("node:url");
    const fromApp = createRequire(`${process.cwd()}/package.json`);
    return await importModule(pathToFileURL(fromApp.resolve(packageName)).href);
  } catch (error) {
    if (isModuleNotFound(error)) return undefined;
    throw error;
  }
}

/**
 * The definition of the engine `name`: a registered one, or the engine package loaded on first
 * use. Throws `ENGINE_NOT_INSTALLED` naming the package to install.
 * @param load how a package is imported (tests pass their own)
 */
export async function resolveEngine(
  name: string,
  storeId: string,
  load: (packageName: string) => Promise<unknown> = importEnginePackage,
): Promise<EngineDefinition> {
  const registered = definitions.get(name);
  if (registered !== undefined) return registered;
  const known = ENGINE_PACKAGES[name];
  if (known === undefined) {
    throw new RateSyncError(
      "CONFIG_INVALID",
      `Store "${storeId}" uses engine "${name}", which is not registered. Known engines: ${knownEngineNames().join(", ")}. Register custom engines with registerEngine() before using them.`,
    );
  }
  const loaded = (await load(known.packageName)) as { engine?: EngineDefinition } | undefined;
  if (loaded === undefined) {
    throw new RateSyncError(
      "ENGINE_NOT_INSTALLED",
      `Store "${storeId}" uses engine "${name}", which needs the package ${known.packageName}. Install it next to @ratesync/core: npm install ${known.packageName} ${known.peers}`,
      { details: { packageName: known.packageName } },
    );
  }
  const definition = loaded.engine;
  if (definition === undefined || typeof definition.create !== "function") {
    throw new RateSyncError(
      "ENGINE_NOT_INSTALLED",
      `${known.packageName} was found but does not export an engine definition; install a version that matches @ratesync/core.`,
    );
  }
  definitions.set(name, definition);
  return definition;
}
