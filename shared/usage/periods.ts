/**
 * Aggregation periods, all in UTC and derived from the event time (`occurredAt`), so a late
 * event lands in the period it happened in, not the one it arrived in.
 */
export type Granularity = "month" | "day" | "hour" | "minute";

export interface Periods {
  month: string; // 2026-11
  day: string; // 2026-11-25
  hour: string; // 2026-11-25T20
  minute: string; // 2026-11-25T20:36
}

export function periodsOf(at: Date | string): Periods {
  const iso = (typeof at === "string" ? new Date(at) : at).toISOString();
  return {
    month: iso.slice(0, 7),
    day: iso.slice(0, 10),
    hour: iso.slice(0, 13),
    minute: iso.slice(0, 16),
  };
}

export const MONTH_PATTERN = /^\d{4}-(0[1-9]|1[0-2])$/;
export const DAY_PATTERN = /^\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])$/;

/** First instant of the month after `month` (yyyy-mm). */
export function nextMonthStart(month: string): Date {
  const [y, m] = month.split("-").map(Number);
  return new Date(Date.UTC(y, m, 1));
}

/** Every day (yyyy-mm-dd) from `from` to `to`, inclusive. */
export function daysBetween(from: string, to: string): string[] {
  const out: string[] = [];
  const end = Date.parse(`${to}T00:00:00Z`);
  for (let t = Date.parse(`${from}T00:00:00Z`); t <= end; t += 86_400_000) {
    out.push(new Date(t).toISOString().slice(0, 10));
  }
  return out;
}

/** Every month (yyyy-mm) from the month of `from` to the month of `to`, inclusive. */
export function monthsBetween(from: string, to: string): string[] {
  const out: string[] = [];
  let [y, m] = from.slice(0, 7).split("-").map(Number);
  const [ty, tm] = to.slice(0, 7).split("-").map(Number);
  while (y < ty || (y === ty && m <= tm)) {
    out.push(`${y}-${String(m).padStart(2, "0")}`);
    m += 1;
    if (m === 13) {
      m = 1;
      y += 1;
    }
  }
  return out;
}
