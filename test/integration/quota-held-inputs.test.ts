import { UpdateCommand, type DynamoDBDocumentClient } from "@aws-sdk/lib-dynamodb";
import { beforeEach, describe, expect, it } from "vitest";
import { DynamoQuotaStore } from "../../shared/quota/adapters/dynamodb";
import { QuotaEvaluator } from "../../shared/quota/service";
import { documentClient } from "../../shared/storage/adapters/dynamodb";
import { keys } from "../../shared/storage/keys";
import { minuteAttributeNames } from "../../shared/usage/minute-window";
import { freshUsageTable, localDynamoClient } from "../helpers/dynamo";
import { RecordingPublisher } from "../unit/quota/fakes";

const NOW = new Date("2026-11-25T20:36:30.000Z");
const MONTH = "2026-11";

/**
 * The ingest process's evaluator holds a tenant's config and states between batches, checked
 * against the change mark on the month item its own write returns. These tests drive it with
 * that write (an ADD returning ALL_NEW, as the ingest's update does) and count its reads.
 */
describe("quota inputs held between batches (DynamoDB Local)", () => {
  let doc: DynamoDBDocumentClient;
  let table: string;
  let reads: string[];

  beforeEach(async () => {
    const client = localDynamoClient();
    reads = [];
    client.middlewareStack.add(
      (next, context) => async (args) => {
        if (/^(BatchGet|Get|Query)/.test(String(context.commandName))) reads.push(String(context.commandName));
        return next(args);
      },
      { step: "initialize", name: "countReads" },
    );
    doc = documentClient(client);
    table = await freshUsageTable(client);
  });

  /** One evaluator per process: `ingest` holds inputs; `api` is another process (the config API). */
  const evaluator = (publisher = new RecordingPublisher()) =>
    new QuotaEvaluator({ store: new DynamoQuotaStore(doc, table), publisher, clock: () => NOW });

  /**
   * The ingest's writes of one call at `at`: the month item and the tenant-hour item (with the
   * minute window), each returned as it is after the write.
   */
  async function ingestWrite(tenantId: string, tokens: number, at: Date) {
    const add = async (key: { pk: string; sk: string }, minute?: { requests: string; tokens: string }) =>
      (
        await doc.send(
          new UpdateCommand({
            TableName: table,
            Key: key,
            UpdateExpression: minute ? "ADD requests :one, inputTokens :t, #mr :one, #mt :t" : "ADD requests :one, inputTokens :t",
            ...(minute ? { ExpressionAttributeNames: { "#mr": minute.requests, "#mt": minute.tokens } } : {}),
            ExpressionAttributeValues: { ":one": 1, ":t": tokens },
            ReturnValues: "ALL_NEW",
          }),
        )
      ).Attributes!;
    const month = await add(keys.aggregate(tenantId, { kind: "tenant", granularity: "month", period: MONTH }));
    const period = at.toISOString().slice(0, 13);
    const hour = await add(keys.aggregate(tenantId, { kind: "tenant", granularity: "hour", period }), minuteAttributeNames(at.toISOString().slice(0, 16)));
    return { months: { [MONTH]: month }, hours: { [period]: hour } };
  }

  /** The ingest's writes of one call at `at`, then its evaluation at `now`. */
  async function evaluateAfter(e: QuotaEvaluator, tenantId: string, tokens: number, now = NOW, at = now) {
    const written = await ingestWrite(tenantId, tokens, at);
    const out = await e.evaluateMany([{ tenantId, month: MONTH, minutes: [at.toISOString().slice(0, 16)], now, written }]);
    const r = out.get(tenantId)!;
    if ("error" in r) throw r.error;
    return r.outcomes;
  }

  it("reads a tenant's config and states once, then not again while nothing changed them", async () => {
    const ingest = evaluator();
    await evaluateAfter(ingest, "h1", 100);
    expect(reads).toEqual(["BatchGetItemCommand"]);
    reads.length = 0;
    for (let i = 0; i < 5; i++) await evaluateAfter(ingest, "h1", 100);
    expect(reads).toEqual([]);
  });

  it("a config lowered by another process is read at the ingest's next evaluation, which acts on it at once", async () => {
    const publisher = new RecordingPublisher();
    const ingest = evaluator(publisher);
    await evaluator().putConfig("h2", { tier: "basic", monthlyTokens: 1_000_000 });
    await evaluateAfter(ingest, "h2", 5_000);
    await evaluateAfter(ingest, "h2", 5_000);
    expect(publisher.published).toEqual([]);
    reads.length = 0;
    // another process (the config API) lowers the quota below the usage
    await evaluator().putConfig("h2", { tier: "basic", monthlyTokens: 12_000, warningThresholds: [] });
    reads.length = 0;
    const outcomes = await evaluateAfter(ingest, "h2", 5_000);
    expect(reads.length).toBeGreaterThan(0);
    expect(outcomes.map((o) => `${o.action}:${o.threshold}`)).toEqual(["throttle:1"]);
  });

  it("a throttle recorded by another process moves the mark: the holder reads again, and restores in the next minute", async () => {
    const publisher = new RecordingPublisher();
    const ingest = evaluator(publisher);
    await evaluator().putConfig("h3", { tier: "basic", requestsPerMinute: 2 });
    await evaluateAfter(ingest, "h3", 10, new Date("2026-11-25T20:36:10.000Z"));
    // another ingest process counts the 2nd request of minute 20:36 and throttles the tenant
    const other = new RecordingPublisher();
    await evaluateAfter(evaluator(other), "h3", 10, new Date("2026-11-25T20:36:20.000Z"));
    expect(other.published.map((d) => `${d.action}:${d.threshold}`)).toEqual(["throttle:rpm"]);
    // the holder's next call is in minute 20:37, under the limit: the throttle it did not record must be lifted
    reads.length = 0;
    await evaluateAfter(ingest, "h3", 10, new Date("2026-11-25T20:37:05.000Z"));
    expect(reads).toEqual(["BatchGetItemCommand"]);
    expect(publisher.published.map((d) => `${d.action}:${d.threshold}`)).toEqual(["restore:rate"]);
  });

  it("a change cut short after its begin mark (a crash) leaves the tenant's inputs read at every evaluation", async () => {
    const ingest = evaluator();
    await evaluateAfter(ingest, "h4", 100);
    await new DynamoQuotaStore(doc, table).changeBegins("h4", [MONTH]);
    reads.length = 0;
    await evaluateAfter(ingest, "h4", 100);
    await evaluateAfter(ingest, "h4", 100);
    expect(reads).toEqual(["BatchGetItemCommand", "BatchGetItemCommand"]);
  });

  it("a change begun before the month item existed moves both counters at its end, so inputs read during it are not kept", async () => {
    const store = new DynamoQuotaStore(doc, table);
    const begun = await store.changeBegins("h5", [MONTH]);
    expect(begun).toEqual([false]);
    // the ingest creates the month item, reads and holds the inputs during the change
    const ingest = evaluator();
    await evaluateAfter(ingest, "h5", 100);
    await store.changeEnds("h5", [MONTH], begun);
    reads.length = 0;
    await evaluateAfter(ingest, "h5", 100);
    // read once (the mark moved), then held again: the end closed the mark it moved
    await evaluateAfter(ingest, "h5", 100);
    expect(reads).toEqual(["BatchGetItemCommand"]);
  });

  it("holds no state with a pending outbox entry (the outbox changes without a mark): it is read again at each evaluation", async () => {
    await evaluator().putConfig("h6", { tier: "advanced", monthlyTokens: 10_000, warningThresholds: [0.5] });
    // another process crosses 50% but its publish fails: the warning stays pending in the outbox
    const down = new RecordingPublisher();
    down.failNext = 1;
    await expect(evaluateAfter(evaluator(down), "h6", 6_000)).rejects.toThrow(/not published/);
    const ingest = evaluator();
    await evaluateAfter(ingest, "h6", 10);
    reads.length = 0;
    await evaluateAfter(ingest, "h6", 10);
    expect(reads).toEqual(["BatchGetItemCommand"]);
  });

  /** A holder whose own evaluation throttled `tenantId` (2 requests a minute, the 2nd at 20:36:20). */
  async function throttledByHolder(tenantId: string) {
    const publisher = new RecordingPublisher();
    const ingest = evaluator(publisher);
    await evaluator().putConfig(tenantId, { tier: "basic", requestsPerMinute: 2 });
    await evaluateAfter(ingest, tenantId, 10, new Date("2026-11-25T20:36:10.000Z"));
    await evaluateAfter(ingest, tenantId, 10, new Date("2026-11-25T20:36:20.000Z"));
    expect(publisher.published.map((d) => `${d.action}:${d.threshold}`)).toEqual(["throttle:rpm"]);
    return ingest;
  }

  it("holds what its own transition left: the tenant it throttled is evaluated without a read, and restored in the next minute without one", async () => {
    const ingest = await throttledByHolder("h8");
    reads.length = 0;
    expect(await evaluateAfter(ingest, "h8", 10, new Date("2026-11-25T20:36:25.000Z"))).toEqual([]);
    const outcomes = await evaluateAfter(ingest, "h8", 10, new Date("2026-11-25T20:37:05.000Z"));
    expect(outcomes.map((o) => `${o.action}:${o.threshold}`)).toEqual(["restore:rate"]);
    expect(reads).toEqual([]);
  });

  it("reads again when another process changed the inputs after its own transition", async () => {
    const ingest = await throttledByHolder("h9");
    // another process lowers the monthly quota to just above the 20 tokens counted so far
    await evaluator().putConfig("h9", { tier: "basic", requestsPerMinute: 2, monthlyTokens: 25, warningThresholds: [] });
    reads.length = 0;
    const outcomes = await evaluateAfter(ingest, "h9", 10, new Date("2026-11-25T20:36:25.000Z"));
    expect(reads).toEqual(["BatchGetItemCommand"]);
    expect(outcomes.map((o) => `${o.action}:${o.threshold}`)).toEqual(["throttle:1"]);
  });

  it("does not hold what its own transition left when another process's change came between its marks", async () => {
    /** The holder's store, running another process's config change just before its next transition's write. */
    class Interleaved extends DynamoQuotaStore {
      before?: () => Promise<unknown>;
      override async apply(tenantId: string, t: Parameters<DynamoQuotaStore["apply"]>[1]) {
        const before = this.before;
        this.before = undefined;
        await before?.();
        return super.apply(tenantId, t);
      }
    }
    const store = new Interleaved(doc, table);
    const publisher = new RecordingPublisher();
    const ingest = new QuotaEvaluator({ store, publisher, clock: () => NOW });
    await evaluator().putConfig("h10", { tier: "basic", requestsPerMinute: 2 });
    await evaluateAfter(ingest, "h10", 10, new Date("2026-11-25T20:36:10.000Z"));
    // the throttle's write waits for another process to lower the monthly quota to just above the
    // 20 tokens counted so far (a config write between its own marks, which come between the holder's)
    const other = new DynamoQuotaStore(doc, table);
    store.before = async () => {
      const begun = await other.changeBegins("h10", [MONTH]);
      await other.putConfig({ tenantId: "h10", tier: "basic", requestsPerMinute: 2, monthlyTokens: 25, warningThresholds: [], updatedAt: NOW.toISOString() });
      await other.changeEnds("h10", [MONTH], begun);
    };
    await evaluateAfter(ingest, "h10", 10, new Date("2026-11-25T20:36:20.000Z"));
    expect(publisher.published.map((d) => `${d.action}:${d.threshold}`)).toEqual(["throttle:rpm"]);
    reads.length = 0;
    // the holder reads the lowered quota and acts on it
    const outcomes = await evaluateAfter(ingest, "h10", 10, new Date("2026-11-25T20:36:25.000Z"));
    expect(reads).toEqual(["BatchGetItemCommand"]);
    expect(outcomes.map((o) => `${o.action}:${o.threshold}`)).toEqual(["throttle:1"]);
  });

  it("does not read the minute of now in an hour the batch did not write, unless a throttle it holds may need lifting", async () => {
    const ingest = evaluator();
    await evaluator().putConfig("h7", { tier: "basic", requestsPerMinute: 2 });
    await evaluateAfter(ingest, "h7", 10, new Date("2026-11-25T20:59:40.000Z"));
    reads.length = 0;
    // a call of 20:59 evaluated at 21:00:05: the 21:00 window is on the 21h item, which this batch did not write
    await evaluateAfter(ingest, "h7", 10, new Date("2026-11-25T21:00:05.000Z"), new Date("2026-11-25T20:59:50.000Z"));
    expect(reads).toEqual([]);
    // the 2nd request of 20:59 throttles it (its own evaluation, in 20:59), then a call of 20:59 is evaluated in 21:00
    await evaluateAfter(ingest, "h7", 10, new Date("2026-11-25T20:59:55.000Z"));
    await evaluateAfter(ingest, "h7", 10, new Date("2026-11-25T20:59:56.000Z"));
    const publisher = new RecordingPublisher();
    const later = evaluator(publisher);
    await evaluateAfter(later, "h7", 10, new Date("2026-11-25T20:59:57.000Z"));
    reads.length = 0;
    const outcomes = await evaluateAfter(later, "h7", 10, new Date("2026-11-25T21:00:06.000Z"), new Date("2026-11-25T20:59:58.000Z"));
    expect(reads).toEqual(["BatchGetItemCommand"]);
    expect(outcomes.map((o) => `${o.action}:${o.threshold}`)).toEqual(["restore:rate"]);
  });
});
