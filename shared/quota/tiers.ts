import { z } from "zod";
import { QuotaConfigInvalidError } from "./errors";

/**
 * Tier catalog as code (seed-notes: "Tiers and the lines they are served on").
 * - basic: fixed-cost self-hosted endpoint (line 1: SageMaker Llama 3.1 70B + one LoRA adapter
 *   per tenant); throttled past its monthly token quota.
 * - advanced: high-performance model API (line 4), downgraded to the mid-performance API
 *   (line 3) once its monthly quota is used up.
 * - premium: guaranteed performance: warnings and ops alarms only, never throttled or
 *   downgraded, no noisy-neighbour limits (the schema refuses them).
 */
export const TIER_NAMES = ["basic", "advanced", "premium"] as const;
export type TierName = (typeof TIER_NAMES)[number];
export const tierNameSchema = z.enum(TIER_NAMES);

export const MODELS = {
  basicEndpoint: "llama31-70b-lora",
  highPerformance: "anthropic.claude-3-5-sonnet-20240620-v1:0",
  midPerformance: "anthropic.claude-3-haiku-20240307-v1:0",
} as const;

/** What happens when usage reaches 100% of the monthly quota. */
export const LIMIT_ACTIONS = ["throttle", "downgrade", "alert"] as const;
export type LimitAction = (typeof LIMIT_ACTIONS)[number];

const positiveInt = z.number().int().positive();
/** Warning thresholds are fractions of the quota strictly below 1 (1 is the limit itself). */
export const warningThresholdsSchema = z
  .array(z.number().gt(0, "thresholds are fractions > 0").lt(1, "thresholds are fractions < 1 (1 is the limit)"))
  .max(5);

const servingSchema = z.discriminatedUnion("provider", [
  z.object({
    provider: z.literal("sagemaker"),
    endpointName: z.string().min(1),
    modelId: z.string().min(1),
    /** One LoRA adapter per tenant on the shared endpoint (S-LoRA, seed-notes). */
    adapterPerTenant: z.boolean(),
  }),
  z.object({ provider: z.literal("bedrock"), modelId: z.string().min(1) }),
]);

export const tierPolicySchema = z
  .object({
    tier: tierNameSchema,
    serving: servingSchema,
    /** Monthly quota on tokens (input + output + cache-write; see README). */
    monthlyTokens: positiveInt.optional(),
    /** Monthly quota on cost, USD (pay-per-token cost + allocated fixed cost). */
    monthlyUsd: z.number().positive().optional(),
    warningThresholds: warningThresholdsSchema,
    atLimit: z.enum(LIMIT_ACTIONS),
    /** Model to use instead once downgraded (atLimit = downgrade). */
    downgradeModelId: z.string().min(1).optional(),
    /** Noisy-neighbour limits per tenant and UTC minute (event time). */
    tokensPerMinute: positiveInt.optional(),
    requestsPerMinute: positiveInt.optional(),
  })
  .superRefine((p, ctx) => {
    if (p.atLimit === "downgrade" && !p.downgradeModelId) {
      ctx.addIssue({ code: "custom", path: ["downgradeModelId"], message: "atLimit=downgrade needs downgradeModelId" });
    }
    if (p.tier === "premium") {
      if (p.atLimit !== "alert") {
        ctx.addIssue({ code: "custom", path: ["atLimit"], message: "premium is never throttled or downgraded: atLimit must be alert" });
      }
      if (p.tokensPerMinute !== undefined || p.requestsPerMinute !== undefined) {
        ctx.addIssue({ code: "custom", path: ["tokensPerMinute"], message: "premium has guaranteed performance: no per-minute limits" });
      }
    }
  });

export type TierPolicy = z.infer<typeof tierPolicySchema>;
export type TierCatalog = Readonly<Record<TierName, TierPolicy>>;

/**
 * Defaults, sized on the seed's cost example: 300 tenants, 30M requests a year, 307 + 533 =
 * 840 tokens a request, i.e. ~8,300 requests and ~7M tokens per tenant and month on average.
 * - basic 2M tokens/month (~2,400 seed-sized requests), 40K tokens and 60 requests a minute;
 * - advanced 10M tokens/month (~$106 of Sonnet at the seed mix), 200K tokens and 300 requests a minute;
 * - premium 100M tokens or $2,000 a month, warnings at 80% and 100%, no per-minute limits.
 */
export const DEFAULT_TIERS: TierCatalog = {
  basic: {
    tier: "basic",
    serving: { provider: "sagemaker", endpointName: MODELS.basicEndpoint, modelId: MODELS.basicEndpoint, adapterPerTenant: true },
    monthlyTokens: 2_000_000,
    warningThresholds: [0.8],
    atLimit: "throttle",
    tokensPerMinute: 40_000,
    requestsPerMinute: 60,
  },
  advanced: {
    tier: "advanced",
    serving: { provider: "bedrock", modelId: MODELS.highPerformance },
    monthlyTokens: 10_000_000,
    warningThresholds: [0.8],
    atLimit: "downgrade",
    downgradeModelId: MODELS.midPerformance,
    tokensPerMinute: 200_000,
    requestsPerMinute: 300,
  },
  premium: {
    tier: "premium",
    serving: { provider: "bedrock", modelId: MODELS.highPerformance },
    monthlyTokens: 100_000_000,
    monthlyUsd: 2_000,
    warningThresholds: [0.8],
    atLimit: "alert",
  },
};

/**
 * Builds the catalog from the defaults and an optional JSON override (`TIER_CATALOG_JSON`):
 * `{ "basic": { "monthlyTokens": 500000 }, ... }`, merged per tier and validated as a whole.
 */
export function loadTierCatalog(json?: string): TierCatalog {
  if (!json) return DEFAULT_TIERS;
  let raw: unknown;
  try {
    raw = JSON.parse(json);
  } catch (cause) {
    throw new QuotaConfigInvalidError("TIER_CATALOG_JSON is not valid JSON", ["malformed-json"], { cause });
  }
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
    throw new QuotaConfigInvalidError("TIER_CATALOG_JSON must be an object keyed by tier", ["not-an-object"]);
  }
  const out = {} as Record<TierName, TierPolicy>;
  const reasons: string[] = [];
  for (const name of TIER_NAMES) {
    const patch = (raw as Record<string, unknown>)[name] ?? {};
    const parsed = tierPolicySchema.safeParse({ ...DEFAULT_TIERS[name], ...(patch as object), tier: name });
    if (parsed.success) out[name] = parsed.data;
    else reasons.push(...parsed.error.issues.map((i) => `${name}.${i.path.join(".")}: ${i.message}`));
  }
  for (const key of Object.keys(raw)) {
    if (!(TIER_NAMES as readonly string[]).includes(key)) reasons.push(`${key}: unknown tier`);
  }
  if (reasons.length > 0) throw new QuotaConfigInvalidError(`invalid tier catalog: ${reasons.join("; ")}`, reasons);
  return out;
}
