/**
 * EventBridge schedule expressions (`cron(...)`, `rate(...)`), evaluated locally in UTC so the
 * local scheduler fires the jobs of `stacks/Jobs.ts` at the times AWS would.
 *
 * Supported: `rate(N minute|minutes|hour|hours|day|days)` (singular only for 1, as EventBridge
 * requires) and six-field `cron(minutes hours day-of-month month day-of-week year)` with `*`, `?`,
 * lists, ranges and `/` steps, month names JAN-DEC and weekday names SUN-SAT (1 = Sunday). Not
 * supported (refused with {@link ScheduleExpressionInvalidError}): `L`, `W`, `#`.
 */

export class ScheduleExpressionInvalidError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "ScheduleExpressionInvalidError";
  }
}

export interface Schedule {
  expression: string;
  /** The first fire time strictly after `after` (whole minutes for cron, anchor + k x interval for rate). */
  next(after: Date): Date;
}

const MINUTE = 60_000;
const RATE_UNITS: Record<string, number> = { minute: MINUTE, hour: 60 * MINUTE, day: 24 * 60 * MINUTE };
const MONTHS = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"];
const WEEKDAYS = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

/**
 * Parses a schedule expression. `anchor` is when a `rate` schedule starts counting (EventBridge:
 * when the rule is created; locally: when the scheduler starts); cron ignores it.
 */
export function parseSchedule(expression: string, anchor: Date = new Date()): Schedule {
  const expr = expression.trim();
  const rate = /^rate\(\s*(\d+)\s+([a-z]+)\s*\)$/.exec(expr);
  if (rate) return rateSchedule(expr, Number(rate[1]), rate[2], anchor);
  const cron = /^cron\((.*)\)$/.exec(expr);
  if (cron) return cronSchedule(expr, cron[1]);
  throw new ScheduleExpressionInvalidError(`'${expression}' is neither cron(...) nor rate(...)`);
}

function rateSchedule(expression: string, value: number, unit: string, anchor: Date): Schedule {
  const singular = unit.endsWith("s") ? unit.slice(0, -1) : unit;
  const ms = RATE_UNITS[singular];
  if (!ms) throw new ScheduleExpressionInvalidError(`${expression}: unit must be minute(s), hour(s) or day(s)`);
  if (!Number.isSafeInteger(value) || value < 1) throw new ScheduleExpressionInvalidError(`${expression}: value must be a positive integer`);
  // EventBridge refuses "rate(1 minutes)" and "rate(5 minute)".
  if ((value === 1) !== (unit === singular)) {
    throw new ScheduleExpressionInvalidError(`${expression}: use '${singular}' for a value of 1 and '${singular}s' otherwise`);
  }
  const interval = value * ms;
  const start = anchor.getTime();
  if (Number.isNaN(start)) throw new RangeError("invalid anchor date");
  return {
    expression,
    next(after) {
      const t = after.getTime();
      if (Number.isNaN(t)) throw new RangeError("invalid date");
      if (t < start) return new Date(start + interval);
      return new Date(start + (Math.floor((t - start) / interval) + 1) * interval);
    },
  };
}

interface CronFields {
  minutes: Set<number>;
  hours: Set<number>;
  /** undefined = `?` (the other day field decides) */
  daysOfMonth?: Set<number>;
  months: Set<number>;
  /** 1 = Sunday ... 7 = Saturday; undefined = `?` */
  daysOfWeek?: Set<number>;
  years: Set<number>;
}

function cronSchedule(expression: string, body: string): Schedule {
  const parts = body.trim().split(/\s+/);
  if (parts.length !== 6) throw new ScheduleExpressionInvalidError(`${expression}: cron needs 6 fields (minutes hours day-of-month month day-of-week year), got ${parts.length}`);
  const [min, hour, dom, month, dow, year] = parts;
  if ((dom === "?") === (dow === "?")) {
    throw new ScheduleExpressionInvalidError(`${expression}: exactly one of day-of-month and day-of-week must be '?'`);
  }
  const fields: CronFields = {
    minutes: field(expression, "minutes", min, 0, 59),
    hours: field(expression, "hours", hour, 0, 23),
    daysOfMonth: dom === "?" ? undefined : field(expression, "day-of-month", dom, 1, 31),
    months: field(expression, "month", month, 1, 12, MONTHS),
    daysOfWeek: dow === "?" ? undefined : field(expression, "day-of-week", dow, 1, 7, WEEKDAYS),
    years: field(expression, "year", year, 1970, 2199),
  };
  return { expression, next: (after) => nextCron(fields, after, expression) };
}

function field(expression: string, name: string, text: string, lo: number, hi: number, names?: string[]): Set<number> {
  const fail = (why: string): never => {
    throw new ScheduleExpressionInvalidError(`${expression}: ${name} '${text}': ${why}`);
  };
  const value = (v: string): number => {
    const named = names?.indexOf(v.toUpperCase()) ?? -1;
    const n = named >= 0 ? named + 1 : /^\d+$/.test(v) ? Number(v) : fail(`'${v}' is not a number${names ? " or a name" : ""} (L, W and # are not supported locally)`);
    if (n < lo || n > hi) fail(`${n} is outside ${lo}-${hi}`);
    return n;
  };
  const out = new Set<number>();
  for (const item of text.split(",")) {
    const [range, stepText, extra] = item.split("/");
    if (extra !== undefined) fail("more than one '/'");
    const step = stepText === undefined ? 1 : /^\d+$/.test(stepText) && Number(stepText) > 0 ? Number(stepText) : fail(`step '${stepText}' must be a positive integer`);
    let from: number;
    let to: number;
    if (range === "*") [from, to] = [lo, hi];
    else if (range.includes("-")) {
      const [a, b] = range.split("-");
      [from, to] = [value(a), value(b)];
      if (from > to) fail(`range ${range} runs backwards`);
    } else {
      from = value(range);
      // `5/15` means 5, 20, 35, 50: from the value to the end of the field
      to = stepText === undefined ? from : hi;
    }
    for (let v = from; v <= to; v += step) out.add(v);
  }
  return out;
}

function nextCron(f: CronFields, after: Date, expression: string): Date {
  const t0 = after.getTime();
  if (Number.isNaN(t0)) throw new RangeError("invalid date");
  // Whole minutes only: the first candidate is the minute after the one `after` falls in.
  let d = new Date(Math.floor(t0 / MINUTE) * MINUTE + MINUTE);
  const lastYear = Math.max(...f.years);
  for (;;) {
    const y = d.getUTCFullYear();
    if (y > lastYear) throw new ScheduleExpressionInvalidError(`${expression}: no fire time after ${after.toISOString()}`);
    if (!f.years.has(y)) {
      d = new Date(Date.UTC(y + 1, 0, 1));
      continue;
    }
    if (!f.months.has(d.getUTCMonth() + 1)) {
      d = new Date(Date.UTC(y, d.getUTCMonth() + 1, 1));
      continue;
    }
    const dayOk = f.daysOfMonth ? f.daysOfMonth.has(d.getUTCDate()) : f.daysOfWeek!.has(d.getUTCDay() + 1);
    if (!dayOk) {
      d = new Date(Date.UTC(y, d.getUTCMonth(), d.getUTCDate() + 1));
      continue;
    }
    if (!f.hours.has(d.getUTCHours())) {
      d = new Date(Date.UTC(y, d.getUTCMonth(), d.getUTCDate(), d.getUTCHours() + 1));
      continue;
    }
    if (!f.minutes.has(d.getUTCMinutes())) {
      d = new Date(d.getTime() + MINUTE);
      continue;
    }
    return d;
  }
}
