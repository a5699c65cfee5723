import { QueryCommand, type DynamoDBDocumentClient } from "@aws-sdk/lib-dynamodb";
import { batchGetAll } from "../../storage/adapters/dynamodb";
import { keys } from "../../storage/keys";
import { USAGE_TABLE } from "../../storage/table";
import type { MonthAggregate } from "../invoice";
import { BillingTierLookupError } from "../errors";
import type { BillingSource } from "../ports";

type Item = Record<string, unknown>;

/** Reads month aggregates through GSI1 (all billing shards) and tiers from tenant CONFIG items. */
export class DynamoBillingSource implements BillingSource {
  constructor(
    private readonly doc: DynamoDBDocumentClient,
    private readonly tableName: string,
    private readonly opts: { pageSize?: number; sleep?: (ms: number) => Promise<void>; maxBatchGetRounds?: number } = {},
  ) {}

  async *monthAggregates(month: string): AsyncIterable<MonthAggregate> {
    for (let shard = 0; shard < USAGE_TABLE.billingShards; shard++) {
      let key: Item | undefined;
      do {
        // GSI reads are eventually consistent: run the export after the month's last events have settled.
        const out = await this.doc.send(
          new QueryCommand({
            TableName: this.tableName,
            IndexName: USAGE_TABLE.gsi1.name,
            KeyConditionExpression: "gsi1pk = :p",
            ExpressionAttributeValues: { ":p": keys.billingPartition(month, shard) },
            ExclusiveStartKey: key,
            Limit: this.opts.pageSize,
          }),
        );
        for (const i of out.Items ?? []) yield toAggregate(i);
        key = out.LastEvaluatedKey;
      } while (key);
    }
  }

  async tiers(tenantIds: readonly string[]): Promise<Map<string, unknown>> {
    const tiers = new Map<string, unknown>();
    for (let i = 0; i < tenantIds.length; i += 100) {
      let items;
      try {
        items = await batchGetAll(
          this.doc,
          {
            TableName: this.tableName,
            Keys: tenantIds.slice(i, i + 100).map((t) => keys.config(t)),
            ProjectionExpression: "pk, #t",
            ExpressionAttributeNames: { "#t": "tier" },
          },
          { sleep: this.opts.sleep, maxRounds: this.opts.maxBatchGetRounds ?? 10 },
        );
      } catch (cause) {
        throw new BillingTierLookupError(`tier lookup: ${(cause as Error).message}`, { cause });
      }
      for (const item of items) tiers.set(String(item.pk).slice(keys.tenant("").length), item.tier);
    }
    return tiers;
  }
}

function toAggregate(i: Item): MonthAggregate {
  const n = (v: unknown) => {
    const x = Number(v ?? 0);
    return Number.isFinite(x) ? x : 0;
  };
  return {
    tenantId: String(i.tenantId ?? String(i.pk).slice(keys.tenant("").length)),
    requests: n(i.requests),
    inputTokens: n(i.inputTokens),
    outputTokens: n(i.outputTokens),
    costNanoUsd: n(i.costNanoUsd),
    allocatedCostNanoUsd: n(i.allocatedCostNanoUsd),
    unpricedRequests: n(i.unpricedRequests),
  };
}
