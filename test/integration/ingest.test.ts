import { beforeAll, describe, expect, inject, it } from "vitest";
import { PriceCatalog } from "../../shared/pricing/catalog";
import { documentClient } from "../../shared/storage/adapters/dynamodb";
import { DynamoUsageStore } from "../../shared/usage/adapters/dynamodb";
import { IngestService, type IngestRecord } from "../../shared/usage/ingest";
import { targetsOf } from "../../shared/usage/coalesce";
import { zeroCounters } from "../../shared/usage/model";
import { freshUsageTable, localDynamoClient, updatesSeenBy } from "../helpers/dynamo";
import { envelope, invocation, prng, record, recordOf } from "../helpers/events";

const client = localDynamoClient();
const doc = documentClient(client);

async function setup() {
  const table = await freshUsageTable(client);
  const store = new DynamoUsageStore(doc, table, { ledgerTtlDays: 60 });
  const service = new IngestService({
    store,
    prices: new PriceCatalog(),
    region: "us-west-2",
    maxEventAgeDays: 35,
    sleep: async () => undefined,
    // fixed clock: the fixtures' event times stay inside the accepted age window forever
    clock: () => new Date("2026-11-25T12:00:00Z"),
  });
  return { table, store, service };
}

async function monthTotals(store: DynamoUsageStore, tenantId: string, month: string) {
  const rows = await store.tenantPeriods(tenantId, "month", month, month);
  return rows[0]?.counters;
}

describe("ingest on DynamoDB Local", () => {
  it("counts a batch once and a redelivered batch not again", async () => {
    const { service, store } = await setup();
    const events = Array.from({ length: 25 }, (_, i) => invocation({ tenantId: `t${i % 3}`, occurredAt: "2026-11-25T10:00:00Z" }));
    const records = events.map(recordOf);

    const first = await service.ingest(records);
    const second = await service.ingest(records);

    expect(first.stats).toMatchObject({ counted: 25, duplicates: 0, failed: 0 });
    expect(second.stats).toMatchObject({ counted: 0, duplicates: 25, failed: 0 });
    const t0 = await monthTotals(store, "t0", "2026-11");
    expect(t0?.requests).toBe(events.filter((e) => e.tenantId === "t0").length);
    expect(t0?.inputTokens).toBe(307 * t0!.requests);
    // Haiku: 307 x 0.00025 + 533 x 0.00125 per 1K = $0.000743 = 743,000 nano-USD per call
    expect(t0?.costNanoUsd).toBe(743_000 * t0!.requests);
  });

  it("quarantines a poison record with its reason and still counts the rest", async () => {
    const { service, store } = await setup();
    const good = invocation({ occurredAt: "2026-11-25T10:00:00Z" });
    const records: IngestRecord[] = [
      recordOf(good),
      record("{not json"),
      record(envelope({ ...invocation(), inputTokens: -1 })),
      record(envelope({ ...invocation(), tenantId: "a#b" })),
    ];
    const result = await service.ingest(records);
    expect(result.stats).toMatchObject({ counted: 1, quarantined: 3, failed: 0 });
    const q = await store.quarantined("2026-11-25", 50);
    const reasons = q.items.filter((i) => records.some((r) => r.messageId === i.messageId)).map((i) => i.reason).sort();
    expect(reasons).toEqual(["malformed-json", "schema", "schema"]);
    expect((await monthTotals(store, good.tenantId, "2026-11"))?.requests).toBeGreaterThanOrEqual(1);
  });

  it("keeps totals exact over overlapping batches delivered concurrently", async () => {
    const { service, store } = await setup();
    const rand = prng(7);
    const events = Array.from({ length: 300 }, (_, i) =>
      invocation({
        tenantId: `c${Math.floor(rand() * 4)}`,
        occurredAt: `2026-11-${String(1 + Math.floor(rand() * 3)).padStart(2, "0")}T0${Math.floor(rand() * 9)}:00:00Z`,
        inputTokens: 1 + Math.floor(rand() * 1000),
        outputTokens: Math.floor(rand() * 1000),
        eventId: `c-${i}`,
      }),
    );
    // every event delivered 2-3 times, in different batch compositions, 6 batches at once
    const deliveries = [...events, ...events, ...events.filter((_, i) => i % 2 === 0)].map(recordOf);
    deliveries.sort(() => rand() - 0.5);
    const batches: IngestRecord[][] = [];
    for (let i = 0; i < deliveries.length; i += 60) batches.push(deliveries.slice(i, i + 60));
    const results = await Promise.all(batches.map((b) => service.ingest(b)));
    // An event whose other delivery is still being counted by a concurrent run fails
    // ("busy"); SQS redelivers it, and by then that run has finished.
    let retry = batches.flatMap((b, i) => b.filter((r) => results[i].outcomes.get(r.messageId)?.kind === "failed"));
    const busy = retry.length;
    let counted = results.reduce((s, r) => s + r.stats.counted, 0);
    for (let round = 0; retry.length && round < 10; round++) {
      const r = await service.ingest(retry);
      counted += r.stats.counted;
      retry = retry.filter((m) => r.outcomes.get(m.messageId)?.kind === "failed");
    }
    expect(retry).toEqual([]);
    expect(busy).toBeLessThan(deliveries.length / 2);
    expect(counted).toBe(events.length);
    for (const tenantId of ["c0", "c1", "c2", "c3"]) {
      const mine = events.filter((e) => e.tenantId === tenantId);
      const got = await monthTotals(store, tenantId, "2026-11");
      expect(got?.requests ?? 0).toBe(mine.length);
      expect(got?.inputTokens ?? 0).toBe(mine.reduce((s, e) => s + e.inputTokens, 0));
      expect(got?.outputTokens ?? 0).toBe(mine.reduce((s, e) => s + e.outputTokens, 0));
      const days = await store.tenantPeriods(tenantId, "day", "2026-11-01", "2026-11-30");
      expect(days.reduce((s, d) => s + d.counters.requests, 0)).toBe(mine.length);
    }
  });
});

