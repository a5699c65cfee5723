import { describe, expect, it } from "vitest";
import type { EvaluationQuery, EvaluationSnapshot } from "../../../shared/quota/ports";
import { QuotaEvaluator } from "../../../shared/quota/service";
import { InMemoryQuotaStore, RecordingPublisher } from "./fakes";

const NOW = new Date("2026-11-25T20:36:30.000Z");
const MINUTE = "2026-11-25T20:36";

/** The in-memory store with a batched read that records what each call asked for. */
class BatchingStore extends InMemoryQuotaStore {
  batches: EvaluationQuery[][] = [];
  singles: EvaluationQuery[] = [];
  async loadForEvaluation(q: EvaluationQuery): Promise<EvaluationSnapshot> {
    this.singles.push(q);
    return super.loadForEvaluation(q);
  }
  async loadManyForEvaluation(qs: readonly EvaluationQuery[]): Promise<Map<string, EvaluationSnapshot>> {
    this.batches.push([...qs]);
    const out = new Map<string, EvaluationSnapshot>();
    for (const q of qs) out.set(q.tenantId, await super.loadForEvaluation(q));
    return out;
  }
}

function setup() {
  const store = new BatchingStore();
  const publisher = new RecordingPublisher();
  const service = new QuotaEvaluator({ store, publisher, clock: () => NOW });
  const evaluateMany = (tenants: string[]) => service.evaluateMany(tenants.map((tenantId) => ({ tenantId, month: "2026-11", minutes: [MINUTE], now: NOW })));
  return { store, publisher, service, evaluateMany };
}

describe("QuotaEvaluator.evaluateMany", () => {
  it("evaluates a tenant once at a time in a process: a concurrent batch of the same tenant sees what the first recorded, and writes nothing again", async () => {
    const { store, publisher, evaluateMany } = setup();
    const applied: string[] = [];
    const apply = store.apply.bind(store);
    store.apply = async (tenantId, t) => {
      const r = await apply(tenantId, t);
      applied.push(`${t.kind}:${r}`);
      return r;
    };
    store.addUsage("t-over", "2026-11-02T10:00:00.000Z", { requests: 1, inputTokens: 1_000_000, outputTokens: 1_000_000 });
    // five batches of the tenant at once, another tenant in one of them
    const results = await Promise.all([evaluateMany(["t-over"]), evaluateMany(["t-over", "t-other"]), evaluateMany(["t-over"]), evaluateMany(["t-over"]), evaluateMany(["t-over"])]);
    expect(results.every((r) => [...r.values()].every((x) => "outcomes" in x))).toBe(true);
    expect(applied).toEqual(["cross:applied", "restrict:applied"]);
    expect(publisher.published.map((p) => `${p.action}@${p.threshold}`)).toEqual(["warning@0.8", "throttle@1"]);
    // no evaluation lost a write and read again (a later round reads singly)
    expect(store.singles).toEqual([]);
  });

  it("reads every tenant of a batch in one shared load, not one read per tenant", async () => {
    const { store, evaluateMany } = setup();
    const tenants = Array.from({ length: 40 }, (_, i) => `t${i}`);
    const results = await evaluateMany(tenants);
    expect([...results.values()].every((r) => "outcomes" in r)).toBe(true);
    expect(store.batches).toHaveLength(1);
    expect(store.batches[0].map((q) => q.tenantId)).toEqual(tenants);
    expect(store.singles).toEqual([]);
  });

  it("acts on what the shared read saw: a tenant over its quota is throttled, the others are not", async () => {
    const { store, publisher, evaluateMany } = setup();
    store.addUsage("t-over", "2026-11-02T10:00:00.000Z", { requests: 1, inputTokens: 1_000_000, outputTokens: 1_000_000 });
    store.addUsage("t-under", "2026-11-02T10:00:00.000Z", { requests: 1, inputTokens: 10, outputTokens: 10 });
    const results = await evaluateMany(["t-over", "t-under"]);
    expect(publisher.published.map((p) => `${p.tenantId}:${p.action}@${p.threshold}`).sort()).toEqual(["t-over:throttle@1", "t-over:warning@0.8"]);
    expect(results.get("t-under")).toEqual({ outcomes: [] });
  });

  it("passes the month and tenant-hour items the ingest wrote to the first read only (later rounds read everything)", async () => {
    const { store, service } = setup();
    const month = { requests: 5 };
    const hours = { "2026-11-25T20": { requests: 5 } };
    await service.evaluateMany([{ tenantId: "w", month: "2026-11", minutes: [MINUTE], now: NOW, written: { months: { "2026-11": month, "2026-10": { requests: 1 } }, hours } }]);
    expect(store.batches[0][0].known).toEqual({ month, hours });
    // a month the evaluation does not look at is not passed as its month
    await service.evaluateMany([{ tenantId: "v", month: "2026-11", minutes: [MINUTE], now: NOW, written: { months: { "2026-10": { requests: 1 } }, hours: {} } }]);
    expect(store.batches[1][0].known).toEqual({ hours: {} });
  });

  it("reads no minute windows for a tier without per-minute limits once its tier is known", async () => {
    const { store, evaluateMany } = setup();
    store.configs.set("p", { tenantId: "p", tier: "premium", updatedAt: NOW.toISOString() });
    await evaluateMany(["p", "b"]);
    // first time: the tier is not known before the read
    expect(store.batches[0].map((q) => q.minutes)).toEqual([[MINUTE], [MINUTE]]);
    await evaluateMany(["p", "b"]);
    expect(store.batches[1].map((q) => [q.tenantId, q.minutes])).toEqual([["p", []], ["b", [MINUTE]]]);
  });

  it("reads the minute windows after all when the tenant moved to a tier with per-minute limits", async () => {
    const { store, publisher, evaluateMany } = setup();
    store.configs.set("p", { tenantId: "p", tier: "premium", updatedAt: NOW.toISOString() });
    await evaluateMany(["p"]);
    store.configs.set("p", { tenantId: "p", tier: "basic", updatedAt: NOW.toISOString() });
    // 60 requests in this minute: basic's requests-per-minute limit
    store.addUsage("p", `${MINUTE}:10.000Z`, { requests: 60, inputTokens: 60, outputTokens: 60 });
    await evaluateMany(["p"]);
    expect(store.batches[1][0].minutes).toEqual([]);
    expect(store.singles.map((q) => q.minutes)).toEqual([[MINUTE]]);
    expect(publisher.actions()).toContain("throttle@rpm");
  });

  it("reports a failed shared read as every tenant's error, so their records are redelivered", async () => {
    const { store, evaluateMany } = setup();
    store.loadManyForEvaluation = async () => {
      throw new Error("throttled");
    };
    const results = await evaluateMany(["a", "b"]);
    expect([...results.values()].map((r) => ("error" in r ? (r.error as Error).message : "ok"))).toEqual(["throttled", "throttled"]);
  });
});
