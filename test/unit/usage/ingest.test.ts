import { describe, expect, it } from "vitest";
import type { InvocationEventV1 } from "../../../shared/events/invocation";
import { PriceCatalog } from "../../../shared/pricing/catalog";
import { IngestService, type IngestOptions, type IngestRecord, type IngestResult } from "../../../shared/usage/ingest";
import type { UsageStore } from "../../../shared/usage/ports";
import { envelope, invocation, prng, record, recordOf } from "../../helpers/events";
import { FaultyStore, MemoryUsageStore, type Fault, type StoreOp } from "../../helpers/memory-store";

const NOW = new Date("2026-11-25T12:00:00Z");

function service(store: UsageStore, maxTransactionItems = 100, opts: Partial<IngestOptions> = {}) {
  return new IngestService({
    store,
    prices: new PriceCatalog(),
    region: "us-west-2",
    maxEventAgeDays: 35,
    maxTransactionItems,
    clock: () => NOW,
    sleep: async () => undefined,
    random: () => 0.5,
    ...opts,
  });
}

/** A view of `inner` whose transactions wait at `atApply` until `release()`: a slow run. */
function stallingApply(inner: MemoryUsageStore) {
  let release!: () => void;
  const stalled = new Promise<void>((r) => (release = r));
  let reachedApply!: () => void;
  const atApply = new Promise<void>((r) => (reachedApply = r));
  const slow: UsageStore = Object.assign(Object.create(inner) as MemoryUsageStore, {
    apply: async (...args: Parameters<MemoryUsageStore["apply"]>) => {
      reachedApply();
      await stalled;
      return inner.apply(...args);
    },
  });
  return { slow, atApply, release };
}

