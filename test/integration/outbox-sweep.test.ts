import { GetCommand, QueryCommand, UpdateCommand, type DynamoDBDocumentClient } from "@aws-sdk/lib-dynamodb";
import { beforeAll, describe, expect, it } from "vitest";
import { DynamoQuotaStore } from "../../shared/quota/adapters/dynamodb";
import { createOutboxSweeper, createQuotaEvaluator } from "../../shared/quota/adapters/wiring";
import { QuotaPublishError } from "../../shared/quota/errors";
import type { EnforcementState } from "../../shared/quota/model";
import type { EnforcementPublisher, Page } from "../../shared/quota/ports";
import { OutboxSweeper } from "../../shared/quota/sweep";
import { documentClient } from "../../shared/storage/adapters/dynamodb";
import { keys, outboxShard } from "../../shared/storage/keys";
import { USAGE_TABLE } from "../../shared/storage/table";
import { RecordingPublisher } from "../unit/quota/fakes";
import { freshUsageTable, localDynamoClient } from "../helpers/dynamo";

const NOW = new Date("2026-11-25T20:36:30.000Z");
const at = (ms: number) => new Date(NOW.getTime() + ms);
const EPOCH = new Date(0).toISOString();
let doc: DynamoDBDocumentClient;

beforeAll(() => {
  doc = documentClient(localDynamoClient());
});

/** A basic tenant with a 1,000-token quota and no warnings, whose month already holds 1,000 tokens. */
async function overQuota(table: string, tenantId: string) {
  await createQuotaEvaluator({ dynamo: doc, tableName: table, publisher: new RecordingPublisher(), clock: () => NOW }).putConfig(tenantId, {
    tier: "basic",
    monthlyTokens: 1_000_000_000,
    warningThresholds: [],
  });
  await doc.send(
    new UpdateCommand({
      TableName: table,
      Key: keys.aggregate(tenantId, { kind: "tenant", granularity: "month", period: "2026-11" }),
      UpdateExpression: "ADD requests :r, inputTokens :i",
      ExpressionAttributeValues: { ":r": 1, ":i": 1000 },
    }),
  );
  // Lower the quota under the usage: the tenant's next evaluation records the throttle.
  await doc.send(new UpdateCommand({ TableName: table, Key: keys.config(tenantId), UpdateExpression: "SET monthlyTokens = :q", ExpressionAttributeValues: { ":q": 1000 } }));
}

/** The tenant's evaluation records its throttle while the bus is down; nothing evaluates it again. */
async function failedPublish(table: string, tenantId: string): Promise<string> {
  await overQuota(table, tenantId);
  const down = new RecordingPublisher();
  down.failNext = 1;
  const evaluator = createQuotaEvaluator({ dynamo: doc, tableName: table, publisher: down, clock: () => NOW });
  await expect(evaluator.evaluate({ tenantId, month: "2026-11", minutes: [], now: NOW })).rejects.toBeInstanceOf(QuotaPublishError);
  return `${tenantId}#2026-11#1:basic:t1000:u-#throttle`;
}

async function stateItem(table: string, tenantId: string) {
  const res = await doc.send(new GetCommand({ TableName: table, Key: keys.enforcement(tenantId, "2026-11"), ConsistentRead: true }));
  return res.Item as (Record<string, any> & { outbox: Record<string, { leaseUntil: string }> }) | undefined;
}

async function logIds(table: string, day = "2026-11-25"): Promise<string[]> {
  const res = await doc.send(
    new QueryCommand({ TableName: table, KeyConditionExpression: "pk = :pk", ExpressionAttributeValues: { ":pk": keys.enforcementLog(day, "", "", "").pk } }),
  );
  return (res.Items ?? []).map((it) => it.enforcementId as string);
}

async function gsi1(table: string, partition: string) {
  const res = await doc.send(
    new QueryCommand({ TableName: table, IndexName: USAGE_TABLE.gsi1.name, KeyConditionExpression: "gsi1pk = :p", ExpressionAttributeValues: { ":p": partition } }),
  );
  return res.Items ?? [];
}

function sweeperAt(table: string, publisher: EnforcementPublisher, now: Date, pageSize?: number) {
  return createOutboxSweeper({ dynamo: doc, tableName: table, publisher, clock: () => now, pageSize });
}

