import { PutEventsCommand, type EventBridgeClient } from "@aws-sdk/client-eventbridge";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { INVOCATION_DETAIL_TYPE, INVOCATION_SOURCES } from "../../shared/events/invocation";
import { ENFORCEMENT_DETAIL_TYPES, ENFORCEMENT_SOURCE } from "../../shared/quota/events";
import type { LocalStack } from "../../local/stack";
import { invocation } from "../helpers/events";
import { eventBridgeClient, startTestStack } from "./stack-harness";

interface QuarantineResponse {
  items: { reason: string; message: string; source?: string; detailType?: string }[];
  cursor?: string;
}

/**
 * Issue 10, finding 6: a genai.metering.* entry with a valid detail but a detail-type or source
 * no consumer takes was acknowledged and then appeared nowhere. Through the local stack (real
 * ingest handler, DynamoDB Local), each must land in the quarantine with its reason.
 */
describe("catch rule: genai.metering.* entries no consumer takes are quarantined, end to end", () => {
  let stack: LocalStack;
  let client: EventBridgeClient;

  beforeAll(async () => {
    ({ stack } = await startTestStack({ batchingWindowMs: 20 }));
    client = eventBridgeClient(stack);
  });
  afterAll(async () => {
    client?.destroy();
    await stack?.stop();
  });

  it("quarantines a wrong detail-type (unexpected-detail-type) and an unknown source (unknown-source), counts neither, and leaves enforcement events alone", async () => {
    // prepare: four valid details, each under its own tenant
    const tenant = (n: string) => `catch-${n}-${Date.now().toString(36)}`;
    const good = invocation({ tenantId: tenant("good") });
    const wrongType = invocation({ tenantId: tenant("type") });
    const wrongSource = invocation({ tenantId: tenant("source") });
    const crossed = invocation({ tenantId: tenant("crossed") });
    const bus = stack.busName;
    // act
    const out = await client.send(
      new PutEventsCommand({
        Entries: [
          { Source: INVOCATION_SOURCES.bedrock, DetailType: INVOCATION_DETAIL_TYPE, Detail: JSON.stringify(good), EventBusName: bus },
          { Source: INVOCATION_SOURCES.bedrock, DetailType: "Model Invocations", Detail: JSON.stringify(wrongType), EventBusName: bus },
          { Source: "genai.metering.openai", DetailType: INVOCATION_DETAIL_TYPE, Detail: JSON.stringify(wrongSource), EventBusName: bus },
          { Source: INVOCATION_SOURCES.sagemaker, DetailType: ENFORCEMENT_DETAIL_TYPES.throttle, Detail: JSON.stringify(crossed), EventBusName: bus },
          {
            Source: ENFORCEMENT_SOURCE,
            DetailType: ENFORCEMENT_DETAIL_TYPES.throttle,
            Detail: JSON.stringify({ tenantId: tenant("enf"), action: "throttle" }),
            EventBusName: bus,
          },
        ],
      }),
    );
    await stack.drain({ timeoutMs: 60_000 });

    // assess: all five acknowledged, as EventBridge does
    expect(out.FailedEntryCount).toBe(0);
    const ids = out.Entries!.map((e) => e.EventId!);
    const matched = (id: string) => stack.recentEvents().find((e) => e.envelope.id === id)?.matchedRules;
    expect(ids.map(matched)).toEqual([["ingest"], ["unconsumed-metering"], ["unconsumed-metering"], ["unconsumed-metering"], []]);

    // the three strays are in the quarantine with their reasons; nothing else is
    const day = new Date().toISOString().slice(0, 10);
    const res = await fetch(`${stack.url}/quarantine?day=${day}&limit=100`);
    expect(res.status).toBe(200);
    const page = (await res.json()) as QuarantineResponse;
    expect(page.items.map((q) => q.reason).sort()).toEqual(["unexpected-detail-type", "unexpected-detail-type", "unknown-source"]);
    // messages are content-free (quoted free text becomes its length); the label-like ids are kept as fields
    expect(page.items.map((q) => `${q.reason} ${q.source} ${q.detailType}`).sort()).toEqual([
      `unexpected-detail-type ${INVOCATION_SOURCES.bedrock} Model Invocations`,
      `unexpected-detail-type ${INVOCATION_SOURCES.sagemaker} ${ENFORCEMENT_DETAIL_TYPES.throttle}`,
      "unknown-source genai.metering.openai Model Invocation",
    ].sort());

    // only the good event is counted
    const requests = async (tenantId: string) => {
      const r = await fetch(`${stack.url}/usage/${tenantId}?from=${day}&to=${day}&granularity=day`);
      expect(r.status).toBe(200);
      return ((await r.json()) as { totals: { requests: number } }).totals.requests;
    };
    expect(await Promise.all([good, wrongType, wrongSource, crossed].map((e) => requests(e.tenantId)))).toEqual([1, 0, 0, 0]);
  });
});
