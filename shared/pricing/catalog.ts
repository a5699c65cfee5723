import { z } from "zod";
import snapshotFile from "./bedrock-prices.json";
import { APPLICATION_PROFILE_ARN, InferenceProfiles } from "./inference-profiles";
import { supplementPrices } from "./supplement";

/**
 * Price catalog for pay-per-token model APIs (Bedrock on demand). Prices are USD per 1,000
 * tokens, dated (`effectiveFrom`, inclusive, UTC day), per region, scope (in-region,
 * geographic profile, global profile) and service tier. Costs are computed in integer
 * nano-USD so aggregates add up exactly, whatever the number of events.
 */
export interface TokenPrices {
  inputPer1k: number;
  outputPer1k: number;
  /** Absent: cache reads are priced as input (the source's convention). */
  cacheReadPer1k?: number;
  /** 5-minute cache writes. Absent: priced as input. */
  cacheWritePer1k?: number;
  /** 1-hour cache writes. Absent: priced as 5-minute writes. */
  cacheWrite1hPer1k?: number;
}

/** How a model was called: in its own region, through a geographic profile (`us.`, `eu.`...), or `global.`. */
export type PriceScope = "in-region" | "geo" | "global";
/** Bedrock service tiers priced per token (`reserved` is fixed-cost capacity). */
export type PricedServiceTier = "default" | "priority" | "flex";
export type ServiceTier = PricedServiceTier | "reserved";

export interface ModelPrice extends TokenPrices {
  modelId: string;
  region: string; // "*" = every region without a more specific entry
  /** "*" or absent = every scope. A `geo` call falls back to `in-region` rows (AWS prices geographic profiles at the source region's price). */
  scope?: PriceScope | "*";
  /** Absent = the standard (`default`) tier. */
  serviceTier?: PricedServiceTier;
  effectiveFrom: string; // yyyy-mm-dd
  /** Rates for the whole request when its total input (input + cache read + cache write) is above the threshold. */
  longContext?: TokenPrices & { aboveInputTokens: number };
  /** Where the figure comes from (price page and date), for the audit trail. */
  source?: string;
}

/** Seed prices: Oregon (us-west-2), Bedrock on demand, as of 2024-10-22 (seed-notes.md). */
export const SEED_PRICES: readonly ModelPrice[] = [
  {
    modelId: "anthropic.claude-3-5-sonnet-20240620-v1:0",
    region: "*",
    effectiveFrom: "2024-06-20",
    inputPer1k: 0.003,
    outputPer1k: 0.015,
    cacheReadPer1k: 0.0003,
    cacheWritePer1k: 0.00375,
    source: "seed-notes: Bedrock on demand, us-west-2, 2024-10-22",
  },
  {
    modelId: "anthropic.claude-3-5-sonnet-20241022-v2:0",
    region: "*",
    effectiveFrom: "2024-10-22",
    inputPer1k: 0.003,
    outputPer1k: 0.015,
    cacheReadPer1k: 0.0003,
    cacheWritePer1k: 0.00375,
    source: "seed-notes: Bedrock on demand, us-west-2, 2024-10-22",
  },
  {
    modelId: "anthropic.claude-3-haiku-20240307-v1:0",
    region: "*",
    effectiveFrom: "2024-03-07",
    inputPer1k: 0.00025,
    outputPer1k: 0.00125,
    source: "seed-notes: Bedrock on demand, us-west-2, 2024-10-22",
  },
  {
    modelId: "meta.llama3-1-70b-instruct-v1:0",
    region: "*",
    effectiveFrom: "2024-07-23",
    inputPer1k: 0.00099,
    outputPer1k: 0.00099,
    source: "seed-notes: Bedrock on demand, us-west-2, 2024-10-22",
  },
];

/** The committed snapshot of the maintained source (see README: `npm run prices:update`). */
export const SNAPSHOT = {
  source: snapshotFile.source,
  sourceVersion: snapshotFile.sourceVersion,
  sourcePublished: snapshotFile.sourcePublished,
  generatedOn: snapshotFile.generatedOn,
};

const usdPer1k = z.number().finite().nonnegative();
const tokenPricesShape = {
  inputPer1k: usdPer1k,
  outputPer1k: usdPer1k,
  cacheReadPer1k: usdPer1k.optional(),
  cacheWritePer1k: usdPer1k.optional(),
  cacheWrite1hPer1k: usdPer1k.optional(),
};
const modelPriceSchema = z
  .object({
    modelId: z.string().min(1),
    region: z.string().min(1),
    scope: z.enum(["*", "in-region", "geo", "global"]).optional(),
    serviceTier: z.enum(["default", "priority", "flex"]).optional(),
    effectiveFrom: z.string().regex(/^\d{4}-\d{2}-\d{2}$/, "effectiveFrom must be yyyy-mm-dd"),
    ...tokenPricesShape,
    longContext: z
      .object({ aboveInputTokens: z.number().int().nonnegative(), ...tokenPricesShape })
      .strict()
      .optional(),
    source: z.string().optional(),
  })
  .strict();
