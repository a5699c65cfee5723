import { describe, expect, it } from "vitest";
import {
  DEFAULT_PRICES,
  PriceCatalog,
  PriceCatalogInvalidError,
  nanoToUsd,
  per1kToNano,
  resolveBaseModelId,
  type ModelPrice,
} from "../../../shared/pricing/catalog";

const SONNET = "anthropic.claude-3-5-sonnet-20240620-v1:0";
const call = (modelId: string, occurredAt = "2026-11-25T20:00:00Z", tokens = { inputTokens: 1000, outputTokens: 1000 }) => ({
  provider: "bedrock" as const,
  modelId,
  occurredAt,
  ...tokens,
});

describe("price catalog", () => {
  it("prices a call in integer nano-USD from the per-1K prices", () => {
    const r = new PriceCatalog().price(call(SONNET, "2026-11-25T20:00:00Z", { inputTokens: 307, outputTokens: 533 }), "us-west-2");
    // 307 x $0.003/1K + 533 x $0.015/1K = $0.000921 + $0.007995
    expect(r).toMatchObject({ priced: true, costNanoUsd: 8_916_000, baseModelId: SONNET });
    expect(nanoToUsd(r.costNanoUsd)).toBeCloseTo(0.008916, 12);
  });

  it("prices cache reads and writes at their own rates, falling back to the input price", () => {
    const r = new PriceCatalog().price(
      { ...call(SONNET), inputTokens: 0, outputTokens: 0, cacheReadInputTokens: 1000, cacheWriteInputTokens: 1000 },
      "us-west-2",
    );
    expect(r.costNanoUsd).toBe(per1kToNano(0.0003) + per1kToNano(0.00375));
    const haiku = new PriceCatalog().price(
      { ...call("anthropic.claude-3-haiku-20240307-v1:0"), inputTokens: 0, outputTokens: 0, cacheReadInputTokens: 2000 },
      "us-west-2",
    );
    expect(haiku.costNanoUsd).toBe(2 * per1kToNano(0.00025)); // no cache price listed: input price
  });

  it("switches price on the effective date (UTC day of the event)", () => {
    const prices: ModelPrice[] = [
      { modelId: "m.x", region: "*", effectiveFrom: "2026-01-01", inputPer1k: 0.001, outputPer1k: 0.002 },
      { modelId: "m.x", region: "*", effectiveFrom: "2026-12-01", inputPer1k: 0.0005, outputPer1k: 0.001 },
    ];
    const c = new PriceCatalog(prices);
    expect(c.find("m.x", "us-west-2", "2026-11-30T23:59:59Z")?.inputPer1k).toBe(0.001);
    expect(c.find("m.x", "us-west-2", "2026-12-01T00:00:00Z")?.inputPer1k).toBe(0.0005);
    // 19:30 at -05:00 is 00:30 UTC on Dec 1: the new price applies
    expect(c.find("m.x", "us-west-2", "2026-11-30T19:30:00-05:00")?.inputPer1k).toBe(0.0005);
    // before the first entry: no price
    expect(c.find("m.x", "us-west-2", "2025-12-31T23:00:00Z")).toBeUndefined();
    expect(c.price(call("m.x", "2025-12-31T23:00:00Z"), "us-west-2")).toMatchObject({ priced: false, reason: "unknown-model" });
  });

  it("prefers a region-specific entry over '*', and falls back to '*' elsewhere", () => {
    const c = new PriceCatalog([
      { modelId: "m.y", region: "*", effectiveFrom: "2026-01-01", inputPer1k: 0.001, outputPer1k: 0.001 },
      { modelId: "m.y", region: "eu-central-1", effectiveFrom: "2026-01-01", inputPer1k: 0.0012, outputPer1k: 0.0012 },
    ]);
    expect(c.price(call("m.y"), "eu-central-1").costNanoUsd).toBe(2 * per1kToNano(0.0012));
    expect(c.price(call("m.y"), "us-west-2").costNanoUsd).toBe(2 * per1kToNano(0.001));
  });

  it("resolves system inference profiles (ids and ARNs) and foundation-model ARNs to the base model", () => {
    expect(resolveBaseModelId(`us.${SONNET}`)).toBe(SONNET);
    expect(resolveBaseModelId(`eu.${SONNET}`)).toBe(SONNET);
    expect(resolveBaseModelId(`arn:aws:bedrock:us-west-2:123:inference-profile/us.${SONNET}`)).toBe(SONNET);
    expect(resolveBaseModelId(`arn:aws:bedrock:us-west-2::foundation-model/${SONNET}`)).toBe(SONNET);
    const c = new PriceCatalog();
    const viaProfile = c.price(call(`arn:aws:bedrock:us-west-2:123:inference-profile/us.${SONNET}`), "us-west-2");
    expect(viaProfile).toMatchObject({ priced: true, baseModelId: SONNET });
    expect(viaProfile.costNanoUsd).toBe(c.price(call(SONNET), "us-west-2").costNanoUsd);
  });

  it("resolves application inference profiles only through aliases", () => {
    const arn = "arn:aws:bedrock:us-west-2:123:application-inference-profile/a1b2c3d4e5";
    expect(new PriceCatalog().price(call(arn), "us-west-2")).toMatchObject({ priced: false, reason: "unknown-model", baseModelId: arn });
    const byId = PriceCatalog.fromJson(JSON.stringify({ aliases: { a1b2c3d4e5: `us.${SONNET}` } }));
    expect(byId.price(call(arn), "us-west-2")).toMatchObject({ priced: true, baseModelId: SONNET });
    const byArn = PriceCatalog.fromJson(JSON.stringify({ aliases: { [arn]: SONNET } }));
    expect(byArn.price(call(arn), "us-west-2")).toMatchObject({ priced: true, baseModelId: SONNET });
  });

  it("reports an unknown model as unpriced with a reason, never as a silent $0", () => {
    const r = new PriceCatalog().price(call("cohere.command-r-plus-v1:0"), "us-west-2");
    expect(r).toEqual({
      priced: false,
      costNanoUsd: 0,
      baseModelId: "cohere.command-r-plus-v1:0",
      reason: "unknown-model",
      detail: "no default-tier in-region price for cohere.command-r-plus-v1:0 in us-west-2 on 2026-11-25",
    });
  });

  it("reports SageMaker calls as fixed-cost (shared by the allocation job), not as unknown", () => {
    const r = new PriceCatalog().price({ ...call("llama31-70b-lora"), provider: "sagemaker" }, "us-west-2");
    expect(r).toMatchObject({ priced: false, reason: "fixed-cost" });
  });

  it("merges JSON prices over the defaults and rejects malformed catalogs loudly", () => {
    const c = PriceCatalog.fromJson(
      JSON.stringify({ prices: [{ modelId: "new.model", region: "*", effectiveFrom: "2026-01-01", inputPer1k: 0.01, outputPer1k: 0.02 }] }),
    );
    expect(c.find("new.model", "us-west-2", "2026-02-01")?.outputPer1k).toBe(0.02);
    expect(c.find(SONNET, "us-west-2", "2026-02-01")).toBeDefined();
    expect(() => PriceCatalog.fromJson("{")).toThrow(PriceCatalogInvalidError);
    expect(() => PriceCatalog.fromJson(JSON.stringify({ prices: [{ modelId: "x", region: "*", effectiveFrom: "2026-1-1", inputPer1k: 1, outputPer1k: 1 }] }))).toThrow(
      /effectiveFrom/,
    );
    expect(() => PriceCatalog.fromJson(JSON.stringify({ prices: [{ modelId: "x", region: "*", effectiveFrom: "2026-01-01", inputPer1k: -1, outputPer1k: 1 }] }))).toThrow(
      PriceCatalogInvalidError,
    );
  });

  it("holds the seed's Oregon prices", () => {
    const seed = (id: string) => DEFAULT_PRICES.find((p) => p.modelId === id)!;
    expect([seed(SONNET).inputPer1k, seed(SONNET).outputPer1k]).toEqual([0.003, 0.015]);
    expect([seed("anthropic.claude-3-haiku-20240307-v1:0").inputPer1k, seed("anthropic.claude-3-haiku-20240307-v1:0").outputPer1k]).toEqual([0.00025, 0.00125]);
    expect([seed("meta.llama3-1-70b-instruct-v1:0").inputPer1k, seed("meta.llama3-1-70b-instruct-v1:0").outputPer1k]).toEqual([0.00099, 0.00099]);
  });
});
