/**
 * Keys are data, never syntax (SPEC section 5): no (limiter, key) may share state with another,
 * whatever either looks like. Stores that build their own key names (Redis keys and hash tags,
 * SQL, NATS subjects) are where collisions and injections hide: separators, pattern characters,
 * escapes, encodings, lengths that invite truncation or hashing.
 */
import { expect } from "vitest";
import type { Engine, EngineTarget } from "../../engines/engine.js";
import { conformanceCase, policyOf, type Run, type Suite, slots, tokenBucket } from "./harness.js";

/** Characters that stores use as separators, wildcards or delimiters. */
const SEPARATORS = [":", "|", "/", ".", "*", ">", "?", " ", "{", "}", "\n", "\0", "#", "-", "_", "%", "\\", "$"];

/** Keys that look like other keys, like encodings of other keys, or like store syntax. */
function trickyKeys(): string[] {
  const long = "k".repeat(4096);
  return [
    // The shared budget, and what could be confused with it.
    "",
    " ",
    "\0",
    "a",
    "A",
    "b",
    // Separators and patterns.
    "a:b",
    "a:",
    ":b",
    ":",
    "::",
    "a::b",
    "a|b",
    "|",
    "a/b",
    "/",
    "a.b",
    ".",
    "a*",
    "*",
    "a?",
    "?",
    "[a]",
    ">",
    "a>b",
    "a.>",
    "a.*",
    "a,b",
    "a=b",
    "a&b",
    "a;b",
    // White space and control characters.
    "  ",
    "a b",
    " a",
    "a ",
    "\t",
    "\n",
    "a\nb",
    "\r\n",
    "\r",
    "a\0b",
    "\0\0",
    "a\0",
    // Redis Cluster hash tags.
    "{a}",
    "{",
    "}",
    "{}",
    "{a",
    "a}",
    "{a}:b",
    "a:{b}",
    // Escapes and encodings of the keys above.
    "%",
    "%3A",
    "a%3Ab",
    "a%3ab",
    "a\\:b",
    "a\\",
    "\\",
    '"',
    "'",
    "`",
    // biome-ignore lint/suspicious/noTemplateCurlyInString: a key that looks like a placeholder, on purpose
    "${a}",
    "--",
    "YTpi",
    "613a62",
    // Values JavaScript or a store may treat specially.
    "null",
    "undefined",
    "__proto__",
    "constructor",
    "toString",
    "0",
    "00",
    "-1",
    "1e3",
    "1000",
    // Unicode: no normalisation, no case folding.
    "🔑",
    "👍",
    "👍🏽",
    "e\u0301",
    "\u00e9",
    "ß",
    "ss",
    "\uff21",
    "İ",
    "i\u0307",
    // Client addresses: the same address written two ways is still two keys.
    "2001:db8::1",
    "2001:db8::1:0",
    "2001:db8:0:0:0:0:0:1",
    "::1",
    "::ffff:192.0.2.1",
    "192.0.2.1",
    "[2001:db8::1]:443",
    // Long keys: the longest the limiter accepts, and ones that differ only at the end.
    long,
    `${"k".repeat(4095)}l`,
    "k".repeat(4095),
  ];
}

/** Limiter ids built from `base` with the same variety, capped at the 256 characters ids may have. */
function trickyLimiters(base: string): string[] {
  const room = 256 - base.length - 1;
  return [
    base,
    `${base}:`,
    `${base}:a`,
    `${base}|a`,
    `${base}/a`,
    `${base}.a`,
    `${base}*`,
    `{${base}}`,
    `${base}{`,
    `${base}}`,
    `${base}\n`,
    `${base}\0`,
    `${base} `,
    `${base}🔑`,
    `${base}${"L".repeat(room)}`,
    `${base}${"L".repeat(room - 1)}M`,
  ];
}

/**
 * Pairs that a naive "limiter + separator + key" encoding merges: limiter "x:y" key "z" and
 * limiter "x" key "y:z", for every separator; and a key-less limiter against its prefix.
 */
