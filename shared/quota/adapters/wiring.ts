import type { QuotaServiceDeps } from "../service";
import type { EventBridgeClient } from "@aws-sdk/client-eventbridge";
import type { DynamoDBDocumentClient } from "@aws-sdk/lib-dynamodb";
import type { EnforcementPublisher } from "../ports";
import { QuotaEvaluator } from "../service";
import { OutboxSweeper } from "../sweep";
import type { TierCatalog, TierName } from "../tiers";
import { DynamoQuotaStore, type DynamoQuotaStoreOptions } from "./dynamodb";
import { EventBridgeEnforcementPublisher } from "./eventbridge";

/**
 * Two-line wiring for handlers:
 * `createQuotaEvaluator({ dynamo: doc, tableName, publisher: eventBridgePublisher(eb, bus) })`.
 */
export function createQuotaEvaluator(opts: {
  dynamo: DynamoDBDocumentClient;
  tableName: string;
  publisher: EnforcementPublisher;
  tiers?: TierCatalog;
  defaultTier?: TierName;
  clock?: () => Date;
  store?: DynamoQuotaStoreOptions;
  onUsage?: QuotaServiceDeps["onUsage"];
}): QuotaEvaluator {
  return new QuotaEvaluator({
    store: new DynamoQuotaStore(opts.dynamo, opts.tableName, opts.store),
    publisher: opts.publisher,
    tiers: opts.tiers,
    defaultTier: opts.defaultTier,
    clock: opts.clock,
    onUsage: opts.onUsage,
  });
}

/** The outbox sweeper over the same table and store as the evaluation. */
export function createOutboxSweeper(opts: {
  dynamo: DynamoDBDocumentClient;
  tableName: string;
  publisher: EnforcementPublisher;
  clock?: () => Date;
  store?: DynamoQuotaStoreOptions;
  pageSize?: number;
}): OutboxSweeper {
  return new OutboxSweeper({
    store: new DynamoQuotaStore(opts.dynamo, opts.tableName, opts.store),
    publisher: opts.publisher,
    clock: opts.clock,
    pageSize: opts.pageSize,
  });
}

export function eventBridgePublisher(client: EventBridgeClient, eventBusName: string): EnforcementPublisher {
  return new EventBridgeEnforcementPublisher(client, eventBusName);
}
