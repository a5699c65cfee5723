import { z } from "zod";
import type { UsageCounters } from "../usage/model";
import { limitTokens } from "../usage/minute-window";
import type { EnforcementEventDetail } from "./events";
import { tierNameSchema, warningThresholdsSchema, type TierCatalog, type TierName, type TierPolicy } from "./tiers";

/**
 * Per-tenant configuration (the `CONFIG` item): the tier and optional overrides of the tier's
 * quotas, warning thresholds and per-minute limits. The action at 100% is a tier property
 * and cannot be overridden per tenant.
 */
export const tenantConfigInputSchema = z
  .object({
    tier: tierNameSchema,
    monthlyTokens: z.number().int().positive().optional(),
    monthlyUsd: z.number().positive().optional(),
    warningThresholds: warningThresholdsSchema.optional(),
    tokensPerMinute: z.number().int().positive().optional(),
    requestsPerMinute: z.number().int().positive().optional(),
  })
  .strict()
  .superRefine((c, ctx) => {
    if (c.tier === "premium" && (c.tokensPerMinute !== undefined || c.requestsPerMinute !== undefined)) {
      ctx.addIssue({ code: "custom", path: ["tokensPerMinute"], message: "premium has guaranteed performance: no per-minute limits" });
    }
  });
export type TenantConfigInput = z.infer<typeof tenantConfigInputSchema>;

export interface TenantConfig extends TenantConfigInput {
  tenantId: string;
  updatedAt: string;
}

/** The policy a tenant is evaluated under: its tier's catalog entry with its overrides applied. */
export function effectivePolicy(catalog: TierCatalog, config: TenantConfig | undefined, defaultTier: TierName): TierPolicy {
  const tier = config?.tier ?? defaultTier;
  const base = catalog[tier];
  if (!config) return base;
  return {
    ...base,
    monthlyTokens: config.monthlyTokens ?? base.monthlyTokens,
    monthlyUsd: config.monthlyUsd ?? base.monthlyUsd,
    warningThresholds: config.warningThresholds ?? base.warningThresholds,
    tokensPerMinute: config.tokensPerMinute ?? base.tokensPerMinute,
    requestsPerMinute: config.requestsPerMinute ?? base.requestsPerMinute,
  };
}

/** Identity of the quota a threshold is measured against: a new quota (or tier) gets fresh thresholds. */
export function quotaFingerprint(p: TierPolicy): string {
  return `${p.tier}:t${p.monthlyTokens ?? "-"}:u${p.monthlyUsd ?? "-"}`;
}

export interface UsageSnapshot {
  /** Quota tokens: input + output + cache-write input tokens (cache reads excluded, see README). */
  tokens: number;
  inputTokens: number;
  outputTokens: number;
  cacheReadInputTokens: number;
  cacheWriteInputTokens: number;
  requests: number;
  /** Pay-per-token cost plus fixed endpoint cost allocated so far. */
  costUsd: number;
  costNanoUsd: number;
}

/** Input + output + cache-write input tokens: the same sum the minute windows keep. */
export function quotaTokens(c: Partial<UsageCounters>): number {
  return limitTokens(c);
}

export function usageSnapshot(c: Partial<UsageCounters> | undefined): UsageSnapshot {
  const costNanoUsd = (c?.costNanoUsd ?? 0) + (c?.allocatedCostNanoUsd ?? 0);
  return {
    tokens: quotaTokens(c ?? {}),
    inputTokens: c?.inputTokens ?? 0,
    outputTokens: c?.outputTokens ?? 0,
    cacheReadInputTokens: c?.cacheReadInputTokens ?? 0,
    cacheWriteInputTokens: c?.cacheWriteInputTokens ?? 0,
    requests: c?.requests ?? 0,
    costUsd: costNanoUsd / 1e9,
    costNanoUsd,
  };
}

/**
 * True when `value` has reached `fraction` of `quota` (at >= we act: usage equal to the quota
 * is 100%). Integer comparison, so 0.8 x 2,000,000 is exactly 1,600,000 whatever the float.
 */
