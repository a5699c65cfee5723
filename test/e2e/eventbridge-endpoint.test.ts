import { ListRulesCommand, PutEventsCommand, type EventBridgeClient } from "@aws-sdk/client-eventbridge";
import type { SQSEvent } from "aws-lambda";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { EventEnvelope } from "../../local/bus";
import type { LocalStack } from "../../local/stack";
import { eventBridgeClient, startTestStack } from "./stack-harness";

describe("local EventBridge PutEvents endpoint (real @aws-sdk/client-eventbridge)", () => {
  let stack: LocalStack;
  let logs: string[];
  let client: EventBridgeClient;
  const delivered: EventEnvelope[] = [];

  beforeAll(async () => {
    ({ stack, logs } = await startTestStack({
      batchingWindowMs: 5,
      rules: [
        {
          name: "capture",
          pattern: { source: ["test.orders"], "detail-type": ["Order Placed"] },
          handler: async (event: SQSEvent) => {
            for (const r of event.Records) delivered.push(JSON.parse(r.body) as EventEnvelope);
          },
          batchSize: 10,
          maxReceiveCount: 3,
          visibilityTimeoutSeconds: 30,
          maxBatchingWindowSeconds: 0,
          maxConcurrency: 2,
        },
      ],
    }));
    client = eventBridgeClient(stack);
  });
  afterAll(async () => {
    client?.destroy();
    await stack?.stop();
  });

  it("accepts entries, returns an EventId each and delivers EventBridge envelopes to matching rules only", async () => {
    // prepare
    delivered.length = 0;
    const time = new Date("2026-11-25T10:11:12.345Z");
    // act
    const out = await client.send(
      new PutEventsCommand({
        Entries: [
          { Source: "test.orders", DetailType: "Order Placed", Detail: JSON.stringify({ n: 1 }), EventBusName: stack.busName, Time: time, Resources: ["arn:aws:x:::r1"] },
          { Source: "test.orders", DetailType: "Order Placed", Detail: JSON.stringify({ n: 2 }) },
          { Source: "test.other", DetailType: "Order Placed", Detail: JSON.stringify({ n: 3 }), EventBusName: "default" },
        ],
      }),
    );
    await stack.drain({ timeoutMs: 10_000 });
    // assess
    expect(out.FailedEntryCount).toBe(0);
    expect(out.Entries).toHaveLength(3);
    const ids = out.Entries!.map((e) => e.EventId);
    expect(new Set(ids).size).toBe(3);
    expect(delivered.map((d) => d.detail)).toEqual([{ n: 1 }, { n: 2 }]);
    expect(delivered[0]).toEqual({
      version: "0",
      id: ids[0],
      "detail-type": "Order Placed",
      source: "test.orders",
      account: "000000000000",
      time: "2026-11-25T10:11:12Z",
      region: "us-west-2",
      resources: ["arn:aws:x:::r1"],
      detail: { n: 1 },
    });
    // the unmatched event is still kept for inspection
    expect(stack.recentEvents({ source: "test.other" }).map((e) => e.envelope.id)).toEqual([ids[2]]);
    const viaHttp = (await (await fetch(`${stack.url}/local/events?source=test.orders&detail-type=Order%20Placed`)).json()) as {
      events: { envelope: EventEnvelope }[];
    };
    expect(viaHttp.events.map((e) => e.envelope.id)).toEqual([ids[0], ids[1]]);
  });

  it("reports per-entry errors the way EventBridge does and still accepts the valid entries", async () => {
    // prepare
    delivered.length = 0;
    const big = JSON.stringify({ pad: "x".repeat(256 * 1024) });
    // act
    const out = await client.send(
      new PutEventsCommand({
        Entries: [
          { Source: "test.orders", DetailType: "Order Placed", Detail: "{not json" },
          { Source: "test.orders", DetailType: "Order Placed", Detail: "[1,2]" },
          { DetailType: "Order Placed", Detail: "{}" },
          { Source: "test.orders", DetailType: "Order Placed", Detail: big },
          { Source: "test.orders", DetailType: "Order Placed", Detail: "{}", EventBusName: "no-such-bus" },
          { Source: "test.orders", DetailType: "Order Placed", Detail: JSON.stringify({ ok: true }) },
        ],
      }),
    );
    await stack.drain({ timeoutMs: 10_000 });
    // assess
    expect(out.FailedEntryCount).toBe(5);
    const codes = out.Entries!.map((e) => e.ErrorCode ?? "ok");
    expect(codes).toEqual(["MalformedDetail", "MalformedDetail", "InvalidArgument", "InvalidArgument", "ResourceNotFoundException", "ok"]);
    expect(out.Entries![2].ErrorMessage).toMatch(/Source is a required argument/);
    expect(out.Entries![3].ErrorMessage).toMatch(/exceeds the limit of 262144 bytes/);
    expect(out.Entries![5].EventId).toBeTruthy();
    expect(delivered.map((d) => d.detail)).toEqual([{ ok: true }]);
  });

  it("rejects a call with more than 10 entries as a ValidationException", async () => {
    // prepare
    const entries = Array.from({ length: 11 }, (_, i) => ({ Source: "test.orders", DetailType: "Order Placed", Detail: JSON.stringify({ i }) }));
    // act + assess
    await expect(client.send(new PutEventsCommand({ Entries: entries }))).rejects.toMatchObject({
      name: "ValidationException",
      $metadata: { httpStatusCode: 400 },
      message: expect.stringMatching(/less than or equal to 10/),
    });
    expect(stack.recentEvents({ source: "test.orders" }).some((e) => (e.envelope.detail as { i?: number }).i !== undefined)).toBe(false);
  });

  it("keeps enforcement events (no rule matches them) for GET /local/events and logs one line each", async () => {
    // act
    const out = await client.send(
      new PutEventsCommand({
        Entries: [
          {
            Source: "genai.metering.quota",
            DetailType: "Tenant Throttled",
            Detail: JSON.stringify({ tenantId: "t-07", tier: "advanced", month: "2026-11", usedTokens: 1200, limitTokens: 1000, window: { minutes: 1 } }),
          },
        ],
      }),
    );
    // assess
    expect(out.FailedEntryCount).toBe(0);
    expect(logs).toContain("[enforcement] Tenant Throttled tenant=t-07 tier=advanced month=2026-11 usedTokens=1200 limitTokens=1000");
    const res = await fetch(`${stack.url}/local/events?source=genai.metering.quota`);
    const { events } = (await res.json()) as { events: { envelope: EventEnvelope; matchedRules: string[] }[] };
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({ envelope: { id: out.Entries![0].EventId, "detail-type": "Tenant Throttled", detail: { tenantId: "t-07" } }, matchedRules: [] });
  });

  it("answers other EventBridge operations with UnknownOperationException", async () => {
    await expect(client.send(new ListRulesCommand({}))).rejects.toMatchObject({
      name: "UnknownOperationException",
      $metadata: { httpStatusCode: 400 },
    });
  });
});
