import { describe, expect, it } from "vitest";
import { INVOCATION_SOURCES, type InvocationEventV1 } from "../../../shared/events/invocation";
import { PriceCatalog } from "../../../shared/pricing/catalog";
import { IngestService, type IngestOptions, type IngestRecord, type IngestResult } from "../../../shared/usage/ingest";
import type { UsageStore } from "../../../shared/usage/ports";
import { envelope, invocation, prng, record, recordOf } from "../../helpers/events";
import { FaultyStore, MemoryUsageStore, type Fault, type StoreOp } from "../../helpers/memory-store";

const NOW = new Date("2026-11-25T12:00:00Z");

function service(store: UsageStore, opts: Partial<IngestOptions> = {}) {
  return new IngestService({
    store,
    prices: new PriceCatalog(),
    region: "us-west-2",
    maxEventAgeDays: 35,
    clock: () => NOW,
    sleep: async () => undefined,
    random: () => 0.5,
    ...opts,
  });
}

/** A view of `inner` whose `op` calls wait at `reached` until `release()`: a slow run. */
function stalling(inner: MemoryUsageStore, op: "addAggregate" | "insertLedgers") {
  let release!: () => void;
  const stalled = new Promise<void>((r) => (release = r));
  let reach!: () => void;
  const reached = new Promise<void>((r) => (reach = r));
  const slow: UsageStore = Object.assign(Object.create(inner) as MemoryUsageStore, {
    [op]: async (...args: unknown[]) => {
      // the call lands first, then the run stalls before it sees the answer
      const out = await (inner[op] as (...a: unknown[]) => Promise<unknown>).apply(inner, args);
      reach();
      await stalled;
      return out;
    },
  });
  return { slow, reached, release };
}

