/** Per-second counters of the demo, printed as one table row a second. */
export class SecondBySecond {
  #second = 0;
  #started = 0;
  #peakInFlight = 0;
  #waitTotal = 0;
  #waitMax = 0;
  totalStarted = 0;

  /** Prints the header row. */
  header(): void {
    console.log(" second | calls started | max in flight | avg wait | max wait");
    console.log(" -------+---------------+---------------+----------+---------");
  }

  /** Records a call that started after waiting `waitedMs` for the limiter. */
  started(waitedMs: number, inFlight: number): void {
    this.#started++;
    this.totalStarted++;
    this.#waitTotal += waitedMs;
    if (waitedMs > this.#waitMax) this.#waitMax = waitedMs;
    if (inFlight > this.#peakInFlight) this.#peakInFlight = inFlight;
  }

  /** Prints the second that just ended and starts the next; a partial last second only if it had calls. */
  flush(partial = false): void {
    if (partial && this.#started === 0) return;
    this.#second++;
    const avg = this.#started === 0 ? 0 : this.#waitTotal / this.#started;
    console.log(
      `${String(this.#second).padStart(7)} | ${String(this.#started).padStart(13)} | ${String(this.#peakInFlight).padStart(13)} | ${`${avg.toFixed(0)} ms`.padStart(8)} | ${`${this.#waitMax.toFixed(0)} ms`.padStart(8)}`,
    );
    this.#started = 0;
    this.#peakInFlight = 0;
    this.#waitTotal = 0;
    this.#waitMax = 0;
  }
}
