import { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { inject } from "vitest";
import type { DynamoDBDocumentClient } from "@aws-sdk/lib-dynamodb";
import { PriceCatalog } from "../../shared/pricing/catalog";
import { ensureUsageTable } from "../../shared/storage/adapters/dynamodb";
import { DynamoUsageStore } from "../../shared/usage/adapters/dynamodb";
import { IngestService, type IngestOptions } from "../../shared/usage/ingest";

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

/** A DynamoDB Local client that hands the input of every UpdateItem it sends to `seen`. */
export function updatesSeenBy(seen: (input: { UpdateExpression?: string; ReturnValues?: string; Key?: { sk?: { S?: string } }; ExpressionAttributeNames?: Record<string, string> }) => void) {
  const c = localDynamoClient();
  c.middlewareStack.add(
    (next, context) => async (args) => {
      if (context.commandName === "UpdateItemCommand") seen(args.input as Parameters<typeof seen>[0]);
      return next(args);
    },
    { step: "serialize", name: "seeUpdates" },
  );
  return c;
}

let seq = 0;
/** Creates a fresh usage table with a unique name, so test files and tests never share state. */
export async function freshUsageTable(client = localDynamoClient(), prefix = "usage"): Promise<string> {
  const name = `${prefix}-${process.pid}-${Date.now().toString(36)}-${seq++}`;
  await ensureUsageTable(client, name);
  return name;
}

/**
 * The real ingest on a usage table of DynamoDB Local, with the settings most tests use (built-in
 * prices, us-west-2, 35-day window, 100-item transactions, no backoff sleeps); `over` changes any.
 */
export function localIngest(doc: DynamoDBDocumentClient, table: string, over: Partial<IngestOptions> = {}): { store: DynamoUsageStore; service: IngestService } {
  const store = new DynamoUsageStore(doc, table, { ledgerTtlDays: 60 });
  const service = new IngestService({ store, prices: new PriceCatalog(), region: "us-west-2", maxEventAgeDays: 35, sleep: async () => undefined, ...over });
  return { store, service };
}
