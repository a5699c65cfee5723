import { BillingMode, TableEncryption } from "aws-cdk-lib/aws-dynamodb";
import { Table, type StackContext } from "sst/constructs";
import { USAGE_TABLE, usageTableCreateInput } from "../shared/storage/table";
import { dataRemovalPolicy, isDisposableStage } from "./support";

/**
 * The usage table (single-table design). Keys, the GSI and the TTL attribute come from
 * `shared/storage/table.ts`, the same definition DynamoDB Local is built from.
 */
export function Storage({ stack, app }: StackContext) {
  // Attribute types from the shared CreateTable input, so a key added there lands here too.
  const fields = Object.fromEntries(
    usageTableCreateInput("unused").AttributeDefinitions.map((a) => [a.AttributeName, "string" as const]),
  );
  const table = new Table(stack, "Usage", {
    fields,
    primaryIndex: { partitionKey: USAGE_TABLE.partitionKey, sortKey: USAGE_TABLE.sortKey },
    globalIndexes: {
      [USAGE_TABLE.gsi1.name]: {
        partitionKey: USAGE_TABLE.gsi1.partitionKey,
        sortKey: USAGE_TABLE.gsi1.sortKey,
        projection: "all",
      },
    },
    timeToLiveAttribute: USAGE_TABLE.timeToLiveAttribute,
    cdk: {
      table: {
        billingMode: BillingMode.PAY_PER_REQUEST,
        // SST's Table passes the (deprecated) boolean form; setting the specification too is rejected.
        pointInTimeRecovery: true,
        // AWS-managed KMS key (aws/dynamodb): encrypted at rest with a KMS key whose use is
        // logged in CloudTrail, without key policies every function role would have to match.
        encryption: TableEncryption.AWS_MANAGED,
        removalPolicy: dataRemovalPolicy(app),
        deletionProtection: !isDisposableStage(app),
      },
    },
  });

  stack.addOutputs({ UsageTableName: table.tableName });
  return { table };
}