const handled = (r: IngestResult) => [...r.outcomes.values()].every((o) => o.kind === "counted" || o.kind === "duplicate");

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

  it("fails only the records of a group that could not commit; the redelivery takes its claims over and counts once", async () => {
    const inner = new MemoryUsageStore();
    const events = Array.from({ length: 40 }, (_, i) => invocation({ tenantId: `t${i % 5}`, occurredAt: "2026-11-25T11:00:00Z" }));
    const records = events.map(recordOf);
    // 5 tenants x 7 aggregates, at most 21 per group: 2 groups; the 2nd group's transaction fails
    let applies = 0;
    const faulty = new FaultyStore(inner, (_, op) => (op === "apply" && ++applies === 2 ? "throw" : "ok"));
    const first = await service(faulty, 22).ingest(records);
    const failed = records.filter((r) => first.outcomes.get(r.messageId)?.kind === "failed");
    expect(failed.length).toBeGreaterThan(0);
    expect(failed.length).toBeLessThan(records.length);
    expect([...inner.markers.values()].sort()).toEqual(["aborted", "committed"]);

    // SQS redelivers the failed ones (possibly with others again), at once: the group is
    // marked aborted, so no lease has to run out first
    const second = await service(inner, 22).ingest([...failed, ...records.slice(0, 5)]);
    expect(handled(second)).toBe(true);
    expect(second.stats.counted).toBe(failed.length);
    expectExact(inner, events);
    expect(inner.countedEvents()).toBe(events.length);
  });

  it("counts a group whose transaction landed although its response was lost", async () => {
    const inner = new MemoryUsageStore();
    const events = Array.from({ length: 10 }, () => invocation({ occurredAt: "2026-11-25T11:00:00Z" }));
    const r = await service(new FaultyStore(inner, (_, op) => (op === "apply" ? "lost" : "ok"))).ingest(events.map(recordOf));
    expect(r.stats.counted).toBe(10);
    expectExact(inner, events);
  });

  it("respects a dead run's undecided claims for the lease, then takes them over exactly once", async () => {
    const inner = new MemoryUsageStore();
    const events = Array.from({ length: 12 }, (_, i) => invocation({ tenantId: `d${i % 3}`, occurredAt: "2026-11-25T11:00:00Z" }));
    const records = events.map(recordOf);
    // the run dies after its ledger writes: neither its transaction nor its abort reach the table
    const dying = new FaultyStore(inner, (_, op) => (op === "apply" || op === "abort" ? "throw" : "ok"));
    const first = await service(dying, 100, { claimLeaseMs: 30_000 }).ingest(records);
    expect(first.stats.failed).toBe(12);
    expect(inner.ledger.size).toBe(12);
    expect(inner.markers.size).toBe(0);

    const at = (ms: number) => service(inner, 100, { claimLeaseMs: 30_000, clock: () => new Date(NOW.getTime() + ms) });
    const early = await at(10_000).ingest(records);
    expect(early.stats.failed).toBe(12);
    expect([...early.outcomes.values()][0]).toMatchObject({ kind: "failed", error: expect.stringContaining("concurrent delivery") });
    expect(inner.aggregates.size).toBe(0);

    const late = await at(31_000).ingest(records);
    expect(late.stats.counted).toBe(12);
    expectExact(inner, events);
    expect([...inner.markers.values()].sort()).toEqual(["aborted", "committed"]);
  });

  it("a concurrent delivery that takes a slow run's events over makes that run fail them, never count them twice", async () => {
    const inner = new MemoryUsageStore();
    const events = Array.from({ length: 20 }, () => invocation({ tenantId: "c", occurredAt: "2026-11-25T11:00:00Z" }));
    const records = events.map(recordOf);
    // run A claims everything, then stalls before its transaction
    const { slow, atApply, release } = stallingApply(inner);
    const runA = service(slow, 100, { claimLeaseMs: 0 }).ingest(records);
    await atApply;
    // run B gets 5 of the same events (an EventBridge duplicate) after A's lease ran out
    const b = await service(inner, 100, { claimLeaseMs: 0 }).ingest(records.slice(0, 5));
    expect(b.stats.counted).toBe(5);
    release();
    const a = await runA;
    expect(a.stats.counted).toBe(0);
    expect(a.stats.failed).toBe(20);
    // A's records are redelivered: the 5 are duplicates, the other 15 are counted now
    const again = await service(inner, 100, { claimLeaseMs: 0 }).ingest(records);
    expect(again.stats).toMatchObject({ counted: 15, duplicates: 5, failed: 0 });
    expectExact(inner, events);
  });

  it("waits for a concurrent run that holds the same events, and reports them as duplicates once it commits", async () => {
    const inner = new MemoryUsageStore();
    const events = Array.from({ length: 8 }, () => invocation({ tenantId: "w", occurredAt: "2026-11-25T11:00:00Z" }));
    const records = events.map(recordOf);
    const { slow, atApply, release } = stallingApply(inner);
    const runA = service(slow, 100, { claimLeaseMs: 30_000 }).ingest(records);
    await atApply;
    const waits: number[] = [];
    // run B holds 3 of them plus 2 of its own; A commits while B waits the second time
    const extra = [invocation({ tenantId: "w", occurredAt: "2026-11-25T11:00:00Z" }), invocation({ tenantId: "w", occurredAt: "2026-11-25T11:00:00Z" })];
    const b = await service(inner, 100, {
      claimLeaseMs: 30_000,
      sleep: async (ms) => {
        waits.push(ms);
        if (waits.length === 2) {
          release();
          await runA;
        }
      },
    }).ingest([...records.slice(0, 3), ...extra.map(recordOf)]);
    expect(b.stats).toMatchObject({ counted: 2, duplicates: 3, failed: 0 });
    expect(waits).toEqual([50, 100]);
    expect((await runA).stats.counted).toBe(8);
    expectExact(inner, [...events, ...extra]);
  });

  it("replaces a counted estimate by the exact counts of the same call, once, on every aggregate", async () => {
    const store = new MemoryUsageStore();
    // an abandoned stream: the wrapper estimated; the invocation log reports the same call exactly
    const estimate = invocation({ eventId: "req-1", occurredAt: "2026-11-25T10:59:58Z", inputTokens: 300, outputTokens: 100, estimated: true });
    const exact = { ...estimate, occurredAt: "2026-11-25T11:00:01Z", inputTokens: 310, outputTokens: 640, estimated: undefined };
    const first = await service(store).ingest([recordOf(estimate)]);
    expect(first.stats.counted).toBe(1);
    expect(store.month(estimate.tenantId, "2026-11")).toMatchObject({ requests: 1, inputTokens: 300, estimatedRequests: 1 });

    const second = await service(store).ingest([recordOf(exact)]);
    expect(second.stats).toMatchObject({ counted: 0, duplicates: 1, corrected: 1, failed: 0 });
    const month = store.month(estimate.tenantId, "2026-11");
    expect(month).toMatchObject({ requests: 1, inputTokens: 310, outputTokens: 640, estimatedRequests: 0 });
    // the hour moved with the exact timestamp
    expect(store.aggregates.get(`t|${estimate.tenantId}|hour|2026-11-25T10`)).toMatchObject({ requests: 0, inputTokens: 0, outputTokens: 0 });
    expect(store.aggregates.get(`t|${estimate.tenantId}|hour|2026-11-25T11`)).toMatchObject({ requests: 1, inputTokens: 310 });

    // another exact delivery, or the estimate again: plain duplicates
    const third = await service(store).ingest([recordOf(exact), recordOf({ ...estimate, eventId: "req-1" })]);
    expect(third.stats).toMatchObject({ duplicates: 2, corrected: 0 });
    expect(store.month(estimate.tenantId, "2026-11")).toEqual(month);
  });

  it("counts an estimate that arrives after the exact report as a duplicate", async () => {
    const store = new MemoryUsageStore();
    const exact = invocation({ eventId: "req-2", occurredAt: "2026-11-25T11:00:00Z", inputTokens: 310, outputTokens: 640 });
    await service(store).ingest([recordOf(exact)]);
    const late = await service(store).ingest([recordOf({ ...exact, inputTokens: 1, outputTokens: 1, estimated: true })]);
    expect(late.stats).toMatchObject({ duplicates: 1, corrected: 0 });
    expect(store.month(exact.tenantId, "2026-11")).toMatchObject({ inputTokens: 310, outputTokens: 640, estimatedRequests: 0 });
  });

  it("retries throttled transactions with backoff and, after the budget, aborts the group so a redelivery counts it", async () => {
    const inner = new MemoryUsageStore();
    const e = invocation({ occurredAt: "2026-11-25T11:00:00Z" });
    let n = 0;
    const ok = await service(new FaultyStore(inner, (_, op) => (op === "apply" && ++n <= 3 ? "retryable" : "ok"))).ingest([recordOf(e)]);
    expect(ok.stats.counted).toBe(1);

    const store = new MemoryUsageStore();
    const e2 = invocation({ occurredAt: "2026-11-25T11:00:00Z" });
    const never = await service(new FaultyStore(store, (_, op) => (op === "apply" ? "retryable" : "ok"))).ingest([recordOf(e2)]);
    expect(never.stats.failed).toBe(1);
    expect([...never.outcomes.values()][0]).toMatchObject({ error: expect.stringContaining("not committed after 8 attempts") });
    const redelivered = await service(store).ingest([recordOf(e2)]);
    expect(redelivered.stats.counted).toBe(1);
    expectExact(store, [e2]);
  });

  it("writes each aggregate item of a hot tenant once per batch, whatever the batch size", async () => {
    const store = new MemoryUsageStore();
    const events = Array.from({ length: 6000 }, (_, i) => invocation({ tenantId: "hot", occurredAt: `2026-11-25T11:0${i % 3}:00Z` }));
    const records = events.map(recordOf);
    for (let i = 0; i < records.length; i += 2000) await service(store).ingest(records.slice(i, i + 2000));
    expectExact(store, events);
    expect(Math.max(...store.itemWrites.values())).toBe(3); // 3 batches
    expect(store.applies).toBe(3);
  });

  it("random duplicate / reorder / crash / lost-response / throttle runs always end with totals equal to the distinct valid events", async () => {
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
      // ~10% of calls were also reported from an estimate (different counts): whichever comes
      // first, the totals must end at the exact counts
      const estimates = events.filter(() => rand() < 0.1).map((e) => ({ ...e, inputTokens: e.inputTokens + 7, outputTokens: 1, estimated: true }));
      let queue: IngestRecord[] = [...events.map(recordOf), ...events.filter(() => rand() < 0.3).map(recordOf), ...estimates.map(recordOf), ...poison];
      let rounds = 0;
      const faults = { throw: 0, lost: 0, retryable: 0 };
      const fault = (op: StoreOp): Fault => {
        const x = rand();
        const f: Fault =
          op === "apply"
            ? x < 0.1 ? "throw" : x < 0.15 ? "lost" : x < 0.3 ? "retryable" : "ok"
            : x < 0.03 ? "throw" : x < 0.06 ? "lost" : "ok";
        if (f !== "ok") faults[f]++;
        return f;
      };
      while (queue.length && rounds++ < 50) {
        queue.sort(() => rand() - 0.5);
        const next: IngestRecord[] = [];
        for (let i = 0, size = 0; i < queue.length; i += size) {
          size = 1 + Math.floor(rand() * 100);
          const batch = queue.slice(i, i + size);
          // lease 0: a redelivery takes over any undecided claim (runs here never overlap)
          const r = await service(new FaultyStore(inner, (_, op) => fault(op)), 10 + Math.floor(rand() * 90), { claimLeaseMs: 0 }).ingest(batch);
          next.push(...batch.filter((b) => r.outcomes.get(b.messageId)?.kind === "failed"));
        }
        queue = next;
      }
      expect(queue, `seed ${seed}`).toEqual([]);
      expect(faults.throw + faults.lost, `seed ${seed}: faults were injected`).toBeGreaterThan(5);
      expectExact(inner, events);
      expect(inner.ledger.size).toBe(events.length);
      expect(inner.countedEvents()).toBe(events.length);
    }
  });
});

