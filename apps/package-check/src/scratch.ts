/**
 * Scratch projects outside the workspace, installed from packed tarballs with plain npm, the way
 * a user installs ratesync, and small programs run in them as ES modules and as CommonJS.
 */
import { execFile } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";

const run = promisify(execFile);

/**
 * The environment of a user's shell: this process's, without what pnpm, vitest and the workspace
 * add. pnpm sets NODE_PATH to the workspace's packages, through which a scratch program would
 * find packages it never installed.
 */
function userEnvironment(): NodeJS.ProcessEnv {
  return Object.fromEntries(
    Object.entries(process.env).filter(
      ([name]) =>
        !/^(NODE_PATH|NODE_OPTIONS|RATESYNC_CONFIG|VITEST.*|npm_.*|PNPM_.*|pnpm_.*|TEST|INIT_CWD)$/i.test(name),
    ),
  );
}

/** A scratch project: its directory, and how to run a program there and remove it. */
export interface ScratchProject {
  readonly dir: string;
  /** Whether `node_modules/<name>` exists (what npm installed, directly or not). */
  has(name: string): boolean;
  /** Writes `file` and runs it with node; resolves its stdout, rejects with its stderr. */
  run(file: string, source: string, env?: Readonly<Record<string, string>>): Promise<string>;
  remove(): void;
}

/**
 * Creates a project in the system's temporary directory (outside the workspace, so nothing
 * resolves from the workspace's node_modules) and installs `tarballs` (package name to `.tgz`)
 * and `registry` dependencies (name to range) with `npm install`. Every @ratesync package is
 * pinned to its tarball through `overrides`, so dependencies between them never reach the registry.
 */
export async function installScratch(
  label: string,
  tarballs: Readonly<Record<string, string>>,
  registry: Readonly<Record<string, string>> = {},
  pinned: Readonly<Record<string, string>> = tarballs,
): Promise<ScratchProject> {
  const dir = mkdtempSync(join(tmpdir(), `ratesync-install-${label}-`));
  const files = Object.fromEntries(Object.entries(tarballs).map(([name, path]) => [name, `file:${path}`]));
  const overrides = Object.fromEntries(Object.entries(pinned).map(([name, path]) => [name, `file:${path}`]));
  const manifest = {
    name: `scratch-${label}`,
    version: "1.0.0",
    private: true,
    dependencies: { ...files, ...registry },
    overrides,
  };
  writeFileSync(join(dir, "package.json"), `${JSON.stringify(manifest, null, 2)}\n`);
  try {
    await run("npm", ["install", "--no-audit", "--no-fund", "--loglevel=error", "--prefer-offline"], {
      cwd: dir,
      timeout: 240_000,
      env: { ...userEnvironment(), npm_config_update_notifier: "false" },
    });
  } catch (error) {
    rmSync(dir, { recursive: true, force: true });
    const { stderr } = error as { stderr?: string };
    throw new Error(`npm install failed in the ${label} project:\n${stderr ?? String(error)}`);
  }
  return {
    dir,
    has: (name) => existsSync(join(dir, "node_modules", name, "package.json")),
    async run(file, source, env = {}) {
      writeFileSync(join(dir, file), source);
      try {
        const { stdout } = await run(process.execPath, [file], {
          cwd: dir,
          timeout: 60_000,
          env: { ...userEnvironment(), ...env },
        });
        return stdout;
      } catch (error) {
        const { stdout, stderr } = error as { stdout?: string; stderr?: string };
        throw new Error(`${file} failed in ${dir}:\n${stderr ?? ""}\n${stdout ?? ""}`);
      }
    },
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}

/** The version npm installed of `name` in `project`. */
export function installedVersion(project: ScratchProject, name: string): string {
  const manifest = JSON.parse(readFileSync(join(project.dir, "node_modules", name, "package.json"), "utf8")) as {
    version: string;
  };
  return manifest.version;
}

/**
 * One program in both module systems. `imports` maps a module to the names it gives, where
 * `"default:name"` is the module's default export (`import name from`, `require()` itself);
 * `body` runs inside an async function and prints its result as one JSON line.
 */
export function programs(
  imports: Readonly<Record<string, readonly string[]>>,
  body: string,
): { esm: string; cjs: string } {
  const lines = (esm: boolean) =>
    Object.entries(imports)
      .flatMap(([module, names]) => {
        const from = JSON.stringify(module);
        const defaults = names.filter((name) => name.startsWith("default:")).map((name) => name.slice(8));
        const named = names.filter((name) => !name.startsWith("default:"));
        return [
          ...defaults.map((name) => (esm ? `import ${name} from ${from};` : `const ${name} = require(${from});`)),
          ...(named.length === 0
            ? []
            : [
                esm
                  ? `import { ${named.join(", ")} } from ${from};`
                  : `const { ${named.join(", ")} } = require(${from});`,
              ]),
        ];
      })
      .join("\n");
  const main = `async function main() {\n${body}\n}\nmain().then((result) => { console.log(JSON.stringify(result)); }, (error) => { console.error(error); process.exitCode = 1; });\n`;
  return { esm: `${lines(true)}\n${main}`, cjs: `"use strict";\n${lines(false)}\n${main}` };
}
