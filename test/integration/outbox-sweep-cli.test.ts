import { afterAll, beforeAll, describe, expect, inject, it, vi } from "vitest";
import { run } from "../../cli/outbox-sweep";
import { documentClient } from "../../shared/storage/adapters/dynamodb";
import { freshUsageTable, localDynamoClient } from "../helpers/dynamo";
import { startFakeBus, type FakeBus } from "../helpers/fake-bus";
import { leavePendingEnforcement } from "../helpers/quota";

const NOW = new Date("2026-11-25T20:36:30.000Z");
let bus: FakeBus;

beforeAll(async () => {
  // A bus that accepts PutEvents like EventBridge.
  bus = await startFakeBus();
  vi.stubEnv("AWS_MAX_ATTEMPTS", "1");
});

afterAll(() => bus.close());

describe("npm run cli -- outbox-sweep", () => {
  it("publishes a pending enforcement event once and says so; a rerun publishes nothing", async () => {
    // Given a downgrade whose publish failed, in a table of DynamoDB Local
    const table = await freshUsageTable();
    const doc = documentClient(localDynamoClient());
    await leavePendingEnforcement(doc, table, { tenantId: "cli-t", tier: "advanced", usage: { requests: 1, outputTokens: 1000 }, now: NOW });
    const lines: string[] = [];
    const log = vi.spyOn(console, "log").mockImplementation((line: string) => void lines.push(line));
    const argv = ["--endpoint-url", inject("dynamoEndpoint"), "--events-url", bus.url, "--bus", "cli-bus", "--table", table];

    // When the operator runs the command twice
    const first = await run(argv);
    const second = await run(argv);
    log.mockRestore();

    // Then the downgrade went to the named bus once, and the output says what happened
    expect([first, second]).toEqual([0, 0]);
    expect(bus.published.map((e) => [e.EventBusName, JSON.parse(e.Detail).enforcementId])).toEqual([["cli-bus", "cli-t#2026-11#1:advanced:t1000:u-#downgrade"]]);
    expect(lines).toContain("published downgrade cli-t#2026-11#1:advanced:t1000:u-#downgrade");
    expect(lines.filter((l) => l.includes("state(s) listed"))).toEqual([
      "1 state(s) listed: 1 published, 0 failed, 0 held by a live publisher, 0 taken by another publisher, 0 unindexed",
      "0 state(s) listed: 0 published, 0 failed, 0 held by a live publisher, 0 taken by another publisher, 0 unindexed",
    ]);
  });
});
