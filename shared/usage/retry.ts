/** A write that throttling or a conflict cancelled: nothing landed, the same write may be retried. */
export interface Retryable {
  kind: "retryable";
  reason: string;
}

export interface RetryOptions {
  maxAttempts: number;
  sleep: (ms: number) => Promise<void>;
  random: () => number;
}

/**
 * Calls `write` until it returns something other than `retryable`, with full-jitter backoff
 * between attempts; after `maxAttempts` it returns the last `retryable`. A throw is not
 * retried: the caller decides what an unknown outcome means.
 */
export async function retryWrites<T extends { kind: string }>(write: () => Promise<T | Retryable>, opts: RetryOptions): Promise<T | Retryable> {
  let result = await write();
  for (let attempt = 1; result.kind === "retryable" && attempt < opts.maxAttempts; attempt++) {
    await opts.sleep(backoffMs(attempt, opts.random));
    result = await write();
  }
  return result;
}

/** Full-jitter exponential backoff: 25 ms base, 2 s cap. */
export function backoffMs(attempt: number, random: () => number = Math.random): number {
  return Math.round(random() * Math.min(2000, 25 * 2 ** attempt));
}
