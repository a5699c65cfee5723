import { PutCommand, UpdateCommand, type DynamoDBDocumentClient } from "@aws-sdk/lib-dynamodb";
import { ConditionalCheckFailedException } from "@aws-sdk/client-dynamodb";
import type { InvocationEventV1 } from "../shared/events/invocation";
import { INVOCATION_DETAIL_TYPE, INVOCATION_SOURCES } from "../shared/events/invocation";
import { PriceCatalog } from "../shared/pricing/catalog";
import { addAndSetUpdate } from "../shared/storage/adapters/dynamodb";
import { keys } from "../shared/storage/keys";
import { DynamoUsageStore } from "../shared/usage/adapters/dynamodb";
import { targetId } from "../shared/usage/coalesce";
import { IngestService, type IngestRecord } from "../shared/usage/ingest";
import { COUNTER_NAMES } from "../shared/usage/model";
import type { UsageStore } from "../shared/usage/ports";
import { naiveTargets } from "./naive-layout";

export interface Workload {
  batches: IngestRecord[][];
  distinct: InvocationEventV1[];
}

/** Seed-like traffic: ~307 in / 533 out tokens, tenants round-robin, `dupRate` re-deliveries. */
export function workload(opts: { events: number; tenants: number; dupRate: number; batchSize: number; seed?: number }): Workload {
  let s = opts.seed ?? 42;
  const rand = () => ((s = (s * 1103515245 + 12345) >>> 0) / 2 ** 32);
  const now = Date.now();
  const distinct: InvocationEventV1[] = Array.from({ length: opts.events }, (_, i) => ({
    eventId: `bench-${opts.seed ?? 42}-${i}`,
    tenantId: `tenant-${String(i % opts.tenants).padStart(3, "0")}`,
    occurredAt: new Date(now - Math.floor(rand() * 60_000)).toISOString(),
    provider: "bedrock",
    modelId: i % 3 === 0 ? "anthropic.claude-3-5-sonnet-20240620-v1:0" : "anthropic.claude-3-haiku-20240307-v1:0",
    inputTokens: 250 + Math.floor(rand() * 115),
    outputTokens: 450 + Math.floor(rand() * 166),
  }));
  const deliveries = [...distinct];
  for (const e of distinct) if (rand() < opts.dupRate) deliveries.push(e);
  deliveries.sort(() => rand() - 0.5);
  const records = deliveries.map((detail, i) => ({
    messageId: `m-${i}`,
    body: JSON.stringify({ version: "0", id: `id-${i}`, source: INVOCATION_SOURCES.bedrock, "detail-type": INVOCATION_DETAIL_TYPE, detail }),
  }));
  const batches: IngestRecord[][] = [];
  for (let i = 0; i < records.length; i += opts.batchSize) batches.push(records.slice(i, i + opts.batchSize));
  return { batches, distinct };
}

export interface RunResult {
  name: string;
  events: number;
  deliveries: number;
  seconds: number;
  eventsPerSecond: number;
  /** Writes as AWS bills them: a transactional item write costs 2 WCU, a plain one 1 (items < 1 KB). */
  awsModelWcu: number;
  itemWrites: number;
  /** Highest number of writes one aggregate item took within any one second. */
  maxItemWritesPerSecond: number;
  /** DynamoDB requests sent during the run (set by bench/main.ts). */
  requests?: number;
  /** Transactions cancelled by conflicts/throttling and retried. */
  retries?: number;
}

class ItemWriteTracker {
  private readonly perItem = new Map<string, number[]>();
  hit(id: string) {
    const t = Date.now();
    const list = this.perItem.get(id) ?? [];
    list.push(t);
    this.perItem.set(id, list);
  }
  maxPerSecond(): number {
    let max = 0;
    for (const list of this.perItem.values()) {
      let lo = 0;
      for (let hi = 0; hi < list.length; hi++) {
        while (list[hi] - list[lo] >= 1000) lo++;
        max = Math.max(max, hi - lo + 1);
      }
    }
    return max;
  }
}

async function pool<T>(items: T[], concurrency: number, fn: (t: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(concurrency, items.length) }, async () => {
      while (next < items.length) await fn(items[next++]);
    }),
  );
}

