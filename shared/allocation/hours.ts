/** The hour (yyyy-mm-ddTHH, UTC) before the one `now` falls in. */
export function previousHour(now: Date): string {
  if (Number.isNaN(now.getTime())) throw new RangeError("invalid date");
  return new Date(now.getTime() - 3_600_000).toISOString().slice(0, 13);
}
