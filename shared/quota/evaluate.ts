import { nextMonthStart } from "../usage/periods";
import type { UsageCounters } from "../usage/model";
import type { MinuteCounters } from "../usage/minute-window";
import { ENFORCEMENT_SCHEMA_VERSION, enforcementId, type EnforcementAction, type EnforcementEventDetail } from "./events";
import {
  monthlyReached,
  quotaFingerprint,
  quotaTokens,
  usageSnapshot,
  type EnforcementState,
  type OutboxEntry,
  type RateLimitKey,
  type RateState,
  type Restriction,
  type Transition,
  type UsageSnapshot,
} from "./model";
import type { TierPolicy } from "./tiers";

/** How long the evaluation that records a transition owns publishing it before others may retry. */
export const PUBLISH_LEASE_MS = 30_000;

export function monthOf(at: Date): string {
  return at.toISOString().slice(0, 7);
}
export function minuteOf(at: Date): string {
  return at.toISOString().slice(0, 16);
}
export function previousMonth(month: string): string {
  const [y, m] = month.split("-").map(Number);
  return new Date(Date.UTC(y, m - 2, 1)).toISOString().slice(0, 7);
}
export function minuteEnd(minute: string): Date {
  return new Date(Date.parse(`${minute}:00Z`) + 60_000);
}
function secondsUntil(end: Date, now: Date): number {
  return Math.max(1, Math.ceil((end.getTime() - now.getTime()) / 1000));
}

export interface PlanInput {
  tenantId: string;
  /** The month evaluated (the current month; never a closed one). */
  month: string;
  now: Date;
  policy: TierPolicy;
  monthTotals?: UsageCounters;
  /** Live minute windows (the current minute and any later one): requests and tokens. */
  minuteTotals: Record<string, MinuteCounters>;
  state?: EnforcementState;
  prevState?: EnforcementState;
}

/**
 * Pure: which transitions are due, given what was read. Order matters: a restriction is
 * released before a new one may be recorded (the restrict condition requires none).
 */
export function planTransitions(input: PlanInput): Transition[] {
  const { tenantId, month, now, policy, state, prevState } = input;
  const at = now.toISOString();
  const lease = new Date(now.getTime() + PUBLISH_LEASE_MS).toISOString();
  const usage = usageSnapshot(input.monthTotals);
  const fp = quotaFingerprint(policy);
  const quota = { monthlyTokens: policy.monthlyTokens, monthlyUsd: policy.monthlyUsd };
  const out: Transition[] = [];
  const entry = (d: Omit<EnforcementEventDetail, "schemaVersion" | "enforcementId" | "tenantId" | "occurredAt">, key: string): OutboxEntry => {
    const id = enforcementId(tenantId, d.period, key, d.action as EnforcementAction);
    return { enforcementId: id, leaseUntil: lease, detail: { schemaVersion: ENFORCEMENT_SCHEMA_VERSION, enforcementId: id, tenantId, occurredAt: at, ...d } };
  };

  // 1. Period reset: a restriction of last month ends when this month is first evaluated.
  if (prevState?.restriction) {
    const r = prevState.restriction;
    out.push({
      kind: "release",
      period: prevState.period,
      restrictionId: r.enforcementId,
      entry: entry(
        { tier: policy.tier, period: prevState.period, periodKind: "month", action: "restore", threshold: 1, usage: usageOut(r.usage), quota: r.quota, reason: `period ${prevState.period} ended; ${r.action} lifted` },
        r.key,
      ),
    });
  }

  // 2. A restriction of this month whose quota no longer holds (raised quota, other tier) ends now.
  let restricted = state?.restriction !== undefined;
  if (state?.restriction) {
    const r = state.restriction;
    const stillDue = r.fingerprint === fp && policy.atLimit === r.action && monthlyReached(usage, policy, 1);
    if (!stillDue) {
      restricted = false;
      out.push({
        kind: "release",
        period: month,
        restrictionId: r.enforcementId,
        entry: entry(
          { tier: policy.tier, period: month, periodKind: "month", action: "restore", threshold: 1, usage: usageOut(usage), quota, reason: `quota changed (${fp}); usage is under the limit or the ${r.action} no longer applies` },
          r.key,
        ),
      });
    }
  }

  // 3. Monthly thresholds, each once per (period, quota fingerprint).
  const crossed = state?.crossed ?? {};
  for (const t of [...policy.warningThresholds].sort((a, b) => a - b)) {
    const key = `${t}:${fp}`;
    if (!crossed[key] && monthlyReached(usage, policy, t)) {
      out.push({
        kind: "cross",
        period: month,
        key,
        entry: entry({ tier: policy.tier, period: month, periodKind: "month", action: "warning", threshold: t, usage: usageOut(usage), quota, reason: `${Math.round(t * 100)}% of the monthly quota used` }, key),
      });
    }
  }
  const limitKey = `1:${fp}`;
  if (!crossed[limitKey] && monthlyReached(usage, policy, 1)) {
    if (policy.atLimit === "alert") {
      out.push({
        kind: "cross",
        period: month,
        key: limitKey,
        entry: entry({ tier: policy.tier, period: month, periodKind: "month", action: "warning", threshold: 1, usage: usageOut(usage), quota, reason: "monthly quota reached; tier is never restricted (ops alarm)" }, limitKey),
      });
    } else if (!restricted) {
      const action = policy.atLimit;
      const e = entry(
        {
          tier: policy.tier,
          period: month,
          periodKind: "month",
          action,
          threshold: 1,
          usage: usageOut(usage),
          quota,
          targetModelId: action === "downgrade" ? policy.downgradeModelId : undefined,
          retryAfterSeconds: action === "throttle" ? secondsUntil(nextMonthStart(month), now) : undefined,
          reason: action === "downgrade" ? `monthly quota reached; downgraded to ${policy.downgradeModelId}` : "monthly quota reached; throttled until the period ends",
        },
        limitKey,
      );
      const restriction: Restriction = {
        enforcementId: e.enforcementId,
        action,
        key: limitKey,
        fingerprint: fp,
        tier: policy.tier,
        targetModelId: action === "downgrade" ? policy.downgradeModelId : undefined,
        since: at,
        usage,
        quota,
      };
      out.push({ kind: "restrict", period: month, key: limitKey, restriction, entry: e });
    }
  }

  // 4. Noisy-neighbour windows.
  out.push(...planRate(input, entry));
  return out;
}

