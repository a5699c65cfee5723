import { describe, expect, it } from "vitest";
import { PriceCatalog, nanoToUsd } from "../../shared/pricing/catalog";
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