/** Our path: the IngestService and its DynamoDB adapter, exactly as the Lambda runs them. */
export async function runOurs(doc: DynamoDBDocumentClient, table: string, w: Workload, concurrency: number): Promise<RunResult> {
  let itemWrites = 0;
  let awsWcu = 0;
  const tracker = new ItemWriteTracker();
  let retries = 0;
  const inner = new DynamoUsageStore(doc, table, { ledgerTtlDays: 60 });
  // The real adapter, observed: every write it makes and what AWS would bill for it.
  const store: UsageStore = {
    putLedger: async (e, claim, now) => {
      const r = await inner.putLedger(e, claim, now);
      itemWrites++;
      awsWcu++; // a plain put of an item < 1 KB; a failed condition is billed the same
      return r;
    },
    insertLedgers: async (entries, now) => {
      const r = await inner.insertLedgers(entries, now);
      itemWrites += entries.length;
      awsWcu += entries.length; // PartiQL INSERT is billed like PutItem, a failed one too
      return r;
    },
    moveLedger: async (e, from, to, now, prev) => {
      itemWrites++;
      awsWcu++;
      return inner.moveLedger(e, from, to, now, prev);
    },
    startEpoch: async (epoch, leaseUntil, now) => {
      itemWrites++;
      awsWcu++;
      return inner.startEpoch(epoch, leaseUntil, now);
    },
    finishRun: async (epoch, run, leaseUntil, now) => {
      itemWrites++;
      awsWcu++;
      return inner.finishRun(epoch, run, leaseUntil, now);
    },
    extendLease: async (epoch, leaseUntil, now) => {
      itemWrites++;
      awsWcu++;
      return inner.extendLease(epoch, leaseUntil, now);
    },
    epochStates: (epochs) => inner.epochStates(epochs),
    highWaterMarks: (targets) => inner.highWaterMarks(targets),
    marker: (claim) => inner.marker(claim),
    abort: async (claim, now) => {
      itemWrites++;
      awsWcu++;
      return inner.abort(claim, now);
    },
    addAggregate: async (d, mark, clean, now) => {
      const r = await inner.addAggregate(d, mark, clean, now);
      if (r.kind === "retryable") retries++;
      if (r.kind !== "retryable") {
        itemWrites++;
        // one UpdateItem (a failed condition is billed too), + the GSI1 copy of month aggregates
        awsWcu += 1 + (d.target.kind === "tenant" && d.target.granularity === "month" ? 1 : 0);
        if (r.kind === "applied") tracker.hit(targetId(d.target));
      }
      return r;
    },
    correct: (e, held, deltas, now) => inner.correct(e, held, deltas, now),
    quarantine: (record) => inner.quarantine(record),
    // cross-source diagnostic: the bench sends wrapper events only, so neither is called
    markCrossSource: (tenantId, eventId, source, now) => inner.markCrossSource(tenantId, eventId, source, now),
    addSourceCounts: (tenantId, day, counts, now) => inner.addSourceCounts(tenantId, day, counts, now),
  };
  const service = new IngestService({ store, prices: new PriceCatalog(), region: "us-west-2", maxEventAgeDays: 35 });
  const t0 = performance.now();
  let counted = 0;
  await pool(w.batches, concurrency, async (b) => {
    const r = await service.ingest(b);
    if (r.stats.failed) throw new Error(`bench: ${r.stats.failed} records failed`);
    counted += r.stats.counted;
  });
  const seconds = (performance.now() - t0) / 1000;
  if (counted !== w.distinct.length) throw new Error(`bench: counted ${counted} != ${w.distinct.length}`);
  return { ...result("ours (claims + 1 update per item and batch)", w, seconds, awsWcu, itemWrites, tracker), retries };
}

/**
 * Naive baseline: per event one conditional ledger Put, then one UpdateItem per aggregate
 * (the same views; counters and GSI keys only, none of the attributes the usage API reads), in its own layout: the minute window
 * a separate item (`naiveTargets`). Not crash-safe: a failure between the Put and the updates
 * loses counts; measured only for speed and writes.
 */
export async function runBaseline(
  doc: DynamoDBDocumentClient,
  table: string,
  w: Workload,
  concurrency: number,
  opts: { onlyMonth?: boolean } = {},
): Promise<RunResult> {
  let itemWrites = 0;
  let awsWcu = 0;
  const tracker = new ItemWriteTracker();
  const prices = new PriceCatalog();
  const t0 = performance.now();
  let counted = 0;
  await pool(w.batches, concurrency, async (batch) => {
    await pool(batch, 10, async (r) => {
      const e = (JSON.parse(r.body) as { detail: InvocationEventV1 }).detail;
      try {
        await doc.send(
          new PutCommand({
            TableName: table,
            Item: { ...keys.ledger(e.tenantId, e.eventId), tenantId: e.tenantId, eventId: e.eventId },
            ConditionExpression: "attribute_not_exists(pk)",
          }),
        );
        itemWrites++;
        awsWcu++;
      } catch (error) {
        if (error instanceof ConditionalCheckFailedException) {
          awsWcu++; // a failed condition is billed as a write
          return; // duplicate
        }
        throw error;
      }
      counted++;
      const price = prices.price(e, "us-west-2");
      const values: Partial<Record<(typeof COUNTER_NAMES)[number], number>> = { requests: 1, inputTokens: e.inputTokens, outputTokens: e.outputTokens, costNanoUsd: price.costNanoUsd };
      let targets = naiveTargets(e);
      if (opts.onlyMonth) targets = targets.slice(0, 1);
      for (const t of targets) {
        // the counters' ADD, sent on its own (month aggregates get their GSI1 keys)
        await doc.send(new UpdateCommand(addAndSetUpdate(table, t.key, values, t.month ? keys.billing(e.tenantId, t.month) : {}).Update));
        itemWrites++;
        awsWcu += t.month ? 2 : 1;
        tracker.hit(t.id);
      }
    });
  });
  const seconds = (performance.now() - t0) / 1000;
  if (counted !== w.distinct.length) throw new Error(`baseline: counted ${counted} != ${w.distinct.length}`);
  const name = opts.onlyMonth ? "naive (1 put + 1 update, month only)" : "naive (1 put + 1 update per aggregate)";
  return result(name, w, seconds, awsWcu, itemWrites, tracker);
}

function result(name: string, w: Workload, seconds: number, awsWcu: number, itemWrites: number, tracker: ItemWriteTracker): RunResult {
  const deliveries = w.batches.reduce((s, b) => s + b.length, 0);
  return {
    name,
    events: w.distinct.length,
    deliveries,
    seconds,
    eventsPerSecond: deliveries / seconds,
    awsModelWcu: awsWcu,
    itemWrites,
    maxItemWritesPerSecond: tracker.maxPerSecond(),
  };
}
