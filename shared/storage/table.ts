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
 * | TENANT#<tenant>            | MODEL#M#2026-11#<model> / D#    | tenant x model aggregate               |
 * | TENANT#<tenant>            | MINUTE#2026-11-25T20:36         | noisy-neighbour window (TTL)           |
 * | TENANT#<tenant>            | CONFIG                          | tier and overrides                     |
 * | TENANT#<tenant>            | ENFORCE#<period>                | enforcement state per period           |
 * | QUARANTINE#<yyyy-mm-dd>    | <receivedAt>#<messageId>        | invalid input kept with its reason     |
 * | ENFORCEMENT#<yyyy-mm-dd>   | <at>#<tenant>#<kind>            | enforcement event log (TTL)            |
 * | ENDPOINT#<name>#<hour>     | TENANT#<tenant>                 | SageMaker endpoint-hour usage          |
 * | ENDPOINT#<name>#<hour>     | ALLOCATION                      | endpoint-hour allocated (plan, idle)   |
 * | ENDPOINT#<name>#<hour>     | ALLOCATION#<tenant>             | one tenant's share added (exactly once)|
 *
 * GSI1 lists month aggregates of all tenants for billing: gsi1pk = MONTH#<yyyy-mm>#<shard>,
 * gsi1sk = TENANT#<tenant>. The shard spreads one month's writes over several partitions.
 */
export const USAGE_TABLE = {
  partitionKey: "pk",
  sortKey: "sk",
  timeToLiveAttribute: "expiresAt",
  gsi1: { name: "gsi1", partitionKey: "gsi1pk", sortKey: "gsi1sk" },
  /** Number of GSI1 shards per month. Changing it requires a backfill of gsi1pk. */
  billingShards: 4,
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
