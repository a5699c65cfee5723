/** The hour (yyyy-mm-ddTHH, UTC) before the one `now` falls in. */
export function previousHour(now: Date): string {
  if (Number.isNaN(now.getTime())) throw new RangeError("invalid date");
  return new Date(now.getTime() - 3_600_000).toISOString().slice(0, 13);
}

/**
 * How many hours the hourly job re-checks for late usage (the previous hour included) when
 * not configured. Late SageMaker events arrive minutes to hours late; an event later than
 * this is re-split only by an operator (`npm run cli -- allocate --hour ...`).
 */
export const DEFAULT_REALLOCATION_LOOKBACK_HOURS = 24;

/** `count` hours ending with `hour` (yyyy-mm-ddTHH, UTC), newest first. */
export function hoursEndingAt(hour: string, count: number): string[] {
  if (!Number.isSafeInteger(count) || count < 1) throw new RangeError(`count must be a positive integer, got ${count}`);
  const end = Date.parse(`${hour}:00:00Z`);
  if (!/^\d{4}-\d{2}-\d{2}T\d{2}$/.test(hour) || Number.isNaN(end)) throw new RangeError(`hour must be yyyy-mm-ddTHH, got '${hour}'`);
  return Array.from({ length: count }, (_, i) => new Date(end - i * 3_600_000).toISOString().slice(0, 13));
}
