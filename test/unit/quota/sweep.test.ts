import { describe, expect, it } from "vitest";
import { QuotaPublishError } from "../../../shared/quota/errors";
import type { EnforcementState } from "../../../shared/quota/model";
import type { Page } from "../../../shared/quota/ports";
import { QuotaEvaluator } from "../../../shared/quota/service";
import { OutboxSweeper } from "../../../shared/quota/sweep";
import { InMemoryQuotaStore, RecordingPublisher } from "./fakes";

const NOW = new Date("2026-11-25T20:36:30.000Z");
const at = (ms: number) => new Date(NOW.getTime() + ms);
const EPOCH = new Date(0).toISOString();

/** A basic tenant whose 1,000-token quota is used up: its evaluation records one throttle. */
function overQuota(store: InMemoryQuotaStore, tenantId: string) {
  store.configs.set(tenantId, { tenantId, tier: "basic", monthlyTokens: 1000, warningThresholds: [], updatedAt: NOW.toISOString() });
  store.addUsage(tenantId, "2026-11-02T10:00:00.000Z", { requests: 1, inputTokens: 1000 });
}

/** Records the tenant's throttle with a bus that is down: the entry stays pending, lease given back. */
async function failedPublish(store: InMemoryQuotaStore, tenantId: string) {
  overQuota(store, tenantId);
  const down = new RecordingPublisher();
  down.failNext = 1;
  const evaluator = new QuotaEvaluator({ store, publisher: down, clock: () => NOW });
  await expect(evaluator.evaluate({ tenantId, month: "2026-11", minutes: [], now: NOW })).rejects.toBeInstanceOf(QuotaPublishError);
  return `${tenantId}#2026-11#1:basic:t1000:u-#throttle`;
}

function sweeper(store: InMemoryQuotaStore, publisher: RecordingPublisher, now: Date, pageSize?: number) {
  return new OutboxSweeper({ store, publisher, clock: () => now, pageSize });
}

