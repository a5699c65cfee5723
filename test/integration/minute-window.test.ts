import { GetCommand } from "@aws-sdk/lib-dynamodb";
import { describe, expect, it } from "vitest";
import { documentClient } from "../../shared/storage/adapters/dynamodb";
import { keys } from "../../shared/storage/keys";
import { DynamoQuotaStore } from "../../shared/quota/adapters/dynamodb";
import { freshUsageTable, localDynamoClient, localIngest, updatesSeenBy } from "../helpers/dynamo";
import { invocation, recordOf } from "../helpers/events";

const doc = documentClient(localDynamoClient());

function service(table: string, now: Date) {
  return localIngest(doc, table, { clock: () => now }).service;
}

async function itemAt(table: string, key: { pk: string; sk: string }) {
  return (await doc.send(new GetCommand({ TableName: table, Key: key, ConsistentRead: true }))).Item;
}

const hourKey = (tenantId: string, hour: string) => keys.aggregate(tenantId, { kind: "tenant", granularity: "hour", period: hour });
const minuteAttributes = (item: Record<string, unknown> | undefined) =>
  Object.fromEntries(Object.entries(item ?? {}).filter(([k]) => /^mw\d{2}[rt]$/.test(k)).sort(([a], [b]) => a.localeCompare(b)));

describe("minute windows on the tenant-hour item (DynamoDB Local)", () => {
  it("the ingest writes each minute's requests and tokens onto the tenant-hour item, no item of its own, and drops the ended minutes", async () => {
    const table = await freshUsageTable();
    const e = (at: string, inputTokens = 100, outputTokens = 20) => invocation({ tenantId: "mw", occurredAt: at, inputTokens, outputTokens });

    const first = new Date("2026-11-25T20:33:30Z");
    await service(table, first).ingest([e("2026-11-25T20:30:10Z"), e("2026-11-25T20:30:50Z"), e("2026-11-25T20:33:05Z", 1000, 0)].map(recordOf));
    expect(minuteAttributes(await itemAt(table, hourKey("mw", "2026-11-25T20")))).toEqual({ mw30r: 2, mw30t: 240, mw33r: 1, mw33t: 1000 });
    expect(await itemAt(table, { pk: "TENANT#mw", sk: "MINUTE#2026-11-25T20:30" })).toBeUndefined();

    // at 20:37: 20:30 is older than 20:37 - 5 and goes, 20:33 stays (and a late 20:20 event is not added)
    const later = new Date("2026-11-25T20:37:10Z");
    await service(table, later).ingest([e("2026-11-25T20:37:00Z"), e("2026-11-25T20:20:00Z")].map(recordOf));
    const item = await itemAt(table, hourKey("mw", "2026-11-25T20"));
    expect(minuteAttributes(item)).toEqual({ mw33r: 1, mw33t: 1000, mw37r: 1, mw37t: 120 });
    expect(item?.requests).toBe(5); // the hour's own counters are untouched by the window

    // a late batch for an old minute removes nothing newer
    await service(table, new Date("2026-11-25T20:38:00Z")).ingest([e("2026-11-25T20:34:00Z")].map(recordOf));
    expect(minuteAttributes(await itemAt(table, hourKey("mw", "2026-11-25T20")))).toEqual({ mw33r: 1, mw33t: 1000, mw34r: 1, mw34t: 120, mw37r: 1, mw37t: 120 });

    // what the quota reads back
    const snap = await new DynamoQuotaStore(doc, table).loadForEvaluation({ tenantId: "mw", month: "2026-11", prevMonth: "2026-10", minutes: ["2026-11-25T20:37", "2026-11-25T20:38"] });
    expect(snap.minuteTotals).toEqual({ "2026-11-25T20:37": { requests: 1, tokens: 120 } });
  });

  it("a process removes only the ended minutes its last write saw on the item; one another process added meanwhile goes once a response showed it", async () => {
    const table = await freshUsageTable();
    const e = (at: string) => invocation({ tenantId: "mw2", occurredAt: at, inputTokens: 100, outputTokens: 20 });
    let now = new Date("2026-11-25T20:30:30Z");
    // process A's client, recording what each of its tenant-hour updates removes
    const removed: string[][] = [];
    const client = updatesSeenBy((input) => {
      if (input.Key?.sk?.S === "USAGE#H#2026-11-25T20" && input.UpdateExpression) {
        const clause = /REMOVE (.*)$/.exec(input.UpdateExpression)?.[1] ?? "";
        removed.push(clause.split(", ").map((p) => input.ExpressionAttributeNames?.[p.trim()] ?? "").filter((n) => /^mw/.test(n)));
      }
    });
    const a = localIngest(documentClient(client), table, { clock: () => now }).service;
    const b = localIngest(doc, table, { clock: () => now }).service;

    // A's first write of the item knows nothing of it: every ended minute of the hour (0-24)
    await a.ingest([recordOf(e("2026-11-25T20:30:10Z"))]);
    expect(removed.at(-1)).toHaveLength(50);
    // B (another process) adds 20:31; A's next write removes 20:30, the one minute it saw, not 20:31
    now = new Date("2026-11-25T20:31:30Z");
    await b.ingest([recordOf(e("2026-11-25T20:31:10Z"))]);
    now = new Date("2026-11-25T20:39:30Z");
    await a.ingest([recordOf(e("2026-11-25T20:39:10Z"))]);
    expect(removed.at(-1)).toEqual(["mw30r", "mw30t"]);
    expect(Object.keys(minuteAttributes(await itemAt(table, hourKey("mw2", "2026-11-25T20"))))).toEqual(["mw31r", "mw31t", "mw39r", "mw39t"]);
    // that response showed 20:31: A's next write removes it
    now = new Date("2026-11-25T20:40:30Z");
    await a.ingest([recordOf(e("2026-11-25T20:40:10Z"))]);
    expect(removed.at(-1)).toEqual(["mw31r", "mw31t"]);
    expect(Object.keys(minuteAttributes(await itemAt(table, hourKey("mw2", "2026-11-25T20"))))).toEqual(["mw39r", "mw39t", "mw40r", "mw40t"]);
    expect((await itemAt(table, hourKey("mw2", "2026-11-25T20")))?.requests).toBe(4);
  });
});
