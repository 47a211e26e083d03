/**
 * A simulated external API with the limits of a real partner: it answers after 50 to 250 ms, and
 * it counts every call that breaks its terms (more than `ratePerSecond` over any second after the
 * first burst, or more than `maxInFlight` at once), the calls a real partner would answer 429.
 */
export class PartnerApi {
  readonly maxInFlight: number;
  readonly burst: number;
  readonly ratePerSecond: number;
  inFlight = 0;
  peakInFlight = 0;
  violations = 0;
  readonly #starts: number[] = [];

  constructor(limits: { ratePerSecond: number; burst: number; maxInFlight: number }) {
    this.ratePerSecond = limits.ratePerSecond;
    this.burst = limits.burst;
    this.maxInFlight = limits.maxInFlight;
  }

  /** One call: checks the partner's terms, then takes 50 to 250 ms. */
  async call(): Promise<void> {
    const now = performance.now();
    this.#starts.push(now);
    this.inFlight++;
    this.peakInFlight = Math.max(this.peakInFlight, this.inFlight);
    if (this.inFlight > this.maxInFlight) this.violations++;
    // A token bucket of `burst` at `ratePerSecond` allows at most burst + rate * t calls in any t
    // seconds. One call of slack: a start is observed a little after its admission (the event loop
    // may be busy), which can move one start into a window it was not admitted in.
    const windowStart = now - 1000;
    const lastSecond = this.#starts.filter((start) => start > windowStart).length;
    if (lastSecond > this.burst + this.ratePerSecond + 1) this.violations++;
    try {
      await new Promise((resolve) => setTimeout(resolve, 50 + Math.random() * 200));
    } finally {
      this.inFlight--;
    }
  }
}
