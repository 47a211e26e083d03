/**
 * The clock of the multi-process harness: the one every process of the test records with, so
 * that times from different processes can be compared (hold intervals overlapped, a kill's time
 * subtracted from another process's admission).
 */

/**
 * Milliseconds on the machine's monotonic clock (`CLOCK_MONOTONIC`, via `process.hrtime`): one
 * clock for every process of the machine, never stepped by NTP, with sub-microsecond resolution.
 * Its zero is arbitrary (about the boot), so its times compare with each other only, never with
 * epoch times such as a store's.
 *
 * Not `performance.timeOrigin + performance.now()`: each process fixes its `timeOrigin` at
 * startup from two clock readings, and a process descheduled between the two records every time
 * off by that much. Sixteen processes started at once on a loaded 2-core machine disagreed by up
 * to 8 ms, enough to make holds of 5 to 20 ms handed from one process to another look like 9
 * slots in use at once where the store never had more than 5.
 */
export function harnessNow(): number {
  return Number(process.hrtime.bigint()) / 1e6;
}
