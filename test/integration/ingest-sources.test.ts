import { GetCommand } from "@aws-sdk/lib-dynamodb";
import { describe, expect, it } from "vitest";
import { INVOCATION_SOURCES, type InvocationEventV1 } from "../../shared/events/invocation";
import { documentClient } from "../../shared/storage/adapters/dynamodb";
import { keys } from "../../shared/storage/keys";
import type { IngestRecord } from "../../shared/usage/ingest";
import { AggregateMeteredUsage } from "../../shared/reconciliation/adapters/usage";
import { invocationSources } from "../../shared/reconciliation/service";
import { sourceSplit } from "../../shared/usage/model";
import { freshUsageTable, localDynamoClient, localIngest } from "../helpers/dynamo";
import { envelope, invocation, record } from "../helpers/events";

const client = localDynamoClient();
const doc = documentClient(client);
const DAY = "2026-11-25";

async function setup() {
  const table = await freshUsageTable(client);
  const { store, service } = localIngest(doc, table, { clock: () => new Date("2026-11-25T12:00:00Z") });
  return { table, store, service };
}

const fromWrapper = (e: InvocationEventV1): IngestRecord => record(envelope(e, { source: INVOCATION_SOURCES.bedrock }));
const fromLog = (e: InvocationEventV1): IngestRecord => record(envelope(e, { source: INVOCATION_SOURCES.invocationLog }));

describe("wrapper events against invocation-log records, per tenant and day (DynamoDB Local, real ingest)", () => {
  it("wrapper-only, log-only and both are counted on the tenant-day item; redelivery of each changes no figure", async () => {
    const { table, store, service } = await setup();
    const at = `${DAY}T10:00:00Z`;
    const wrapperOnly = invocation({ tenantId: "src-a", occurredAt: at });
    const logOnly = invocation({ tenantId: "src-a", occurredAt: at });
    const wrapperThenLog = invocation({ tenantId: "src-a", occurredAt: at });
    const logThenWrapper = invocation({ tenantId: "src-a", occurredAt: at });
    const sameBatch = invocation({ tenantId: "src-a", occurredAt: at });
    const first = [fromWrapper(wrapperOnly), fromLog(logOnly), fromWrapper(wrapperThenLog), fromLog(logThenWrapper), fromWrapper(sameBatch), fromLog(sameBatch)];
    const later = [fromLog(wrapperThenLog), fromWrapper(logThenWrapper)];

    const r1 = await service.ingest(first);
    expect(r1.stats).toMatchObject({ counted: 5, duplicates: 1, failed: 0, crossSource: 1 });
    const r2 = await service.ingest(later);
    expect(r2.stats).toMatchObject({ counted: 0, duplicates: 2, failed: 0, crossSource: 2, crossSourceLost: 0 });

    const figures = async () => {
      const [row] = await store.tenantPeriods("src-a", "day", DAY, DAY);
      return { sources: row?.sources, split: row?.sources && sourceSplit(row.sources, row.counters.requests), requests: row?.counters.requests };
    };
    // the same-batch pair is claimed by the report first in the batch (the wrapper's), the log's is its second
    const expected = {
      sources: { wrapperFirst: 3, logFirst: 2, logAfterWrapper: 2, wrapperAfterLog: 1 },
      split: { wrapperOnly: 1, logOnly: 1, both: 3, untracked: 0 },
      requests: 5,
    };
    expect(await figures()).toEqual(expected);

    // the ledger says which path claimed each call, and which calls the other path reported too
    const ledger = async (e: InvocationEventV1) => (await doc.send(new GetCommand({ TableName: table, Key: keys.ledger(e.tenantId, e.eventId), ConsistentRead: true }))).Item;
    expect(await ledger(wrapperOnly)).toMatchObject({ source: INVOCATION_SOURCES.bedrock });
    expect((await ledger(wrapperOnly))?.crossSource).toBeUndefined();
    expect(await ledger(logOnly)).toMatchObject({ source: INVOCATION_SOURCES.invocationLog });
    expect(await ledger(wrapperThenLog)).toMatchObject({ source: INVOCATION_SOURCES.bedrock, crossSource: INVOCATION_SOURCES.invocationLog });
    expect(await ledger(logThenWrapper)).toMatchObject({ source: INVOCATION_SOURCES.invocationLog, crossSource: INVOCATION_SOURCES.bedrock });

    // redelivery: every record again, as a batch, one by one, and concurrently
    const again = await service.ingest([...later, ...first]);
    expect(again.stats).toMatchObject({ counted: 0, failed: 0, crossSource: 0 });
    for (const r of [...first, ...later]) expect((await service.ingest([r])).stats).toMatchObject({ counted: 0, failed: 0, crossSource: 0 });
    await Promise.all([service.ingest(later), service.ingest([...later].reverse()), service.ingest(first)]);
    expect(await figures()).toEqual(expected);

    // what the reconciliation report reads back (tenants from the month's GSI1 partitions)
    const metered = new AggregateMeteredUsage(store, { readUsage: async () => [] });
    expect(invocationSources(DAY, await metered.tenantDaySources(DAY)).rows).toEqual([
      { day: DAY, tenantId: "src-a", wrapperOnlyCalls: 1, logOnlyCalls: 1, bothCalls: 3, untrackedCalls: 0 },
    ]);
  });

  it("concurrent deliveries of the other path's report mark the ledger entry once (the condition, not the read, decides)", async () => {
    const { store, service } = await setup();
    const calls = Array.from({ length: 10 }, () => invocation({ tenantId: "src-c", occurredAt: `${DAY}T11:00:00Z` }));
    await service.ingest(calls.map(fromWrapper));
    // every run reads the entries unmarked, then races to mark them
    const runs = await Promise.all(Array.from({ length: 4 }, () => service.ingest(calls.map(fromLog))));
    expect(runs.reduce((n, r) => n + r.stats.crossSource, 0)).toBe(10);
    const [row] = await store.tenantPeriods("src-c", "day", DAY, DAY);
    expect(row.sources).toEqual({ wrapperFirst: 10, logFirst: 0, logAfterWrapper: 10, wrapperAfterLog: 0 });
  });

  it("an exact log record replacing a wrapper's estimate: both, counted once in the correction", async () => {
    const { store, service } = await setup();
    const estimate = invocation({ tenantId: "src-b", occurredAt: `${DAY}T09:00:00Z`, estimated: true, outputTokens: 100 });
    const exact: InvocationEventV1 = { ...estimate, outputTokens: 170 };
    delete exact.estimated;
    await service.ingest([fromWrapper(estimate)]);
    expect((await service.ingest([fromLog(exact)])).stats).toMatchObject({ corrected: 1, crossSource: 1 });
    await service.ingest([fromLog(exact)]);
    await service.ingest([fromWrapper(estimate), fromLog(exact)]);
    const [row] = await store.tenantPeriods("src-b", "day", DAY, DAY);
    expect(row.counters.outputTokens).toBe(170);
    expect(row.sources).toEqual({ wrapperFirst: 1, logFirst: 0, logAfterWrapper: 1, wrapperAfterLog: 0 });
  });
});
