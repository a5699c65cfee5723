import { describe, expect, it } from "vitest";
import { PriceCatalog, nanoToUsd } from "../../shared/pricing/catalog";
import { InferenceProfiles } from "../../shared/pricing/inference-profiles";
import { GOLDEN_CASES } from "./pricing-cases";

describe("golden pricing suite (hand-written AWS list prices)", () => {
  const catalog = new PriceCatalog();

  it("has at least 40 cases, the seed's three models among them", () => {
    expect(GOLDEN_CASES.length).toBeGreaterThanOrEqual(40);
    expect(GOLDEN_CASES.filter((c) => c.day === "2024-10-22").map((c) => c.modelId)).toEqual(
      expect.arrayContaining(["anthropic.claude-3-5-sonnet-20240620-v1:0", "anthropic.claude-3-haiku-20240307-v1:0", "meta.llama3-1-70b-instruct-v1:0"]),
    );
  });

  for (const c of GOLDEN_CASES) {
    it(`${c.name}: ${typeof c.usd === "number" ? `$${c.usd}` : c.usd}`, () => {
      const r = catalog.price(
        {
          provider: "bedrock",
          modelId: c.modelId,
          invokedModelId: c.invokedModelId,
          occurredAt: `${c.day}T12:00:00Z`,
          serviceTier: c.tier,
          inputTokens: c.in,
          outputTokens: c.out,
          cacheReadInputTokens: c.cacheRead,
          cacheWriteInputTokens: c.cacheWrite,
          cacheWrite1hInputTokens: c.cacheWrite1h,
        },
        "us-east-1",
      );
      if (c.usd === "unpriced") return void expect(r).toMatchObject({ priced: false, reason: "unknown-model", costNanoUsd: 0 });
      if (c.usd === "fixed-cost") return void expect(r).toMatchObject({ priced: false, reason: "fixed-cost", costNanoUsd: 0 });
      expect(r.priced, r.priced ? "" : `unpriced: ${r.detail}`).toBe(true);
      // integer nano-USD: the only difference allowed is the rounding of the last nano-dollar
      expect(Math.abs(nanoToUsd(r.costNanoUsd) - c.usd)).toBeLessThanOrEqual(1e-9);
    });
  }
});

/**
 * Application inference profiles (native per-tenant attribution): an event (or an invocation-log
 * record) names the profile ARN; the catalog prices it as the base model the configured map says
 * it copies, at that model's list price (figures from the price bases in pricing-cases.ts).
 */
