import { z } from "zod";

/**
 * Price catalog for pay-per-token model APIs (Bedrock on demand). Prices are USD per 1,000
 * tokens, dated (`effectiveFrom`, inclusive, UTC day) and per region. Costs are computed in
 * integer nano-USD so aggregates add up exactly, whatever the number of events.
 */
export interface ModelPrice {
  modelId: string;
  region: string; // "*" = every region without a more specific entry
  effectiveFrom: string; // yyyy-mm-dd
  inputPer1k: number;
  outputPer1k: number;
  cacheReadPer1k?: number;
  cacheWritePer1k?: number;
  /** Where the figure comes from (price page and date), for the audit trail. */
  source?: string;
}

/** Seed prices: Oregon (us-west-2), Bedrock on demand, as of 2024-10-22 (seed-notes.md). */
export const DEFAULT_PRICES: readonly ModelPrice[] = [
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

const NANO = 1_000_000_000;

/** USD per 1K tokens -> integer nano-USD per 1K tokens (exact for prices with <= 9 decimals). */
export function per1kToNano(usdPer1k: number): number {
  return Math.round(usdPer1k * NANO);
}

export function nanoToUsd(nano: number): number {
  return nano / NANO;
}

const CROSS_REGION_PREFIX = /^(us|eu|apac|jp|au|ca|us-gov|global)\./;

/**
 * Resolves what a caller passed as `modelId` to the base foundation-model id that prices are
 * keyed on: foundation-model ARNs, system inference-profile ids (`us.anthropic...`) and their
 * ARNs. Application inference profiles have opaque ids and need an entry in `aliases`.
 */
export function resolveBaseModelId(modelId: string, aliases: Readonly<Record<string, string>> = {}): string {
  // An alias may itself name a system inference profile (`us.anthropic...`) or its ARN:
  // resolve its target once more, without aliases, so alias chains cannot loop.
  if (Object.hasOwn(aliases, modelId)) return resolveBaseModelId(aliases[modelId]);
  let id = modelId;
  const arn = /^arn:aws[a-z-]*:bedrock:[^:]*:[^:]*:(foundation-model|inference-profile|application-inference-profile)\/(.+)$/.exec(id);
  if (arn) {
    if (arn[1] === "application-inference-profile") {
      return Object.hasOwn(aliases, arn[2]) ? resolveBaseModelId(aliases[arn[2]]) : modelId;
    }
    id = arn[2];
  }
  return id.replace(CROSS_REGION_PREFIX, "");
}

/** A price override file (`PRICE_CATALOG_JSON`) that does not have the catalog's shape. */
export class PriceCatalogInvalidError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "PriceCatalogInvalidError";
  }
}

const usdPer1k = z.number().finite().nonnegative();
const modelPriceSchema = z
  .object({
    modelId: z.string().min(1),
    region: z.string().min(1),
    effectiveFrom: z.string().regex(/^\d{4}-\d{2}-\d{2}$/, "effectiveFrom must be yyyy-mm-dd"),
    inputPer1k: usdPer1k,
    outputPer1k: usdPer1k,
    cacheReadPer1k: usdPer1k.optional(),
    cacheWritePer1k: usdPer1k.optional(),
    source: z.string().optional(),
  })
  .strict();
const catalogJsonSchema = z
  .object({
    prices: z.array(modelPriceSchema).optional(),
    aliases: z.record(z.string().min(1), z.string().min(1)).optional(),
  })
  .strict();

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
  cacheWriteInputTokens?: number;
}

export type PriceResult =
  | { priced: true; costNanoUsd: number; baseModelId: string; price: ModelPrice }
  | { priced: false; costNanoUsd: 0; baseModelId: string; reason: "unknown-model" | "fixed-cost" };

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
    // newest first, so the first entry not after the event's day wins
    for (const list of this.byModel.values()) list.sort((a, b) => b.effectiveFrom.localeCompare(a.effectiveFrom));
  }

  /** Parses a JSON catalog (`{ prices: ModelPrice[], aliases?: {...} }`) merged over the defaults. */
  static fromJson(json: string | undefined): PriceCatalog {
    if (!json) return new PriceCatalog();
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
    return new PriceCatalog([...DEFAULT_PRICES, ...(parsed.prices ?? [])], parsed.aliases ?? {});
  }

  find(modelId: string, region: string, at: string): ModelPrice | undefined {
    const base = resolveBaseModelId(modelId, this.aliases);
    const day = utcDay(at);
    const list = this.byModel.get(base);
    if (!list) return undefined;
    return (
      list.find((p) => p.region === region && p.effectiveFrom <= day) ??
      list.find((p) => p.region === "*" && p.effectiveFrom <= day)
    );
  }

  /** Cost of one call. Bedrock calls of unknown models are reported unpriced, never $0 silently. */
  price(
    call: TokenUsage & { provider: "bedrock" | "sagemaker"; modelId: string; occurredAt: string },
    region: string,
  ): PriceResult {
    const baseModelId = resolveBaseModelId(call.modelId, this.aliases);
    if (call.provider === "sagemaker") {
      // SageMaker endpoints cost per instance-hour; the allocation job shares that cost.
      return { priced: false, costNanoUsd: 0, baseModelId, reason: "fixed-cost" };
    }
    const price = this.find(call.modelId, region, call.occurredAt);
    if (!price) return { priced: false, costNanoUsd: 0, baseModelId, reason: "unknown-model" };
    const cacheRead = call.cacheReadInputTokens ?? 0;
    const cacheWrite = call.cacheWriteInputTokens ?? 0;
    // nano-USD per 1K times tokens, divided by 1000 once at the end: exact for integer inputs
    const milliNano =
      call.inputTokens * per1kToNano(price.inputPer1k) +
      call.outputTokens * per1kToNano(price.outputPer1k) +
      cacheRead * per1kToNano(price.cacheReadPer1k ?? price.inputPer1k) +
      cacheWrite * per1kToNano(price.cacheWritePer1k ?? price.inputPer1k);
    return { priced: true, costNanoUsd: Math.round(milliNano / 1000), baseModelId, price };
  }
}
