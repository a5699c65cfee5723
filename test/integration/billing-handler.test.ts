import { PutCommand } from "@aws-sdk/lib-dynamodb";
import type { Context, ScheduledEvent } from "aws-lambda";
import { mkdtemp, readFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, inject, it } from "vitest";
import { resetConfig } from "../../shared/runtime/config";
import { documentClient } from "../../shared/storage/adapters/dynamodb";
import { keys } from "../../shared/storage/keys";
import { freshUsageTable, localDynamoClient } from "../helpers/dynamo";

const scheduled = (time: string) => ({ time, "detail-type": "Scheduled Event", source: "aws.events", detail: {} }) as unknown as ScheduledEvent;

describe("scheduled billing-export handler (DynamoDB Local)", () => {
  it("exports the previous month into BILLING_EXPORT_DIR", async () => {
    const table = await freshUsageTable();
    const doc = documentClient(localDynamoClient());
    await doc.send(
      new PutCommand({
        TableName: table,
        Item: { ...keys.aggregate("acme", { kind: "tenant", granularity: "month", period: "2026-11" }), ...keys.billing("acme", "2026-11"), tenantId: "acme", requests: 3, costNanoUsd: 42 },
      }),
    );
    const dir = await mkdtemp(join(tmpdir(), "billing-handler-"));
    process.env.USAGE_TABLE_NAME = table;
    process.env.AWS_ENDPOINT_URL_DYNAMODB = inject("dynamoEndpoint");
    process.env.BILLING_EXPORT_DIR = dir;
    resetConfig();
    const { handler } = await import("../../functions/scheduled/billing-export");

    const out = await handler(scheduled("2026-12-01T02:00:00Z"), {} as Context);
    expect(out).toMatchObject({ month: "2026-11", lines: 1 });
    const line = JSON.parse(await readFile(join(dir, "billing/2026-11/invoice-lines.jsonl"), "utf8"));
    expect(line).toMatchObject({ tenantId: "acme", requests: 3, apiCostNanoUsd: 42, tier: "unknown" });
  });
});
