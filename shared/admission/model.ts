import { z } from "zod";
import { resolveModel } from "../pricing/catalog";
import { TIER_NAMES, type TierName } from "../quota/tiers";

/**
 * Admission before the call: what a call reserves, how a tenant's monthly budget is lent out
 * (hard grants or leases), and how the account's shared Bedrock quota is split between tiers.
 * Pure: no SDK, no clock reads (the service passes `now`).
 */

export const ADMISSION_MODES = ["hard", "lease"] as const;
export type AdmissionMode = (typeof ADMISSION_MODES)[number];

/** What one call may consume at most, decided before the call. */
export interface Reservation {
  tenantId: string;
  tier: TierName;
  provider: "bedrock" | "sagemaker";
  modelId: string;
  /** Upper-bound estimate of the prompt (all input, cached parts included), or an exact CountTokens figure. */
  inputTokens: number;
  /** The call's max_tokens (declared by the caller or the tier default the wrapper put in the request). */
  maxOutputTokens: number;
  /** Budget tokens, counted like the quota (input + output + cache write): input + max output. */
  quotaTokens: number;
  /** Matching USD (nano) at the catalog price; 0 for fixed-cost endpoints and unpriced models. */
  nanoUsd: number;
  /** Account-quota tokens as Bedrock reserves them at the start: input + cache + max_tokens. */
  poolTokens: number;
}

/** What the call really used (the same counts the usage event carries). */
export interface ActualUsage {
  inputTokens: number;
  outputTokens: number;
  cacheReadInputTokens?: number;
  cacheWriteInputTokens?: number;
  /** Real cost (nano-USD) at the catalog price, when known. */
  nanoUsd?: number;
}

/** Quota tokens of real usage: the formula of shared/quota (input + output + cache write). */
export function quotaTokensOf(u: ActualUsage): number {
  return u.inputTokens + u.outputTokens + (u.cacheWriteInputTokens ?? 0);
}

/**
 * Output burn-down rate on Bedrock's TPM quota: Claude 4-family output tokens count 5x
 * (billing is unaffected). Matched on the base id, so `us.`/`global.` profiles and ARNs count alike.
 */
export const DEFAULT_BURN_RATES: readonly { pattern: string; rate: number }[] = [
  { pattern: "anthropic\\.claude-(opus|sonnet|haiku)-4", rate: 5 },
  { pattern: "anthropic\\.claude-4", rate: 5 },
];

export function outputBurnRate(modelId: string, rules: readonly { pattern: string; rate: number }[] = DEFAULT_BURN_RATES): number {
  for (const r of rules) if (new RegExp(r.pattern).test(modelId)) return r.rate;
  return 1;
}

/** Tokens a finished call burned on the account quota: input + cache + output x burn rate. */
export function poolBurnOf(modelId: string, u: ActualUsage, rules?: readonly { pattern: string; rate: number }[]): number {
  return u.inputTokens + (u.cacheReadInputTokens ?? 0) + (u.cacheWriteInputTokens ?? 0) + u.outputTokens * outputBurnRate(modelId, rules);
}

// ---------------------------------------------------------------------------------------------
// Input estimate

export const estimatorSchema = z
  .object({
    /**
     * UTF-8 bytes per token assumed by the upper bound. Tokenizers in use (Claude, Llama 3,
     * Titan) average 3.5-4.5 bytes per token on English and >= 1 byte on anything; 2 gives a
     * 2x margin on prose. Calibrate with `calibrate()` against reported counts.
     */
    bytesPerToken: z.number().positive().default(2),
    /** Fixed overhead of a request (role markers, system framing). */
    overheadTokens: z.number().int().nonnegative().default(16),
    /** Per message (turn markers). */
    perMessageTokens: z.number().int().nonnegative().default(8),
  })
  .strict();
export type EstimatorConfig = z.infer<typeof estimatorSchema>;

const utf8 = new TextEncoder();

/** Upper-bound estimate of a prompt's tokens from its size. */
export function estimateInputTokens(text: string, messages: number, cfg: EstimatorConfig): number {
  const bytes = utf8.encode(text).length;
  return Math.ceil(bytes / cfg.bytesPerToken) + cfg.overheadTokens + cfg.perMessageTokens * Math.max(1, messages);
}

/**
 * Calibration: the largest bytes-per-token that still bounds every sample from above, with
 * `margin` (e.g. 0.8 = 20% below it). Samples are (prompt bytes, reported input tokens).
 */
export function calibrate(samples: readonly { bytes: number; tokens: number }[], margin = 0.8): number {
  const ratios = samples.filter((s) => s.tokens > 0).map((s) => s.bytes / s.tokens);
  if (ratios.length === 0) return 2;
  return Math.max(0.5, Math.min(...ratios) * margin);
}

