import {
  CreateTableCommand,
  DescribeTableCommand,
  DynamoDBClient,
  ResourceInUseException,
  UpdateTimeToLiveCommand,
} from "@aws-sdk/client-dynamodb";
import { DynamoDBDocumentClient } from "@aws-sdk/lib-dynamodb";
import { USAGE_TABLE, usageTableCreateInput } from "../table";

/** Document client with the marshalling options every adapter relies on. */
export function documentClient(client: DynamoDBClient): DynamoDBDocumentClient {
  return DynamoDBDocumentClient.from(client, {
    marshallOptions: { removeUndefinedValues: true },
  });
}

/**
 * Creates the usage table (and its TTL setting) from the shared definition if it does not
 * exist. Used by the local stack and the integration tests; the SST stack builds the same
 * table from the same definition.
 */
export async function ensureUsageTable(client: DynamoDBClient, tableName: string): Promise<void> {
  try {
    await client.send(new CreateTableCommand(usageTableCreateInput(tableName)));
  } catch (error) {
    if (!(error instanceof ResourceInUseException)) throw error;
  }
  for (let i = 0; i < 100; i++) {
    const d = await client.send(new DescribeTableCommand({ TableName: tableName }));
    if (d.Table?.TableStatus === "ACTIVE") break;
    await new Promise((r) => setTimeout(r, 100));
  }
  await client.send(
    new UpdateTimeToLiveCommand({
      TableName: tableName,
      TimeToLiveSpecification: { AttributeName: USAGE_TABLE.timeToLiveAttribute, Enabled: true },
    }),
  ).catch((error: unknown) => {
    // Enabling TTL twice is refused with a ValidationException; that is the state we want.
    if (!(error instanceof Error && /already enabled/i.test(error.message))) throw error;
  });
}
