import { describe, expect, it } from "vitest";
import { INVOCATION_SOURCES, type InvocationEventV1 } from "../../../shared/events/invocation";
import { PriceCatalog } from "../../../shared/pricing/catalog";
import { coalesceCounting, targetId, targetsOf } from "../../../shared/usage/coalesce";
import { IngestService, type IngestRecord } from "../../../shared/usage/ingest";
import { sourceSplit, zeroCounters, type PricedEvent, type SourceCounts } from "../../../shared/usage/model";
import type { UsageStore } from "../../../shared/usage/ports";
import { envelope, invocation, prng, record } from "../../helpers/events";
import { FaultyStore, MemoryUsageStore } from "../../helpers/memory-store";

const NOW = new Date("2026-11-26T06:00:00Z");
const DAY = "2026-11-25";

function service(store: UsageStore) {
  return new IngestService({
    store,
    prices: new PriceCatalog(),
    region: "us-west-2",
    maxEventAgeDays: 35,
    clock: () => NOW,
    sleep: async () => undefined,
    random: () => 0.5,
  });
}

const fromWrapper = (e: InvocationEventV1): IngestRecord => record(envelope(e, { source: INVOCATION_SOURCES.bedrock }));
const fromLog = (e: InvocationEventV1): IngestRecord => record(envelope(e, { source: INVOCATION_SOURCES.invocationLog }));
const sourcesOf = (store: MemoryUsageStore, tenantId: string, day = DAY) => store.sources.get(`t|${tenantId}|day|${day}`);

describe("sourceSplit (the report's math)", () => {
  it("splits first counts and later reports into wrapper-only, log-only and both", () => {
    const c: SourceCounts = { wrapperFirst: 10, logFirst: 4, logAfterWrapper: 7, wrapperAfterLog: 1 };
    expect(sourceSplit(c, 16)).toEqual({ wrapperOnly: 3, logOnly: 3, both: 8, untracked: 2 });
  });

  it("never goes negative (a later report counted on a day whose first count is missing)", () => {
    expect(sourceSplit({ wrapperFirst: 0, logFirst: 0, logAfterWrapper: 2, wrapperAfterLog: 0 }, 0)).toEqual({ wrapperOnly: 0, logOnly: 0, both: 2, untracked: 0 });
  });
});

describe("coalesceCounting: which path reported each call", () => {
  const priced = (e: InvocationEventV1, source?: PricedEvent["source"], crossSource?: PricedEvent["source"]): PricedEvent => ({
    event: e,
    baseModelId: e.modelId,
    counters: { ...zeroCounters(), requests: 1 },
    ...(source ? { source } : {}),
    ...(crossSource ? { crossSource } : {}),
  });

  it("adds each event's first path (and a same-batch second path) to its tenant-day delta only", () => {
    const a = invocation({ tenantId: "s1", occurredAt: `${DAY}T01:00:00Z` });
    const b = invocation({ tenantId: "s1", occurredAt: `${DAY}T02:00:00Z` });
    const c = invocation({ tenantId: "s1", occurredAt: "2026-11-24T23:00:00Z" });
    const events = [
      priced(a, INVOCATION_SOURCES.bedrock),
      priced(b, INVOCATION_SOURCES.invocationLog, INVOCATION_SOURCES.bedrock),
      priced(c, INVOCATION_SOURCES.sagemaker),
      priced(invocation({ tenantId: "s1", occurredAt: `${DAY}T03:00:00Z` })), // no source: not counted by path
    ];
    const deltas = coalesceCounting(events.map((event) => ({ event })));
    const byId = new Map(deltas.map((d) => [targetId(d.target), d.sources]));
    expect(byId.get(`t|s1|day|${DAY}`)).toEqual({ wrapperFirst: 1, logFirst: 1, logAfterWrapper: 0, wrapperAfterLog: 1 });
    expect(byId.get("t|s1|day|2026-11-24")).toEqual({ wrapperFirst: 1, logFirst: 0, logAfterWrapper: 0, wrapperAfterLog: 0 });
    expect(deltas.filter((d) => d.sources).length).toBe(2);
  });

  it("adds no path count for a taken-over call whose tenant-day item its dead holder's write reached (it carried the count)", () => {
    const a = priced(invocation({ tenantId: "s2", occurredAt: `${DAY}T01:00:00Z` }), INVOCATION_SOURCES.bedrock);
    const b = priced(invocation({ tenantId: "s2", occurredAt: `${DAY}T01:00:00Z` }), INVOCATION_SOURCES.bedrock);
    const day = new Set(targetsOf(a).filter((t) => t.kind === "tenant" && t.granularity === "day").map(targetId));
    const deltas = coalesceCounting([{ event: a, skip: day }, { event: b }]);
    expect(deltas.find((d) => targetId(d.target) === `t|s2|day|${DAY}`)?.sources).toEqual({ wrapperFirst: 1, logFirst: 0, logAfterWrapper: 0, wrapperAfterLog: 0 });
  });
});

