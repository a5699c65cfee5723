import type { UsageCounters } from "./model";

/**
 * The noisy-neighbour minute windows, kept on the tenant-hour aggregate item (no item of their
 * own): per UTC minute of event time, two top-level numbers, `mw<MM>r` (requests) and `mw<MM>t`
 * (tokens as the tokens-per-minute limit counts them), MM being the minute of the hour (00-59).
 * Each write also removes the minutes of that hour that no evaluation reads any more, so the
 * item carries only the last few minutes: those the writer knows are there (the item as its last
 * write returned it), or else every minute below the cut.
 */

/** What the per-minute limits count of one minute. */
export interface MinuteCounters {
  requests: number;
  /** Input + output + cache-write input tokens (see {@link limitTokens}). */
  tokens: number;
}

/** Minutes kept below the newest one a write adds (5: the item carries at most 6 minutes in order). */
export const MINUTE_KEEP = 5;

/** Tokens as the quotas count them: input + output + cache-write input (cache reads are not counted). */
export function limitTokens(c: Partial<UsageCounters>): number {
  return (c.inputTokens ?? 0) + (c.outputTokens ?? 0) + (c.cacheWriteInputTokens ?? 0);
}

const MINUTE_RE = /^\d{4}-\d{2}-\d{2}T\d{2}:(\d{2})$/;

function minuteIndex(minute: string): number {
  const m = MINUTE_RE.exec(minute);
  const i = m ? Number(m[1]) : NaN;
  if (!(i >= 0 && i < 60)) throw new RangeError(`not a minute (yyyy-mm-ddThh:mm): ${minute}`);
  return i;
}

const pad = (i: number) => String(i).padStart(2, "0");
const namesOf = (i: number) => ({ requests: `mw${pad(i)}r`, tokens: `mw${pad(i)}t` });

/** The attribute names of a minute (yyyy-mm-ddThh:mm) on its tenant-hour item. */
export function minuteAttributeNames(minute: string): { requests: string; tokens: string } {
  return namesOf(minuteIndex(minute));
}

export interface MinuteWindowUpdate {
  /** Attributes to ADD (numbers). */
  adds: Record<string, number>;
  /** Attributes to REMOVE: never one of `adds` (DynamoDB refuses overlapping paths). */
  removes: string[];
}

/**
 * The minute-window part of one tenant-hour update: ADD the minutes of `minutes` (all of the
 * same hour), REMOVE the minutes of that hour older than the newest minute added, less `keep`.
 *
 * The newest minute is capped at the minute of `now` when `now` falls in the same hour, and
 * nothing is removed from an hour after `now`'s (clock-skewed events): an event from the
 * future never removes the minute the quota is reading. A late event for an old minute only
 * removes minutes older than its own, never newer ones. Minutes below the cut are not added
 * either: no evaluation reads a minute that has ended.
 */
export function minuteWindowUpdate(
  minutes: Readonly<Record<string, MinuteCounters>>,
  now: Date,
  keep: number = MINUTE_KEEP,
  /** Minutes of the hour (0-59) known to be on the item; removes only those. Unknown: every minute below the cut. */
  present?: readonly number[],
): MinuteWindowUpdate {
  const entries = Object.entries(minutes);
  if (entries.length === 0) return { adds: {}, removes: [] };
  if (!Number.isInteger(keep) || keep < 0) throw new RangeError(`keep must be a non-negative integer, got ${keep}`);
  const hour = entries[0][0].slice(0, 13);
  let newest = -1;
  for (const [minute] of entries) {
    if (minute.slice(0, 13) !== hour) throw new RangeError(`minutes of one hour expected, got ${entries[0][0]} and ${minute}`);
    newest = Math.max(newest, minuteIndex(minute));
  }
  const nowMinute = now.toISOString().slice(0, 16);
  const nowHour = nowMinute.slice(0, 13);
  // First minute kept: everything below it is removed (or not added).
  let cut: number;
  if (nowHour < hour) cut = 0; // an hour ahead of the clock: every minute of it is still to come
  else if (nowHour === hour) cut = Math.min(newest, minuteIndex(nowMinute)) - keep;
  else cut = newest - keep;

  const adds: Record<string, number> = {};
  for (const [minute, c] of entries) {
    const i = minuteIndex(minute);
    if (i < cut || (c.requests === 0 && c.tokens === 0)) continue;
    const n = namesOf(i);
    adds[n.requests] = (adds[n.requests] ?? 0) + c.requests;
    adds[n.tokens] = (adds[n.tokens] ?? 0) + c.tokens;
  }
  const removes: string[] = [];
  for (const i of present ?? Array.from({ length: Math.max(0, cut) }, (_, i) => i)) {
    if (i >= cut) continue;
    const n = namesOf(i);
    for (const name of [n.requests, n.tokens]) if (!(name in adds)) removes.push(name);
  }
  return { adds, removes };
}

const MINUTE_ATTRIBUTE_RE = /^mw(\d{2})[rt]$/;

/** The minutes of the hour (0-59) whose window attributes an item carries. */
export function minutesPresent(item: Record<string, unknown>): number[] {
  const out = new Set<number>();
  for (const name of Object.keys(item)) {
    const m = MINUTE_ATTRIBUTE_RE.exec(name);
    if (m) out.add(Number(m[1]));
  }
  return [...out].sort((a, b) => a - b);
}

/** A minute's counters as read from its tenant-hour item (undefined: no usage in that minute). */
export function minuteCountersOf(item: Record<string, unknown> | undefined, minute: string): MinuteCounters | undefined {
  if (!item) return undefined;
  const n = minuteAttributeNames(minute);
  const r = item[n.requests];
  const t = item[n.tokens];
  if (r === undefined && t === undefined) return undefined;
  return { requests: Number(r ?? 0), tokens: Number(t ?? 0) };
}
