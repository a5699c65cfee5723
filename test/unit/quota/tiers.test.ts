import { describe, expect, it } from "vitest";
import { QuotaConfigInvalidError } from "../../../shared/quota/errors";
import { effectivePolicy, quotaTokens, reached } from "../../../shared/quota/model";
import { DEFAULT_TIERS, loadTierCatalog, MODELS } from "../../../shared/quota/tiers";

describe("tier catalog", () => {
  it("follows the seed: basic on the LoRA endpoint and throttled, advanced downgraded to Haiku, premium alert-only", () => {
    expect(DEFAULT_TIERS.basic).toMatchObject({ serving: { provider: "sagemaker", endpointName: MODELS.basicEndpoint, adapterPerTenant: true }, atLimit: "throttle" });
    expect(DEFAULT_TIERS.advanced).toMatchObject({ serving: { modelId: MODELS.highPerformance }, atLimit: "downgrade", downgradeModelId: MODELS.midPerformance });
    expect(DEFAULT_TIERS.premium.atLimit).toBe("alert");
    expect([DEFAULT_TIERS.premium.tokensPerMinute, DEFAULT_TIERS.premium.requestsPerMinute]).toEqual([undefined, undefined]);
  });

  it("merges TIER_CATALOG_JSON per tier and validates the result", () => {
    const c = loadTierCatalog(JSON.stringify({ basic: { monthlyTokens: 5000, warningThresholds: [0.5, 0.8] } }));
    expect(c.basic).toMatchObject({ monthlyTokens: 5000, warningThresholds: [0.5, 0.8], atLimit: "throttle" });
    expect(c.advanced).toEqual(DEFAULT_TIERS.advanced);
    expect(() => loadTierCatalog(JSON.stringify({ premium: { atLimit: "throttle" } }))).toThrow(QuotaConfigInvalidError);
    expect(() => loadTierCatalog(JSON.stringify({ gold: {} }))).toThrow(/gold: unknown tier/);
    expect(() => loadTierCatalog("{")).toThrow(QuotaConfigInvalidError);
    expect(() => loadTierCatalog(JSON.stringify({ basic: { atLimit: "downgrade" } }))).toThrow(/downgradeModelId/);
  });

  it("applies tenant overrides over the tier and keeps the action at 100%", () => {
    const p = effectivePolicy(DEFAULT_TIERS, { tenantId: "t", tier: "advanced", monthlyUsd: 50, updatedAt: "" }, "basic");
    expect(p).toMatchObject({ tier: "advanced", monthlyTokens: 10_000_000, monthlyUsd: 50, atLimit: "downgrade" });
    expect(effectivePolicy(DEFAULT_TIERS, undefined, "basic").tier).toBe("basic");
  });

  it("counts input, output and cache-write tokens toward quotas, not cache reads", () => {
    expect(quotaTokens({ inputTokens: 1, outputTokens: 2, cacheWriteInputTokens: 4, cacheReadInputTokens: 8 })).toBe(7);
  });

  it("compares thresholds exactly at the boundary", () => {
    expect(reached(1_600_000, 0.8, 2_000_000)).toBe(true);
    expect(reached(1_599_999, 0.8, 2_000_000)).toBe(false);
    expect(reached(2_000_000, 1, 2_000_000)).toBe(true);
    expect(reached(700, 0.7, 1000)).toBe(true);
    expect(reached(699, 0.7, 1000)).toBe(false);
  });
});