const catalogJsonSchema = z
  .object({
    prices: z.array(modelPriceSchema).optional(),
    aliases: z.record(z.string().min(1), z.string().min(1)).optional(),
  })
  .strict();

/** Rows of the maintained source's snapshot, validated like an override (a hand edit that breaks the shape fails at load). */
export const SNAPSHOT_PRICES: readonly ModelPrice[] = z.array(modelPriceSchema).parse(snapshotFile.prices);

/** Seed prices, the source's snapshot, and the hand-kept supplement for what the source lacks (supplement.ts). */
export const DEFAULT_PRICES: readonly ModelPrice[] = [...SEED_PRICES, ...supplementPrices(SNAPSHOT_PRICES)];

const NANO = 1_000_000_000;
const PICO = 1_000_000_000_000;

/** USD per 1K tokens -> integer nano-USD per 1K tokens (exact for prices with <= 9 decimals). */
export function per1kToNano(usdPer1k: number): number {
  return Math.round(usdPer1k * NANO);
}

/** USD per 1K tokens -> integer pico-USD per 1K tokens (= nano-USD per 1M tokens; exact for <= 12 decimals). */
export function per1kToPico(usdPer1k: number): bigint {
  return BigInt(Math.round(usdPer1k * PICO));
}

export function nanoToUsd(nano: number): number {
  return nano / NANO;
}

const CROSS_REGION_PREFIX = /^(us|eu|apac|jp|au|ca|in|us-gov|global)\./;

export interface ResolvedModel {
  /** Base foundation-model id prices are keyed on (or the input, if it cannot be resolved). */
  baseModelId: string;
  scope: PriceScope;
  /** Source region named by an ARN, if any. */
  arnRegion?: string;
}

/**
 * Resolves what a caller passed as `modelId` to the base foundation-model id and the scope it
 * was called with: foundation-model ARNs, system inference-profile ids (`us.anthropic...`,
 * `global.anthropic...`) and their ARNs. Application inference profiles have opaque ids and
 * need an entry in `aliases` (to a foundation model, a system profile, or their ARNs). Prompt
 * routers are never resolved: their calls are priced by the trace's `invokedModelId`.
 */
export function resolveModel(modelId: string, aliases: Readonly<Record<string, string>> = {}): ResolvedModel {
  // An alias may itself name a system inference profile (`us.anthropic...`) or its ARN:
  // resolve its target once more, without aliases, so alias chains cannot loop.
  if (Object.hasOwn(aliases, modelId)) return resolveModel(aliases[modelId]);
  let id = modelId;
  let arnRegion: string | undefined;
  const arn = /^arn:aws[a-z-]*:bedrock:([^:]*):[^:]*:(foundation-model|inference-profile|application-inference-profile)\/(.+)$/.exec(id);
  if (arn) {
    if (arn[2] === "application-inference-profile") {
      if (!Object.hasOwn(aliases, arn[3])) return { baseModelId: modelId, scope: "in-region", arnRegion: arn[1] || undefined };
      const target = resolveModel(aliases[arn[3]]);
      return { ...target, arnRegion: target.arnRegion ?? (arn[1] || undefined) };
    }
    arnRegion = arn[1] || undefined;
    id = arn[3];
  }
  const prefix = CROSS_REGION_PREFIX.exec(id);
  const scope: PriceScope = !prefix ? "in-region" : prefix[1] === "global" ? "global" : "geo";
  return { baseModelId: id.replace(CROSS_REGION_PREFIX, ""), scope, ...(arnRegion ? { arnRegion } : {}) };
}

/** The base model id prices are keyed on (see {@link resolveModel}). */
export function resolveBaseModelId(modelId: string, aliases: Readonly<Record<string, string>> = {}): string {
  return resolveModel(modelId, aliases).baseModelId;
}

/** A price override file (`PRICE_CATALOG_JSON`) that does not have the catalog's shape. */
export class PriceCatalogInvalidError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "PriceCatalogInvalidError";
  }
}

/** The UTC day of an ISO timestamp (an offset like -05:00 can move it to the next day). */
function utcDay(at: string): string {
  if (/^\d{4}-\d{2}-\d{2}$/.test(at)) return at;
  const t = Date.parse(at);
  return Number.isNaN(t) ? at.slice(0, 10) : new Date(t).toISOString().slice(0, 10);
}

