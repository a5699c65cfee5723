import { DescribeTableCommand, DescribeTimeToLiveCommand } from "@aws-sdk/client-dynamodb";
import { describe, expect, it } from "vitest";
import { USAGE_TABLE } from "../../shared/storage/table";
import { freshUsageTable, localDynamoClient } from "../helpers/dynamo";

describe("usage table on DynamoDB Local", () => {
  it("is created from the shared definition with its GSI and TTL", async () => {
    const client = localDynamoClient();
    const name = await freshUsageTable(client);
    const d = await client.send(new DescribeTableCommand({ TableName: name }));
    expect(d.Table?.GlobalSecondaryIndexes?.map((g) => g.IndexName)).toEqual([USAGE_TABLE.gsi1.name]);
    const ttl = await client.send(new DescribeTimeToLiveCommand({ TableName: name }));
    expect(ttl.TimeToLiveDescription?.AttributeName).toBe(USAGE_TABLE.timeToLiveAttribute);
  });
});
