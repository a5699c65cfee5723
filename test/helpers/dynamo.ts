import { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { inject } from "vitest";
import { ensureUsageTable } from "../../shared/storage/adapters/dynamodb";

/** A client for the DynamoDB Local of the test run; refuses anything that is not loopback. */
export function localDynamoClient(): DynamoDBClient {
  const endpoint = inject("dynamoEndpoint");
  if (!/^http:\/\/(127\.0\.0\.1|localhost)(:\d+)?$/.test(endpoint)) {
    throw new Error(`refusing to run integration tests against non-local endpoint ${endpoint}`);
  }
  return new DynamoDBClient({
    endpoint,
    region: "us-west-2",
    credentials: { accessKeyId: "local", secretAccessKey: "local" },
    maxAttempts: 1,
  });
}

let seq = 0;
/** Creates a fresh usage table with a unique name, so test files and tests never share state. */
export async function freshUsageTable(client = localDynamoClient(), prefix = "usage"): Promise<string> {
  const name = `${prefix}-${process.pid}-${Date.now().toString(36)}-${seq++}`;
  await ensureUsageTable(client, name);
  return name;
}
