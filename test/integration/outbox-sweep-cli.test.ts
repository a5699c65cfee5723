import { UpdateCommand } from "@aws-sdk/lib-dynamodb";
import { createServer, type Server } from "node:http";
import { afterAll, beforeAll, describe, expect, inject, it, vi } from "vitest";
import { run } from "../../cli/outbox-sweep";
import { createQuotaEvaluator } from "../../shared/quota/adapters/wiring";
import { QuotaPublishError } from "../../shared/quota/errors";
import { documentClient } from "../../shared/storage/adapters/dynamodb";
import { keys } from "../../shared/storage/keys";
import { freshUsageTable, localDynamoClient } from "../helpers/dynamo";
import { RecordingPublisher } from "../unit/quota/fakes";

const NOW = new Date("2026-11-25T20:36:30.000Z");
let bus: Server;
let busUrl: string;
const published: { EventBusName: string; Detail: string }[] = [];

beforeAll(async () => {
  // A bus that accepts PutEvents like EventBridge.
  bus = createServer((req, res) => {
    let body = "";
    req.on("data", (c) => (body += c));
    req.on("end", () => {
      const entries = (JSON.parse(body) as { Entries: typeof published }).Entries;
      published.push(...entries);
      res.writeHead(200, { "content-type": "application/x-amz-json-1.1" });
      res.end(JSON.stringify({ FailedEntryCount: 0, Entries: entries.map((_, i) => ({ EventId: `e-${published.length}-${i}` })) }));
    });
  });
  await new Promise<void>((r) => bus.listen(0, "127.0.0.1", r));
  busUrl = `http://127.0.0.1:${(bus.address() as { port: number }).port}`;
  vi.stubEnv("AWS_MAX_ATTEMPTS", "1");
});

afterAll(() => new Promise<void>((r) => bus.close(() => r())));

describe("npm run cli -- outbox-sweep", () => {
  it("publishes a pending enforcement event once and says so; a rerun publishes nothing", async () => {
    // Given a throttle whose publish failed, in a table of DynamoDB Local
    const table = await freshUsageTable();
    const doc = documentClient(localDynamoClient());
    const evaluator = (publisher: RecordingPublisher) => createQuotaEvaluator({ dynamo: doc, tableName: table, publisher, clock: () => NOW });
    await evaluator(new RecordingPublisher()).putConfig("cli-t", { tier: "advanced", monthlyTokens: 1000, warningThresholds: [] });
    await doc.send(
      new UpdateCommand({
        TableName: table,
        Key: keys.aggregate("cli-t", { kind: "tenant", granularity: "month", period: "2026-11" }),
        UpdateExpression: "ADD requests :r, outputTokens :o",
        ExpressionAttributeValues: { ":r": 1, ":o": 1000 },
      }),
    );
    const down = new RecordingPublisher();
    down.failNext = 1;
    await expect(evaluator(down).evaluate({ tenantId: "cli-t", month: "2026-11", minutes: [], now: NOW })).rejects.toBeInstanceOf(QuotaPublishError);
    const lines: string[] = [];
    const log = vi.spyOn(console, "log").mockImplementation((line: string) => void lines.push(line));
    const argv = ["--endpoint-url", inject("dynamoEndpoint"), "--events-url", busUrl, "--bus", "cli-bus", "--table", table];

    // When the operator runs the command twice
    const first = await run(argv);
    const second = await run(argv);
    log.mockRestore();

    // Then the downgrade went to the named bus once, and the output says what happened
    expect([first, second]).toEqual([0, 0]);
    expect(published.map((e) => [e.EventBusName, JSON.parse(e.Detail).enforcementId])).toEqual([["cli-bus", "cli-t#2026-11#1:advanced:t1000:u-#downgrade"]]);
    expect(lines).toContain("published downgrade cli-t#2026-11#1:advanced:t1000:u-#downgrade");
    expect(lines.filter((l) => l.includes("state(s) listed"))).toEqual([
      "1 state(s) listed: 1 published, 0 failed, 0 held by a live publisher, 0 taken by another publisher, 0 unindexed",
      "0 state(s) listed: 0 published, 0 failed, 0 held by a live publisher, 0 taken by another publisher, 0 unindexed",
    ]);
  });
});
