/**
 * The measuring loop every suite shares: warm-up, then alternating timed rounds of each
 * contender, N calls in flight, ops/s per round, the median, optional latency percentiles, and a
 * correctness check after every round so that a limiter that answers wrongly cannot look fast.
 */
import { LatencyHistogram, type MedianInterval, median, medianInterval } from "./stats.js";

/**
 * What a contender is in a case. `ours` is ratesync; a `peer` is the library it is compared with
 * (the ratio is ours / peer, and above 1 ratesync is faster); a `ceiling` is the raw client with
 * no limiter at all (one round trip of a trivial command: how fast the store itself answers).
 * ratesync is never expected to beat a ceiling: ours / ceiling says how close it gets to it.
 */
export type Role = "ours" | "peer" | "ceiling";

/**
 * One timed round of one contender, with fresh state (a new limiter, an empty store), so what
 * one round leaves behind never helps or hurts the next.
 */
export interface Round {
  /**
   * Makes call number `index` (0, 1, 2, ... within the round) and resolves when it is answered.
   * It counts the outcome for {@link Round.verify}; it must not throw for a refusal.
   */
  call(index: number): Promise<void>;
  /**
   * Checks, after the round, that the `calls` calls got the answers the case expects (all
   * admitted, all refused...). Throws a {@link VerificationError} when not.
   */
  verify(calls: number): void;
  /** Frees what the round holds (closes the registry, clears timers); not timed. */
  dispose?(): Promise<void> | void;
}

/** One library measured in a case. */
export interface Contender {
  /** Name shown in the table, e.g. `ratesync` or `rate-limiter-flexible`. */
  readonly name: string;
  /** What it is in the comparison. */
  readonly role: Role;
  /** Builds a fresh {@link Round}: limiter, store and priming calls, none of it timed. */
  start(): Promise<Round>;
}

/** A minimum ratio ours / another contender that a case aims for. */
export interface Target {
  /** The contender (a peer or a ceiling) the ratio is taken against, by name. */
  readonly against: string;
  /** The lowest acceptable ops/s ratio ours / that contender (1.0 = as fast). */
  readonly minRatio: number;
}

/** One thing measured: the same work done by each contender. */
export interface BenchCase {
  /** Suite the case belongs to (`memory`, later `redis`, `postgres`...). */
  readonly suite: string;
  /** Short name, shown in the table. */
  readonly name: string;
  /** What one call does and what answer it must get, for the README and the JSON. */
  readonly description: string;
  /**
   * Calls kept in flight at once. 1 means each call is awaited before the next starts (the honest
   * number for an in-process limiter); network engines need 64 or 256 to fill the pipe.
   */
  readonly inFlight: number;
  /**
   * Whether to time every call for p50/p99. Off for in-process cases, where two clock reads
   * would cost about as much as the call being measured.
   */
  readonly latency: boolean;
  /** Contenders, ours first by convention. */
  readonly contenders: readonly Contender[];
  /** The ratios the case aims for, if any: at most one per contender. */
  readonly targets?: readonly Target[] | undefined;
}

/** A group of cases that share a backend (and its connection). */
export interface Suite {
  /** Name used by `--suite`. */
  readonly name: string;
  /** Its cases, in the order they run and print. */
  readonly cases: readonly BenchCase[];
  /**
   * Timed rounds per contender when `--rounds` is not given, for a full and a `--quick` run: a
   * suite of many network cases takes fewer, so that a full run stays a few minutes long.
   */
  readonly defaultRounds: { readonly full: number; readonly quick: number };
  /** The packages it measures, whose installed versions the report records. */
  readonly packages: readonly string[];
  /**
   * Connects to the backend, once, before the first case that runs (not at all when `--case`
   * selects none). Resolves to the versions of the servers it talks to, for the report
   * (`{ "redis-server": "7.2.4" }`); rejects with a {@link SuiteUnavailableError} when the backend
   * cannot be reached.
   */
  open?(): Promise<Readonly<Record<string, string>>>;
  /** Frees what the suite holds (connections); called once after its last case, even if `open` failed. */
  close?(): Promise<void>;
}

/** How long to measure. */
export interface RunSettings {
  /** Timed rounds per contender. */
  readonly rounds: number;
  /** Length of one timed round, in seconds. */
  readonly seconds: number;
  /** Untimed warm-up per contender, in seconds. */
  readonly warmupSeconds: number;
  /** Where progress lines go (stderr by default), so stdout keeps only the report. */
  readonly progress?: ((line: string) => void) | undefined;
}

/** What was measured for one contender in one case. */
export interface ContenderResult {
  /** The contender's name. */
  readonly name: string;
  /** Its role. */
  readonly role: Role;
  /** Median of {@link ContenderResult.roundOpsPerSec}: the number to compare. */
  readonly opsPerSec: number;
  /** Calls per second of each timed round, in the order they ran. */
  readonly roundOpsPerSec: readonly number[];
  /** Calls made in all timed rounds together (each of them checked). */
  readonly calls: number;
  /** Median latency over all timed rounds, in ms; `undefined` when the case does not time calls. */
  readonly p50Ms: number | undefined;
  /** 99th percentile latency over all timed rounds, in ms; `undefined` when not timed. */
  readonly p99Ms: number | undefined;
}