describe("estimates on DynamoDB Local", () => {
  it("an exact report replaces a counted estimate once, in every aggregate of the call", async () => {
    const { service, store } = await setup();
    const estimate = invocation({ tenantId: "est", eventId: "req-9", occurredAt: "2026-11-25T10:59:58Z", inputTokens: 300, outputTokens: 100, estimated: true });
    const exact = { ...estimate, occurredAt: "2026-11-25T11:00:01Z", inputTokens: 310, outputTokens: 640, estimated: undefined };
    expect((await service.ingest([recordOf(estimate)])).stats.counted).toBe(1);
    const corrected = await service.ingest([recordOf(exact)]);
    expect(corrected.stats).toMatchObject({ corrected: 1, duplicates: 1, failed: 0 });
    const again = await service.ingest([recordOf(exact)]);
    expect(again.stats).toMatchObject({ corrected: 0, duplicates: 1 });

    const month = await monthTotals(store, "est", "2026-11");
    expect(month).toMatchObject({ requests: 1, inputTokens: 310, outputTokens: 640, estimatedRequests: 0 });
    // Haiku: 310 x 0.00025 + 640 x 0.00125 per 1K = $0.0008775
    expect(month?.costNanoUsd).toBe(877_500);
    const hours = await store.tenantPeriods("est", "hour", "2026-11-25", "2026-11-25");
    expect(hours.map((h) => [h.period, h.counters.requests, h.counters.inputTokens])).toEqual([
      ["2026-11-25T10", 0, 0],
      ["2026-11-25T11", 1, 310],
    ]);
    const models = await store.modelPeriods("est", "day", "2026-11-25", "2026-11-25");
    expect(models.map((m) => m.counters.outputTokens)).toEqual([640]);
  });
});

