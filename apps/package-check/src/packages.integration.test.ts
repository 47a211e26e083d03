/**
 * Every publishable package, packed as `pnpm publish` would upload it: only built files, README,
 * license; ranges instead of `workspace:`; exports that resolve for ESM and CJS consumers, with
 * types in both (publint, and arethetypeswrong for every module resolution TypeScript offers).
 */

import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { checkPackage, createPackageFromTarballData } from "@arethetypeswrong/core";
import { publint } from "publint";
import { formatMessage } from "publint/utils";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Packed, pack, publishablePackages } from "./workspace.js";

const packages = publishablePackages();
const destination = mkdtempSync(join(tmpdir(), "ratesync-pack-"));
const packed = new Map<string, Packed>();

beforeAll(async () => {
  for (const pkg of packages) packed.set(pkg.name, await pack(pkg, destination));
}, 120_000);

afterAll(() => rmSync(destination, { recursive: true, force: true }));

/** What a tarball may hold: the manifest, README, license, changelog, and built code with its types. */
const ALLOWED = /^(package\.json|README\.md|LICENSE|CHANGELOG\.md|dist\/.+\.(js|cjs|d\.ts|d\.cts))$/;

function tarball(name: string): Packed {
  const result = packed.get(name);
  if (result === undefined) throw new Error(`${name} was not packed`);
  return result;
}

/** The package.json inside the tarball (pnpm rewrites it while packing). */
function packedManifest(name: string): Record<string, unknown> {
  const text = execFileSync("tar", ["-xzOf", tarball(name).tarball, "package/package.json"], { encoding: "utf8" });
  return JSON.parse(text) as Record<string, unknown>;
}

it("finds the publishable packages", () => {
  expect(packages.map((pkg) => pkg.name)).toContain("@ratesync/core");
  expect(packages.every((pkg) => pkg.name.startsWith("@ratesync/"))).toBe(true);
});

describe.each(packages.map((pkg) => [pkg.name]))("%s", (name) => {
  it("packs only built files, README and license", () => {
    const { files } = tarball(name);
    expect(files.filter((file) => !ALLOWED.test(file))).toEqual([]);
    expect(files).toEqual(
      expect.arrayContaining(["package.json", "README.md", "LICENSE", "dist/index.js", "dist/index.cjs"]),
    );
    expect(files).toEqual(expect.arrayContaining(["dist/index.d.ts", "dist/index.d.cts"]));
  });

  it("publishes version ranges and only files that exist in the tarball", () => {
    const manifest = JSON.stringify(packedManifest(name));
    expect(manifest).not.toContain("workspace:");
    // The source condition points into src/, which is not published.
    expect(manifest).not.toContain("@ratesync/source");
    expect(manifest).not.toContain("./src/");
  });

  it("has nothing publint would report, at any level", async () => {
    const data = readFileSync(tarball(name).tarball);
    const { messages, pkg } = await publint({
      pack: { tarball: data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength) },
      level: "suggestion",
      strict: true,
    });
    expect(messages.map((message) => `${message.type}: ${formatMessage(message, pkg) ?? message.code}`)).toEqual([]);
  });

  it("has types that resolve for every consumer (arethetypeswrong)", async () => {
    const data = new Uint8Array(readFileSync(tarball(name).tarball));
    const result = await checkPackage(createPackageFromTarballData(data));
    const problems = "problems" in result ? result.problems : [];
    expect(problems).toEqual([]);
  });
});