function boundaryTargets(base: string): EngineTarget[] {
  const targets: EngineTarget[] = [];
  for (const sep of SEPARATORS) {
    targets.push(
      { limiter: `${base}x${sep}y`, key: "z" },
      { limiter: `${base}x`, key: `y${sep}z` },
      { limiter: `${base}x${sep}`, key: "y" },
      { limiter: `${base}x`, key: `${sep}y` },
      { limiter: `${base}x${sep}`, key: "" },
      { limiter: `${base}x${sep}y${sep}`, key: "z" },
    );
  }
  targets.push(
    { limiter: `${base}x`, key: "" },
    { limiter: `${base}xy`, key: "z" },
    { limiter: `${base}x`, key: "yz" },
  );
  return targets;
}

function dedupe(targets: readonly EngineTarget[]): EngineTarget[] {
  const seen = new Set<string>();
  return targets.filter((target) => {
    // JSON escapes every code unit that is not printable (NUL, lone surrogates), so this is exact.
    const id = JSON.stringify([target.limiter, target.key]);
    if (seen.has(id)) return false;
    seen.add(id);
    return true;
  });
}

/**
 * Gives every target a spending of its own and a lease, then checks that each still shows its
 * own state only, that leases are released only through their own target, and that resetting
 * one target resets nothing else. Every answer is also checked against the reference, which
 * holds a separate state per target: any collision shows up as a mismatch.
 */
async function expectIsolated(run: Run, engine: Engine, targets: readonly EngineTarget[]): Promise<void> {
  const policy = policyOf(tokenBucket(1, 8), slots(2, 60_000));
  const subjects = targets.map((target) => run.subject(engine, target, policy));
  const leases: string[] = [];
  for (const [i, s] of subjects.entries()) {
    const d = await s.decide(1 + (i % 7));
    expect(d.allowed, `first call of ${JSON.stringify(s.target)}`).toBe(true);
    expect(d.inUse).toBe(1);
    leases.push(d.leaseId as string);
  }
  for (const s of subjects) expect((await s.peek()).inUse).toBe(1);
  for (const [i, s] of subjects.entries()) {
    const other = leases[(i + 1) % leases.length] as string;
    expect(await s.release(other), `a lease of another target released through ${JSON.stringify(s.target)}`).toBe(
      false,
    );
    expect(await s.renew(other), `a lease of another target renewed through ${JSON.stringify(s.target)}`).toBe(
      undefined,
    );
  }
  for (const s of subjects) expect((await s.peek()).inUse).toBe(1);
  for (const [i, s] of subjects.entries()) expect(await s.release(leases[i] as string)).toBe(true);
  const first = subjects[0];
  if (first !== undefined) await first.reset();
  for (const s of subjects) await s.peek();
}

/** Registers the key isolation cases. */
export function registerKeyCases(suite: Suite): void {
  conformanceCase(
    suite,
    "keys: the shared budget and every key, however tricky, have budgets and slots of their own",
    async (run) => {
      const engine = await run.engine();
      const limiter = run.id("keys");
      await expectIsolated(run, engine, dedupe(trickyKeys().map((key) => ({ limiter, key }))));
    },
  );

  conformanceCase(
    suite,
    "keys: limiter ids are data too, and no limiter/key boundary can be shifted to merge two targets",
    async (run) => {
      const engine = await run.engine();
      const base = run.id("ids");
      const targets: EngineTarget[] = [];
      for (const limiter of trickyLimiters(base)) {
        for (const key of ["", "a", ":a", "{a}", "🔑"]) targets.push({ limiter, key });
      }
      targets.push(...boundaryTargets(run.id("boundary")));
      await expectIsolated(run, engine, dedupe(targets));
    },
  );

  conformanceCase(
    suite,
    "keys: lone UTF-16 surrogates stay distinct (a UTF-8 encoder turns them all into U+FFFD)",
    async (run) => {
      const engine = await run.engine();
      const limiter = run.id("surrogates");
      const keys = ["\ud800", "\udc00", "\udbff", "\ufffd", "\udc00\ud800", "a\ud800", "a\ufffd", "\ud83d", "🔑"];
      await expectIsolated(
        run,
        engine,
        keys.map((key) => ({ limiter, key })),
      );
    },
  );
}