describe("faults on DynamoDB Local", () => {
  it("a crash after some of a run's item writes, then redelivery of the whole batch after the lease, counts every event once", async () => {
    const { table } = await setup();
    const store = new DynamoUsageStore(doc, table, { ledgerTtlDays: 60 });
    const events = Array.from({ length: 60 }, (_, i) => invocation({ tenantId: `x${i % 4}`, occurredAt: `2026-11-20T1${i % 3}:00:00Z` }));
    const records = events.map(recordOf);
    // The process dies after 9 of its item writes: the others and the run's record never happen.
    let writes = 0;
    const crashing = Object.assign(Object.create(store) as DynamoUsageStore, {
      addAggregate: (...args: Parameters<DynamoUsageStore["addAggregate"]>) => {
        if (++writes > 9) throw new Error("Lambda timed out");
        return store.addAggregate(...args);
      },
      finishRun: async () => {
        throw new Error("Lambda timed out");
      },
    });
    const opts = { prices: new PriceCatalog(), region: "us-west-2", maxEventAgeDays: 35, sleep: async () => undefined, claimConcurrency: 1, maxAttempts: 1 };
    const first = await new IngestService({ ...opts, store: crashing, clock: () => new Date("2026-11-25T12:00:00Z") }).ingest(records);
    expect(first.stats.failed).toBeGreaterThan(0);

    // SQS redelivers the whole batch after its visibility timeout (longer than the epoch's lease)
    const second = await new IngestService({ ...opts, store, clock: () => new Date("2026-11-25T12:03:01Z") }).ingest(records);
    expect(second.stats.failed).toBe(0);
    expect(first.stats.counted + second.stats.counted).toBe(events.length);
    for (const t of ["x0", "x1", "x2", "x3"]) {
      const mine = events.filter((e) => e.tenantId === t);
      const [month] = await store.tenantPeriods(t, "month", "2026-11", "2026-11");
      expect(month.counters.requests).toBe(mine.length);
      expect(month.counters.outputTokens).toBe(mine.reduce((s, e) => s + e.outputTokens, 0));
      const hours = await store.tenantPeriods(t, "hour", "2026-11-20", "2026-11-20");
      expect(hours.reduce((s, h) => s + h.counters.requests, 0)).toBe(mine.length);
    }
  });
});

