import { PutEventsCommand, type EventBridgeClient, type PutEventsRequestEntry } from "@aws-sdk/client-eventbridge";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { INVOCATION_DETAIL_TYPE, INVOCATION_SOURCES } from "../../shared/events/invocation";
import type { LocalStack } from "../../local/stack";
import { eventBridgeClient, startTestStack } from "./stack-harness";
import { mulberry32 } from "../../shared/util/random";

/**
 * THE acceptance test of the pipeline, end to end through the local stack and the same
 * handlers Lambda runs: 10,000 events (10% of them re-sent duplicates) plus invalid ones go
 * in through the real EventBridge client; after the queues drain, the usage API must report
 * exactly the sums over the distinct valid events, and the quarantine must hold every invalid
 * one with its reason.
 */
const TOTAL_SENT = 10_000;
const DUPLICATE_SHARE = 0.1;
const TENANTS = 40;
const PARALLEL_CALLS = 4;

interface Detail {
  eventId: string;
  tenantId: string;
  occurredAt: string;
  provider: "bedrock" | "sagemaker";
  modelId: string;
  inputTokens: number;
  outputTokens: number;
  endpointName?: string;
  adapterId?: string;
  tier?: string;
}


function buildTraffic(now: Date) {
  const random = mulberry32(20241022);
  const int = (lo: number, hi: number) => lo + Math.floor(random() * (hi - lo + 1));
  const tenants = Array.from({ length: TENANTS }, (_, i) => {
    const tier = (["basic", "advanced", "premium"] as const)[i % 3];
    const prefix = { basic: "basic", advanced: "adv", premium: "prem" }[tier];
    return { tenantId: `${prefix}-${String(Math.floor(i / 3) + 1).padStart(2, "0")}`, tier };
  });
  const distinctCount = Math.round(TOTAL_SENT * (1 - DUPLICATE_SHARE));
  const distinct: Detail[] = [];
  for (let i = 0; i < distinctCount; i++) {
    const t = tenants[int(0, tenants.length - 1)];
    // most in the last 10 minutes, a tenth a day earlier, so two daily buckets are filled
    // (a wider spread only adds distinct minute/hour aggregates, i.e. DynamoDB Local time)
    const ago = int(0, 600) + (random() < 0.1 ? 86_400 : 0);
    const occurredAt = new Date(now.getTime() - ago * 1000).toISOString();
    const base = { eventId: `acc-${i}`, tenantId: t.tenantId, occurredAt, tier: t.tier, inputTokens: int(200, 414), outputTokens: int(400, 666) };
    if (t.tier === "basic") {
      distinct.push({ ...base, provider: "sagemaker", modelId: "llama31-70b-lora", endpointName: "llama31-70b-lora", adapterId: `${t.tenantId}-lora` });
    } else {
      const model = t.tier === "advanced" && random() < 0.3 ? "anthropic.claude-3-haiku-20240307-v1:0" : "anthropic.claude-3-5-sonnet-20240620-v1:0";
      distinct.push({ ...base, provider: "bedrock", modelId: model });
    }
  }
  // duplicates: some right next to their original (same SQS batch), most far later
  const sent: Detail[] = [...distinct];
  for (let i = 0; i < TOTAL_SENT - distinctCount; i++) {
    const original = distinct[int(0, distinct.length - 1)];
    const at = i % 4 === 0 ? Math.min(sent.length, sent.indexOf(original) + 1) : int(0, sent.length);
    sent.splice(at, 0, { ...original });
  }
  return { tenants, distinct, sent };
}

