/**
 * The publishable packages of the workspace, and their tarballs as `pnpm pack` makes them (with
 * `workspace:` ranges replaced by versions, exactly what `pnpm publish` would upload).
 */
import { execFile } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { isAbsolute, join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

const run = promisify(execFile);

/** The repository's root directory. */
export const root = fileURLToPath(new URL("../../..", import.meta.url));

/** A package's manifest, as far as the checks read it. */
export interface Manifest {
  readonly name: string;
  readonly version: string;
  readonly private?: boolean;
  readonly dependencies?: Readonly<Record<string, string>>;
  readonly peerDependencies?: Readonly<Record<string, string>>;
  readonly peerDependenciesMeta?: Readonly<Record<string, { readonly optional?: boolean }>>;
  readonly exports?: unknown;
}

/** A publishable package: its name, folder and manifest. */
export interface WorkspacePackage {
  readonly name: string;
  readonly dir: string;
  readonly manifest: Manifest;
}

/** Every package under `packages/` of `repository` that is not private, sorted by name. */
export function publishablePackages(repository = root): WorkspacePackage[] {
  const base = join(repository, "packages");
  return readdirSync(base, { withFileTypes: true })
    .filter((entry) => entry.isDirectory())
    .map((entry) => {
      const dir = join(base, entry.name);
      const manifest = JSON.parse(readFileSync(join(dir, "package.json"), "utf8")) as Manifest;
      return { name: manifest.name, dir, manifest };
    })
    .filter((pkg) => pkg.manifest.private !== true)
    .sort((a, b) => a.name.localeCompare(b.name));
}

/** A packed package: the tarball and the files in it. */
export interface Packed {
  readonly name: string;
  /** Absolute path of the `.tgz`. */
  readonly tarball: string;
  /** Paths inside the package, e.g. `dist/index.js`. */
  readonly files: readonly string[];
}

/**
 * Packs `pkg` into `destination` with `pnpm pack`. The package must have been built (the root
 * `pnpm test` builds before it tests).
 */
export async function pack(pkg: WorkspacePackage, destination: string): Promise<Packed> {
  const { stdout } = await run("pnpm", ["pack", "--pack-destination", destination, "--json"], {
    cwd: pkg.dir,
    timeout: 60_000,
  });
  const report = JSON.parse(stdout) as { filename?: unknown; files?: { path?: unknown }[] };
  if (typeof report.filename !== "string" || !Array.isArray(report.files)) {
    throw new Error(`pnpm pack did not report the tarball of ${pkg.name}: ${stdout}`);
  }
  return {
    name: pkg.name,
    tarball: isAbsolute(report.filename) ? report.filename : join(destination, report.filename),
    files: report.files.map((file) => String(file.path)).sort(),
  };
}
