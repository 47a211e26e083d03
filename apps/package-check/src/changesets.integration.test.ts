/**
 * Releases go through changesets. On a clean clone of the repository, `changeset version` with a
 * sample changeset bumps what it should and nothing more: a core minor gives the packages that
 * depend on core a patch (their dependency range moves), never a major, and writes changelogs.
 */
import { execFileSync } from "node:child_process";
import {
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  unlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, expect, it } from "vitest";
import { publishablePackages, root } from "./workspace.js";

const changesetBin = join(root, "node_modules", "@changesets", "cli", "bin.js");
const clones: string[] = [];

afterEach(() => {
  for (const dir of clones.splice(0)) rmSync(dir, { recursive: true, force: true });
});

/** A fresh clone of the committed repository, sharing the workspace's node_modules for the tool. */
function cleanClone(): string {
  const dir = mkdtempSync(join(tmpdir(), "ratesync-release-"));
  clones.push(dir);
  execFileSync("git", ["clone", "--quiet", "--no-hardlinks", root, dir]);
  symlinkSync(join(root, "node_modules"), join(dir, "node_modules"), "dir");
  return dir;
}

/** The version of every publishable package of the clone `dir`, by name. */
function versions(dir: string): Record<string, string> {
  return Object.fromEntries(publishablePackages(dir).map((pkg) => [pkg.name, pkg.manifest.version]));
}

function changesetVersion(dir: string): void {
  execFileSync(process.execPath, [changesetBin, "version"], { cwd: dir, stdio: "pipe", timeout: 120_000 });
}

it("a core minor bumps core's minor and gives its dependents a patch, never a major", () => {
  const dir = cleanClone();
  const before = versions(dir);
  const pending = join(dir, ".changeset");
  for (const file of readdirSync(pending))
    if (file.endsWith(".md") && file !== "README.md") unlinkSync(join(pending, file));
  writeFileSync(
    join(pending, "sample-core-minor.md"),
    '---\n"@ratesync/core": minor\n---\n\nA sample minor change of core.\n',
  );

  changesetVersion(dir);

  const after = versions(dir);
  const [major, minor] = (before["@ratesync/core"] as string).split(".").map(Number) as [number, number];
  expect(after["@ratesync/core"]).toBe(`${major}.${minor + 1}.0`);
  for (const pkg of publishablePackages(dir)) {
    if (pkg.name === "@ratesync/core") continue;
    const [beforeMajor] = (before[pkg.name] as string).split(".");
    const [afterMajor] = (after[pkg.name] as string).split(".");
    expect(afterMajor, `${pkg.name} ${before[pkg.name]} -> ${after[pkg.name]}`).toBe(beforeMajor);
    if (pkg.manifest.dependencies?.["@ratesync/core"] !== undefined) {
      expect(after[pkg.name], `${pkg.name} depends on core`).not.toBe(before[pkg.name]);
    }
  }
  const changelog = readFileSync(join(dir, "packages", "core", "CHANGELOG.md"), "utf8");
  expect(changelog).toContain("A sample minor change of core.");
  expect(readdirSync(pending).filter((file) => file.endsWith(".md") && file !== "README.md")).toEqual([]);
}, 120_000);

it("the pending changesets version every publishable package, without a major, with changelogs", () => {
  const dir = cleanClone();
  changesetVersion(dir);
  const after = versions(dir);
  for (const pkg of publishablePackages(dir)) {
    expect(after[pkg.name], pkg.name).toMatch(/^0\.\d+\.\d+$/);
    expect(after[pkg.name], `${pkg.name} has a pending changeset`).not.toBe("0.0.0");
    expect(existsSync(join(pkg.dir, "CHANGELOG.md")), `${pkg.name} CHANGELOG.md`).toBe(true);
  }
}, 120_000);
