import { BatchGetCommand, QueryCommand, type DynamoDBDocumentClient } from "@aws-sdk/lib-dynamodb";
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
    const sleep = this.opts.sleep ?? ((ms: number) => new Promise((r) => setTimeout(r, ms)));
    for (let i = 0; i < tenantIds.length; i += 100) {
      let request: Item[] | undefined = tenantIds.slice(i, i + 100).map((t) => keys.config(t));
      for (let round = 0; request && request.length > 0; round++) {
        if (round >= (this.opts.maxBatchGetRounds ?? 10)) throw new BillingTierLookupError(`tier lookup: keys still unprocessed after ${round} rounds`);
        if (round > 0) await sleep(Math.min(2000, 25 * 2 ** round));
        const out = await this.doc.send(
          new BatchGetCommand({
            RequestItems: {
              [this.tableName]: { Keys: request, ProjectionExpression: "pk, #t", ExpressionAttributeNames: { "#t": "tier" } },
            },
          }),
        );
        for (const item of out.Responses?.[this.tableName] ?? []) {
          tiers.set(String(item.pk).slice(keys.tenant("").length), item.tier);
        }
        // Throttled keys come back unprocessed: ask again for exactly those.
        request = out.UnprocessedKeys?.[this.tableName]?.Keys as Item[] | undefined;
      }
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