export function reached(value: number, fraction: number, quota: number): boolean {
  return value >= Math.ceil(fraction * quota - 1e-6);
}

/** Highest fraction of a monthly quota used (tokens or USD, whichever is further along). */
export function usedRatio(u: UsageSnapshot, p: TierPolicy): number {
  const r: number[] = [0];
  if (p.monthlyTokens) r.push(u.tokens / p.monthlyTokens);
  if (p.monthlyUsd) r.push(u.costNanoUsd / (p.monthlyUsd * 1e9));
  return Math.max(...r);
}

export function monthlyReached(u: UsageSnapshot, p: TierPolicy, fraction: number): boolean {
  return (
    (p.monthlyTokens !== undefined && reached(u.tokens, fraction, p.monthlyTokens)) ||
    (p.monthlyUsd !== undefined && reached(u.costNanoUsd, fraction, Math.round(p.monthlyUsd * 1e9)))
  );
}

export type RateLimitKey = "rpm" | "tpm";

/** An active monthly restriction (downgrade or throttle) on a period's enforcement state. */
export interface Restriction {
  enforcementId: string;
  action: "downgrade" | "throttle";
  /** Threshold key (`1:<fingerprint>`) it was recorded under. */
  key: string;
  fingerprint: string;
  tier: TierName;
  targetModelId?: string;
  since: string;
  usage: UsageSnapshot;
  quota: { monthlyTokens?: number; monthlyUsd?: number };
}

/** Noisy-neighbour throttle of one UTC minute. */
export interface RateState {
  minute: string;
  keys: RateLimitKey[];
  active: boolean;
  since: string;
}

/** An event recorded with its transition and not yet known to be published. */
export interface OutboxEntry {
  enforcementId: string;
  detail: EnforcementEventDetail;
  /** Until when one publisher holds the entry; a later evaluation retries it after that. */
  leaseUntil: string;
}

/** The `ENFORCE#<month>` item: transitions of one tenant and month. */
export interface EnforcementState {
  tenantId: string;
  period: string;
  /** Threshold key -> when it was crossed. */
  crossed: Record<string, string>;
  restriction?: Restriction;
  rate?: RateState;
  outbox: Record<string, OutboxEntry>;
}

/** A state change, applied with a conditional write that makes it happen once. */
export type Transition =
  | { kind: "cross"; period: string; key: string; entry: OutboxEntry }
  | { kind: "restrict"; period: string; key: string; restriction: Restriction; entry: OutboxEntry }
  | { kind: "release"; period: string; restrictionId: string; entry: OutboxEntry }
  | { kind: "rate-throttle"; period: string; minute: string; limit: RateLimitKey; newWindow: boolean; rate: RateState; entry: OutboxEntry }
  | { kind: "rate-release"; period: string; minute: string; entry: OutboxEntry };

/** What one evaluation did, for the caller's logs and metrics. */
export interface EnforcementOutcome {
  enforcementId: string;
  action: EnforcementEventDetail["action"];
  period: string;
  threshold: EnforcementEventDetail["threshold"];
  /** recorded+published now, republished (a pending entry of an earlier attempt), or recorded but not published. */
  status: "published" | "republished" | "pending";
  /** True for a crossing of 100% of a monthly quota (QuotaBreaches metric). */
  breach: boolean;
}

export interface Decision {
  tenantId: string;
  tier: TierName;
  period: string;
  decision: "allow" | "downgrade" | "throttle";
  targetModelId?: string;
  retryAfterSeconds?: number;
  reason?: string;
  evaluatedAt: string;
  /** This month's usage and the effective quotas (for dashboards; not needed to act on the decision). */
  usage?: { tokens: number; requests: number; costUsd: number };
  quota?: { monthlyTokens?: number; monthlyUsd?: number; tokensPerMinute?: number; requestsPerMinute?: number };
  usedRatio?: number;
}
