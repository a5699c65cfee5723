import { describe, expect, it } from "vitest";
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
const MODEL = "vendor.tiered-model-v2";

describe("repricing keeps the pricing dimensions of the event (DynamoDB Local)", () => {
  it("prices an unpriced call later by its scope, region, service tier, invoked model and 1h cache writes", async () => {
    // prepare: a routed call, global scope, priority tier, in eu-central-1, with 1h cache writes; no price yet
    const table = await freshUsageTable(client);
    const store = new DynamoUsageStore(doc, table, { ledgerTtlDays: 60 });
    const ingest = new IngestService({ store, prices: new PriceCatalog(), region: "us-west-2", maxEventAgeDays: 35 , sleep: async () => undefined, clock: () => NOW });
    const event = invocation({
      tenantId: "rpd",
      modelId: "arn:aws:bedrock:eu-central-1:123456789012:default-prompt-router/vendor:1",
      invokedModelId: `global.${MODEL}`,
      serviceTier: "priority",
      region: "eu-central-1",
      occurredAt: "2026-11-25T10:00:00Z",
      inputTokens: 1000,
      outputTokens: 1000,
      cacheWriteInputTokens: 3000,
      cacheWrite1hInputTokens: 1000,
    });
    expect((await ingest.ingest([recordOf(event)])).stats).toMatchObject({ counted: 1, unpriced: 1 });
    const row = (p: object) => ({ modelId: MODEL, effectiveFrom: "2026-01-01", inputPer1k: 0.001, outputPer1k: 0.002, cacheWritePer1k: 0.003, cacheWrite1hPer1k: 0.004, ...p });
    // decoys: other scope, other tier, other region: each would give a different figure
    const prices = PriceCatalog.fromJson(
      JSON.stringify({
        prices: [
          row({ region: "*", scope: "in-region", serviceTier: "priority", inputPer1k: 9 }),
          row({ region: "*", scope: "global", inputPer1k: 8 }),
          row({ region: "us-west-2", scope: "global", serviceTier: "priority", inputPer1k: 7 }),
          row({ region: "eu-central-1", scope: "global", serviceTier: "priority" }),
        ],
      }),
    );

    // act
    const report = await new RepriceService({ store, prices, region: "us-west-2", clock: () => NOW, sleep: async () => undefined }).reprice({ from: "2026-11-25", to: "2026-11-25" });

    // assess: 1000 x 0.001 + 1000 x 0.002 + 2000 x 0.003 + 1000 x 0.004 per 1K = $0.013
    expect(report.repriced.map((r) => r.costNanoUsd)).toEqual([13_000_000]);
    const month = (await store.tenantPeriods("rpd", "month", "2026-11", "2026-11"))[0].counters;
    expect(month).toMatchObject({ requests: 1, unpricedRequests: 0, costNanoUsd: 13_000_000, cacheWriteInputTokens: 3000, cacheWrite1hInputTokens: 1000 });
  });
});