// ---------------------------------------------------------------------------------------------
// Cross-region inference profiles

/** Profiles a tier's calls may be moved to: the model's `global.` system inference profile. */
export const PROFILE_SCOPES = ["global"] as const;
export type ProfileScope = (typeof PROFILE_SCOPES)[number];

/** A foundation-model id as called in its own region: `provider.model...`, no profile prefix, no ARN. */
const PLAIN_MODEL_ID = /^[a-z0-9-]+\.[A-Za-z0-9._:-]+$/;

/**
 * The id a call goes to when its tier has a profile scope: `<scope>.<modelId>` if `priced` says
 * the catalog has a price of that scope for it (the caller decides what counts: the gate asks for
 * a row of exactly that scope, for the tier's service tier), else the id unchanged, so a call is
 * never moved to an id the ingest would count unpriced, nor to a profile nobody has listed.
 * Only a plain in-region id moves: a geographic profile (`us.`, `eu.`) keeps its calls in that
 * geography (a residency choice the caller made), an ARN or application profile names exactly
 * what the caller chose, and a `global.` id is there already.
 */
export function profileModelId(modelId: string, scope: ProfileScope | undefined, priced: (profileId: string) => boolean): string {
  if (!scope || !PLAIN_MODEL_ID.test(modelId) || resolveModel(modelId).scope !== "in-region") return modelId;
  const profileId = `${scope}.${modelId}`;
  return priced(profileId) ? profileId : modelId;
}

// ---------------------------------------------------------------------------------------------
// Configuration

const tierModeSchema = z
  .object({
    mode: z.enum(ADMISSION_MODES),
    /** Budget tokens one process takes per lease (lease mode). Worst-case overshoot <= processes x leaseTokens. */
    leaseTokens: z.number().int().positive().default(20_000),
    /**
     * Largest lease one take may lend when many calls of the process wait at once (a burst is
     * served by one take instead of a queue of them). Default 4 x leaseTokens. The bound on what
     * processes hold out at once is processes x maxLeaseTokens.
     */
    maxLeaseTokens: z.number().int().positive().optional(),
    /** max_tokens put into a request that has none. */
    defaultMaxTokens: z.number().int().positive().default(1_024),
    /**
     * Lease mode: how long a call may wait for the store when the budget in hand cannot cover it
     * (a take in flight). Past it the call is refused (`budget-wait`, retry after 1 s) and the take
     * goes on for the calls after it. Absent: wait for the store's answer. The admission latency
     * bound, paid for with refusals of calls the budget could have covered, during bursts.
     */
    maxWaitMs: z.number().int().nonnegative().optional(),
  })
  .strict();
export type TierMode = z.infer<typeof tierModeSchema>;

