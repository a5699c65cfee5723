import type { ModelPrice, TokenPrices } from "./catalog";

/**
 * What the maintained source (`@pydantic/genai-prices`, snapshot in bedrock-prices.json) does
 * not carry for Bedrock, kept by hand here, each with where it comes from. Applied when the
 * catalog loads, so the snapshot stays exactly what the source says and a diff of an update
 * shows only the source's changes.
 */

const BEDROCK_GA_DAY = "2023-09-28";
const round = (n: number) => Number(n.toPrecision(12));

/** Anthropic bills 1-hour cache writes at 2x the base input rate (Anthropic prompt-caching docs; seed-notes "Token classes"). */
const ANTHROPIC_1H_WRITE_FACTOR = 2;

/**
 * Long-context rates (the whole request, when its total input is above 200K tokens) of the
 * models that had them on Bedrock: input x2, output x1.5, cache classes x2 (AWS Bedrock pricing
 * page, "Long Context" rows; Anthropic pricing docs). The source lists them for Anthropic's own
 * API only.
 */
const LONG_CONTEXT: Record<string, { aboveInputTokens: number; input: number; output: number }> = {
  "anthropic.claude-sonnet-4-20250514-v1:0": { aboveInputTokens: 200_000, input: 2, output: 1.5 },
  "anthropic.claude-sonnet-4-5-20250929-v1:0": { aboveInputTokens: 200_000, input: 2, output: 1.5 },
};

/**
 * Models offered in the Priority and Flex service tiers, and the tiers' price relative to
 * Standard (AWS "Service tiers" docs and Bedrock pricing page: Priority = Standard + 75%,
 * Flex = Standard - 50%). Transcribed by hand on 2026-12-02; a model missing here gets no
 * priority/flex price, so such calls are counted unpriced (loud) until it is added.
 */
export const SERVICE_TIER_MODELS: readonly string[] = [
  "openai.gpt-oss-120b-1:0",
  "openai.gpt-oss-20b-1:0",
  "qwen.qwen3-32b-v1:0",
  "qwen.qwen3-coder-30b-a3b-v1:0",
  "qwen.qwen3-coder-480b-a35b-v1:0",
  "qwen.qwen3-vl-235b-a22b-v1:0",
  "amazon.nova-2-lite-v1:0",
];
export const SERVICE_TIER_FACTORS = { priority: 1.75, flex: 0.5 } as const;

/** Embedding models the source lacks (input only; AWS Bedrock pricing page). */
const EMBEDDINGS: readonly ModelPrice[] = [
  { modelId: "amazon.titan-embed-text-v2:0", inputPer1k: 0.00002 },
  { modelId: "cohere.embed-english-v3", inputPer1k: 0.0001 },
  { modelId: "cohere.embed-multilingual-v3", inputPer1k: 0.0001 },
].map((e) => ({
  ...e,
  outputPer1k: 0,
  region: "*",
  scope: "*" as const,
  effectiveFrom: BEDROCK_GA_DAY,
  source: "supplement: AWS Bedrock pricing page, embeddings (by hand, 2026-12-02)",
}));

function scaled(p: TokenPrices, f: number): TokenPrices {
  const out: TokenPrices = { inputPer1k: round(p.inputPer1k * f), outputPer1k: round(p.outputPer1k * f) };
  for (const k of ["cacheReadPer1k", "cacheWritePer1k", "cacheWrite1hPer1k"] as const) {
    if (p[k] !== undefined) out[k] = round(p[k] * f);
  }
  return out;
}

function with1hWrite<T extends TokenPrices>(p: T): T {
  return p.cacheWrite1hPer1k !== undefined ? p : { ...p, cacheWrite1hPer1k: round(p.inputPer1k * ANTHROPIC_1H_WRITE_FACTOR) };
}

/** The snapshot's rows with the supplement applied, plus the supplement's own rows. */
export function supplementPrices(snapshot: readonly ModelPrice[]): ModelPrice[] {
  const out: ModelPrice[] = [];
  for (const row of snapshot) {
    let p: ModelPrice = { ...row };
    const anthropic = p.modelId.startsWith("anthropic.");
    const long = LONG_CONTEXT[p.modelId];
    if (long && !p.longContext) {
      const base = with1hWrite(p);
      p = {
        ...p,
        longContext: {
          aboveInputTokens: long.aboveInputTokens,
          inputPer1k: round(base.inputPer1k * long.input),
          outputPer1k: round(base.outputPer1k * long.output),
          ...(base.cacheReadPer1k !== undefined ? { cacheReadPer1k: round(base.cacheReadPer1k * long.input) } : {}),
          ...(base.cacheWritePer1k !== undefined ? { cacheWritePer1k: round(base.cacheWritePer1k * long.input) } : {}),
          cacheWrite1hPer1k: round(base.cacheWrite1hPer1k! * long.input),
        },
      };
    }
    if (anthropic) {
      p = with1hWrite(p);
      if (p.longContext) p = { ...p, longContext: with1hWrite(p.longContext) };
    }
    out.push(p);
    if (SERVICE_TIER_MODELS.includes(p.modelId) && (p.serviceTier ?? "default") === "default") {
      for (const [tier, f] of Object.entries(SERVICE_TIER_FACTORS) as [keyof typeof SERVICE_TIER_FACTORS, number][]) {
        out.push({
          ...p,
          ...scaled(p, f),
          longContext: p.longContext ? { ...p.longContext, ...scaled(p.longContext, f) } : undefined,
          serviceTier: tier,
          source: `supplement: ${tier} tier = standard x ${f} (AWS service tiers), of ${p.source ?? p.modelId}`,
        });
      }
    }
  }
  return [...out.map(dropUndefined), ...EMBEDDINGS];
}

function dropUndefined(p: ModelPrice): ModelPrice {
  return Object.fromEntries(Object.entries(p).filter(([, v]) => v !== undefined)) as unknown as ModelPrice;
}
