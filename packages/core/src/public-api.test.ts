import { fileURLToPath } from "node:url";
import ts from "typescript";
import { describe, expect, it } from "vitest";
import * as core from "./index.js";
import * as testing from "./testing/index.js";

/** Every exported name of an entry point whose declaration has no JSDoc comment. */
function undocumentedExports(entry: string): string[] {
  const program = ts.createProgram([entry], {
    module: ts.ModuleKind.Preserve,
    moduleResolution: ts.ModuleResolutionKind.Bundler,
    target: ts.ScriptTarget.ES2022,
    noEmit: true,
  });
  const checker = program.getTypeChecker();
  const source = program.getSourceFile(entry);
  if (source === undefined) throw new Error(`cannot read ${entry}`);
  const moduleSymbol = checker.getSymbolAtLocation(source);
  if (moduleSymbol === undefined) throw new Error(`${entry} is not a module`);
  const missing: string[] = [];
  for (const exported of checker.getExportsOfModule(moduleSymbol)) {
    const symbol = exported.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(exported) : exported;
    const documented = (symbol.declarations ?? []).some((declaration) => {
      const node = ts.isVariableDeclaration(declaration) ? declaration.parent.parent : declaration;
      return ts.getJSDocCommentsAndTags(node).length > 0;
    });
    if (!documented) missing.push(exported.getName());
  }
  return missing;
}

describe("public API", () => {
  it("documents every export of @ratesync/core and @ratesync/core/testing with JSDoc", () => {
    const entries = ["./index.ts", "./testing/index.ts"].map((path) => fileURLToPath(new URL(path, import.meta.url)));
    expect(
      entries.flatMap((entry) => undocumentedExports(entry).map((name) => `${entry.split("/src/")[1]}: ${name}`)),
    ).toEqual([]);
  }, 60_000);

  it("exports the whole API the SPEC names", () => {
    const names = [
      "configureStore",
      "configureLimiter",
      "loadConfig",
      "loadConfigFromString",
      "cloneLimiter",
      "acquire",
      "tryAcquire",
      "rateLimited",
      "getLimiter",
      "listStores",
      "listLimiters",
      "initializeLimiter",
      "initializeAllLimiters",
      "close",
      "registerEngine",
      "isRateSyncError",
      "RateSyncError",
      "createRateSync",
      "createMemoryEngine",
    ];
    for (const name of names) expect(typeof (core as Record<string, unknown>)[name], name).toBe("function");
    expect(typeof testing.FakeClock).toBe("function");
    expect(typeof testing.FlakyEngine).toBe("function");
  });

  it("recognises a RateSyncError from another copy of the package by its brand", () => {
    const foreign = Object.assign(new Error("from another copy"), { code: "ACQUIRE_TIMEOUT" });
    Object.defineProperty(foreign, Symbol.for("@ratesync/core/RateSyncError"), { value: true });
    expect(core.isRateSyncError(foreign, "ACQUIRE_TIMEOUT")).toBe(true);
    expect(core.isRateSyncError(new Error("plain"))).toBe(false);
    expect(core.isRateSyncError(new core.RateSyncError("ABORTED", "x"), "ACQUIRE_TIMEOUT")).toBe(false);
  });
});
