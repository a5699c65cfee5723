/**
 * The one DynamoDB table of the pipeline (single-table design). The SST stack, the local
 * stack and the integration tests all build the table from this definition, so key names,
 * GSIs and the TTL attribute cannot drift apart.
 *
 * Item families (keys are built only in `shared/storage/keys.ts`):
 * | pk                         | sk                              | what                                   |
 * |----------------------------|---------------------------------|----------------------------------------|
 * | EVENT#<tenant>#<eventId>   | EVENT                           | ledger: one per event, names its group |
 * | RUN#<runId>                | GROUP#<n>                       | group marker: committed/aborted (TTL)  |
 * | TENANT#<tenant>            | USAGE#M#2026-11 / D# / H#       | tenant aggregate per month/day/hour    |
 * |                            |                                 | (H#: + last minutes' mw<MM>r/mw<MM>t)  |
 * |                            |                                 | (M#: + qb/qd, quota inputs' change mark)|
 * | TENANT#<tenant>            | MODEL#M#2026-11#<model> / D#    | tenant x model aggregate               |
 * | TENANT#<tenant>            | CONFIG                          | tier and overrides                     |
 * | TENANT#<tenant>            | ENFORCE#<period>                | enforcement state + outbox, per period |
 * | QUARANTINE#<yyyy-mm-dd>    | <receivedAt>#<messageId>        | invalid input kept with its reason     |
 * | ENFORCEMENT#<yyyy-mm-dd>   | <at>#<tenant>#<kind>            | enforcement event log (TTL)            |
 * | ENDPOINT#<name>#<hour>     | TENANT#<tenant>                 | SageMaker endpoint-hour usage          |
 * | ENDPOINT#<name>#<hour>     | ALLOCATION                      | endpoint-hour allocated (plan, idle)   |
 * | ENDPOINT#<name>#<hour>     | ALLOCATION#<tenant>             | one tenant's share added (exactly once)|
 * | ENDPOINT#<name>#<hour>     | REALLOCATION#<v>                | deltas of re-allocation version v      |
 * | ENDPOINT#<name>#<hour>     | REALLOCATION#<v>#<tenant>       | one tenant's delta of v added (once)   |
 *
 * GSI1 holds two disjoint families, told apart by the gsi1pk prefix (every query names one
 * exact partition, so neither sees the other):
 * | gsi1pk                     | gsi1sk                          | on item                                |
 * |----------------------------|---------------------------------|----------------------------------------|
 * | MONTH#<yyyy-mm>#<shard>    | TENANT#<tenant>                 | month aggregates, for billing          |
 * | OUTBOX#<shard>             | TENANT#<tenant>#ENFORCE#<period>| ENFORCE# items with pending outbox     |
 * |                            |                                 | entries (sparse: set with each entry,  |
 * |                            |                                 | removed when the outbox is empty), for |
 * |                            |                                 | the outbox sweeper                     |
 * The shard spreads one month's (or the outbox's) writes over several partitions.
 */
export const USAGE_TABLE = {
  partitionKey: "pk",
  sortKey: "sk",
  timeToLiveAttribute: "expiresAt",
  gsi1: { name: "gsi1", partitionKey: "gsi1pk", sortKey: "gsi1sk" },
  /** Number of GSI1 shards per month. Changing it requires a backfill of gsi1pk. */
  billingShards: 4,
  /** Number of GSI1 outbox partitions. Changing it requires moving pending ENFORCE# items' gsi1pk. */
  outboxShards: 4,
} as const;

/** DynamoDB CreateTable input, shaped without importing the SDK (pure data). */
export function usageTableCreateInput(tableName: string) {
  return {
    TableName: tableName,
    BillingMode: "PAY_PER_REQUEST" as const,
    AttributeDefinitions: [
      { AttributeName: USAGE_TABLE.partitionKey, AttributeType: "S" as const },
      { AttributeName: USAGE_TABLE.sortKey, AttributeType: "S" as const },
      { AttributeName: USAGE_TABLE.gsi1.partitionKey, AttributeType: "S" as const },
      { AttributeName: USAGE_TABLE.gsi1.sortKey, AttributeType: "S" as const },
    ],
    KeySchema: [
      { AttributeName: USAGE_TABLE.partitionKey, KeyType: "HASH" as const },
      { AttributeName: USAGE_TABLE.sortKey, KeyType: "RANGE" as const },
    ],
    GlobalSecondaryIndexes: [
      {
        IndexName: USAGE_TABLE.gsi1.name,
        KeySchema: [
          { AttributeName: USAGE_TABLE.gsi1.partitionKey, KeyType: "HASH" as const },
          { AttributeName: USAGE_TABLE.gsi1.sortKey, KeyType: "RANGE" as const },
        ],
        Projection: { ProjectionType: "ALL" as const },
      },
    ],
  };
}
