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
          { Source: "test.orders", DetailType: "Order Placed", Detail: JSON.stringify({ n: 2 }), EventBusName: `arn:aws:events:us-west-2:000000000000:event-bus/${stack.busName}` },
          { Source: "test.other", DetailType: "Order Placed", Detail: JSON.stringify({ n: 3 }), EventBusName: stack.busName },
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
    const bus = stack.busName;
    // act
    const out = await client.send(
      new PutEventsCommand({
        Entries: [
          { Source: "test.orders", DetailType: "Order Placed", Detail: "{not json", EventBusName: bus },
          { Source: "test.orders", DetailType: "Order Placed", Detail: "[1,2]", EventBusName: bus },
          { DetailType: "Order Placed", Detail: "{}", EventBusName: bus },
          { Source: "test.orders", DetailType: "Order Placed", Detail: "{}", EventBusName: "no-such-bus" },
          { Source: "aws.ec2", DetailType: "EC2 Instance State-change Notification", Detail: "{}", EventBusName: bus },
          { Source: "test.orders", DetailType: "Order Placed", Detail: JSON.stringify({ ok: true }), EventBusName: bus },
        ],
      }),
    );
    await stack.drain({ timeoutMs: 10_000 });
    // assess
    expect(out.FailedEntryCount).toBe(5);
    const codes = out.Entries!.map((e) => e.ErrorCode ?? "ok");
    expect(codes).toEqual(["MalformedDetail", "MalformedDetail", "InvalidArgument", "ResourceNotFoundException", "NotAuthorizedForSourceException", "ok"]);
    expect(out.Entries![2].ErrorMessage).toMatch(/Source is a required argument/);
    expect(out.Entries![3].ErrorMessage).toBe("Event bus no-such-bus does not exist.");
    expect(out.Entries![4].ErrorMessage).toBe("Not authorized for the source.");
    expect(out.Entries![5].EventId).toBeTruthy();
    expect(delivered.map((d) => d.detail)).toEqual([{ ok: true }]);
  });

  it("accepts entries for the account's default bus (omitted, 'default' or its ARN) like AWS, routes them to no rule, and says so", async () => {
    // prepare
    delivered.length = 0;
    const before = (await (await fetch(`${stack.url}/local/queues`)).json()) as { bus: { toDefaultBus: number } };
    const entry = { Source: "test.orders", DetailType: "Order Placed", Detail: JSON.stringify({ lost: true }) };
    // act
    const out = await client.send(
      new PutEventsCommand({
        Entries: [entry, { ...entry, EventBusName: "default" }, { ...entry, EventBusName: "arn:aws:events:us-west-2:000000000000:event-bus/default" }],
      }),
    );
    await stack.drain({ timeoutMs: 10_000 });
    // assess: 200 with an EventId each (as AWS answers), but no rule of this stack got them
    expect(out.FailedEntryCount).toBe(0);
    expect(out.Entries!.every((e) => e.EventId)).toBe(true);
    expect(delivered).toEqual([]);
    const after = (await (await fetch(`${stack.url}/local/queues`)).json()) as { bus: { toDefaultBus: number } };
    expect(after.bus.toDefaultBus - before.bus.toDefaultBus).toBe(3);
    const warnings = logs.filter((l) => l.startsWith("[bus] WARNING") && out.Entries!.some((e) => l.includes(e.EventId!)));
    expect(warnings).toHaveLength(3);
    expect(warnings[0]).toMatch(/default bus .*counted nowhere/);
    const kept = stack.recentEvents({ source: "test.orders" }).filter((e) => out.Entries!.some((x) => x.EventId === e.envelope.id));
    expect(kept.map((e) => [e.eventBusName, e.matchedRules])).toEqual([["default", []], ["default", []], ["default", []]]);
  });

  it("rejects a request whose entries total more than 256 KB as a ValidationException, and accepts one of exactly 256 KB", async () => {
    // prepare: entry size = UTF-8 bytes of Source + DetailType + Detail (+ 14 with Time)
    delivered.length = 0;
    const source = "test.orders";
    const detailType = "Order Placed";
    const detailOf = (bytes: number) => JSON.stringify({ pad: "x".repeat(bytes - 10) }); // {"pad":"..."} = 10 + n bytes
    const half = 128 * 1024 - source.length - detailType.length;
    const exact = [0, 1].map(() => ({ Source: source, DetailType: detailType, Detail: detailOf(half), EventBusName: stack.busName }));
    const over = [...exact.slice(0, 1), { ...exact[1], Time: new Date() }];
    const oneHuge = [{ Source: source, DetailType: detailType, Detail: detailOf(256 * 1024), EventBusName: stack.busName }];
    // act + assess
    for (const entries of [over, oneHuge]) {
      await expect(client.send(new PutEventsCommand({ Entries: entries }))).rejects.toMatchObject({
        name: "ValidationException",
        $metadata: { httpStatusCode: 400 },
        message: "Total size of the entries in the request is over the limit.",
      });
    }
    const ok = await client.send(new PutEventsCommand({ Entries: exact }));
    await stack.drain({ timeoutMs: 10_000 });
    expect(ok.FailedEntryCount).toBe(0);
    expect(delivered).toHaveLength(2);
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
            EventBusName: stack.busName,
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