export const poolSchema = z
  .object({
    /** Pool id: `<model>@<scope>` by convention; becomes part of a key (no '#'). */
    id: z.string().regex(/^[^#\s]{1,200}$/),
    /** Base model ids (or ids/profiles as called) that draw from this pool. */
    models: z.array(z.string().min(1)).min(1),
    /** Region scope of the quota: the region itself, a geographic profile (`us`, `eu`, ...) or `global`. */
    scope: z.string().min(1),
    /** Account quota: tokens per minute (Bedrock TPM) and requests per minute. */
    tpm: z.number().int().positive(),
    rpm: z.number().int().positive(),
    /** Window length; 60 = Bedrock's minute. Shorter only for tests and the bench. */
    windowSeconds: z.number().positive().default(60),
    /** Share of the pool each tier may always use (its floor); lower tiers never eat into a higher tier's unused floor. */
    floors: z.partialRecord(z.enum(TIER_NAMES), z.number().min(0).max(1)).default({ premium: 0.5, advanced: 0.2, basic: 0 }),
    /** Total use of the pool above which a tier borrows no more: Basic is shed first, then Advanced, Premium last. */
    ceilings: z.partialRecord(z.enum(TIER_NAMES), z.number().min(0).max(1)).default({ basic: 0.8, advanced: 0.95, premium: 1 }),
    /**
     * Pool credit: when a round admits a tier's calls, the process also reserves up to this share
     * of the window's capacity for that tier ahead of its next calls (decided by the same rule, so
     * never out of a higher tier's floor), and admits the tier's next calls in the same window from
     * it without a round trip. 0 (default): every call waits for its round. The price: credit a
     * process holds and does not use counts as used for the rest of the window.
     */
    creditShare: z.number().min(0).max(0.5).default(0),
  })
  .strict()
  .superRefine((p, ctx) => {
    const sum = Object.values(p.floors).reduce((a, b) => a + b, 0);
    if (sum > 1 + 1e-9) ctx.addIssue({ code: "custom", path: ["floors"], message: `floors add up to ${sum} > 1` });
  });
export type PoolConfig = z.infer<typeof poolSchema>;

export const admissionConfigSchema = z
  .object({
    /** Per tier; a tier left out keeps its default (DEFAULT_TIER_MODES). */
    tiers: z.partialRecord(z.enum(TIER_NAMES), tierModeSchema).default({}),
    /** Refuse a request without max_tokens instead of adding the tier default. */
    requireMaxTokens: z.boolean().default(false),
    /** How long a grant (hard reservation or lease) lives without being settled or renewed. */
    leaseSeconds: z.number().positive().default(30),
    /** After expiry, how long to wait for the usage event (ledger) before charging a grant in full. */
    settleGraceSeconds: z.number().nonnegative().default(120),
    /** A lease with no call in flight for this long is returned. */
    leaseIdleMs: z.number().int().nonnegative().default(2_000),
    estimator: estimatorSchema.default({ bytesPerToken: 2, overheadTokens: 16, perMessageTokens: 8 }),
    burnRates: z.array(z.object({ pattern: z.string().min(1), rate: z.number().positive() })).default([...DEFAULT_BURN_RATES]),
    pools: z.array(poolSchema).default([]),
    /** Optional Bedrock service tier per tenant tier (e.g. premium -> priority, basic -> flex). */
    serviceTiers: z.partialRecord(z.enum(TIER_NAMES), z.enum(["priority", "default", "flex"])).default({}),
    /**
     * Optional cross-region inference profile per tenant tier (e.g. premium -> global): the tier's
     * calls of an in-region model go to its `global.` profile where the price catalog prices it
     * (`profileModelId`). Headroom: a global profile draws on capacity (and quota) of its own.
     */
    profileScopes: z.partialRecord(z.enum(TIER_NAMES), z.enum(PROFILE_SCOPES)).default({}),
  })
  .strict();
export type AdmissionConfig = z.infer<typeof admissionConfigSchema>;
export type AdmissionConfigInput = z.input<typeof admissionConfigSchema>;

/**
 * Account quotas assumed when no pool is configured for a model (on-demand, in-region).
 * These are the documented defaults as the authors read them; accounts differ. Check Service
 * Quotas ("On-demand model inference requests/tokens per minute for <model>") and override
 * with `ADMISSION_CONFIG_JSON.pools`.
 */
export const DEFAULT_ACCOUNT_QUOTAS: readonly { model: string; scope: string; rpm: number; tpm: number }[] = [
  { model: "anthropic.claude-3-5-sonnet-20240620-v1:0", scope: "in-region", rpm: 50, tpm: 400_000 },
  { model: "anthropic.claude-3-haiku-20240307-v1:0", scope: "in-region", rpm: 1_000, tpm: 2_000_000 },
];

/** Lease sizes: about 2-3% of the tier's default monthly quota per process and lease. */
export const DEFAULT_TIER_MODES: Readonly<Record<TierName, TierMode>> = {
  basic: { mode: "lease", leaseTokens: 20_000, defaultMaxTokens: 1_024 },
  advanced: { mode: "lease", leaseTokens: 50_000, defaultMaxTokens: 2_048 },
  premium: { mode: "lease", leaseTokens: 100_000, defaultMaxTokens: 4_096 },
};

/** Parses the configuration (e.g. `ADMISSION_CONFIG_JSON`); tiers not given keep their defaults. */
export function parseAdmissionConfig(raw: unknown): AdmissionConfig {
  return withTierDefaults(admissionConfigSchema.parse(raw ?? {}));
}

/** A validated configuration with the default mode of every tier it does not name. */
export function withTierDefaults(parsed: AdmissionConfig): AdmissionConfig {
  return { ...parsed, tiers: { ...DEFAULT_TIER_MODES, ...parsed.tiers } };
}

// ---------------------------------------------------------------------------------------------
// Pools: the pure admission rule

export interface PoolUse {
  tokens: Partial<Record<TierName, number>>;
  requests: Partial<Record<TierName, number>>;
}

export const TIER_RANK: Record<TierName, number> = { basic: 0, advanced: 1, premium: 2 };

export type PoolVerdict = { admit: true; borrowed: boolean } | { admit: false; reason: "saturated" | "shed" };

/**
 * May `tier` add `tokens` and `requests` to the window?
 * - Within its own floor, a tier is admitted as long as the pool is not full.
 * - Beyond it (borrowing), the pool's total after the call must stay under the tier's ceiling
 *   and leave every higher tier's unused floor untouched. Lower tiers' unused floors may be
 *   borrowed by higher ones. So as the pool fills, Basic is refused first, then Advanced;
 *   Premium's floor is always there for it.
 * Tokens and requests are checked alike (each against its own capacity).
 */
export function poolDecide(pool: Pick<PoolConfig, "tpm" | "rpm" | "windowSeconds" | "floors" | "ceilings">, use: PoolUse, tier: TierName, tokens: number, requests = 1): PoolVerdict {
  const scale = pool.windowSeconds / 60;
  const dims = [
    { cap: Math.floor(pool.tpm * scale), used: use.tokens, add: tokens },
    { cap: Math.max(1, Math.floor(pool.rpm * scale)), used: use.requests, add: requests },
  ];
  let borrowed = false;
  for (const d of dims) {
    const total = TIER_NAMES.reduce((s, t) => s + (d.used[t] ?? 0), 0);
    if (total + d.add > d.cap) return { admit: false, reason: "saturated" };
    const own = d.used[tier] ?? 0;
    const floor = (pool.floors[tier] ?? 0) * d.cap;
    if (own + d.add <= floor) continue;
    borrowed = true;
    const protectedAbove = TIER_NAMES.filter((t) => TIER_RANK[t] > TIER_RANK[tier]).reduce(
      (s, t) => s + Math.max(0, (pool.floors[t] ?? 0) * d.cap - (d.used[t] ?? 0)),
      0,
    );
    const ceiling = (pool.ceilings[tier] ?? 1) * d.cap;
    // The part of the call inside the tier's own floor is not borrowing.
    const ownFloorLeft = Math.max(0, floor - own);
    if (total + d.add - ownFloorLeft > Math.min(ceiling, d.cap - protectedAbove)) return { admit: false, reason: "shed" };
  }
  return { admit: true, borrowed };
}

/** The window (epoch seconds of its start) `now` falls in. */
export function windowOf(now: number, windowSeconds: number): number {
  return Math.floor(now / 1000 / windowSeconds) * windowSeconds;
}

/** Finds the pool a call draws from: by the id as called, then by its base id. */
export function poolFor(pools: readonly PoolConfig[], modelId: string, baseModelId: string): PoolConfig | undefined {
  return pools.find((p) => p.models.includes(modelId)) ?? pools.find((p) => p.models.includes(baseModelId));
}

// ---------------------------------------------------------------------------------------------
// Budget state (one item per tenant and month)

export interface Grant {
  id: string;
  tokens: number;
  nanoUsd: number;
  /** Epoch ms after which the grant is considered abandoned. */
  expiresAt: number;
  /** Process that holds it (for logs). */
  holder: string;
  /** Usage event id, once known (a stream's request id): the ledger can settle the grant. */
  eventId?: string;
}

export interface BudgetState {
  tenantId: string;
  month: string;
  limitTokens?: number;
  limitNanoUsd?: number;
  usedTokens: number;
  usedNanoUsd: number;
  remainingTokens: number;
  remainingNanoUsd: number;
  grants: Grant[];
}

/** Limits of a tenant's month as the quota policy gives them; undefined = no such limit. */
export interface BudgetLimits {
  tokens?: number;
  nanoUsd?: number;
}

/**
 * Stand-in for "no limit" in the remaining counters: 4e15 (tokens, or nano-USD = $4M), far above
 * any month's use and still exact in a JS number after additions.
 */
export const UNLIMITED = 4e15;

/** The limits a budget item was opened under, as one comparable key (a changed limit is a new key). */
export function budgetLimitKey(l: BudgetLimits): string {
  return `t${l.tokens ?? "-"}:u${l.nanoUsd ?? "-"}`;
}

/** The counters of a month's budget when it is first opened, from what the ingest has already counted. */
export function openingBudget(limits: BudgetLimits, used: { tokens: number; nanoUsd: number }) {
  const limitTokens = limits.tokens ?? UNLIMITED;
  const limitNanoUsd = limits.nanoUsd ?? UNLIMITED;
  return {
    limitKey: budgetLimitKey(limits),
    limitTokens,
    limitNanoUsd,
    usedTokens: used.tokens,
    usedNanoUsd: used.nanoUsd,
    remainingTokens: limitTokens - used.tokens,
    remainingNanoUsd: limitNanoUsd - used.nanoUsd,
    heldTokens: 0,
    heldNanoUsd: 0,
  };
}

export function monthOfMs(now: number): string {
  return new Date(now).toISOString().slice(0, 7);
}

export function secondsToMonthEnd(now: number): number {
  const d = new Date(now);
  const next = Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + 1, 1);
  return Math.max(1, Math.ceil((next - now) / 1000));
}
