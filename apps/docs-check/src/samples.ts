import { readFileSync } from "node:fs";

/** One runnable TypeScript sample of the documentation. */
export interface Sample {
  /** The Markdown file, relative to the repository root. */
  readonly file: string;
  /** The line of the opening fence. */
  readonly line: number;
  /** The TypeScript code. */
  readonly code: string;
  /** The TOML block right before it, which the sample expects as a file. */
  readonly toml: { readonly path: string; readonly text: string } | undefined;
}

const FENCE = /^```(\w*)\s*$/;

/** A first line such as `# config/rate-sync.toml` names where the TOML block lives. */
const TOML_PATH = /^#\s*([\w./-]+\.toml)\s*$/;

/**
 * Every ```ts block of a Markdown file. A ```toml block directly before a ```ts block (with only
 * prose between them) is the file that sample runs next to, as the docs present it:
 * `./rate-sync.toml`, or the path its first line names in a comment.
 */
export function extractSamples(root: string, file: string): Sample[] {
  const lines = readFileSync(`${root}/${file}`, "utf8").split("\n");
  const samples: Sample[] = [];
  let previous: { lang: string; code: string } | undefined;
  for (let i = 0; i < lines.length; i++) {
    const open = FENCE.exec(lines[i] as string);
    if (open === null) continue;
    const lang = open[1] ?? "";
    const start = i;
    const body: string[] = [];
    for (i++; i < lines.length && !/^```\s*$/.test(lines[i] as string); i++) body.push(lines[i] as string);
    const code = body.join("\n");
    if (lang === "ts" || lang === "typescript") {
      const toml =
        previous?.lang === "toml"
          ? { path: TOML_PATH.exec(previous.code.split("\n")[0] ?? "")?.[1] ?? "rate-sync.toml", text: previous.code }
          : undefined;
      samples.push({ file, line: start + 1, code, toml });
    }
    previous = { lang, code };
  }
  return samples;
}
