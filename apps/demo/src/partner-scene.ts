/**
 * The partner scene: many callers in this process share one limited partner API through
 * ratesync, with the limits of `rate-sync.toml` beside this app, loaded on first use (zero-config):
 * 20 calls per second with bursts of 5, and at most 4 calls in flight. Every caller just does
 * `await using slot = await acquire("partner_api")` and calls the API; the table shows, second by
 * second, that the limits hold however many callers push.
 */
import { setMaxListeners } from "node:events";
import { acquire, close, getLimiter, isRateSyncError, type Slot } from "@ratesync/core";
import { PartnerApi } from "./partner-api.js";
import { SecondBySecond } from "./report.js";

/** Runs the scene and prints its report; resolves whether the partner's limits held. */
export async function runPartnerScene(callers: number, seconds: number): Promise<boolean> {
  const limiter = getLimiter("partner_api");
  const { ratePerSecond = 0, burst = 1, maxConcurrent = 0 } = limiter.config;
  const api = new PartnerApi({ ratePerSecond, burst, maxInFlight: maxConcurrent });
  const report = new SecondBySecond();

  console.log(
    `ratesync demo: ${callers} callers share a partner API limited to ${ratePerSecond}/s (burst ${burst}) and ${maxConcurrent} in flight.`,
  );
  console.log("Limits come from apps/demo/rate-sync.toml, loaded on first use.\n");
  report.header();

  // The run ends for everyone at once: callers still waiting for the limiter give up then.
  const stop = AbortSignal.timeout(seconds * 1000);
  // Every waiting caller listens to this one signal: more than Node's default of 10 listeners.
  setMaxListeners(callers + 1, stop);
  let ticks = 0;
  const ticker = setInterval(() => {
    if (++ticks <= Math.floor(seconds)) report.flush();
  }, 1000);

  async function caller(): Promise<void> {
    while (!stop.aborted) {
      // One line does it all: wait for the rate and for a free slot, release when the block ends.
      let slot: Slot;
      try {
        slot = await acquire("partner_api", { signal: stop });
      } catch (error) {
        if (isRateSyncError(error, "ABORTED")) return;
        throw error;
      }
      await using _held = slot;
      report.started(slot.waitedMs, api.inFlight + 1);
      await api.call();
    }
  }

  await Promise.all(Array.from({ length: callers }, caller));
  clearInterval(ticker);
  report.flush(true);

  const metrics = limiter.metrics();
  console.log(
    `\n${report.totalStarted} calls in ${seconds} s (${(report.totalStarted / seconds).toFixed(1)}/s; the limit allows ${burst} + ${ratePerSecond}/s).`,
  );
  console.log(
    `Peak in flight: ${api.peakInFlight} of ${maxConcurrent} allowed. Calls the partner would have refused: ${api.violations}.`,
  );
  console.log(
    `Limiter metrics: ${metrics.totalAcquisitions} acquisitions, avg wait ${metrics.avgWaitTimeMs.toFixed(0)} ms, max wait ${metrics.maxWaitTimeMs.toFixed(0)} ms, ${metrics.maxConcurrentReached} refusals for a full house, ${metrics.currentConcurrent} slots still held.`,
  );
  await close();
  return api.violations === 0;
}