function planRate(
  input: PlanInput,
  entry: (d: Omit<EnforcementEventDetail, "schemaVersion" | "enforcementId" | "tenantId" | "occurredAt">, key: string) => OutboxEntry,
): Transition[] {
  const { now, policy, state, prevState, month } = input;
  const current = minuteOf(now);
  const limits: [RateLimitKey, number | undefined, (c: MinuteCounters) => number][] = [
    ["rpm", policy.requestsPerMinute, (c) => c.requests],
    ["tpm", policy.tokensPerMinute, (c) => c.tokens],
  ];
  const over = (c: MinuteCounters | undefined): RateLimitKey[] =>
    c ? limits.filter(([, limit, measure]) => limit !== undefined && measure(c) >= limit).map(([k]) => k) : [];
  const quota = { tokensPerMinute: policy.tokensPerMinute, requestsPerMinute: policy.requestsPerMinute };
  const out: Transition[] = [];

  // A throttle of an earlier minute ends at the first evaluation whose current minute is under the limits.
  if (over(input.minuteTotals[current]).length === 0) {
    for (const s of [prevState, state]) {
      const rate = s?.rate;
      if (!s || !rate?.active || rate.minute >= current) continue;
      out.push({
        kind: "rate-release",
        period: s.period,
        minute: rate.minute,
        entry: entry(
          { tier: policy.tier, period: rate.minute, periodKind: "minute", action: "restore", threshold: "rate", usage: minuteUsageOut(input.minuteTotals[current]), quota, reason: `per-minute limits (${rate.keys.join(", ")}) of ${rate.minute} lifted` },
          "rate",
        ),
      });
    }
  }

  let rate: RateState | undefined = state?.rate;
  for (const minute of Object.keys(input.minuteTotals).sort()) {
    // Only windows still running can be throttled; their state lives on this month's item.
    if (minute < current || minute.slice(0, 7) !== month) continue;
    const counters = input.minuteTotals[minute];
    for (const k of over(counters)) {
      if (rate && (rate.minute > minute || (rate.minute === minute && rate.keys.includes(k)))) continue;
      const newWindow = !rate || rate.minute < minute;
      rate = newWindow ? { minute, keys: [k], active: true, since: now.toISOString() } : { ...rate!, keys: [...rate!.keys, k] };
      const limit = k === "rpm" ? policy.requestsPerMinute : policy.tokensPerMinute;
      out.push({
        kind: "rate-throttle",
        period: month,
        minute,
        limit: k,
        newWindow,
        rate,
        entry: entry(
          {
            tier: policy.tier,
            period: minute,
            periodKind: "minute",
            action: "throttle",
            threshold: k,
            usage: minuteUsageOut(counters),
            quota,
            retryAfterSeconds: secondsUntil(minuteEnd(minute), now),
            reason: `${k === "rpm" ? "requests" : "tokens"} per minute reached the limit of ${limit}`,
          },
          k,
        ),
      });
    }
  }
  return out;
}

/**
 * A minute's usage in an event: the windows keep only requests and tokens (see
 * shared/usage/minute-window.ts), so the token breakdown and the cost are 0 here.
 */
function minuteUsageOut(c: MinuteCounters | undefined) {
  return usageOut({ ...usageSnapshot(undefined), tokens: c?.tokens ?? 0, requests: c?.requests ?? 0 });
}

function usageOut(u: UsageSnapshot) {
  return {
    tokens: u.tokens,
    inputTokens: u.inputTokens,
    outputTokens: u.outputTokens,
    cacheReadInputTokens: u.cacheReadInputTokens,
    cacheWriteInputTokens: u.cacheWriteInputTokens,
    requests: u.requests,
    costUsd: u.costUsd,
  };
}

/** The data plane's view: what to do with the next call of the tenant. */
export function decide(args: {
  tenantId: string;
  now: Date;
  policy: TierPolicy;
  state?: EnforcementState;
}): { decision: "allow" | "downgrade" | "throttle"; targetModelId?: string; retryAfterSeconds?: number; reason?: string } {
  const { now, policy, state } = args;
  const month = monthOf(now);
  const current = minuteOf(now);
  const r = state?.period === month ? state.restriction : undefined;
  if (r?.action === "throttle") {
    return { decision: "throttle", retryAfterSeconds: secondsUntil(nextMonthStart(month), now), reason: `monthly quota of tier ${r.tier} reached` };
  }
  const rate = state?.period === month ? state.rate : undefined;
  if (rate?.active && rate.minute >= current) {
    return {
      decision: "throttle",
      retryAfterSeconds: secondsUntil(minuteEnd(rate.minute), now),
      targetModelId: r?.targetModelId,
      reason: `per-minute limit reached (${rate.keys.join(", ")})`,
    };
  }
  if (r?.action === "downgrade") {
    return { decision: "downgrade", targetModelId: r.targetModelId ?? policy.downgradeModelId, reason: `monthly quota of tier ${r.tier} reached` };
  }
  return { decision: "allow" };
}