/**
 * What a run shows of a target: `met` when the whole confidence interval of the ratio is at or
 * above it, `missed` when the whole interval is below it, `unresolved` when the interval holds
 * the target (the rounds disagree more than ratesync and the other contender differ: run more
 * rounds, or on a quieter machine).
 */
export type Verdict = "met" | "missed" | "unresolved";

/** A ratio ours / another contender, and what the run shows of the case's target. */
export interface RatioResult {
  /** The contender ours is divided by. */
  readonly against: string;
  /** Its role: a peer (a library to beat) or a ceiling (the raw store, to get close to). */
  readonly role: Exclude<Role, "ours">;
  /**
   * The median of {@link RatioResult.roundRatios}. Ratios are taken round by round because the
   * two rounds of a pair run back to back: whatever slows the machine for a while weighs on both,
   * and cancels out of their ratio.
   */
  readonly ratio: number;
  /** Ops/s of ours divided by that contender's, round by round, in the order the rounds ran. */
  readonly roundRatios: readonly number[];
  /** The range that holds the true median ratio with 90% confidence, from {@link medianInterval}. */
  readonly interval: MedianInterval;
  /** The case's target against this contender, if any. */
  readonly minRatio: number | undefined;
  /** What the run shows of the target; `undefined` when there is no target. */
  readonly verdict: Verdict | undefined;
}

/** Everything measured for one case. */
export interface CaseResult {
  /** The suite. */
  readonly suite: string;
  /** The case name. */
  readonly case: string;
  /** What the case measures. */
  readonly description: string;
  /** Calls kept in flight. */
  readonly inFlight: number;
  /** Per contender, in the case's order. */
  readonly contenders: readonly ContenderResult[];
  /** Ours against each peer and each ceiling. */
  readonly ratios: readonly RatioResult[];
}

/** A round whose calls did not get the answers the case expects: the numbers would be meaningless. */
export class VerificationError extends Error {
  override readonly name = "VerificationError";
}

/**
 * A suite whose backend cannot be reached (no server listening, wrong address). `main` skips the
 * suite with this message, or fails with it when the suite was asked for by name.
 */
export class SuiteUnavailableError extends Error {
  override readonly name = "SuiteUnavailableError";
}

/**
 * Throws a {@link VerificationError} naming `what` when `actual !== expected`. For
 * {@link Round.verify}: count admitted and refused calls, then check them with this.
 */
export function expectCount(what: string, actual: number, expected: number): void {
  if (actual !== expected) {
    throw new VerificationError(
      `${what}: expected ${expected}, got ${actual}. The limiter did not answer as the case requires.`,
    );
  }
}

/**
 * Calls kept between two clock reads are sized so that a batch lasts about this long: long enough
 * that reading the clock costs nothing next to a sub-microsecond call, short enough that a round
 * overshoots its end by a negligible fraction.
 */
const BATCH_TARGET_MS = 0.5;
const MAX_BATCH = 16_384;

/** Collects garbage between rounds when the process runs with `--expose-gc` (the start script does). */
const collectGarbage: () => void =
  typeof (globalThis as { gc?: unknown }).gc === "function"
    ? (globalThis as unknown as { gc: () => void }).gc
    : () => {};

interface Timed {
  readonly calls: number;
  readonly elapsedMs: number;
  /** CPU time this process spent meanwhile (every thread: the main one, GC, libuv), in ms. */
  readonly cpuMs: number;
}

/**
 * Runs `round` until `durationMs` has passed, keeping `inFlight` calls going. Every worker makes
 * `batch` calls between clock reads. With `histogram`, each call is timed and recorded.
 */
async function drive(
  round: Round,
  durationMs: number,
  inFlight: number,
  batch: number,
  histogram: LatencyHistogram | undefined,
): Promise<Timed> {
  let next = 0;
  const cpuStart = process.cpuUsage();
  const start = performance.now();
  const endAt = start + durationMs;
  const worker = async (): Promise<void> => {
    for (;;) {
      if (histogram === undefined) {
        for (let j = 0; j < batch; j++) await round.call(next++);
      } else {
        for (let j = 0; j < batch; j++) {
          const t0 = performance.now();
          await round.call(next++);
          histogram.record(performance.now() - t0);
        }
      }
      if (performance.now() >= endAt) return;
    }
  };
  if (inFlight === 1) {
    await worker();
  } else {
    const workers: Promise<void>[] = [];
    for (let i = 0; i < inFlight; i++) workers.push(worker());
    await Promise.all(workers);
  }
  const elapsedMs = performance.now() - start;
  const cpu = process.cpuUsage(cpuStart);
  return { calls: next, elapsedMs, cpuMs: (cpu.user + cpu.system) / 1000 };
}

/** The confidence asked of the interval of every ratio (fewer than 5 rounds cannot give it). */
export const RANGE_CONFIDENCE = 0.9;

/** What `interval`, the confidence interval of a ratio, shows of the target `minRatio`. */
export function verdictOf(interval: MedianInterval, minRatio: number): Verdict {
  if (interval.low >= minRatio) return "met";
  if (interval.high < minRatio) return "missed";
  return "unresolved";
}

