/** Helpers the store suites share. */

/** `url` without its password, for messages. */
export function displayUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password !== "") parsed.password = "***";
    return parsed.toString();
  } catch {
    return url;
  }
}

/** Calls `call` once per key, `inFlight` at a time (untimed work: priming keys before a round). */
export async function forEachKey(
  keys: readonly string[],
  inFlight: number,
  call: (key: string) => Promise<void>,
): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < keys.length) await call(keys[next++] as string);
  };
  await Promise.all(Array.from({ length: Math.min(inFlight, keys.length) }, worker));
}

/** Runs `prime`, and runs `cleanup` when it fails (the round is never handed out). */
export async function primed(prime: () => Promise<void>, cleanup: () => Promise<void>): Promise<void> {
  try {
    await prime();
  } catch (error) {
    await cleanup();
    throw error;
  }
}
