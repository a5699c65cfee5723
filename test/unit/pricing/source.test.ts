import { describe, expect, it } from "vitest";
import { PriceCatalog, SEED_PRICES, SNAPSHOT, SNAPSHOT_PRICES } from "../../../shared/pricing/catalog";
import { BEDROCK_GA_DAY, convertPrices, mergeHistory, rowsFromSource, type SourceModel } from "../../../shared/pricing/source";

const model = (id: string, prices: SourceModel["prices"]): SourceModel => ({ id, prices });

describe("price source conversion", () => {
  it("maps per-1M rates to per-1K rows by scope, with long-context tiers", () => {
    const rows = rowsFromSource(
      [
        model("global.anthropic.x-v1:0", { input_mtok: 1, output_mtok: 5, cache_read_mtok: 0.1, cache_write_mtok: 1.25 }),
        model("regional.anthropic.x-v1:0", { input_mtok: 1.1, output_mtok: 5.5 }),
        model("meta.y-v1:0", { input_mtok: 0.72, output_mtok: 0.72, input_audio_mtok: 3 }),
      ],
      "src",
    );
    expect(rows.map((r) => [r.modelId, r.scope, r.effectiveFrom, r.inputPer1k, r.outputPer1k])).toEqual([
      ["anthropic.x-v1:0", "global", BEDROCK_GA_DAY, 0.001, 0.005],
      ["anthropic.x-v1:0", "in-region", BEDROCK_GA_DAY, 0.0011, 0.0055],
      ["meta.y-v1:0", "*", BEDROCK_GA_DAY, 0.00072, 0.00072],
    ]);
    expect(rows[0]).toMatchObject({ cacheReadPer1k: 0.0001, cacheWritePer1k: 0.00125 });
    expect(convertPrices({ input_mtok: { base: 2, tiers: [{ start: 271999, price: 4 }] }, output_mtok: { base: 12, tiers: [{ start: 271999, price: 18 }] } }, "m")).toEqual({
      inputPer1k: 0.002,
      outputPer1k: 0.012,
      longContext: { aboveInputTokens: 271999, inputPer1k: 0.004, outputPer1k: 0.018 },
    });
  });

  it("keeps history: unchanged prices add nothing, a changed price adds a row dated the version's publication day", () => {
    const first = mergeHistory([], [], rowsFromSource([model("meta.y-v1:0", { input_mtok: 1, output_mtok: 1 })], "v1"), "2026-01-10");
    expect(first.map((r) => [r.effectiveFrom, r.inputPer1k])).toEqual([[BEDROCK_GA_DAY, 0.001]]);
    const same = mergeHistory(first, [], rowsFromSource([model("meta.y-v1:0", { input_mtok: 1, output_mtok: 1 })], "v2"), "2026-02-10");
    expect(same).toHaveLength(1);
    const changed = mergeHistory(first, [], rowsFromSource([model("meta.y-v1:0", { input_mtok: 0.5, output_mtok: 1 })], "v3"), "2026-03-10");
    expect(changed.map((r) => [r.effectiveFrom, r.inputPer1k])).toEqual([
      [BEDROCK_GA_DAY, 0.001],
      ["2026-03-10", 0.0005],
    ]);
    const c = new PriceCatalog(changed);
    const call = (day: string) => ({ provider: "bedrock" as const, modelId: "meta.y-v1:0", occurredAt: `${day}T00:00:00Z`, inputTokens: 1000, outputTokens: 0 });
    expect(c.price(call("2026-03-09"), "us-east-1").costNanoUsd).toBe(1_000_000);
    expect(c.price(call("2026-03-10"), "us-east-1").costNanoUsd).toBe(500_000);
  });

  it("dates a source price that differs from an older hand-dated row (the seed's Llama 3.1 70B) from the source's publication", () => {
    const llama = SNAPSHOT_PRICES.filter((r) => r.modelId === "meta.llama3-1-70b-instruct-v1:0");
    expect(llama.map((r) => [r.effectiveFrom, r.inputPer1k])).toEqual([[SNAPSHOT.sourcePublished, 0.00072]]);
    expect(SEED_PRICES.find((r) => r.modelId === "meta.llama3-1-70b-instruct-v1:0")?.inputPer1k).toBe(0.00099);
  });

  it("an override can price a scope and tier of its own, and an application profile through an alias", () => {
    const c = PriceCatalog.fromJson(
      JSON.stringify({
        prices: [{ modelId: "acme.m-v1:0", region: "*", scope: "global", serviceTier: "flex", effectiveFrom: "2026-01-01", inputPer1k: 0.001, outputPer1k: 0.002 }],
        aliases: { "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/abc123": "global.acme.m-v1:0" },
      }),
    );
    const call = { provider: "bedrock" as const, occurredAt: "2026-06-01T00:00:00Z", inputTokens: 1000, outputTokens: 1000, serviceTier: "flex" as const };
    expect(c.price({ ...call, modelId: "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/abc123" }, "us-east-1")).toMatchObject({ priced: true, costNanoUsd: 3_000_000 });
    expect(c.price({ ...call, modelId: "us.acme.m-v1:0" }, "us-east-1")).toMatchObject({ priced: false, reason: "unknown-model" });
    expect(c.price({ ...call, modelId: "global.acme.m-v1:0", serviceTier: "priority" }, "us-east-1")).toMatchObject({ priced: false });
  });
});
