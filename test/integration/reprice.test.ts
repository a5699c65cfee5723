import { describe, expect, inject, it, vi } from "vitest";
import { run } from "../../cli/reprice";
import { PriceCatalog } from "../../shared/pricing/catalog";
import { documentClient } from "../../shared/storage/adapters/dynamodb";
import { DynamoUsageStore } from "../../shared/usage/adapters/dynamodb";
import { IngestService } from "../../shared/usage/ingest";
import { RepriceService } from "../../shared/usage/reprice";
import { freshUsageTable, localDynamoClient } from "../helpers/dynamo";
import { invocation, recordOf } from "../helpers/events";

const client = localDynamoClient();
const doc = documentClient(client);
const NOW = new Date("2026-11-25T12:00:00Z");
const NEW_MODEL = "vendor.brand-new-model-v9";
// the price an operator adds once the model is known: $0.001 in / $0.002 out per 1K tokens
const withPrice = PriceCatalog.fromJson(
  JSON.stringify({ prices: [{ modelId: NEW_MODEL, region: "*", effectiveFrom: "2026-01-01", inputPer1k: 0.001, outputPer1k: 0.002 }] }),
);

async function setup() {
  const table = await freshUsageTable(client);
  const store = new DynamoUsageStore(doc, table, { ledgerTtlDays: 60 });
  const ingest = new IngestService({
    store, prices: new PriceCatalog(), region: "us-west-2", maxEventAgeDays: 35,
    sleep: async () => undefined, clock: () => NOW,
  });
  const reprice = (prices: PriceCatalog) => new RepriceService({ store, prices, region: "us-west-2", clock: () => NOW, sleep: async () => undefined });
  return { store, ingest, reprice };
}

