import { z } from "zod";
import { TIER_NAMES } from "./tiers";

/**
 * Enforcement events published on EventBridge. Envelope: `source` = {@link ENFORCEMENT_SOURCE},
 * `detail-type` from {@link ENFORCEMENT_DETAIL_TYPES} by action, `detail` = {@link EnforcementEventDetail}.
 *
 * Delivery is at-least-once: a retried publish repeats the same `enforcementId`, and
 * consumers dedupe on it. The transition behind an event is recorded exactly once.
 */
export const ENFORCEMENT_SOURCE = "genai.metering.quota";
export const ENFORCEMENT_SCHEMA_VERSION = "1";

export const ENFORCEMENT_ACTIONS = ["warning", "downgrade", "throttle", "restore"] as const;
export type EnforcementAction = (typeof ENFORCEMENT_ACTIONS)[number];

export const ENFORCEMENT_DETAIL_TYPES = {
  warning: "Tenant Quota Warning",
  downgrade: "Tenant Downgraded",
  throttle: "Tenant Throttled",
  restore: "Tenant Restored",
} as const satisfies Record<EnforcementAction, string>;

const count = z.number().int().nonnegative();

export const enforcementEventDetailSchema = z
  .object({
    schemaVersion: z.literal(ENFORCEMENT_SCHEMA_VERSION),
    /** Deterministic: `<tenant>#<period>#<threshold key>#<action>`; consumers dedupe on it. */
    enforcementId: z.string().min(1),
    tenantId: z.string().min(1),
    tier: z.enum(TIER_NAMES),
    /** yyyy-mm for monthly quotas, yyyy-mm-ddThh:mm for per-minute limits. */
    period: z.string().regex(/^\d{4}-\d{2}(-\d{2}T\d{2}:\d{2})?$/),
    periodKind: z.enum(["month", "minute"]),
    action: z.enum(ENFORCEMENT_ACTIONS),
    /** Fraction of the monthly quota (0.8, 1), or the per-minute limit crossed; `rate` on a minute restore. */
    threshold: z.union([z.number().positive().max(1), z.enum(["rpm", "tpm", "rate"])]),
    usage: z.object({
      tokens: count,
      inputTokens: count,
      outputTokens: count,
      cacheReadInputTokens: count,
      cacheWriteInputTokens: count,
      requests: count,
      costUsd: z.number().nonnegative(),
    }),
    quota: z.object({
      monthlyTokens: z.number().int().positive().optional(),
      monthlyUsd: z.number().positive().optional(),
      tokensPerMinute: z.number().int().positive().optional(),
      requestsPerMinute: z.number().int().positive().optional(),
    }),
    /** Model to call instead (downgrade). */
    targetModelId: z.string().optional(),
    /** Throttle: seconds until the period (month or minute) ends, counted from occurredAt. */
    retryAfterSeconds: z.number().int().positive().optional(),
    reason: z.string(),
    occurredAt: z.iso.datetime(),
  })
  .strict();

export type EnforcementEventDetail = z.infer<typeof enforcementEventDetailSchema>;

export function enforcementId(tenantId: string, period: string, thresholdKey: string, action: EnforcementAction): string {
  return `${tenantId}#${period}#${thresholdKey}#${action}`;
}
