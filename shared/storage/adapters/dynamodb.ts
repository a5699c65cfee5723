import {
  CreateTableCommand,
  DescribeTableCommand,
  DynamoDBClient,
  ResourceInUseException,
  UpdateTimeToLiveCommand,
} from "@aws-sdk/client-dynamodb";
import { DynamoDBDocumentClient, BatchGetCommand, QueryCommand, type QueryCommandInput } from "@aws-sdk/lib-dynamodb";
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

/**
 * The `Update` of one aggregate item: `ADD` the counters, `SET` the descriptive attributes,
 * `REMOVE` attributes no longer needed (none of those written). No condition here: ADD is
 * commutative; what makes an increment happen once is the caller's (the ingest's high-water
 * condition, or a conditional item written in the same transaction: allocation marker, ledger).
 */
export function addAndSetUpdate(
  tableName: string,
  key: { pk: string; sk: string },
  adds: Record<string, number>,
  sets: Record<string, unknown>,
  removes: readonly string[] = [],
) {
  const names: Record<string, string> = {};
  const values: Record<string, unknown> = {};
  const addExpr = Object.entries(adds).map(([k, v]) => {
    names[`#a_${k}`] = k;
    values[`:a_${k}`] = v;
    return `#a_${k} :a_${k}`;
  });
  const setExpr = Object.entries(sets).map(([k, v]) => {
    names[`#s_${k}`] = k;
    values[`:s_${k}`] = v;
    return `#s_${k} = :s_${k}`;
  });
  const removeExpr = removes.map((k) => {
    // DynamoDB refuses an expression whose paths overlap.
    if (k in adds || k in sets) throw new RangeError(`${k} is both removed and written`);
    names[`#r_${k}`] = k;
    return `#r_${k}`;
  });
  return {
    Update: {
      TableName: tableName,
      Key: key,
      UpdateExpression: `ADD ${addExpr.join(", ")}${setExpr.length ? ` SET ${setExpr.join(", ")}` : ""}${removeExpr.length ? ` REMOVE ${removeExpr.join(", ")}` : ""}`,
      ExpressionAttributeNames: names,
      ExpressionAttributeValues: values,
    },
  };
}

/** Every item of a query, following LastEvaluatedKey page by page. */
export async function queryAll(doc: DynamoDBDocumentClient, input: QueryCommandInput): Promise<Record<string, unknown>[]> {
  const items: Record<string, unknown>[] = [];
  let key: Record<string, unknown> | undefined;
  do {
    const out = await doc.send(new QueryCommand({ ...input, ExclusiveStartKey: key }));
    items.push(...(out.Items ?? []));
    key = out.LastEvaluatedKey;
  } while (key);
  return items;
}

/** One table's part of a BatchGetItem request (at most 100 keys). */
export interface BatchGetInput {
  TableName: string;
  Keys: Record<string, unknown>[];
  ConsistentRead?: boolean;
  ProjectionExpression?: string;
  ExpressionAttributeNames?: Record<string, string>;
}

/**
 * Every item of a BatchGetItem (at most 100 keys), asking again with backoff for the keys
 * DynamoDB returns unprocessed (throttling); throws after `maxRounds` rounds.
 */
export async function batchGetAll(
  doc: DynamoDBDocumentClient,
  input: BatchGetInput,
  opts: { maxRounds?: number; sleep?: (ms: number) => Promise<void> } = {},
): Promise<Record<string, unknown>[]> {
  const { TableName, ...request } = input;
  const sleep = opts.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  const items: Record<string, unknown>[] = [];
  let keys: Record<string, unknown>[] | undefined = request.Keys;
  for (let round = 0; keys && keys.length > 0; round++) {
    if (round >= (opts.maxRounds ?? 10)) throw new Error(`BatchGetItem on ${TableName}: ${keys.length} keys still unprocessed after ${round} rounds`);
    if (round > 0) await sleep(Math.min(2000, 25 * 2 ** round));
    const out = await doc.send(new BatchGetCommand({ RequestItems: { [TableName]: { ...request, Keys: keys } } }));
    items.push(...(out.Responses?.[TableName] ?? []));
    keys = out.UnprocessedKeys?.[TableName]?.Keys as Record<string, unknown>[] | undefined;
  }
  return items;
}