/** Invalid events, each with its expected quarantine reason and a marker to find it by. */
function invalidEvents(now: Date): { marker: string; reason: string; detail: Record<string, unknown> }[] {
  const ok = (n: number) => ({
    eventId: `bad-${n}`,
    tenantId: "adv-01",
    occurredAt: now.toISOString(),
    provider: "bedrock",
    modelId: "anthropic.claude-3-5-sonnet-20240620-v1:0",
    inputTokens: 307,
    outputTokens: 533,
    feature: `invalid-case-${n}`,
  });
  const cases: [string, (d: Record<string, unknown>) => void][] = [
    ["schema", (d) => (d.inputTokens = "307")],
    ["schema", (d) => (d.outputTokens = "many")],
    ["schema", (d) => (d.tenantId = "a#b")],
    ["schema", (d) => (d.tenantId = "tenant with spaces")],
    ["schema", (d) => (d.tenantId = "")],
    ["schema", (d) => (d.inputTokens = -1)],
    ["schema", (d) => (d.outputTokens = -533)],
    ["schema", (d) => (d.inputTokens = 30.7)],
    ["schema", (d) => (d.provider = "openai")],
    ["schema", (d) => delete d.modelId],
    ["schema", (d) => delete d.tenantId],
    ["schema", (d) => (d.modelId = "model#with#hash")],
    ["schema", (d) => (d.occurredAt = "yesterday")],
    ["schema", (d) => (d.occurredAt = 1732560000)],
    ["schema", (d) => (d.surprise = true)],
    ["schema", (d) => (d.inputTokens = 10_000_001)],
    ["schema", (d) => (d.eventId = "has space")],
    ["schema", (d) => (d.schemaVersion = "2")],
    ["too-late", (d) => (d.occurredAt = new Date(now.getTime() - 40 * 86_400_000).toISOString())],
    ["future-timestamp", (d) => (d.occurredAt = new Date(now.getTime() + 3 * 86_400_000).toISOString())],
  ];
  return cases.map(([reason, mutate], n) => {
    const detail: Record<string, unknown> = ok(n);
    mutate(detail);
    return { marker: `invalid-case-${n}`, reason, detail };
  });
}

const entry = (detail: unknown, provider?: unknown): PutEventsRequestEntry => ({
  Source: provider === "sagemaker" ? INVOCATION_SOURCES.sagemaker : INVOCATION_SOURCES.bedrock,
  DetailType: INVOCATION_DETAIL_TYPE,
  Detail: JSON.stringify(detail),
  EventBusName: "local-bus",
});

interface Totals {
  requests: number;
  inputTokens: number;
  outputTokens: number;
}
interface UsageResponse {
  tenantId: string;
  totals: Totals;
  periods: { period: string; totals: Totals }[];
}
interface QuarantineResponse {
  items: { reason: string; eventId?: string; message: string; shape: { fields: string[] } }[];
  cursor?: string;
}

