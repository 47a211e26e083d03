/**
 * How results are shown: a plain-text table for the terminal, a list of targets with what the run
 * shows of each (PASS, BELOW TARGET or UNRESOLVED), and a JSON document for tools (and for
 * comparing runs over time).
 */
import { mkdir, writeFile } from "node:fs/promises";
import { cpus, platform, release } from "node:os";
import { dirname } from "node:path";
import { type CaseResult, RANGE_CONFIDENCE, type RatioResult } from "./harness.js";
import type { MedianInterval } from "./stats.js";

/** The machine and software a run measured, so two result files can be told apart. */
export interface RunEnvironment {
  /** When the run ended, ISO 8601. */
  readonly date: string;
  /** `process.version`. */
  readonly node: string;
  /** V8 version. */
  readonly v8: string;
  /** OS and kernel. */
  readonly os: string;
  /** CPU model. */
  readonly cpu: string;
  /** Logical CPUs. */
  readonly cpus: number;
  /** Versions of the libraries measured, by package name, and of the servers (`redis-server`). */
  readonly packages: Readonly<Record<string, string>>;
}

/** A suite that did not run because its backend could not be reached. */
export interface SkippedSuite {
  /** The suite. */
  readonly suite: string;
  /** Why, and what to do about it. */
  readonly reason: string;
}

/** The JSON document written by `--json`. */
export interface BenchReport {
  /**
   * Format version of this document. 2: rounds per suite, ratios against ceilings too (`against`
   * and `role` instead of `peer`), skipped suites.
   */
  readonly version: 2;
  /** Where it ran. */
  readonly environment: RunEnvironment;
  /** How long it measured. */
  readonly settings: {
    /** Timed rounds per contender, by suite. */
    readonly rounds: Readonly<Record<string, number>>;
    /** Length of one round, in seconds. */
    readonly seconds: number;
    /** Untimed warm-up per contender and case, in seconds. */
    readonly warmupSeconds: number;
    /** ratesync's algorithm. */
    readonly algorithm: string;
  };
  /** One entry per case. */
  readonly results: readonly CaseResult[];
  /** Suites that could not run. */
  readonly skipped: readonly SkippedSuite[];
}

/** Describes this process's machine and runtime. */
export function describeEnvironment(packages: Readonly<Record<string, string>>): RunEnvironment {
  const cpuList = cpus();
  return {
    date: new Date().toISOString(),
    node: process.version,
    v8: process.versions.v8,
    os: `${platform()} ${release()}`,
    cpu: cpuList[0]?.model.trim() ?? "unknown",
    cpus: cpuList.length,
    packages,
  };
}

function formatOps(opsPerSec: number): string {
  return Math.round(opsPerSec).toLocaleString("en-US");
}

/** Latencies from 1 µs to minutes, in the unit that keeps three significant digits readable. */
function formatMs(ms: number | undefined): string {
  if (ms === undefined) return "-";
  if (ms < 1) return `${(ms * 1000).toPrecision(3)} µs`;
  if (ms < 1000) return `${ms.toPrecision(3)} ms`;
  return `${(ms / 1000).toPrecision(3)} s`;
}

function formatRatio(ratio: number): string {
  return `${ratio.toFixed(2)}x`;
}

/** Spread of the rounds around the median, in percent: how far to trust the median. */
function spread(rounds: readonly number[], median: number): string {
  if (rounds.length < 2) return "-";
  const low = Math.min(...rounds);
  const high = Math.max(...rounds);
  return `-${(((median - low) / median) * 100).toFixed(1)}% +${(((high - median) / median) * 100).toFixed(1)}%`;
}

function table(
  header: readonly string[],
  rows: readonly (readonly string[])[],
  rightAligned: ReadonlySet<number>,
): string {
  const widths = header.map((cell, column) => Math.max(cell.length, ...rows.map((row) => (row[column] ?? "").length)));
  const line = (cells: readonly string[]) =>
    cells
      .map((cell, column) => {
        const width = widths[column] as number;
        return rightAligned.has(column) ? cell.padStart(width) : cell.padEnd(width);
      })
      .join("  ")
      .trimEnd();
  return [line(header), widths.map((width) => "-".repeat(width)).join("  "), ...rows.map(line)].join("\n");
}

/**
 * The results as a table: one row per contender and case, with the median ops/s, the spread of
 * the rounds around it, p50/p99 where calls were timed, and on each peer's and ceiling's row the
 * ratio ours / that contender (above 1.00x: ratesync is faster).
 */
export function formatResults(results: readonly CaseResult[]): string {
  const rows: string[][] = [];
  for (const result of results) {
    for (const contender of result.contenders) {
      const ratio = result.ratios.find((entry) => entry.against === contender.name);
      rows.push([
        `${result.suite} / ${result.case}`,
        contender.name,
        String(result.inFlight),
        formatOps(contender.opsPerSec),
        spread(contender.roundOpsPerSec, contender.opsPerSec),
        formatMs(contender.p50Ms),
        formatMs(contender.p99Ms),
        ratio === undefined ? "" : formatRatio(ratio.ratio),
      ]);
    }
  }
  const header = ["case", "contender", "in flight", "ops/s (median)", "rounds vs median", "p50", "p99", "ours/this"];
  return table(header, rows, new Set([2, 3, 4, 5, 6, 7]));
}

/** A ratio's confidence interval, with its confidence when too few rounds give it the usual 90 %. */
function formatRange(interval: MedianInterval): string {
  const range = `${interval.low.toFixed(2)}-${formatRatio(interval.high)}`;
  return interval.confidence < RANGE_CONFIDENCE ? `${range} (${Math.round(interval.confidence * 100)}%)` : range;
}

/** The verdict column of a target: what the run shows, and for a miss, the shortfall. */
function formatVerdict(ratio: RatioResult, minRatio: number): string {
  switch (ratio.verdict) {
    case "met":
      return "PASS";
    case "missed":
      return `BELOW TARGET (needs ${(((minRatio - ratio.ratio) / ratio.ratio) * 100).toFixed(0)}% more ops/s)`;
    default:
      return "UNRESOLVED (the range holds the target: more rounds, or a quieter machine)";
  }
}

/**
 * The targets and what the run shows of each. Speed is reported here, never asserted: a miss
 * prints BELOW TARGET with the shortfall, and the run still succeeds. The range is the 90%
 * confidence interval of the ratio (from the rounds' ratios, pair by pair; with fewer than 5
 * rounds, all of them, at the lower confidence shown beside it); only a range clear of the target
 * gives PASS or BELOW TARGET, one across it gives UNRESOLVED.
 */
export function formatTargets(results: readonly CaseResult[]): string {
  const rows: string[][] = [];
  for (const result of results) {
    for (const ratio of result.ratios) {
      if (ratio.minRatio === undefined) continue;
      rows.push([
        `${result.suite} / ${result.case}`,
        `ratesync vs ${ratio.against}${ratio.role === "ceiling" ? " (ceiling)" : ""}`,
        `>= ${ratio.minRatio.toFixed(1)}x`,
        formatRatio(ratio.ratio),
        formatRange(ratio.interval),
        formatVerdict(ratio, ratio.minRatio),
      ]);
    }
  }
  if (rows.length === 0) return "No targets for the cases run.";
  return table(["case", "comparison", "target", "measured", "range", "verdict"], rows, new Set([2, 3, 4]));
}

/** Writes `report` as JSON to `path`, creating its folder. */
export async function writeReport(path: string, report: BenchReport): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  await writeFile(path, `${JSON.stringify(report, null, 2)}\n`, "utf8");
}
