import { PutEventsCommand, type EventBridgeClient, type PutEventsRequestEntry } from "@aws-sdk/client-eventbridge";
import { calcPrice } from "@pydantic/genai-prices";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { INVOCATION_DETAIL_TYPE, INVOCATION_SOURCES, type InvocationEventV1 } from "../../shared/events/invocation";
import { SNAPSHOT_PRICES, type ModelPrice } from "../../shared/pricing/catalog";
import type { LocalStack } from "../../local/stack";
import { eventBridgeClient, startTestStack } from "./stack-harness";

/**
 * Every current Bedrock text model of the price source, called with cache reads and writes in
 * the scope(s) the source prices, sent through the real EventBridge client into the local
 * stack: the usage API must report the list price. The expected figure comes from the source
 * package's own calculator (`calcPrice`, which takes input *including* cache tokens), an
 * implementation independent of shared/pricing.
 */
const TOKENS = { in: 60_000, out: 40_000, cacheRead: 100_000, cacheWrite: 20_000 }; // 180K input: below every long-context threshold

interface Case {
  tenantId: string;
  calledId: string;
  row: ModelPrice;
  expectedUsd: number;
}

function currentTextRows(today: string): ModelPrice[] {
  const latest = new Map<string, ModelPrice>();
  for (const r of SNAPSHOT_PRICES) {
    if (r.effectiveFrom > today || (r.serviceTier ?? "default") !== "default" || r.outputPer1k === 0) continue; // text models: they have an output price
    const key = `${r.modelId}|${r.scope ?? "*"}`;
    const seen = latest.get(key);
    if (!seen || seen.effectiveFrom < r.effectiveFrom) latest.set(key, r);
  }
  return [...latest.values()];
}

function calledIdOf(r: ModelPrice): string {
  if (r.scope === "global") return `global.${r.modelId}`;
  if (r.scope === "in-region") return `us.${r.modelId}`; // a geographic profile: priced at the source region's in-region price
  return r.modelId;
}

describe("prices of today's Bedrock models through the local stack", () => {
  let stack: LocalStack;
  let client: EventBridgeClient;

  beforeAll(async () => {
    ({ stack } = await startTestStack());
    client = eventBridgeClient(stack);
  });
  afterAll(async () => {
    client?.destroy();
    await stack?.stop();
  });

  it("prices every current text model of the source at list price (1e-6 relative), with cache tokens and scope", { timeout: 180_000 }, async () => {
    // prepare
    const now = new Date();
    const today = now.toISOString().slice(0, 10);
    const rows = currentTextRows(today);
    const scopes = new Set(rows.map((r) => r.scope));
    expect(rows.length).toBeGreaterThanOrEqual(60);
    expect([...scopes].sort()).toEqual(["*", "global", "in-region"]);
    const cases: Case[] = rows.map((row, i) => {
      const calledId = calledIdOf(row);
      const oracle = calcPrice(
        {
          input_tokens: TOKENS.in + TOKENS.cacheRead + TOKENS.cacheWrite,
          cache_read_tokens: TOKENS.cacheRead,
          cache_write_tokens: TOKENS.cacheWrite,
          output_tokens: TOKENS.out,
        },
        calledId,
        { providerId: "aws", timestamp: now },
      );
      if (!oracle) throw new Error(`the source's own calculator has no price for ${calledId}`);
      return { tenantId: `price-${i}`, calledId, row, expectedUsd: oracle.total_price };
    });
    const entries: PutEventsRequestEntry[] = cases.map((c, i) => {
      const detail: InvocationEventV1 = {
        eventId: `price-e2e-${i}`,
        tenantId: c.tenantId,
        occurredAt: now.toISOString(),
        provider: "bedrock",
        modelId: c.calledId,
        region: "us-east-1",
        inputTokens: TOKENS.in,
        outputTokens: TOKENS.out,
        cacheReadInputTokens: TOKENS.cacheRead,
        cacheWriteInputTokens: TOKENS.cacheWrite,
        schemaVersion: "1",
      };
      return { Source: INVOCATION_SOURCES.bedrock, DetailType: INVOCATION_DETAIL_TYPE, Detail: JSON.stringify(detail), EventBusName: stack.busName };
    });

    // act
    let failed = 0;
    for (let i = 0; i < entries.length; i += 10) {
      const out = await client.send(new PutEventsCommand({ Entries: entries.slice(i, i + 10) }));
      failed += out.FailedEntryCount ?? 0;
    }
    await stack.drain({ timeoutMs: 120_000 });

    // assess
    expect(failed).toBe(0);
    expect(stack.deadLetters()).toEqual([]);
    const off: string[] = [];
    for (const c of cases) {
      const res = await fetch(`${stack.url}/usage/${c.tenantId}?from=${today}&to=${today}&granularity=day`);
      expect(res.status).toBe(200);
      const usage = (await res.json()) as { totals: { requests: number; costNanoUsd: number; unpricedRequests: number; cacheReadInputTokens: number } };
      expect(usage.totals).toMatchObject({ requests: 1, unpricedRequests: 0, cacheReadInputTokens: TOKENS.cacheRead });
      const got = usage.totals.costNanoUsd / 1e9;
      if (Math.abs(got - c.expectedUsd) > 1e-6 * c.expectedUsd) off.push(`${c.calledId}: got $${got}, list $${c.expectedUsd}`);
    }
    expect(off).toEqual([]);
  });
});