describe("acceptance: exactly-once usage through the local stack", () => {
  let stack: LocalStack;
  let client: EventBridgeClient;

  beforeAll(async () => {
    // Two batches in flight, as Lambda would run them: exactly-once must hold under
    // concurrent delivery (transaction conflicts on shared aggregates), not only in order.
    ({ stack } = await startTestStack({ visibilityTimeoutMs: 200, concurrency: 2 }));
    client = eventBridgeClient(stack);
  });
  afterAll(async () => {
    client?.destroy();
    await stack?.stop();
  });

  it("counts every distinct valid event once and quarantines every invalid one with its reason", { timeout: 180_000 }, async () => {
    // prepare
    const now = new Date();
    const { tenants, distinct, sent } = buildTraffic(now);
    const invalid = invalidEvents(now);
    const entries = [...sent.map((d) => entry(d, d.provider)), ...invalid.map((i) => entry(i.detail))];
    // spread the invalid ones through the stream instead of sending them last
    for (const [k, bad] of invalid.entries()) {
      const from = entries.length - invalid.length + k;
      const to = Math.floor(((k + 1) * sent.length) / (invalid.length + 1));
      const [moved] = entries.splice(from, 1);
      entries.splice(to, 0, moved);
      expect(JSON.parse(moved.Detail!).feature).toBe(bad.marker);
    }
    // PutEvents itself refuses a detail that is not JSON: that never reaches the queue
    const malformed = await client.send(
      new PutEventsCommand({ Entries: [{ Source: INVOCATION_SOURCES.bedrock, DetailType: INVOCATION_DETAIL_TYPE, Detail: "{\"eventId\":", EventBusName: "local-bus" }] }),
    );
    expect(malformed.Entries?.[0]?.ErrorCode).toBe("MalformedDetail");

    // act: 10 entries per call, a few calls in parallel
    const calls: PutEventsRequestEntry[][] = [];
    for (let i = 0; i < entries.length; i += 10) calls.push(entries.slice(i, i + 10));
    let next = 0;
    let failedEntries = 0;
    await Promise.all(
      Array.from({ length: PARALLEL_CALLS }, async () => {
        while (next < calls.length) {
          const out = await client.send(new PutEventsCommand({ Entries: calls[next++] }));
          failedEntries += out.FailedEntryCount ?? 0;
        }
      }),
    );
    await stack.drain({ timeoutMs: 150_000 });

    // assess: the bus took everything, nothing is stuck or dead-lettered
    expect(failedEntries).toBe(0);
    expect(sent.length).toBe(TOTAL_SENT);
    expect(stack.deadLetters()).toEqual([]);

    // expected sums over DISTINCT valid events, per tenant and per day
    const expected = new Map<string, Totals & { days: Map<string, Totals> }>();
    for (const d of distinct) {
      const t = expected.get(d.tenantId) ?? { requests: 0, inputTokens: 0, outputTokens: 0, days: new Map() };
      const day = d.occurredAt.slice(0, 10);
      const dt = t.days.get(day) ?? { requests: 0, inputTokens: 0, outputTokens: 0 };
      for (const x of [t, dt]) {
        x.requests += 1;
        x.inputTokens += d.inputTokens;
        x.outputTokens += d.outputTokens;
      }
      t.days.set(day, dt);
      expected.set(d.tenantId, t);
    }
    const from = new Date(now.getTime() - 2 * 86_400_000).toISOString().slice(0, 10);
    const to = now.toISOString().slice(0, 10);
    let counted = 0;
    for (const { tenantId } of tenants) {
      const res = await fetch(`${stack.url}/usage/${tenantId}?from=${from}&to=${to}&granularity=day`);
      expect(res.status).toBe(200);
      const usage = (await res.json()) as UsageResponse;
      const want = expected.get(tenantId) ?? { requests: 0, inputTokens: 0, outputTokens: 0, days: new Map() };
      expect({ tenantId, ...pick(usage.totals) }).toEqual({ tenantId, ...pick(want) });
      const days = Object.fromEntries(usage.periods.filter((p) => p.totals.requests > 0).map((p) => [p.period, pick(p.totals)]));
      expect(days).toEqual(Object.fromEntries([...want.days.entries()].sort().map(([day, t]) => [day, pick(t)])));
      counted += usage.totals.requests;
    }
    expect(counted).toBe(distinct.length);

    // every invalid event is in the quarantine with the reason we expect
    const quarantined: QuarantineResponse["items"] = [];
    for (const day of new Set([to, new Date().toISOString().slice(0, 10)])) {
      let cursor: string | undefined;
      do {
        const res = await fetch(`${stack.url}/quarantine?day=${day}&limit=100${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`);
        expect(res.status).toBe(200);
        const page = (await res.json()) as QuarantineResponse;
        quarantined.push(...page.items);
        cursor = page.cursor;
      } while (cursor);
    }
    // The quarantine keeps ids, never bodies: found by event id (none kept for the one whose id is malformed).
    const found = invalid.map(({ marker, detail }) => {
      const eventId = typeof detail.eventId === "string" && /^[A-Za-z0-9._:/@+=-]{1,128}$/.test(detail.eventId) ? detail.eventId : undefined;
      const hits = quarantined.filter((q) => q.eventId === eventId);
      return { marker, reasons: hits.map((h) => h.reason) };
    });
    expect(found).toEqual(invalid.map(({ marker, reason }) => ({ marker, reasons: [reason] })));
    expect(quarantined).toHaveLength(invalid.length);
  });
});

function pick(t: Totals): Totals {
  return { requests: t.requests, inputTokens: t.inputTokens, outputTokens: t.outputTokens };
}
