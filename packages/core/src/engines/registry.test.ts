import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { createRateSync } from "../rate-sync.js";
import { rejectionOf, thrownBy } from "../testing/errors.js";
import { FakeClock } from "../testing/fake-clock.js";
import type { EngineDefinition } from "./engine.js";
import { MemoryEngine } from "./memory.js";
import { ENGINE_PACKAGES, importEnginePackage, registerEngine, resolveEngine } from "./registry.js";

const originalCwd = process.cwd();
afterEach(() => process.chdir(originalCwd));

describe("engine registry", () => {
  it("refuses a definition without a name or a factory", () => {
    for (const bad of [{}, { name: "", create: () => new MemoryEngine() }, { name: "x" }]) {
      expect(thrownBy(() => registerEngine(bad as never)).code).toBe("INVALID_ARGUMENT");
    }
  });

  it("lets a custom engine be used by name, from code and from TOML, with its option keys checked", async () => {
    const created: unknown[] = [];
    registerEngine<{ flavour?: string }>({
      name: "test-custom",
      optionKeys: ["flavour"],
      create: (options, context) => {
        created.push({ options, store: context.storeId });
        return new MemoryEngine({}, context.clock);
      },
    });
    const rs = createRateSync({ clock: new FakeClock(), autoload: false });
    rs.loadConfigFromString(
      '[stores.c]\nengine = "test-custom"\nflavour = "mint"\n[limiters.api]\nstore = "c"\nrate_per_second = 1\n',
    );
    expect((await rs.tryAcquire("api")).allowed).toBe(true);
    expect(created).toEqual([{ options: { flavour: "mint" }, store: "c" }]);
    const error = thrownBy(() => rs.loadConfigFromString('[stores.d]\nengine = "test-custom"\nflavor = "mint"\n'));
    expect(error.code).toBe("CONFIG_INVALID");
    expect(error.message).toContain('did you mean "flavour"');
  });

  it("imports a package from the application's directory (pnpm's strict layout)", async () => {
    // An application directory with its own node_modules, which @ratesync/core cannot see from
    // where it is installed: the package must be resolved from the application's side.
    const app = mkdtempSync(join(tmpdir(), "ratesync-app-"));
    try {
      const pkg = join(app, "node_modules", "@ratesync-test", "app-only-engine");
      mkdirSync(pkg, { recursive: true });
      writeFileSync(join(app, "package.json"), JSON.stringify({ name: "app", private: true }));
      writeFileSync(
        join(pkg, "package.json"),
        JSON.stringify({ name: "@ratesync-test/app-only-engine", version: "0.0.0", main: "index.cjs" }),
      );
      writeFileSync(
        join(pkg, "index.cjs"),
        'exports.engine = { name: "app-only", create: () => ({ name: "app-only", fromApp: true }) };\n',
      );
      process.chdir(app);
      const loaded = (await importEnginePackage("@ratesync-test/app-only-engine")) as { engine: EngineDefinition };
      expect(loaded.engine.name).toBe("app-only");
      expect(
        loaded.engine.create({}, { storeId: "main", clock: new FakeClock(), requestTimeoutMs: 1000 }),
      ).toMatchObject({ fromApp: true });
      expect(await importEnginePackage("@ratesync-test/not-installed-anywhere")).toBeUndefined();
    } finally {
      process.chdir(originalCwd);
      rmSync(app, { recursive: true, force: true });
    }
  });

  it("says which package to install for a known engine that is missing", async () => {
    const error = await rejectionOf(resolveEngine("postgres", "db", async () => undefined));
    expect(error.code).toBe("ENGINE_NOT_INSTALLED");
    expect(error.message).toContain(`npm install ${ENGINE_PACKAGES.postgres?.packageName} postgres`);
    expect(error.message).toContain('Store "db"');
  });

  it("refuses an engine nobody registered", async () => {
    const error = await rejectionOf(resolveEngine("cassandra", "s"));
    expect(error.code).toBe("CONFIG_INVALID");
    expect(error.message).toContain("registerEngine");
  });
});