/** Starts a round, drives it, checks its answers and frees it. */
async function runRound(
  contender: Contender,
  durationMs: number,
  inFlight: number,
  batch: number,
  histogram: LatencyHistogram | undefined,
): Promise<Timed> {
  const round = await contender.start();
  try {
    const timed = await drive(round, durationMs, inFlight, batch, histogram);
    round.verify(timed.calls);
    return timed;
  } finally {
    await round.dispose?.();
    // Collected now, untimed: one contender's garbage is never collected on the other's clock.
    collectGarbage();
  }
}

function stderr(line: string): void {
  process.stderr.write(`${line}\n`);
}

function formatRate(opsPerSec: number): string {
  return `${Math.round(opsPerSec).toLocaleString("en-US")} ops/s`;
}

/**
 * Measures one case: each contender is warmed up (which also sizes the batch between clock
 * reads), then runs `rounds` timed rounds. Rounds alternate between contenders, in the order
 * A B, B A, A B... so that a slow drift of the machine (heat, another process) weighs on both
 * alike; each contender's number is the median of its rounds, and each ratio the median of the
 * ratios of its rounds, pair by pair, with a confidence interval that says whether the run can
 * tell the contenders apart.
 *
 * @throws VerificationError when any round, warm-up included, gets wrong answers.
 */
export async function runCase(benchCase: BenchCase, settings: RunSettings): Promise<CaseResult> {
  const progress = settings.progress ?? stderr;
  const { contenders, inFlight } = benchCase;
  const label = `${benchCase.suite} / ${benchCase.name}`;
  for (const target of benchCase.targets ?? []) {
    // A misspelt name would silently drop the target from the report.
    if (!contenders.some((contender) => contender.name === target.against && contender.role !== "ours")) {
      throw new Error(`${label}: the target against "${target.against}" names no peer or ceiling of the case.`);
    }
  }

  // Warm-up: JIT the paths, and time a call. One batch size for every contender of the case, so
  // the loop around the calls is the same for all; sized on the fastest.
  let fastestCallMs = Number.POSITIVE_INFINITY;
  for (const contender of contenders) {
    const warm = await runRound(contender, settings.warmupSeconds * 1000, inFlight, 64, undefined);
    const callMs = (warm.elapsedMs * inFlight) / Math.max(1, warm.calls);
    fastestCallMs = Math.min(fastestCallMs, callMs);
    progress(`${label}: warm-up ${contender.name} ${formatRate((warm.calls * 1000) / warm.elapsedMs)}`);
  }
  const batch = Math.max(1, Math.min(MAX_BATCH, Math.round(BATCH_TARGET_MS / fastestCallMs)));

  const perRound = contenders.map(() => [] as number[]);
  const calls = contenders.map(() => 0);
  const histograms = contenders.map(() => (benchCase.latency ? new LatencyHistogram() : undefined));
  for (let r = 0; r < settings.rounds; r++) {
    const order = contenders.map((_, index) => index);
    if (r % 2 === 1) order.reverse();
    for (const index of order) {
      const contender = contenders[index] as Contender;
      const timed = await runRound(contender, settings.seconds * 1000, inFlight, batch, histograms[index]);
      const opsPerSec = (timed.calls * 1000) / timed.elapsedMs;
      (perRound[index] as number[]).push(opsPerSec);
      calls[index] = (calls[index] as number) + timed.calls;
      progress(
        // CPU time well below wall time means the process waited for a CPU: another process was busy.
        `${label}: round ${r + 1}/${settings.rounds} ${contender.name} ${formatRate(opsPerSec)} (cpu/wall ${(timed.cpuMs / timed.elapsedMs).toFixed(2)})`,
      );
    }
  }

  const results: ContenderResult[] = contenders.map((contender, index) => {
    const rounds = perRound[index] as number[];
    const histogram = histograms[index];
    return {
      name: contender.name,
      role: contender.role,
      opsPerSec: median(rounds),
      roundOpsPerSec: rounds,
      calls: calls[index] as number,
      p50Ms: histogram?.percentile(0.5),
      p99Ms: histogram?.percentile(0.99),
    };
  });
  const ours = results.find((result) => result.role === "ours");
  const ratios: RatioResult[] = [];
  if (ours !== undefined) {
    for (const other of results) {
      if (other.role === "ours") continue;
      const roundRatios = ours.roundOpsPerSec.map((ops, r) => ops / (other.roundOpsPerSec[r] as number));
      const interval = medianInterval(roundRatios, RANGE_CONFIDENCE);
      const minRatio = benchCase.targets?.find((target) => target.against === other.name)?.minRatio;
      ratios.push({
        against: other.name,
        role: other.role,
        ratio: median(roundRatios),
        roundRatios,
        interval,
        minRatio,
        verdict: minRatio === undefined ? undefined : verdictOf(interval, minRatio),
      });
    }
  }
  return {
    suite: benchCase.suite,
    case: benchCase.name,
    description: benchCase.description,
    inFlight,
    contenders: results,
    ratios,
  };
}