describe("IngestService: requests per batch", () => {
  const counting = (inner: MemoryUsageStore) => {
    const ops: StoreOp[] = [];
    return { store: new FaultyStore(inner, (_, op) => (ops.push(op), "ok")), ops };
  };

  it("claims the ledger entries of many small groups in shared requests (waves of up to 25 events), not one short request per group", async () => {
    const { store, ops } = counting(new MemoryUsageStore());
    // 50 tenants, one event each: 6 aggregates per tenant (tenant and model x month/day/hour), at most 13 per group: 25 groups
    const events = Array.from({ length: 50 }, (_, i) => invocation({ tenantId: `g${i}`, occurredAt: "2026-11-25T11:00:00Z" }));
    const r = await service(store, 14).ingest(events.map(recordOf));
    expect(r.stats.counted).toBe(50);
    expect(ops.filter((o) => o === "apply").length).toBe(25);
    // 2 events per group, 12 groups (24 events) a wave: 3 requests
    expect(ops.filter((o) => o === "insertLedgers").length).toBe(3);
  });

  it("reads a committed group's marker once per batch, however many of its events come again", async () => {
    const inner = new MemoryUsageStore();
    const events = Array.from({ length: 30 }, () => invocation({ occurredAt: "2026-11-25T11:00:00Z" }));
    await service(inner).ingest(events.map(recordOf));
    const { store, ops } = counting(inner);
    const again = await service(store).ingest(events.map(recordOf));
    expect(again.stats.duplicates).toBe(30);
    expect(ops.filter((o) => o === "marker").length).toBe(1);
  });

  it("asks for no quota evaluation of a tenant that only had duplicates on their first delivery, but does on a redelivery", async () => {
    const inner = new MemoryUsageStore();
    const e = invocation({ tenantId: "dup-only", occurredAt: "2026-11-25T11:00:00Z" });
    const other = invocation({ tenantId: "fresh", occurredAt: "2026-11-25T11:00:00Z" });
    const first = await service(inner).ingest([{ ...recordOf(e), receiveCount: 1 }]);
    expect(first.touched.map((t) => t.tenantId)).toEqual(["dup-only"]);

    const emittedTwice = await service(inner).ingest([{ ...recordOf(e), receiveCount: 1 }, { ...recordOf(other), receiveCount: 1 }]);
    expect(emittedTwice.touched.map((t) => t.tenantId)).toEqual(["fresh"]);
    // a redelivery may follow a failed evaluation: evaluated again
    const redelivered = await service(inner).ingest([{ ...recordOf(e), receiveCount: 2 }]);
    expect(redelivered.touched.map((t) => t.tenantId)).toEqual(["dup-only"]);
    // no receive count (not from SQS): evaluated, to be safe
    const unknown = await service(inner).ingest([recordOf(e)]);
    expect(unknown.touched.map((t) => t.tenantId)).toEqual(["dup-only"]);
  });
});