export interface TokenUsage {
  inputTokens: number;
  outputTokens: number;
  cacheReadInputTokens?: number;
  /** All cache writes (5-minute and 1-hour), as Bedrock reports `cacheWriteInputTokens`. */
  cacheWriteInputTokens?: number;
  /** The part of `cacheWriteInputTokens` written with a 1-hour TTL. */
  cacheWrite1hInputTokens?: number;
}

/** What besides the model and the token counts decides the price of a call. */
export interface PricingDimensions {
  /** Source region the call was made in; default: the ARN's region, else the caller's default. */
  region?: string;
  serviceTier?: ServiceTier;
  /** Model a prompt router actually invoked (trace `promptRouter.invokedModelId`): priced instead of `modelId`. */
  invokedModelId?: string;
}

export type PriceCall = TokenUsage &
  PricingDimensions & { provider: "bedrock" | "sagemaker"; modelId: string; occurredAt: string };

export type PriceResult =
  | { priced: true; costNanoUsd: number; baseModelId: string; scope: PriceScope; region: string; price: ModelPrice; longContext: boolean }
  | {
      priced: false;
      costNanoUsd: 0;
      baseModelId: string;
      /** `unknown-model`: no list price for this model, scope, tier and day (counted unpriced, loud). `fixed-cost`: SageMaker or Bedrock reserved capacity, shared by the allocation. */
      reason: "unknown-model" | "fixed-cost";
      detail?: string;
    };

const VERSION_SUFFIX = /-v\d+(:\d+)?$/;

const SCOPE_CHAIN: Record<PriceScope, readonly string[]> = {
  "in-region": ["in-region", "*"],
  geo: ["geo", "in-region", "*"],
  global: ["global", "*"],
};

export class PriceCatalog {
  private readonly byModel = new Map<string, ModelPrice[]>();

  constructor(
    prices: readonly ModelPrice[] = DEFAULT_PRICES,
    private readonly aliases: Readonly<Record<string, string>> = {},
  ) {
    for (const p of prices) {
      const list = this.byModel.get(p.modelId) ?? [];
      list.push(p);
      this.byModel.set(p.modelId, list);
    }
  }

  /**
   * Parses a JSON catalog (`{ prices: ModelPrice[], aliases?: {...} }`) merged over the defaults.
   * `inferenceProfiles` (`INFERENCE_PROFILES_JSON`): each application profile is priced as the
   * model it copies, in the region its ARN names; an alias of the same id in the JSON wins.
   */
  static fromJson(json: string | undefined, inferenceProfiles?: InferenceProfiles): PriceCatalog {
    const profileAliases = inferenceProfiles?.aliases() ?? {};
    if (!json) return new PriceCatalog(DEFAULT_PRICES, profileAliases);
    let raw: unknown;
    try {
      raw = JSON.parse(json);
    } catch (cause) {
      throw new PriceCatalogInvalidError("price catalog JSON does not parse", { cause });
    }
    const result = catalogJsonSchema.safeParse(raw);
    if (!result.success) {
      const detail = result.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ");
      throw new PriceCatalogInvalidError(`invalid price catalog: ${detail}`);
    }
    const parsed = result.data;
    return new PriceCatalog([...DEFAULT_PRICES, ...(parsed.prices ?? [])], { ...profileAliases, ...(parsed.aliases ?? {}) });
  }

  /** Every base model id the catalog has a price row for. */
  modelIds(): string[] {
    return [...this.byModel.keys()];
  }

  /**
   * Rows of one base model: the exact id, else rows whose id differs only by the release date
   * and version the source leaves out (`anthropic.claude-opus-4-5-v1:0` serves
   * `anthropic.claude-opus-4-5-20251101-v1:0`; `anthropic.claude-opus-5` serves `...-opus-5-v1:0`).
   */
  private rowsOf(base: string): ModelPrice[] | undefined {
    const exact = this.byModel.get(base);
    if (exact) return exact;
    if (this.stemmed.has(base)) return this.stemmed.get(base);
    let found: ModelPrice[] | undefined;
    for (const [id, rows] of this.byModel) {
      const stem = id.replace(VERSION_SUFFIX, "");
      if (base === stem || (base.startsWith(`${stem}-`) && /^(\d{8}-)?v\d+(:\d+)?$/.test(base.slice(stem.length + 1)))) {
        found = rows;
        break;
      }
    }
    // bounded: ids come from validated events; a flood of distinct unknown ids only costs the scan
    if (this.stemmed.size < 10_000) this.stemmed.set(base, found);
    return found;
  }
  private readonly stemmed = new Map<string, ModelPrice[] | undefined>();