const LEASE = 30_000;
/** A service whose clock reads NOW + `ms`. */
const at = (store: UsageStore, ms: number, opts: Partial<IngestOptions> = {}) => service(store, { claimLeaseMs: LEASE, clock: () => new Date(NOW.getTime() + ms), ...opts });

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

  it("fails only the records whose aggregate items could not be written; after the lease a redelivery takes them over and counts once", async () => {
    const inner = new MemoryUsageStore();
    const events = Array.from({ length: 40 }, (_, i) => invocation({ tenantId: `t${i % 5}`, occurredAt: "2026-11-25T11:00:00Z" }));
    const records = events.map(recordOf);
    // every write of tenant t3's month item fails: its 8 events cannot be counted now
    const faulty = new FaultyStore(inner, (_, op) => (op === "addAggregate" && faultyTenant.value ? "throw" : "ok"));
    const faultyTenant = { value: false };
    const wrapped: UsageStore = Object.assign(Object.create(faulty) as FaultyStore, {
      addAggregate: (...args: Parameters<FaultyStore["addAggregate"]>) => {
        faultyTenant.value = args[0].target.tenantId === "t3" && args[0].target.kind === "tenant" && args[0].target.granularity === "month";
        return faulty.addAggregate(...args);
      },
    });
    const first = await at(wrapped, 0).ingest(records);
    const failed = records.filter((r) => first.outcomes.get(r.messageId)?.kind === "failed");
    expect(failed.length).toBe(8);
    expect(first.stats.counted).toBe(32);
    // the run is not recorded done: its epoch is left at run 0
    expect([...inner.epochs.values()].map((e) => e.done)).toEqual([0]);

    // SQS redelivers the failed ones (and a few counted ones again): within the lease they wait...
    expect((await at(inner, 10_000).ingest([...failed, ...records.slice(0, 5)])).stats.failed).toBe(failed.length + 5);
    // ...after it, each is finished once: t3's other items already carry the dead run's mark, and
    // the calls whose items all carry it are duplicates
    const writesBefore = inner.applies;
    const second = await at(inner, 61_000).ingest([...failed, ...records.slice(0, 5)]);
    expect(handled(second)).toBe(true);
    expect(second.stats).toMatchObject({ counted: failed.length, duplicates: 5 });
    expect(inner.applies - writesBefore).toBe(1); // only t3's month item
    expectExact(inner, events);
    expect(inner.countedEvents()).toBe(events.length);
  });

  it("counts an item write whose response was lost once: the same conditional write finds the run's mark", async () => {
    const inner = new MemoryUsageStore();
    const events = Array.from({ length: 10 }, () => invocation({ occurredAt: "2026-11-25T11:00:00Z" }));
    let n = 0;
    const r = await service(new FaultyStore(inner, (_, op) => (op === "addAggregate" && ++n % 2 === 1 ? "lost" : "ok"))).ingest(events.map(recordOf));
    expect(r.stats.counted).toBe(10);
    expectExact(inner, events);
    expect(inner.countedEvents()).toBe(10);
  });

  it("respects a dead run's unfinished claims for the lease, then finishes them exactly once, adding only to the items its writes did not reach", async () => {
    const inner = new MemoryUsageStore();
    const events = Array.from({ length: 12 }, (_, i) => invocation({ tenantId: `d${i % 3}`, occurredAt: `2026-11-25T1${i % 2}:00:00Z` }));
    const records = events.map(recordOf);
    // the run dies after its claims and 5 of its item writes: nothing else reaches the table
    let writes = 0;
    const dying = new FaultyStore(inner, (_, op) => (op === "finishRun" || (op === "addAggregate" && ++writes > 5) ? "throw" : "ok"));
    const first = await at(dying, 0).ingest(records);
    expect(first.stats.counted).toBeLessThan(12);
    expect(inner.ledger.size).toBe(12);
    const landed = [...inner.marks.keys()];
    expect(landed.length).toBe(5);

    const early = await at(inner, 10_000).ingest(records);
    expect(early.stats.failed).toBe(12);
    expect([...early.outcomes.values()][0]).toMatchObject({ kind: "failed", error: expect.stringContaining("concurrent delivery") });

    const late = await at(inner, 61_000).ingest(records);
    expect(late.stats.failed).toBe(0);
    expectExact(inner, events);
    // the items the dead run reached were written once, by it
    for (const id of landed) expect(inner.itemWrites.get(id), id).toBe(1);
    expect(inner.countedEvents()).toBe(12);
  });

  it("a run stalled past its lease writes nothing more: a concurrent delivery takes its events over, and they are counted once", async () => {
    const inner = new MemoryUsageStore();
    const events = Array.from({ length: 20 }, () => invocation({ tenantId: "c", occurredAt: "2026-11-25T11:00:00Z" }));
    const records = events.map(recordOf);
    let now = 0;
    // run A claims everything, then stalls until after its lease
    const { slow, reached, release } = stalling(inner, "insertLedgers");
    const runA = service(slow, { claimLeaseMs: LEASE, clock: () => new Date(NOW.getTime() + now) }).ingest(records);
    await reached;
    now = 61_000;
    // run B gets 5 of the same events (an EventBridge duplicate) after A's lease ran out
    const b = await at(inner, 61_000).ingest(records.slice(0, 5));
    expect(b.stats.counted).toBe(5);
    release();
    const a = await runA;
    expect(a.stats.counted).toBe(0);
    expect(a.stats.failed).toBe(20);
    expect([...a.outcomes.values()][5]).toMatchObject({ error: expect.stringContaining("lease ran out") });
    // A's records are redelivered: the 5 are duplicates, the other 15 are counted now
    const again = await at(inner, 61_000).ingest(records);
    expect(again.stats).toMatchObject({ counted: 15, duplicates: 5, failed: 0 });
    expectExact(inner, events);
  });

  it("a run taken over twice (its taker died too) is finished from both dead runs' marks", async () => {
    const inner = new MemoryUsageStore();
    const events = Array.from({ length: 6 }, (_, i) => invocation({ tenantId: `p${i % 2}`, occurredAt: "2026-11-25T11:00:00Z" }));
    const records = events.map(recordOf);
    let w1 = 0;
    await at(new FaultyStore(inner, (_, op) => (op === "finishRun" || (op === "addAggregate" && ++w1 > 3) ? "throw" : "ok")), 0).ingest(records);
    let w2 = 0;
    await at(new FaultyStore(inner, (_, op) => (op === "finishRun" || (op === "addAggregate" && ++w2 > 4) ? "throw" : "ok")), 61_000).ingest(records);
    expect([...inner.ledger.values()].every((h) => h.prev?.length === 1)).toBe(true);
    const third = await at(inner, 200_000).ingest(records);
    expect(third.stats.failed).toBe(0);
    expectExact(inner, events);
    expect(inner.countedEvents()).toBe(6);
    for (const [id, n] of inner.itemWrites) expect(n, id).toBe(1);
  });

  it("a dead wrapper report's run is finished by the invocation log's report of the same call as the wrapper counted it (its event time, its path)", async () => {
    const inner = new MemoryUsageStore();
    // the wrapper stamped 11:59:59; the log record of the same call says 12:00:01 (another hour, another minute)
    const wrapper = invocation({ eventId: "req-x", tenantId: "x", occurredAt: "2026-11-25T10:59:59Z" });
    const log = { ...wrapper, occurredAt: "2026-11-25T11:00:01Z" };
    let w = 0;
    await at(new FaultyStore(inner, (_, op) => (op === "finishRun" || (op === "addAggregate" && ++w > 3) ? "throw" : "ok")), 0).ingest([
      record(envelope(wrapper, { source: INVOCATION_SOURCES.bedrock })),
    ]);
    const late = await at(inner, 61_000).ingest([record(envelope(log, { source: INVOCATION_SOURCES.invocationLog }))]);
    expect(late.stats).toMatchObject({ counted: 1, failed: 0 });
    expect(inner.aggregates.get("t|x|hour|2026-11-25T10")?.requests).toBe(1);
    expect([...inner.aggregates.keys()].filter((k) => k.includes("T11"))).toEqual([]);
    expect(inner.month("x", "2026-11")?.requests).toBe(1);
    expect(inner.sources.get("t|x|day|2026-11-25")).toMatchObject({ wrapperFirst: 1, logFirst: 0 });
    expect(inner.countedEvents()).toBe(1);
  });

  it("waits for a concurrent run that holds the same events, and reports them as duplicates once it finishes", async () => {
    const inner = new MemoryUsageStore();
    const events = Array.from({ length: 8 }, () => invocation({ tenantId: "w", occurredAt: "2026-11-25T11:00:00Z" }));
    const records = events.map(recordOf);
    const { slow, reached, release } = stalling(inner, "addAggregate");
    const runA = service(slow, { claimLeaseMs: LEASE }).ingest(records);
    await reached;
    const waits: number[] = [];
    // run B holds 3 of them plus 2 of its own; A finishes while B waits the second time
    const extra = [invocation({ tenantId: "w", occurredAt: "2026-11-25T11:00:00Z" }), invocation({ tenantId: "w", occurredAt: "2026-11-25T11:00:00Z" })];
    const b = await service(inner, {
      claimLeaseMs: LEASE,
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

  it("resolves claims written before high-water commits by their commit markers", async () => {
    const inner = new MemoryUsageStore();
    const [committed, aborted, undecided] = ["legacy-c", "legacy-a", "legacy-u"].map((eventId) => invocation({ eventId, tenantId: "old", occurredAt: "2026-11-25T11:00:00Z" }));
    const priced = (e: typeof committed) => ({ event: e, baseModelId: e.modelId, counters: { requests: 1 } }) as never;
    inner.legacyClaim(priced(committed), { run: "r1", group: 0 }, NOW.toISOString());
    inner.markers.set("r1#0", "committed");
    inner.legacyClaim(priced(aborted), { run: "r2", group: 0 }, NOW.toISOString());
    inner.markers.set("r2#0", "aborted");
    inner.legacyClaim(priced(undecided), { run: "r3", group: 0 }, NOW.toISOString());
    const r = await at(inner, 31_000).ingest([committed, aborted, undecided].map(recordOf));
    expect(r.stats).toMatchObject({ counted: 2, duplicates: 1, failed: 0 });
    expect(inner.markers.get("r3#0")).toBe("aborted");
    expect(inner.month("old", "2026-11")?.requests).toBe(2);
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

  it("retries throttled item writes with backoff and, after the budget, fails the records so a redelivery after the lease counts them", async () => {
    const inner = new MemoryUsageStore();
    const e = invocation({ occurredAt: "2026-11-25T11:00:00Z" });
    let n = 0;
    const ok = await service(new FaultyStore(inner, (_, op) => (op === "addAggregate" && ++n <= 3 ? "retryable" : "ok"))).ingest([recordOf(e)]);
    expect(ok.stats.counted).toBe(1);

    const store = new MemoryUsageStore();
    const e2 = invocation({ occurredAt: "2026-11-25T11:00:00Z" });
    const never = await at(new FaultyStore(store, (_, op) => (op === "addAggregate" ? "retryable" : "ok")), 0).ingest([recordOf(e2)]);
    expect(never.stats.failed).toBe(1);
    expect([...never.outcomes.values()][0]).toMatchObject({ error: expect.stringContaining("not written after 8 attempts") });
    const redelivered = await at(store, 61_000).ingest([recordOf(e2)]);
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
    expect(store.applies).toBe(3 * store.itemWrites.size);
  });

  it("removes a dead epoch's marks from an item once its runs are known done, and never an unfinished run's", async () => {
    const inner = new MemoryUsageStore();
    const day = (i: number) => invocation({ tenantId: "m", occurredAt: "2026-11-25T11:00:00Z", eventId: `m${i}` });
    // epoch A finishes its run; epoch B dies with its run unfinished after one item write
    await at(inner, 0, { epochId: () => "epochaaaaa" }).ingest([recordOf(day(1))]);
    let w = 0;
    await at(new FaultyStore(inner, (_, op) => (op === "finishRun" || (op === "addAggregate" && ++w > 1) ? "throw" : "ok")), 0, { epochId: () => "epochbbbbb" }).ingest([recordOf(day(2))]);
    const month = "t|m|month|2026-11";
    expect(Object.keys(inner.marks.get(month) ?? {}).sort()).toEqual(["epochaaaaa", "epochbbbbb"]);
    // one long-lived writer after both leases: its first write learns the marks, its second removes A's
    const c = at(inner, 61_000, { epochId: () => "epochccccc" });
    await c.ingest([recordOf(day(3))]);
    await c.ingest([recordOf(day(4))]);
    expect(Object.keys(inner.marks.get(month) ?? {}).sort()).toEqual(["epochbbbbb", "epochccccc"]);
    // B's unfinished run is still finished exactly once from its mark
    await at(inner, 61_000).ingest([recordOf(day(2))]);
    expectExact(inner, [1, 2, 3, 4].map(day));
  });

  it("random duplicate / reorder / crash / lost-response / throttle runs always end with totals equal to the distinct valid events", async () => {
    for (let seed = 1; seed <= 40; seed++) {
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
          op === "addAggregate"
            ? x < 0.05 ? "throw" : x < 0.1 ? "lost" : x < 0.2 ? "retryable" : "ok"
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
          // lease 0: a redelivery takes over any unfinished claim (runs here never overlap)
          const r = await service(new FaultyStore(inner, (_, op) => fault(op)), { claimLeaseMs: 0 }).ingest(batch);
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

  it("claims 25 ledger entries a request, writes each aggregate item once and records the run done once", async () => {
    const { store, ops } = counting(new MemoryUsageStore());
    // 50 tenants, one event each: 6 aggregates per tenant (tenant and model x month/day/hour)
    const events = Array.from({ length: 50 }, (_, i) => invocation({ tenantId: `g${i}`, occurredAt: "2026-11-25T11:00:00Z" }));
    const r = await service(store).ingest(events.map(recordOf));
    expect(r.stats.counted).toBe(50);
    expect(ops.filter((o) => o === "insertLedgers").length).toBe(2);
    expect(ops.filter((o) => o === "addAggregate").length).toBe(50 * 6);
    expect(ops.filter((o) => o === "startEpoch" || o === "finishRun")).toEqual(["startEpoch", "finishRun"]);
    // nothing read
    expect(ops.filter((o) => o === "epochStates" || o === "highWaterMarks" || o === "marker").length).toBe(0);
  });

  it("reads another process's live epoch seen on its items once while that epoch's lease runs, not once per run", async () => {
    const inner = new MemoryUsageStore();
    const day = (i: number) => recordOf(invocation({ tenantId: "lv", occurredAt: "2026-11-25T11:00:00Z", eventId: `lv${i}` }));
    // another process's epoch writes the tenant's items and stays alive (its lease runs to NOW + 60 s)
    await at(inner, 0, { epochId: () => "otherepoch" }).ingest([day(0)]);
    const { store, ops } = counting(inner);
    const c = at(store, 1_000, { epochId: () => "thisepoch0" });
    // run 1 learns the marks from its writes; run 2 reads the other epoch's state; runs 3 and 4 know it is alive
    for (let i = 1; i <= 4; i++) expect((await c.ingest([day(i)])).stats.counted).toBe(1);
    expect(ops.filter((o) => o === "epochStates")).toEqual(["epochStates"]);
  });

  it("claims a batch of one event with one conditional put, not a batch statement of one", async () => {
    const { store, ops } = counting(new MemoryUsageStore());
    const r = await service(store).ingest([recordOf(invocation({ occurredAt: "2026-11-25T11:00:00Z" }))]);
    expect(r.stats.counted).toBe(1);
    expect(ops.filter((o) => o === "putLedger" || o === "insertLedgers")).toEqual(["putLedger"]);
  });

  it("reads a finished run's epoch once per batch, however many of its events come again", async () => {
    const inner = new MemoryUsageStore();
    const events = Array.from({ length: 30 }, () => invocation({ occurredAt: "2026-11-25T11:00:00Z" }));
    await service(inner).ingest(events.map(recordOf));
    const { store, ops } = counting(inner);
    const again = await service(store).ingest(events.map(recordOf));
    expect(again.stats.duplicates).toBe(30);
    expect(ops.filter((o) => o === "epochStates").length).toBe(1);
    // nothing claimed, nothing written: no run to record
    expect(ops.filter((o) => o === "addAggregate" || o === "finishRun").length).toBe(0);
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