describe("high-water item writes on DynamoDB Local", () => {
  it("adds once per run, tells a landed retry from a new write, and removes only marks of runs known done", async () => {
    const { store } = await setup();
    const target = { kind: "tenant", tenantId: "hw", granularity: "month", period: "2026-11" } as const;
    const delta = (requests: number) => ({ target, counters: { ...zeroCounters(), requests } });
    const now = new Date("2026-11-25T12:00:00Z");
    expect(await store.addAggregate(delta(1), { epoch: "aaaaaaaaaa", run: 3 }, [], now)).toMatchObject({ kind: "applied", marks: { aaaaaaaaaa: 3 }, item: { requests: 1, hw_aaaaaaaaaa: 3 } });
    // the same run again (a retry after a lost response): refused, and said to have landed, with the item as it is
    expect(await store.addAggregate(delta(1), { epoch: "aaaaaaaaaa", run: 3 }, [], now)).toMatchObject({ kind: "already", item: { requests: 1 } });
    expect(await store.addAggregate(delta(2), { epoch: "bbbbbbbbbb", run: 1 }, [], now)).toMatchObject({ kind: "applied", marks: { aaaaaaaaaa: 3, bbbbbbbbbb: 1 } });
    // removing a's mark as if only its run 2 were done: refused, nothing added
    expect(await store.addAggregate(delta(4), { epoch: "cccccccccc", run: 1 }, [{ epoch: "aaaaaaaaaa", upTo: 2 }], now)).toMatchObject({ kind: "clean-conflict" });
    const cleaned = await store.addAggregate(delta(4), { epoch: "cccccccccc", run: 1 }, [{ epoch: "aaaaaaaaaa", upTo: 3 }], now);
    expect(cleaned).toMatchObject({ kind: "applied", marks: { bbbbbbbbbb: 1, cccccccccc: 1 } });
    expect(cleaned.kind === "applied" && cleaned.marks).toEqual({ bbbbbbbbbb: 1, cccccccccc: 1 });
    const [row] = await store.tenantPeriods("hw", "month", "2026-11", "2026-11");
    expect(row.counters.requests).toBe(7);
    expect(await store.highWaterMarks([target])).toEqual(new Map([["t|hw|month|2026-11", { bbbbbbbbbb: 1, cccccccccc: 1 }]]));
    // the month item keeps its billing index keys
    const billing = await store.monthOfAllTenants("2026-11", 100);
    expect(billing.items.map((i) => i.tenantId)).toContain("hw");
  });

  it("sets an item's descriptive attributes until a write returns them, then only counters, updatedAt and the mark; the item keeps them all", async () => {
    const table = await freshUsageTable(client);
    const sent: { key: string; expression: string }[] = [];
    const counting = updatesSeenBy((input) => sent.push({ key: String(input.Key?.sk?.S), expression: String(input.UpdateExpression) }));
    const store = new DynamoUsageStore(documentClient(counting), table, { ledgerTtlDays: 60 });
    const month = { kind: "tenant", tenantId: "ds", granularity: "month", period: "2026-11" } as const;
    const model = { kind: "model", tenantId: "ds", granularity: "day", period: "2026-11-25", modelId: "anthropic.claude-3-haiku-20240307-v1:0" } as const;
    const now = new Date("2026-11-25T12:00:00Z");
    for (const [run, target] of [[1, month], [1, model], [2, month], [2, model], [3, month]] as const) {
      expect(await store.addAggregate({ target, counters: { ...zeroCounters(), requests: 1 } }, { epoch: "dddddddddd", run }, [], now)).toMatchObject({ kind: "applied" });
    }
    const sets = sent.map((s) => s.expression.split(" SET ")[1]);
    // the first write of each item describes it; later ones do not
    expect(sets.map((x) => /tenantId/.test(x))).toEqual([true, true, false, false, false]);
    expect(sets.map((x) => /gsi1pk/.test(x))).toEqual([true, false, false, false, false]);
    expect(sets.every((x) => /updatedAt/.test(x))).toBe(true);
    // what the queries read is all there
    const [m] = await store.tenantPeriods("ds", "month", "2026-11", "2026-11");
    expect(m).toMatchObject({ tenantId: "ds", period: "2026-11" });
    expect(m.counters.requests).toBe(3);
    const [d] = await store.modelPeriods("ds", "day", "2026-11-25", "2026-11-25");
    expect(d).toMatchObject({ modelId: "anthropic.claude-3-haiku-20240307-v1:0", period: "2026-11-25" });
    expect((await store.monthOfAllTenants("2026-11", 100)).items.map((i) => i.tenantId)).toEqual(["ds"]);
    // another process, which has not seen the items, describes them again (same values: harmless)
    sent.length = 0;
    const other = new DynamoUsageStore(documentClient(counting), table, { ledgerTtlDays: 60 });
    await other.addAggregate({ target: month, counters: { ...zeroCounters(), requests: 1 } }, { epoch: "ffffffffff", run: 1 }, [], now);
    expect(sent[0].expression).toMatch(/tenantId/);
  });

  it("returns the item only when asked, or when this process has not seen it in the last 10 minutes", async () => {
    const table = await freshUsageTable(client);
    const asked: string[] = [];
    const counting = updatesSeenBy((input) => asked.push(String(input.ReturnValues)));
    const store = new DynamoUsageStore(documentClient(counting), table, { ledgerTtlDays: 60 });
    const target = { kind: "model", tenantId: "rv", granularity: "day", period: "2026-11-25", modelId: "anthropic.claude-3-haiku-20240307-v1:0" } as const;
    const add = (run: number, at: string, item: boolean) =>
      store.addAggregate({ target, counters: { ...zeroCounters(), requests: 1 } }, { epoch: "rrrrrrrrrr", run }, [], new Date(at), { item });
    // not seen yet: the item comes back (its description and marks are learnt from it)
    expect(await add(1, "2026-11-25T12:00:00Z", false)).toMatchObject({ kind: "applied", marks: { rrrrrrrrrr: 1 }, item: { requests: 1 } });
    // seen, not asked for: nothing comes back
    expect(await add(2, "2026-11-25T12:01:00Z", false)).toEqual({ kind: "applied", marks: undefined, item: undefined });
    // asked for
    expect(await add(3, "2026-11-25T12:02:00Z", true)).toMatchObject({ kind: "applied", item: { requests: 3 } });
    // last returned 12:02: by 12:13 it is not seen any more, so it comes back (and the write describes it again)
    expect(await add(4, "2026-11-25T12:13:00Z", false)).toMatchObject({ kind: "applied", item: { requests: 4, tenantId: "rv" } });
    // a retry of a landed run still says so, with the item (ALL_OLD on the failed condition)
    expect(await add(4, "2026-11-25T12:14:00Z", false)).toMatchObject({ kind: "already", item: { requests: 4 } });
    expect(asked).toEqual(["ALL_NEW", "NONE", "ALL_NEW", "ALL_NEW", "NONE"]);
  });

  it("removes a dead epoch's marks from items whose writes return nothing, once", async () => {
    const table = await freshUsageTable(client);
    const removes: string[] = [];
    // the aggregate writes (not the epoch's record)
    const counting = updatesSeenBy((input) => {
      if (String(input.UpdateExpression).startsWith("ADD ")) removes.push(String(input.UpdateExpression).split(" REMOVE ")[1] ?? "");
    });
    const t0 = Date.parse("2026-11-25T12:10:00Z");
    const at = (ms: number) => {
      const store = new DynamoUsageStore(documentClient(counting), table, { ledgerTtlDays: 60 });
      return { store, service: new IngestService({ store, prices: new PriceCatalog(), region: "us-west-2", maxEventAgeDays: 35, sleep: async () => undefined, clock: () => new Date(t0 + ms) }) };
    };
    const ev = (_: number, ms: number) => invocation({ tenantId: "dead", occurredAt: new Date(t0 + ms - 1000).toISOString() });
    // a process writes the tenant's six items, records its run done, and is never seen again
    expect((await at(0).service.ingest([recordOf(ev(0, 0))])).stats).toMatchObject({ counted: 1, failed: 0 });
    // five minutes later (its lease long over) another process writes the same items, batch after batch
    const later = at(5 * 60_000);
    for (let b = 1; b <= 4; b++) expect((await later.service.ingest([recordOf(ev(b, 5 * 60_000))])).stats).toMatchObject({ counted: 1, failed: 0 });
    // its first batch learnt the dead epoch's marks (the items came back), its second removed them from
    // all six items, including the four whose writes return nothing; no later write names them again
    const perBatch = [0, 1, 2, 3, 4].map((b) => removes.slice(b * 6, b * 6 + 6).map((r) => (/#r_hw_/.test(r) ? "hw" : "")));
    expect(perBatch).toEqual([["", "", "", "", "", ""], ["", "", "", "", "", ""], ["hw", "hw", "hw", "hw", "hw", "hw"], ["", "", "", "", "", ""], ["", "", "", "", "", ""]]);
    const items = await later.store.highWaterMarks(targetsOf({ event: ev(9, 5 * 60_000), baseModelId: ev(9, 0).modelId, counters: zeroCounters() }));
    expect([...items.values()].map((m) => Object.keys(m).length)).toEqual([1, 1, 1, 1, 1, 1]);
  });

  it("an epoch's record: created once, done only upwards", async () => {
    const { store } = await setup();
    const now = new Date("2026-11-25T12:00:00Z");
    await store.startEpoch("eeeeeeeeee", 1_000, now);
    await expect(store.startEpoch("eeeeeeeeee", 1_000, now)).rejects.toThrow(/exists/);
    await store.finishRun("eeeeeeeeee", 2, 5_000, now);
    // a retry of the same finish after a lost response is fine, and nothing goes back
    await store.finishRun("eeeeeeeeee", 2, 5_000, now);
    await store.finishRun("eeeeeeeeee", 1, 9_000, now);
    await expect(store.finishRun("nonexisten", 1, 9_000, now)).rejects.toThrow(/no record/);
    expect(await store.epochStates(["eeeeeeeeee", "nonexisten"])).toEqual(new Map([["eeeeeeeeee", { done: 2, leaseUntil: 5_000 }]]));
  });
});

describe("throttled DynamoDB (errors injected into the real client)", () => {
  it("retries throttled and lost item writes and, with redelivery, ends with exact totals", async () => {
    const { DynamoDBClient, ProvisionedThroughputExceededException, ThrottlingException } = await import("@aws-sdk/client-dynamodb");
    const rand = prng(99);
    const raw = new DynamoDBClient({ endpoint: inject("dynamoEndpoint"), region: "us-west-2", credentials: { accessKeyId: "l", secretAccessKey: "l" }, maxAttempts: 1 });
    let injected = 0;
    let lost = 0;
    // Fail ~20% of item updates, 10% of batched ledger inserts and 0.5% of single writes before they reach DynamoDB, as a
    // throttled table does once the SDK's own retries are used up; and lose the response of 10% of the updates that landed.
    raw.middlewareStack.add(
      (next, context) => async (args) => {
        const rates: Record<string, number> = { UpdateItemCommand: 0.2, BatchExecuteStatementCommand: 0.1, PutItemCommand: 0.005 };
        const rate = rates[context.commandName ?? ""] ?? 0;
        if (rand() < rate) {
          injected++;
          const Type = rand() < 0.5 ? ProvisionedThroughputExceededException : ThrottlingException;
          throw new Type({ message: "injected: rate exceeded", $metadata: {} });
        }
        const out = await next(args);
        if (context.commandName === "UpdateItemCommand" && rand() < 0.1) {
          lost++;
          throw new Error("injected: socket hang up (the write landed)");
        }
        return out;
      },
      { step: "initialize", name: "injectThrottling" },
    );
    const table = await freshUsageTable(client);
    const store = new DynamoUsageStore(documentClient(raw), table, { ledgerTtlDays: 60 });
    const service = new IngestService({
      store, prices: new PriceCatalog(), region: "us-west-2", maxEventAgeDays: 35,
      maxAttempts: 3, sleep: async () => undefined, clock: () => new Date(now),
    });
    // each round is a redelivery after the visibility timeout: the epochs of runs left
    // unfinished are past their lease by then
    let now = Date.parse("2026-11-25T12:00:00Z");
    const events = Array.from({ length: 600 }, (_, i) => invocation({ eventId: `thr-${i}`, tenantId: `th${i % 5}`, occurredAt: "2026-11-24T10:00:00Z", inputTokens: i }));
    let queue = [...events, ...events.slice(0, 100)].map(recordOf);
    for (let round = 0; queue.length && round < 30; round++) {
      now += 181_000;
      const next: IngestRecord[] = [];
      for (let i = 0; i < queue.length; i += 150) {
        const batch = queue.slice(i, i + 150);
        const r = await service.ingest(batch);
        next.push(...batch.filter((b) => r.outcomes.get(b.messageId)?.kind === "failed"));
      }
      queue = next;
    }
    expect(injected).toBeGreaterThan(3);
    // ~10% of well over 100 updates (how many depends on the order concurrent requests draw their random numbers)
    expect(lost).toBeGreaterThan(0);
    expect(queue).toEqual([]);
    for (const t of ["th0", "th1", "th2", "th3", "th4"]) {
      const mine = events.filter((e) => e.tenantId === t);
      const [row] = await store.tenantPeriods(t, "month", "2026-11", "2026-11");
      expect(row.counters.requests).toBe(mine.length);
      expect(row.counters.inputTokens).toBe(mine.reduce((s, e) => s + e.inputTokens, 0));
    }
  });
});