describe("outbox sweeper on DynamoDB Local", () => {
  it("publishes a throttle whose publish failed and whose tenant is never evaluated again, exactly once", async () => {
    // Given a throttle recorded while the bus was down (the publisher threw)
    const table = await freshUsageTable();
    const id = await failedPublish(table, "acme");
    const pending = await stateItem(table, "acme");
    expect(Object.keys(pending!.outbox)).toEqual([id]);
    expect(pending!.outbox[id].leaseUntil).toBe(EPOCH); // lease given back after the failure
    // and listed on the sparse outbox partition of gsi1
    expect(pending).toMatchObject(keys.outboxIndex("acme", "2026-11"));
    expect((await gsi1(table, keys.outboxPartition(outboxShard("acme")))).map((it) => it.sk)).toEqual(["ENFORCE#2026-11"]);
    expect(await logIds(table)).toEqual([]);

    // When the sweeper runs, and runs again
    const publisher = new RecordingPublisher();
    const first = await sweeperAt(table, publisher, at(300_000)).sweep();
    const second = await sweeperAt(table, publisher, at(600_000)).sweep();

    // Then the event went out once with its stable id, was logged, and the item left the index
    expect(first.published.map((p) => p.enforcementId)).toEqual([id]);
    expect(first).toMatchObject({ failed: [], complete: true });
    expect(second).toMatchObject({ states: 0, published: [], failed: [] });
    expect(publisher.published.map((d) => [d.enforcementId, d.action])).toEqual([[id, "throttle"]]);
    expect(await logIds(table)).toEqual([id]);
    const after = await stateItem(table, "acme");
    expect(after!.outbox).toEqual({});
    expect(after!.gsi1pk).toBeUndefined();
    expect(after!.gsi1sk).toBeUndefined();
    expect(after!.restriction).toMatchObject({ enforcementId: id, action: "throttle" }); // the transition itself is untouched
  });

  it("respects the lease of a publisher that is still alive, and takes over once it ran out", async () => {
    // Given an evaluation that recorded a throttle and hangs in PutEvents (holds the 30 s lease)
    const table = await freshUsageTable();
    await overQuota(table, "beta");
    const hanging = { publish: () => new Promise<never>(() => undefined) };
    void createQuotaEvaluator({ dynamo: doc, tableName: table, publisher: hanging, clock: () => NOW }).evaluate({
      tenantId: "beta",
      month: "2026-11",
      minutes: [],
      now: NOW,
    });
    for (let i = 0; i < 100 && Object.keys((await stateItem(table, "beta"))?.outbox ?? {}).length === 0; i++) await new Promise((r) => setTimeout(r, 20));
    const [id, { leaseUntil }] = Object.entries((await stateItem(table, "beta"))!.outbox)[0];
    expect(Date.parse(leaseUntil)).toBeGreaterThan(at(10_000).getTime());
    const publisher = new RecordingPublisher();

    // When the sweeper runs inside the lease
    const during = await sweeperAt(table, publisher, at(10_000)).sweep();

    // Then it leaves the entry (and its lease) alone
    expect(during).toMatchObject({ states: 1, published: [], leaseHeld: 1, claimLost: 0 });
    expect((await stateItem(table, "beta"))!.outbox[id].leaseUntil).toBe(leaseUntil);
    expect(publisher.published).toEqual([]);

    // And after the lease ran out (the publisher died) it publishes the entry once
    const after = await sweeperAt(table, publisher, at(31_000)).sweep();
    expect(after.published.map((p) => p.enforcementId)).toEqual([id]);
    expect(await logIds(table)).toEqual([id]);
  });

  it("does not republish an entry the tenant's evaluation published after the sweeper read the index", async () => {
    // Given a pending throttle, and an evaluation of the tenant that republishes it just after
    // the sweeper listed it (so the sweeper holds a stale copy)
    const table = await freshUsageTable();
    const id = await failedPublish(table, "gamma");
    const evaluatorBus = new RecordingPublisher();
    const evaluator = createQuotaEvaluator({ dynamo: doc, tableName: table, publisher: evaluatorBus, clock: () => NOW });
    class RacingStore extends DynamoQuotaStore {
      raced = false;
      override async listPending(shard: number, limit: number, cursor?: string): Promise<Page<EnforcementState>> {
        const page = await super.listPending(shard, limit, cursor);
        if (page.items.length > 0 && !this.raced) {
          this.raced = true;
          const republished = await evaluator.evaluate({ tenantId: "gamma", month: "2026-11", minutes: [], now: at(60_000) });
          expect(republished.map((o) => o.status)).toEqual(["republished"]);
        }
        return page;
      }
    }
    const publisher = new RecordingPublisher();
    const sweeper = new OutboxSweeper({ store: new RacingStore(doc, table), publisher, clock: () => at(60_000) });

    // When the sweeper works from its stale page
    const report = await sweeper.sweep();

    // Then its compare-and-set on the lease fails: the event was published once, by the evaluation
    expect(report).toMatchObject({ states: 1, published: [], failed: [], claimLost: 1 });
    expect(publisher.published).toEqual([]);
    expect(evaluatorBus.published.map((d) => d.enforcementId)).toEqual([id]);
    expect(await logIds(table)).toEqual([id]);
    expect((await stateItem(table, "gamma"))!.gsi1pk).toBeUndefined();
  });

  it("keeps an entry the bus refused pending and listed, and publishes it on the next run", async () => {
    const table = await freshUsageTable();
    const id = await failedPublish(table, "delta");
    const publisher = new RecordingPublisher();
    publisher.failNext = 1;

    const refused = await sweeperAt(table, publisher, at(300_000)).sweep();
    expect(refused.failed.map((f) => [f.tenantId, f.enforcementId])).toEqual([["delta", id]]);
    const still = await stateItem(table, "delta");
    expect(still!.outbox[id].leaseUntil).toBe(EPOCH);
    expect(still!.gsi1pk).toBe(keys.outboxPartition(outboxShard("delta")));

    const next = await sweeperAt(table, publisher, at(600_000)).sweep();
    expect(next.published.map((p) => p.enforcementId)).toEqual([id]);
    expect(publisher.published.map((d) => d.enforcementId)).toEqual([id]);
  });

  it("pages through every outbox shard, even as published items leave the index under its cursor", async () => {
    // Given 12 tenants with a pending throttle each, spread over the shards
    const table = await freshUsageTable();
    const tenants = Array.from({ length: 12 }, (_, i) => `sweep-${i}`);
    const ids = [];
    for (const t of tenants) ids.push(await failedPublish(table, t));
    expect(new Set(tenants.map(outboxShard)).size).toBeGreaterThan(1);
    const publisher = new RecordingPublisher();

    // When one sweep reads 2 states a page
    const report = await sweeperAt(table, publisher, at(300_000), 2).sweep();

    // Then every entry is published exactly once and the index is empty
    expect(report).toMatchObject({ states: 12, failed: [], complete: true });
    expect(publisher.published.map((d) => d.enforcementId).sort()).toEqual([...ids].sort());
    for (let shard = 0; shard < USAGE_TABLE.outboxShards; shard++) expect(await gsi1(table, keys.outboxPartition(shard))).toEqual([]);
  });

  it("unlists an item whose outbox emptied without unlisting, but never one that got a new entry", async () => {
    const table = await freshUsageTable();
    const store = new DynamoQuotaStore(doc, table);
    // Given an item listed with an empty outbox (a crash between markPublished's two writes)
    const id = await failedPublish(table, "eps");
    await doc.send(new UpdateCommand({ TableName: table, Key: keys.enforcement("eps", "2026-11"), UpdateExpression: "REMOVE outbox.#id", ExpressionAttributeNames: { "#id": id } }));
    // and an item with a pending entry
    await failedPublish(table, "zeta");

    // When unlisting is attempted on both
    await store.unindex("eps", "2026-11");
    await store.unindex("zeta", "2026-11");

    // Then only the empty one leaves the index
    expect((await stateItem(table, "eps"))!.gsi1pk).toBeUndefined();
    expect((await stateItem(table, "zeta"))!.gsi1pk).toBe(keys.outboxPartition(outboxShard("zeta")));

    // And the sweeper does the same for a leftover it finds
    await doc.send(
      new UpdateCommand({
        TableName: table,
        Key: keys.enforcement("eps", "2026-11"),
        UpdateExpression: "SET gsi1pk = :p, gsi1sk = :s",
        ExpressionAttributeValues: { ":p": keys.outboxIndex("eps", "2026-11").gsi1pk, ":s": keys.outboxIndex("eps", "2026-11").gsi1sk },
      }),
    );
    const report = await sweeperAt(table, new RecordingPublisher(), at(300_000)).sweep();
    expect(report).toMatchObject({ states: 2, unindexed: 1 });
    expect((await stateItem(table, "eps"))!.gsi1pk).toBeUndefined();
  });

  it("puts nothing in the billing partitions of gsi1: ENFORCE# items only ever land on OUTBOX#", async () => {
    const table = await freshUsageTable();
    await failedPublish(table, "acme");
    await failedPublish(table, "beta");
    for (let shard = 0; shard < USAGE_TABLE.billingShards; shard++) {
      expect(await gsi1(table, keys.billingPartition("2026-11", shard))).toEqual([]);
    }
    const listed = [];
    for (let shard = 0; shard < USAGE_TABLE.outboxShards; shard++) listed.push(...(await gsi1(table, keys.outboxPartition(shard))));
    expect(listed.map((it) => `${it.pk} ${it.sk}`).sort()).toEqual(["TENANT#acme ENFORCE#2026-11", "TENANT#beta ENFORCE#2026-11"]);
  });

  it("an evaluation that publishes at once leaves nothing listed", async () => {
    const table = await freshUsageTable();
    await overQuota(table, "omega");
    const publisher = new RecordingPublisher();
    const out = await createQuotaEvaluator({ dynamo: doc, tableName: table, publisher, clock: () => NOW }).evaluate({
      tenantId: "omega",
      month: "2026-11",
      minutes: [],
      now: NOW,
    });
    expect(out.map((o) => o.status)).toEqual(["published"]);
    const item = await stateItem(table, "omega");
    expect(item!.outbox).toEqual({});
    expect(item!.gsi1pk).toBeUndefined();
  });
});
