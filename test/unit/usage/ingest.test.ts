import { describe, expect, it } from "vitest";
import type { InvocationEventV1 } from "../../../shared/events/invocation";
import { PriceCatalog } from "../../../shared/pricing/catalog";
import { IngestService, type IngestRecord } from "../../../shared/usage/ingest";
import type { UsageStore } from "../../../shared/usage/ports";
import { envelope, invocation, prng, record, recordOf } from "../../helpers/events";
import { FaultyStore, MemoryUsageStore } from "../../helpers/memory-store";

const NOW = new Date("2026-11-25T12:00:00Z");

function service(store: UsageStore, maxTransactionItems = 100) {
  return new IngestService({
    store,
    prices: new PriceCatalog(),
    region: "us-west-2",
    maxEventAgeDays: 35,
    maxTransactionItems,
    clock: () => NOW,
    sleep: async () => undefined,
    random: () => 0.5,
  });
}

function expectExact(store: MemoryUsageStore, events: InvocationEventV1[]) {
  const tenants = new Set(events.map((e) => e.tenantId));
  for (const t of tenants) {
    const mine = events.filter((e) => e.tenantId === t);
    const got = store.month(t, "2026-11");
    expect(got?.requests, t).toBe(mine.length);
    expect(got?.inputTokens, t).toBe(mine.reduce((s, e) => s + e.inputTokens, 0));
    expect(got?.outputTokens, t).toBe(mine.reduce((s, e) => s + e.outputTokens, 0));
  }
}

describe("IngestService", () => {
  it("counts an event delivered twice in one batch once and reports both records handled", async () => {
    const store = new MemoryUsageStore();
    const e = invocation({ occurredAt: "2026-11-25T11:00:00Z" });
    const r = await service(store).ingest([recordOf(e), recordOf(e)]);
    expect([...r.outcomes.values()].map((o) => o.kind)).toEqual(["counted", "duplicate"]);
    expect(store.month(e.tenantId, "2026-11")?.requests).toBe(1);
  });

  it("quarantines too-late and future events with their reason", async () => {
    const store = new MemoryUsageStore();
    const r = await service(store).ingest([
      recordOf(invocation({ occurredAt: "2026-10-01T00:00:00Z" })),
      recordOf(invocation({ occurredAt: "2026-11-26T12:00:00Z" })),
    ]);
    expect(store.quarantined.map((q) => q.reason)).toEqual(["too-late", "future-timestamp"]);
    expect(r.stats.quarantined).toBe(2);
  });

  it("counts an unknown Bedrock model's tokens, flags it unpriced and leaves a note, never $0 silently", async () => {
    const store = new MemoryUsageStore();
    const e = invocation({ modelId: "vendor.brand-new-model-v9", occurredAt: "2026-11-25T11:00:00Z" });
    const r = await service(store).ingest([recordOf(e)]);
    expect(r.stats.unpriced).toBe(1);
    expect(store.month(e.tenantId, "2026-11")).toMatchObject({ requests: 1, unpricedRequests: 1, costNanoUsd: 0 });
    expect(store.quarantined[0]).toMatchObject({ reason: "unknown-model", eventId: e.eventId });
  });

  it("prices inference-profile ARNs as their base model", async () => {
    const store = new MemoryUsageStore();
    const e = invocation({
      modelId: "arn:aws:bedrock:us-west-2:123456789012:inference-profile/us.anthropic.claude-3-5-sonnet-20240620-v1:0",
      occurredAt: "2026-11-25T11:00:00Z",
    });
    await service(store).ingest([recordOf(e)]);
    expect(store.month(e.tenantId, "2026-11")?.costNanoUsd).toBe(8_916_000); // $0.008916
  });

  it("fails only the records of a chunk that could not commit; the redelivery completes exactly once", async () => {
    const inner = new MemoryUsageStore();
    const events = Array.from({ length: 40 }, (_, i) => invocation({ tenantId: `t${i % 5}`, occurredAt: "2026-11-25T11:00:00Z" }));
    const records = events.map(recordOf);
    // crash between chunks: the 2nd transaction throws every time in the first delivery
    const first = await service(new FaultyStore(inner, (n) => (n === 2 ? "throw" : "ok")), 20).ingest(records);
    const failed = records.filter((r) => first.outcomes.get(r.messageId)?.kind === "failed");
    expect(failed.length).toBeGreaterThan(0);
    expect(failed.length).toBeLessThan(records.length);

    // SQS redelivers the failed ones (possibly with others again)
    const second = await service(inner, 20).ingest([...failed, ...records.slice(0, 5)]);
    expect([...second.outcomes.values()].every((o) => o.kind === "counted" || o.kind === "duplicate")).toBe(true);
    expectExact(inner, events);
  });

  it("retries throttled commits with backoff and gives up to redelivery after the budget", async () => {
    const inner = new MemoryUsageStore();
    const e = invocation({ occurredAt: "2026-11-25T11:00:00Z" });
    const ok = await service(new FaultyStore(inner, (n) => (n <= 3 ? "retryable" : "ok"))).ingest([recordOf(e)]);
    expect(ok.stats.counted).toBe(1);
    const never = await service(new FaultyStore(new MemoryUsageStore(), () => "retryable")).ingest([recordOf(invocation({ occurredAt: "2026-11-25T11:00:00Z" }))]);
    expect(never.stats.failed).toBe(1);
  });

  it("random duplicate / reorder / crash / throttle runs always end with totals equal to the distinct valid events", async () => {
    for (let seed = 1; seed <= 20; seed++) {
      const rand = prng(seed);
      const inner = new MemoryUsageStore();
      const events = Array.from({ length: 300 }, (_, i) =>
        invocation({
          eventId: `s${seed}-e${i}`,
          tenantId: `t${Math.floor(rand() * 6)}`,
          occurredAt: `2026-11-${String(1 + Math.floor(rand() * 25)).padStart(2, "0")}T0${Math.floor(rand() * 9)}:00:00Z`,
          inputTokens: Math.floor(rand() * 5000),
          outputTokens: Math.floor(rand() * 5000),
        }),
      );
      const poison: IngestRecord[] = [record("{"), record(envelope({ ...invocation(), tenantId: "bad tenant" }))];
      let queue: IngestRecord[] = [...events.map(recordOf), ...events.filter(() => rand() < 0.3).map(recordOf), ...poison];
      let rounds = 0;
      while (queue.length && rounds++ < 50) {
        queue.sort(() => rand() - 0.5);
        const next: IngestRecord[] = [];
        for (let i = 0, size = 0; i < queue.length; i += size) {
          size = 1 + Math.floor(rand() * 100);
          const batch = queue.slice(i, i + size);
          const faulty = new FaultyStore(inner, () => (rand() < 0.15 ? "throw" : rand() < 0.15 ? "retryable" : "ok"));
          const r = await service(faulty, 10 + Math.floor(rand() * 90)).ingest(batch);
          next.push(...batch.filter((b) => r.outcomes.get(b.messageId)?.kind === "failed"));
        }
        queue = next;
      }
      expect(queue, `seed ${seed}`).toEqual([]);
      expectExact(inner, events);
      expect(inner.ledger.size).toBe(events.length);
    }
  });
});