describe("repricing usage counted without a price (DynamoDB Local)", () => {
  it("adds the cost to every aggregate once the price is known, once, and leaves priced usage alone", async () => {
    const { store, ingest, reprice } = await setup();
    const unpriced = [
      invocation({ tenantId: "rp", modelId: NEW_MODEL, occurredAt: "2026-11-25T10:00:00Z", inputTokens: 1000, outputTokens: 500 }),
      invocation({ tenantId: "rp", modelId: NEW_MODEL, occurredAt: "2026-11-24T09:00:00Z", inputTokens: 2000, outputTokens: 0 }),
    ];
    const priced = invocation({ tenantId: "rp", occurredAt: "2026-11-25T10:00:00Z" }); // Haiku, $0.000743
    expect((await ingest.ingest([...unpriced, priced].map(recordOf))).stats).toMatchObject({ counted: 3, unpriced: 2 });
    const before = (await store.tenantPeriods("rp", "month", "2026-11", "2026-11"))[0].counters;
    expect(before).toMatchObject({ requests: 3, unpricedRequests: 2, costNanoUsd: 743_000 });

    // nothing to do while the catalog still has no price
    const none = await reprice(new PriceCatalog()).reprice({ from: "2026-11-25", to: "2026-11-25" });
    expect(none).toMatchObject({ notes: 2, repriced: [], skipped: 0 });
    expect(none.stillUnpriced.map((r) => r.eventId).sort()).toEqual(unpriced.map((e) => e.eventId).sort());

    const dry = await reprice(withPrice).reprice({ from: "2026-11-25", to: "2026-11-25", dryRun: true });
    expect(dry.repriced).toHaveLength(2);
    expect((await store.tenantPeriods("rp", "month", "2026-11", "2026-11"))[0].counters).toEqual(before);

    const run = await reprice(withPrice).reprice({ from: "2026-11-20", to: "2026-11-25" });
    // 1000 x 0.001 + 500 x 0.002 per 1K = $0.002; 2000 x 0.001 per 1K = $0.002
    expect(run.repriced.map((r) => r.costNanoUsd)).toEqual([2_000_000, 2_000_000]);
    const month = (await store.tenantPeriods("rp", "month", "2026-11", "2026-11"))[0].counters;
    expect(month).toMatchObject({ requests: 3, unpricedRequests: 0, costNanoUsd: 743_000 + 4_000_000, inputTokens: before.inputTokens });
    const days = await store.tenantPeriods("rp", "day", "2026-11-24", "2026-11-25");
    expect(days.map((d) => [d.period, d.counters.costNanoUsd, d.counters.unpricedRequests])).toEqual([
      ["2026-11-24", 2_000_000, 0],
      ["2026-11-25", 743_000 + 2_000_000, 0],
    ]);
    const models = await store.modelPeriods("rp", "month", "2026-11", "2026-11");
    expect(models.find((m) => m.modelId === NEW_MODEL)?.counters).toMatchObject({ costNanoUsd: 4_000_000, unpricedRequests: 0, requests: 2 });

    // a second run prices nothing again
    const again = await reprice(withPrice).reprice({ from: "2026-11-20", to: "2026-11-25" });
    expect(again).toMatchObject({ notes: 2, repriced: [], skipped: 2 });
    expect((await store.tenantPeriods("rp", "month", "2026-11", "2026-11"))[0].counters.costNanoUsd).toBe(743_000 + 4_000_000);
  });

  it("prices the exact counts when an estimate of the same call was corrected first", async () => {
    const { store, ingest, reprice } = await setup();
    const estimate = invocation({ tenantId: "rq", eventId: "req-x", modelId: NEW_MODEL, occurredAt: "2026-11-25T10:00:00Z", inputTokens: 1000, outputTokens: 10, estimated: true });
    await ingest.ingest([recordOf(estimate)]);
    await ingest.ingest([recordOf({ ...estimate, outputTokens: 1500, estimated: undefined })]);
    const run = await reprice(withPrice).reprice({ from: "2026-11-25", to: "2026-11-25" });
    // 1000 x 0.001 + 1500 x 0.002 per 1K = $0.004
    expect(run.repriced.map((r) => r.costNanoUsd)).toEqual([4_000_000]);
    expect((await store.tenantPeriods("rq", "month", "2026-11", "2026-11"))[0].counters).toMatchObject({
      requests: 1, outputTokens: 1500, costNanoUsd: 4_000_000, unpricedRequests: 0, estimatedRequests: 0,
    });
  });

  it("npm run cli -- reprice prices with PRICE_CATALOG_JSON and says what it did", async () => {
    const table = await freshUsageTable(client);
    const store = new DynamoUsageStore(doc, table, { ledgerTtlDays: 60 });
    const today = new Date();
    const ingest = new IngestService({ store, prices: new PriceCatalog(), region: "us-west-2", maxEventAgeDays: 35 });
    await ingest.ingest([recordOf(invocation({ tenantId: "rc", modelId: NEW_MODEL, occurredAt: today.toISOString(), inputTokens: 1000, outputTokens: 500 }))]);
    vi.stubEnv("PRICE_CATALOG_JSON", JSON.stringify({ prices: [{ modelId: NEW_MODEL, region: "*", effectiveFrom: "2026-01-01", inputPer1k: 0.001, outputPer1k: 0.002 }] }));
    const lines: string[] = [];
    const log = vi.spyOn(console, "log").mockImplementation((...a: unknown[]) => void lines.push(a.map(String).join(" ")));
    try {
      expect(await run(["--endpoint-url", inject("dynamoEndpoint"), "--table", table])).toBe(0);
      expect(await run(["--endpoint-url", inject("dynamoEndpoint"), "--table", table])).toBe(0);
    } finally {
      log.mockRestore();
      vi.unstubAllEnvs();
    }
    expect(lines[0]).toMatch(/^priced rc .* vendor\.brand-new-model-v9: \$0\.002000$/);
    expect(lines[1]).toMatch(/1 unpriced note\(s\): 1 priced \(\$0\.002000\)/);
    expect(lines[2]).toMatch(/0 priced \(\$0\.000000\), 0 still without a price, 1 priced before/);
    const month = today.toISOString().slice(0, 7);
    expect((await store.tenantPeriods("rc", "month", month, month))[0].counters).toMatchObject({ costNanoUsd: 2_000_000, unpricedRequests: 0 });
  });
});