  /**
   * The row in force: among rows of the model whose scope serves the call's scope, whose
   * region is the call's or `*`, whose tier is the call's, and that start on or before the
   * event's day, the newest; on a tie the more specific scope, then region.
   */
  find(modelId: string, region: string, at: string, opts: { scope?: PriceScope; serviceTier?: PricedServiceTier } = {}): ModelPrice | undefined {
    const resolved = resolveModel(modelId, this.aliases);
    const list = this.rowsOf(resolved.baseModelId);
    if (!list) return undefined;
    const day = utcDay(at);
    const chain = SCOPE_CHAIN[opts.scope ?? resolved.scope];
    const tier = opts.serviceTier ?? "default";
    let best: { p: ModelPrice; rank: number } | undefined;
    for (const p of list) {
      const s = chain.indexOf(p.scope ?? "*");
      if (s < 0 || (p.region !== region && p.region !== "*") || (p.serviceTier ?? "default") !== tier || p.effectiveFrom > day) continue;
      const rank = s * 2 + (p.region === region ? 0 : 1);
      if (!best || p.effectiveFrom > best.p.effectiveFrom || (p.effectiveFrom === best.p.effectiveFrom && rank < best.rank)) best = { p, rank };
    }
    return best?.p;
  }

  /** Cost of one call. Bedrock calls without a list price are reported unpriced, never $0 silently. */
  price(call: PriceCall, defaultRegion: string): PriceResult {
    const id = call.invokedModelId ?? call.modelId;
    const resolved = resolveModel(id, this.aliases);
    const baseModelId = resolved.baseModelId;
    if (call.provider === "sagemaker") {
      // SageMaker endpoints cost per instance-hour; the allocation job shares that cost.
      return { priced: false, costNanoUsd: 0, baseModelId, reason: "fixed-cost" };
    }
    if (call.serviceTier === "reserved") {
      // Reserved capacity is a fixed monthly price per 1K TPM; what overflows it is reported as `default`.
      return { priced: false, costNanoUsd: 0, baseModelId, reason: "fixed-cost", detail: "reserved tier" };
    }
    const region = call.region ?? resolved.arnRegion ?? defaultRegion;
    const tier = call.serviceTier ?? "default";
    const price = this.find(id, region, call.occurredAt, { scope: resolved.scope, serviceTier: tier });
    if (!price) {
      return {
        priced: false,
        costNanoUsd: 0,
        baseModelId,
        reason: "unknown-model",
        // an application profile nothing maps: its base model is unknown, so no price can be looked up
        detail: APPLICATION_PROFILE_ARN.test(baseModelId)
          ? `application inference profile ${baseModelId} is not in INFERENCE_PROFILES_JSON (nor a PRICE_CATALOG_JSON alias): its base model is unknown`
          : `no ${tier}-tier ${resolved.scope} price for ${baseModelId} in ${region} on ${utcDay(call.occurredAt)}`,
      };
    }
    const cacheRead = call.cacheReadInputTokens ?? 0;
    const cacheWrite = call.cacheWriteInputTokens ?? 0;
    const cacheWrite1h = Math.min(call.cacheWrite1hInputTokens ?? 0, cacheWrite);
    const totalInput = call.inputTokens + cacheRead + cacheWrite;
    const long = price.longContext !== undefined && totalInput > price.longContext.aboveInputTokens;
    const r: TokenPrices = long ? price.longContext! : price;
    const write5m = r.cacheWritePer1k ?? r.inputPer1k;
    // pico-USD per 1K times tokens, divided by 1e6 once at the end (BigInt: exact for any count)
    const pico =
      BigInt(call.inputTokens) * per1kToPico(r.inputPer1k) +
      BigInt(call.outputTokens) * per1kToPico(r.outputPer1k) +
      BigInt(cacheRead) * per1kToPico(r.cacheReadPer1k ?? r.inputPer1k) +
      BigInt(cacheWrite - cacheWrite1h) * per1kToPico(write5m) +
      BigInt(cacheWrite1h) * per1kToPico(r.cacheWrite1hPer1k ?? write5m);
    const costNanoUsd = Number((pico + 500_000n) / 1_000_000n);
    return { priced: true, costNanoUsd, baseModelId, scope: resolved.scope, region, price, longContext: long };
  }
}

/**
 * The catalog a deployment prices with: the built-in prices, `PRICE_CATALOG_JSON` over them, and
 * the application inference profiles of `INFERENCE_PROFILES_JSON` resolved to their base models.
 * Every component that prices (ingest, reprice, admission, the stacks' synth check) builds it here,
 * so they cannot disagree on a profile's price.
 */
export function priceCatalogFromEnv(env: { PRICE_CATALOG_JSON?: string; INFERENCE_PROFILES_JSON?: string }): PriceCatalog {
  return PriceCatalog.fromJson(env.PRICE_CATALOG_JSON, InferenceProfiles.fromJson(env.INFERENCE_PROFILES_JSON));
}