describe("outbox sweeper", () => {
  it("publishes the pending entry of a tenant that is never evaluated again, once", async () => {
    // Given a throttle whose publish failed, and no later evaluation of the tenant
    const store = new InMemoryQuotaStore();
    const id = await failedPublish(store, "acme");
    expect(store.indexed.has("acme|2026-11")).toBe(true);
    const publisher = new RecordingPublisher();

    // When the sweeper runs (twice)
    const first = await sweeper(store, publisher, at(300_000)).sweep();
    const second = await sweeper(store, publisher, at(600_000)).sweep();

    // Then the event is published once, with its stable id, logged, and the outbox is empty and unlisted
    expect(first.published).toEqual([{ tenantId: "acme", period: "2026-11", enforcementId: id, action: "throttle" }]);
    expect(publisher.published.map((d) => d.enforcementId)).toEqual([id]);
    expect(store.log.map((l) => l.detail.enforcementId)).toEqual([id]);
    expect(store.states.get("acme|2026-11")?.outbox).toEqual({});
    expect(store.indexed.size).toBe(0);
    expect(second).toMatchObject({ states: 0, published: [], failed: [], complete: true });
  });

  it("leaves an entry alone while a live publisher holds its lease, and takes it after the lease ran out", async () => {
    // Given an evaluation that recorded a throttle and is still publishing it (never settles)
    const store = new InMemoryQuotaStore();
    overQuota(store, "beta");
    const hanging = { publish: () => new Promise<never>(() => undefined) };
    void new QuotaEvaluator({ store, publisher: hanging, clock: () => NOW }).evaluate({ tenantId: "beta", month: "2026-11", minutes: [], now: NOW });
    for (let i = 0; i < 50 && !store.states.get("beta|2026-11")?.outbox; i++) await new Promise((r) => setImmediate(r));
    const [entry] = Object.values(store.states.get("beta|2026-11")!.outbox);
    const publisher = new RecordingPublisher();

    // When the sweeper runs inside the 30 s lease
    const during = await sweeper(store, publisher, at(10_000)).sweep();

    // Then it publishes nothing and the lease is untouched
    expect(during).toMatchObject({ states: 1, published: [], leaseHeld: 1, claimLost: 0 });
    expect(store.states.get("beta|2026-11")!.outbox[entry.enforcementId].leaseUntil).toBe(entry.leaseUntil);
    expect(publisher.published).toEqual([]);

    // And once the lease has run out (the publisher died), the sweeper publishes it
    const after = await sweeper(store, publisher, at(31_000)).sweep();
    expect(after.published.map((p) => p.enforcementId)).toEqual([entry.enforcementId]);
  });

  it("does not republish an entry published between its index read and its claim", async () => {
    // Given a pending entry, and an evaluation of the tenant that republishes it right after the
    // sweeper has read the index (the page the sweeper holds is now stale)
    const evaluatorBus = new RecordingPublisher();
    class RacingStore extends InMemoryQuotaStore {
      raced = false;
      override async listPending(shard: number, limit: number, cursor?: string): Promise<Page<EnforcementState>> {
        const page = await super.listPending(shard, limit, cursor);
        if (page.items.length > 0 && !this.raced) {
          this.raced = true;
          await new QuotaEvaluator({ store: this, publisher: evaluatorBus, clock: () => NOW }).evaluate({
            tenantId: "gamma",
            month: "2026-11",
            minutes: [],
            now: at(60_000),
          });
        }
        return page;
      }
    }
    const store = new RacingStore();
    const id = await failedPublish(store, "gamma");
    const publisher = new RecordingPublisher();

    // When the sweeper works from the stale page
    const report = await sweeper(store, publisher, at(60_000)).sweep();

    // Then its claim loses (the entry is gone) and the event was published once, by the evaluation
    expect(report).toMatchObject({ published: [], failed: [], claimLost: 1 });
    expect(publisher.published).toEqual([]);
    expect(evaluatorBus.published.map((d) => d.enforcementId)).toEqual([id]);
    expect(store.log).toHaveLength(1);
  });

  it("reports an entry the bus refused, gives its lease back, and publishes it on the next run", async () => {
    const store = new InMemoryQuotaStore();
    const id = await failedPublish(store, "delta");
    const publisher = new RecordingPublisher();
    publisher.refuse.add(id);

    const refused = await sweeper(store, publisher, at(300_000)).sweep();
    expect(refused.failed).toEqual([{ tenantId: "delta", enforcementId: id, reason: "InternalFailure: refused" }]);
    expect(refused.published).toEqual([]);
    expect(store.states.get("delta|2026-11")!.outbox[id].leaseUntil).toBe(EPOCH);
    expect(store.indexed.has("delta|2026-11")).toBe(true);

    publisher.refuse.clear();
    const next = await sweeper(store, publisher, at(600_000)).sweep();
    expect(next.published.map((p) => p.enforcementId)).toEqual([id]);
    expect(publisher.published.map((d) => d.enforcementId)).toEqual([id]);
  });

  it("unlists a listed state whose outbox is already empty (crash between publish and unlisting)", async () => {
    const store = new InMemoryQuotaStore();
    store.states.set("eps|2026-11", { tenantId: "eps", period: "2026-11", crossed: {}, outbox: {} });
    store.indexed.add("eps|2026-11");

    const report = await sweeper(store, new RecordingPublisher(), at(300_000)).sweep();

    expect(report).toMatchObject({ states: 1, unindexed: 1, published: [] });
    expect(store.indexed.size).toBe(0);
  });

  it("pages through every shard and publishes in PutEvents chunks of at most 10, each entry once", async () => {
    // Given 25 tenants (ids of both lengths, so both shards) each with a pending throttle
    const store = new InMemoryQuotaStore();
    const ids: string[] = [];
    for (let i = 0; i < 25; i++) ids.push(await failedPublish(store, i % 2 ? `t-${i}` : `tn-${i}`));
    const publisher = new RecordingPublisher();

    // When one sweep reads them 3 states a page
    const report = await sweeper(store, publisher, at(300_000), 3).sweep();

    // Then all are published exactly once
    expect(report.states).toBe(25);
    expect(publisher.published.map((d) => d.enforcementId).sort()).toEqual([...ids].sort());
    expect(Math.max(...publisher.calls)).toBeLessThanOrEqual(10);
    expect(store.indexed.size).toBe(0);
  });

  it("stops at its deadline and says the pass is incomplete; the entries stay pending", async () => {
    const store = new InMemoryQuotaStore();
    const id = await failedPublish(store, "zeta");
    const publisher = new RecordingPublisher();

    const report = await sweeper(store, publisher, at(300_000)).sweep({ deadline: at(300_000) });

    expect(report).toMatchObject({ complete: false, states: 0, published: [] });
    expect(Object.keys(store.states.get("zeta|2026-11")!.outbox)).toEqual([id]);
  });
});