describe("golden pricing: application inference profiles from INFERENCE_PROFILES_JSON", () => {
  const arn = (region: string, id: string) => `arn:aws:bedrock:${region}:123456789012:application-inference-profile/${id}`;
  const profiles = InferenceProfiles.fromJson(
    JSON.stringify([
      { arn: arn("us-west-2", "haiku45tenant"), model: "anthropic.claude-haiku-4-5-20251001-v1:0", tenant: "adv-01" },
      { arn: arn("us-east-1", "haiku45global"), model: "global.anthropic.claude-haiku-4-5-20251001-v1:0", tier: "premium" },
      { arn: arn("us-east-1", "sonnet45us"), model: "us.anthropic.claude-sonnet-4-5-20250929-v1:0", tenant: "adv-02" },
      { arn: arn("us-west-2", "seedsonnet"), model: "arn:aws:bedrock:us-west-2::foundation-model/anthropic.claude-3-5-sonnet-20240620-v1:0" },
      { arn: arn("eu-west-1", "haiku3eu"), model: "anthropic.claude-3-haiku-20240307-v1:0", tenant: "adv-03" },
    ]),
  );
  const catalog = PriceCatalog.fromJson(undefined, profiles);
  const cases: { name: string; modelId: string; day: string; in: number; out: number; cacheRead?: number; cacheWrite?: number; usd: number; region?: string }[] = [
    // Haiku 4.5 in-region 1.10 / 5.50 per 1M: 1.1 + 5.5 milli
    { name: "tenant profile of Haiku 4.5 (in-region)", modelId: arn("us-west-2", "haiku45tenant"), day: "2026-12-01", in: 1000, out: 1000, usd: 0.0066 },
    // 1000 x 1.10 + 500 x 5.50 + 2000 x 0.11 + 1000 x 1.375 per 1M = 0.0011 + 0.00275 + 0.00022 + 0.001375
    { name: "tenant profile of Haiku 4.5 with cache", modelId: arn("us-west-2", "haiku45tenant"), day: "2026-12-01", in: 1000, out: 500, cacheRead: 2000, cacheWrite: 1000, usd: 0.005445 },
    // copied from the global profile: global 1 / 5 per 1M
    { name: "tier profile copied from global Haiku 4.5", modelId: arn("us-east-1", "haiku45global"), day: "2026-12-01", in: 1000, out: 1000, usd: 0.006 },
    // copied from the us. profile: geo 3.30 / 16.50 per 1M
    { name: "tenant profile copied from us. Sonnet 4.5", modelId: arn("us-east-1", "sonnet45us"), day: "2026-12-01", in: 1000, out: 1000, usd: 0.0198 },
    // seed Claude 3.5 Sonnet 3 / 15 per 1M on the seed day
    { name: "profile of a foundation-model ARN (seed Sonnet 3.5)", modelId: arn("us-west-2", "seedsonnet"), day: "2024-10-22", in: 2000, out: 1000, usd: 0.021 },
    // the profile's id alone, as some callers log it
    { name: "the profile id without the ARN", modelId: "haiku45tenant", day: "2026-12-01", in: 1000, out: 1000, usd: 0.0066 },
    // Claude 3 Haiku 0.25 / 1.25 per 1M; no region on the event: the ARN's region prices it
    { name: "eu-west-1 profile of Claude 3 Haiku, region from the ARN", modelId: arn("eu-west-1", "haiku3eu"), day: "2026-12-01", in: 4000, out: 800, usd: 0.002, region: "eu-west-1" },
  ];
  for (const c of cases) {
    it(`${c.name}: $${c.usd}`, () => {
      const r = catalog.price(
        { provider: "bedrock", modelId: c.modelId, occurredAt: `${c.day}T12:00:00Z`, inputTokens: c.in, outputTokens: c.out, cacheReadInputTokens: c.cacheRead, cacheWriteInputTokens: c.cacheWrite },
        "us-east-1",
      );
      expect(r.priced, r.priced ? "" : `unpriced: ${r.detail}`).toBe(true);
      expect(Math.abs(nanoToUsd(r.costNanoUsd) - c.usd)).toBeLessThanOrEqual(1e-9);
      if (c.region && r.priced) expect(r.region).toBe(c.region);
    });
  }

  it("an unknown profile ARN stays unpriced, with a reason that names the missing map entry", () => {
    const unknown = arn("us-west-2", "notconfigured");
    for (const c of [catalog, new PriceCatalog()]) {
      const r = c.price({ provider: "bedrock", modelId: unknown, occurredAt: "2026-12-01T12:00:00Z", inputTokens: 1000, outputTokens: 1000 }, "us-east-1");
      expect(r).toMatchObject({ priced: false, reason: "unknown-model", costNanoUsd: 0, baseModelId: unknown });
      expect(r.priced ? "" : r.detail).toMatch(/application inference profile .*notconfigured is not in INFERENCE_PROFILES_JSON/);
    }
  });

  it("an alias in PRICE_CATALOG_JSON for the same profile wins over the map", () => {
    const c = PriceCatalog.fromJson(JSON.stringify({ aliases: { haiku45tenant: "global.anthropic.claude-haiku-4-5-20251001-v1:0" } }), profiles);
    const r = c.price({ provider: "bedrock", modelId: arn("us-west-2", "haiku45tenant"), occurredAt: "2026-12-01T12:00:00Z", inputTokens: 1000, outputTokens: 1000 }, "us-east-1");
    expect(r.priced && nanoToUsd(r.costNanoUsd)).toBe(0.006);
  });
});
