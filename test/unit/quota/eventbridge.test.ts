import { EventBridgeClient, PutEventsCommand } from "@aws-sdk/client-eventbridge";
import { mockClient } from "aws-sdk-client-mock";
import { describe, expect, it } from "vitest";
import { EventBridgeEnforcementPublisher } from "../../../shared/quota/adapters/eventbridge";
import { ENFORCEMENT_SOURCE, type EnforcementEventDetail } from "../../../shared/quota/events";

const detail = (action: EnforcementEventDetail["action"], id: string): EnforcementEventDetail => ({
  schemaVersion: "1",
  enforcementId: id,
  tenantId: "t1",
  tier: "basic",
  period: "2026-11",
  periodKind: "month",
  action,
  threshold: 1,
  usage: { tokens: 1, inputTokens: 1, outputTokens: 0, cacheReadInputTokens: 0, cacheWriteInputTokens: 0, requests: 1, costUsd: 0 },
  quota: { monthlyTokens: 1 },
  reason: "test",
  occurredAt: "2026-11-25T20:36:30.000Z",
});

describe("EventBridge enforcement publisher", () => {
  it("sends source, detail-type by action and the bus; reports entries the bus refused", async () => {
    const eb = mockClient(EventBridgeClient);
    eb.on(PutEventsCommand).resolves({
      FailedEntryCount: 1,
      Entries: [{ EventId: "e1" }, { ErrorCode: "InternalFailure", ErrorMessage: "try again" }],
    });
    const publisher = new EventBridgeEnforcementPublisher(new EventBridgeClient({ region: "us-west-2" }), "metering-bus");
    const r = await publisher.publish([detail("throttle", "a"), detail("restore", "b")]);
    expect(r).toEqual({ published: ["a"], failed: [{ enforcementId: "b", reason: "InternalFailure: try again" }] });
    const entries = eb.commandCalls(PutEventsCommand)[0].args[0].input.Entries ?? [];
    expect(entries.map((e) => [e.Source, e.DetailType, e.EventBusName])).toEqual([
      [ENFORCEMENT_SOURCE, "Tenant Throttled", "metering-bus"],
      [ENFORCEMENT_SOURCE, "Tenant Restored", "metering-bus"],
    ]);
    expect(JSON.parse(entries[0].Detail ?? "{}").enforcementId).toBe("a");
    eb.restore();
  });
});