describe("ingest: which path reported a call, per tenant and day", () => {
  it("wrapper-only, log-only and both, in either order; redelivery of each changes nothing", async () => {
    const store = new MemoryUsageStore();
    const ingest = service(store);
    const at = `${DAY}T10:00:00Z`;
    const wrapperOnly = invocation({ tenantId: "p1", occurredAt: at });
    const logOnly = invocation({ tenantId: "p1", occurredAt: at });
    const wrapperThenLog = invocation({ tenantId: "p1", occurredAt: at });
    const logThenWrapper = invocation({ tenantId: "p1", occurredAt: at });
    const first = [fromWrapper(wrapperOnly), fromLog(logOnly), fromWrapper(wrapperThenLog), fromLog(logThenWrapper)];
    const second = [fromLog(wrapperThenLog), fromWrapper(logThenWrapper)];
    const r1 = await ingest.ingest(first);
    const r2 = await ingest.ingest(second);
    expect(r1.stats).toMatchObject({ counted: 4, crossSource: 0 });
    expect(r2.stats).toMatchObject({ counted: 0, duplicates: 2, crossSource: 2, crossSourceLost: 0 });
    const expected = { wrapperFirst: 2, logFirst: 2, logAfterWrapper: 1, wrapperAfterLog: 1 };
    expect(sourcesOf(store, "p1")).toEqual(expected);
    expect(sourceSplit(sourcesOf(store, "p1")!, 4)).toEqual({ wrapperOnly: 1, logOnly: 1, both: 2, untracked: 0 });

    // every record again, in one batch and one by one: no figure moves
    const again = await ingest.ingest([...first, ...second]);
    expect(again.stats).toMatchObject({ counted: 0, crossSource: 0 });
    for (const r of [...second, ...first]) await ingest.ingest([r]);
    expect(sourcesOf(store, "p1")).toEqual(expected);
    expect(store.month("p1", "2026-11")?.requests).toBe(4);
  });

  it("both paths in one batch: counted once, first and later path in the group's own commit", async () => {
    const store = new MemoryUsageStore();
    const e = invocation({ tenantId: "p2", occurredAt: `${DAY}T10:00:00Z` });
    const r = await service(store).ingest([fromLog(e), fromWrapper(e)]);
    expect(r.stats).toMatchObject({ counted: 1, duplicates: 1, crossSource: 1 });
    expect(sourcesOf(store, "p2")).toEqual({ wrapperFirst: 0, logFirst: 1, logAfterWrapper: 0, wrapperAfterLog: 1 });
    await service(store).ingest([fromWrapper(e)]);
    await service(store).ingest([fromLog(e)]);
    expect(sourcesOf(store, "p2")).toEqual({ wrapperFirst: 0, logFirst: 1, logAfterWrapper: 0, wrapperAfterLog: 1 });
  });

  it("the later report counts on the day the first one counted, even when its clock says the next day", async () => {
    const store = new MemoryUsageStore();
    const wrapper = invocation({ tenantId: "p3", occurredAt: `${DAY}T23:59:59.900Z` });
    await service(store).ingest([fromWrapper(wrapper)]);
    await service(store).ingest([fromLog({ ...wrapper, occurredAt: "2026-11-26T00:00:00.200Z" })]);
    expect(sourcesOf(store, "p3")).toEqual({ wrapperFirst: 1, logFirst: 0, logAfterWrapper: 1, wrapperAfterLog: 0 });
    expect(sourcesOf(store, "p3", "2026-11-26")).toBeUndefined();
  });

  it("an exact log record correcting a wrapper's estimate counts as both, once, inside the correction", async () => {
    const store = new MemoryUsageStore();
    const estimate = invocation({ tenantId: "p4", occurredAt: `${DAY}T09:00:00Z`, estimated: true, outputTokens: 100 });
    const exact = { ...estimate, estimated: undefined, outputTokens: 180 };
    await service(store).ingest([fromWrapper(estimate)]);
    const r = await service(store).ingest([fromLog(exact)]);
    expect(r.stats).toMatchObject({ corrected: 1, crossSource: 1 });
    await service(store).ingest([fromLog(exact), fromWrapper(estimate)]);
    expect(sourcesOf(store, "p4")).toEqual({ wrapperFirst: 1, logFirst: 0, logAfterWrapper: 1, wrapperAfterLog: 0 });
    expect(store.month("p4", "2026-11")?.outputTokens).toBe(180);
  });

  it("a failed count after the mark loses only the diagnostic (records succeed; a redelivery does not count it again)", async () => {
    const inner = new MemoryUsageStore();
    const e = invocation({ tenantId: "p5", occurredAt: `${DAY}T10:00:00Z` });
    await service(inner).ingest([fromWrapper(e)]);
    const faulty = new FaultyStore(inner, (_, op) => (op === "addSourceCounts" ? "throw" : "ok"));
    const r = await service(faulty).ingest([fromLog(e)]);
    expect(r.stats).toMatchObject({ duplicates: 1, failed: 0, crossSource: 0, crossSourceLost: 1 });
    await service(inner).ingest([fromLog(e)]);
    expect(sourcesOf(inner, "p5")).toEqual({ wrapperFirst: 1, logFirst: 0, logAfterWrapper: 0, wrapperAfterLog: 0 });
  });

  it("random mixes of wrapper-only, log-only and both, redelivered in random batches: exact figures", async () => {
    for (const seed of [1, 2, 3, 4, 5]) {
      const rand = prng(seed);
      const store = new MemoryUsageStore();
      const ingest = service(store);
      const expected = new Map<string, { wrapperOnly: number; logOnly: number; both: number }>();
      const deliveries: IngestRecord[] = [];
      for (let i = 0; i < 60; i++) {
        const tenantId = `r${Math.floor(rand() * 3)}`;
        const e = invocation({ tenantId, occurredAt: `${DAY}T${String(Math.floor(rand() * 24)).padStart(2, "0")}:00:00Z` });
        const kind = (["wrapperOnly", "logOnly", "both"] as const)[Math.floor(rand() * 3)];
        const x = expected.get(tenantId) ?? { wrapperOnly: 0, logOnly: 0, both: 0 };
        x[kind]++;
        expected.set(tenantId, x);
        const copies = 1 + Math.floor(rand() * 3);
        for (let k = 0; k < copies; k++) {
          if (kind !== "logOnly") deliveries.push(fromWrapper(e));
          if (kind !== "wrapperOnly") deliveries.push(fromLog(e));
        }
      }
      // shuffled, in batches of 1-10
      for (let i = deliveries.length - 1; i > 0; i--) {
        const j = Math.floor(rand() * (i + 1));
        [deliveries[i], deliveries[j]] = [deliveries[j], deliveries[i]];
      }
      for (let i = 0; i < deliveries.length; ) {
        const n = 1 + Math.floor(rand() * 10);
        const r = await ingest.ingest(deliveries.slice(i, i + n));
        expect(r.stats.failed).toBe(0);
        i += n;
      }
      for (const [tenantId, x] of expected) {
        const requests = store.aggregates.get(`t|${tenantId}|day|${DAY}`)?.requests ?? 0;
        expect(sourceSplit(sourcesOf(store, tenantId)!, requests), `seed ${seed} ${tenantId}`).toEqual({ ...x, untracked: 0 });
      }
    }
  });
});
