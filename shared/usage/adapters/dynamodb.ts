import {
  InternalServerError,
  ProvisionedThroughputExceededException,
  RequestLimitExceeded,
  ThrottlingException,
  TransactionCanceledException,
  TransactionInProgressException,
} from "@aws-sdk/client-dynamodb";
import {
  PutCommand,
  QueryCommand,
  TransactWriteCommand,
  type DynamoDBDocumentClient,
} from "@aws-sdk/lib-dynamodb";
import { endpointKeys, keys } from "../../storage/keys";
import { addAndSetUpdate, queryAll } from "../../storage/adapters/dynamodb";
import { USAGE_TABLE } from "../../storage/table";
import type { AggregateDelta } from "../coalesce";
import { UsageQueryInvalidError } from "../errors";
import { ledgerKey } from "../ingest";
import { COUNTER_NAMES, zeroCounters, type AggregateTarget, type PricedEvent, type UsageCounters } from "../model";
import type { AggregateRow, CommitResult, Page, QuarantineRecord, UsageReader, UsageStore } from "../ports";

type Item = Record<string, unknown>;

const RETRYABLE_ERRORS = [
  ProvisionedThroughputExceededException,
  ThrottlingException,
  RequestLimitExceeded,
  InternalServerError,
  TransactionInProgressException,
];
type TransactItem = NonNullable<ConstructorParameters<typeof TransactWriteCommand>[0]["TransactItems"]>[number];

export interface DynamoUsageStoreOptions {
  ledgerTtlDays: number;
  /** Minute windows only matter for a few minutes; keep them a day for inspection. */
  minuteTtlSeconds?: number;
  quarantineTtlDays?: number;
  clock?: () => Date;
  /** Observe consumed write capacity (benchmarks). */
  onConsumedCapacity?: (units: number) => void;
}

/** Usage store on the single table: owns the item shapes of ledger, aggregates and quarantine. */
export class DynamoUsageStore implements UsageStore, UsageReader {
  private readonly clock: () => Date;

  constructor(
    private readonly doc: DynamoDBDocumentClient,
    private readonly tableName: string,
    private readonly opts: DynamoUsageStoreOptions,
  ) {
    this.clock = opts.clock ?? (() => new Date());
  }

  async commit(events: readonly PricedEvent[], deltas: readonly AggregateDelta[]): Promise<CommitResult> {
    const now = this.clock();
    const items: TransactItem[] = [
      ...events.map((e) => this.ledgerPut(e, now)),
      ...deltas.map((d) => this.aggregateUpdate(d, now)),
    ];
    try {
      const out = await this.doc.send(
        new TransactWriteCommand({
          TransactItems: items,
          ReturnConsumedCapacity: this.opts.onConsumedCapacity ? "TOTAL" : undefined,
        }),
      );
      if (this.opts.onConsumedCapacity) {
        this.opts.onConsumedCapacity((out.ConsumedCapacity ?? []).reduce((s, c) => s + (c.CapacityUnits ?? 0), 0));
      }
      return { kind: "committed", duplicates: [] };
    } catch (error) {
      // Throttling and server faults that outlasted the SDK's own retries: nothing was
      // written (a transaction is all-or-nothing), so the same chunk may simply be retried.
      if (RETRYABLE_ERRORS.some((type) => error instanceof type)) {
        return { kind: "retryable", reason: (error as Error).name };
      }
      if (!(error instanceof TransactionCanceledException)) throw error;
      const reasons = error.CancellationReasons ?? [];
      const duplicates: string[] = [];
      let other = "";
      reasons.forEach((r, i) => {
        if (!r.Code || r.Code === "None") return;
        if (r.Code === "ConditionalCheckFailed" && i < events.length) duplicates.push(ledgerKey(events[i].event));
        else other ||= `${r.Code}${r.Message ? `: ${r.Message}` : ""}`;
      });
      // Only ledger conditions failed: every other item was fine, so dropping the
      // duplicates and retrying will commit. Anything else (TransactionConflict with a
      // concurrent writer of the same aggregate, throttling) is retried as it is.
      if (duplicates.length > 0 && !other) return { kind: "duplicates", duplicates };
      return { kind: "retryable", reason: other || error.message };
    }
  }

  async quarantine(record: QuarantineRecord): Promise<void> {
    const day = record.receivedAt.slice(0, 10);
    // A redelivery of the same message overwrites its own quarantine item (same key).
    const key = record.messageId.startsWith("unpriced:")
      ? keys.quarantine(day, "unpriced", record.messageId)
      : keys.quarantine(day, "invalid", record.messageId);
    await this.doc.send(
      new PutCommand({
        TableName: this.tableName,
        Item: {
          ...key,
          type: "quarantine",
          ...record,
          body: record.body.length > 64_000 ? `${record.body.slice(0, 64_000)}...(truncated)` : record.body,
          bodyBytes: Buffer.byteLength(record.body),
          expiresAt: ttl(this.clock(), this.opts.quarantineTtlDays ?? 90),
        },
      }),
    );
  }

  private ledgerPut(e: PricedEvent, now: Date): TransactItem {
    const { tenantId, eventId, occurredAt, modelId, provider } = e.event;
    return {
      Put: {
        TableName: this.tableName,
        Item: {
          ...keys.ledger(tenantId, eventId),
          type: "ledger",
          tenantId,
          eventId,
          occurredAt,
          provider,
          modelId,
          baseModelId: e.baseModelId,
          inputTokens: e.counters.inputTokens,
          outputTokens: e.counters.outputTokens,
          costNanoUsd: e.counters.costNanoUsd,
          countedAt: now.toISOString(),
          expiresAt: ttl(now, this.opts.ledgerTtlDays),
        },
        // The dedupe guard: an event already in the ledger was counted by an earlier
        // delivery, so this transaction (and its aggregate ADDs) must not land.
        ConditionExpression: "attribute_not_exists(pk)",
      },
    };
  }

  private aggregateUpdate(d: AggregateDelta, now: Date): TransactItem {
    const t = d.target;
    const adds: Record<string, number> = {};
    for (const c of COUNTER_NAMES) if (c === "requests" || d.counters[c] !== 0) adds[c] = d.counters[c];
    const sets: Record<string, unknown> = { tenantId: t.tenantId, updatedAt: now.toISOString(), ...describeTarget(t) };
    if (t.kind === "tenant" && t.granularity === "month") Object.assign(sets, keys.billing(t.tenantId, t.period));
    if (t.kind === "minute") sets.expiresAt = ttl(now, (this.opts.minuteTtlSeconds ?? 86_400) / 86_400);
    // The ledger put in the same transaction keeps a second delivery from adding again.
    return addAndSetUpdate(this.tableName, targetKey(t), adds, sets);
  }

  // ---- reads ----

  async tenantPeriods(tenantId: string, granularity: "month" | "day" | "hour", from: string, to: string): Promise<AggregateRow[]> {
    const prefix = keys.usagePrefix(granularity);
    const items = await queryAll(this.doc, {
      TableName: this.tableName,
      KeyConditionExpression: "pk = :pk AND sk BETWEEN :a AND :b",
      // hours of day `to` are yyyy-mm-ddTHH: '~' sorts after 'T', so they are all inside
      ExpressionAttributeValues: { ":pk": keys.tenant(tenantId), ":a": `${prefix}${from}`, ":b": `${prefix}${to}${granularity === "hour" ? "~" : ""}` },
    });
    return items.map(toRow);
  }

  async modelPeriods(tenantId: string, granularity: "month" | "day", from: string, to: string): Promise<AggregateRow[]> {
    const start = keys.modelPrefix(granularity, from);
    // '$' sorts after '#', so every model of the last period is inside the range
    const end = `${keys.modelPrefix(granularity, to).slice(0, -1)}$`;
    const items = await queryAll(this.doc, {
      TableName: this.tableName,
      KeyConditionExpression: "pk = :pk AND sk BETWEEN :a AND :b",
      ExpressionAttributeValues: { ":pk": keys.tenant(tenantId), ":a": start, ":b": end },
    });
    return items.map(toRow);
  }

  /** All tenants' month aggregates, across the GSI1 shards, with an opaque cursor. */
  async monthOfAllTenants(month: string, limit: number, cursor?: string): Promise<Page<AggregateRow>> {
    let { shard, key } = decodeCursor(cursor);
    const rows: AggregateRow[] = [];
    while (shard < USAGE_TABLE.billingShards && rows.length < limit) {
      const out = await this.doc.send(
        new QueryCommand({
          TableName: this.tableName,
          IndexName: USAGE_TABLE.gsi1.name,
          KeyConditionExpression: "gsi1pk = :p",
          ExpressionAttributeValues: { ":p": keys.billingPartition(month, shard) },
          ExclusiveStartKey: key,
          Limit: limit - rows.length,
        }),
      );
      rows.push(...(out.Items ?? []).map(toRow));
      if (out.LastEvaluatedKey) key = out.LastEvaluatedKey;
      else {
        shard++;
        key = undefined;
      }
    }
    const more = shard < USAGE_TABLE.billingShards;
    return { items: rows, cursor: more ? encodeCursor(shard, key) : undefined };
  }

  async quarantined(day: string, limit: number, cursor?: string): Promise<Page<QuarantineRecord>> {
    const { key } = decodeCursor(cursor);
    const out = await this.doc.send(
      new QueryCommand({
        TableName: this.tableName,
        KeyConditionExpression: "pk = :pk",
        ExpressionAttributeValues: { ":pk": keys.quarantine(day, "", "").pk },
        ExclusiveStartKey: key,
        Limit: limit,
      }),
    );
    const items = (out.Items ?? []).map((i) => ({
      messageId: String(i.messageId),
      receivedAt: String(i.receivedAt),
      reason: String(i.reason),
      message: String(i.message),
      body: String(i.body),
      source: i.source as string | undefined,
      tenantId: i.tenantId as string | undefined,
      eventId: i.eventId as string | undefined,
    }));
    return { items, cursor: out.LastEvaluatedKey ? encodeCursor(0, out.LastEvaluatedKey) : undefined };
  }
}

export function targetKey(t: AggregateTarget): { pk: string; sk: string } {
  switch (t.kind) {
    case "tenant":
      return keys.aggregate(t.tenantId, { kind: "tenant", granularity: t.granularity, period: t.period });
    case "model":
      return keys.aggregate(t.tenantId, { kind: "model", granularity: t.granularity, period: t.period, modelId: t.modelId });
    case "endpoint":
      return endpointKeys.usage(t.endpointName, t.hour, t.tenantId);
    case "minute":
      return keys.minute(t.tenantId, t.minute);
  }
}

function describeTarget(t: AggregateTarget): Item {
  switch (t.kind) {
    case "tenant":
      return { type: "usage", granularity: t.granularity, period: t.period };
    case "model":
      return { type: "model-usage", granularity: t.granularity, period: t.period, modelId: t.modelId };
    case "endpoint":
      return { type: "endpoint-usage", granularity: "hour", period: t.hour, endpointName: t.endpointName };
    case "minute":
      return { type: "minute-usage", granularity: "minute", period: t.minute };
  }
}

function toRow(i: Item): AggregateRow {
  const counters: UsageCounters = zeroCounters();
  for (const c of COUNTER_NAMES) counters[c] = Number(i[c] ?? 0);
  return {
    tenantId: String(i.tenantId),
    period: String(i.period),
    modelId: i.modelId === undefined ? undefined : String(i.modelId),
    counters,
  };
}

function ttl(now: Date, days: number): number {
  return Math.floor(now.getTime() / 1000 + days * 86_400);
}

function encodeCursor(shard: number, key: Item | undefined): string {
  return Buffer.from(JSON.stringify({ s: shard, k: key ?? null })).toString("base64url");
}

function decodeCursor(cursor: string | undefined): { shard: number; key: Item | undefined } {
  if (!cursor) return { shard: 0, key: undefined };
  try {
    const j = JSON.parse(Buffer.from(cursor, "base64url").toString("utf8")) as { s: number; k: Item | null };
    if (!Number.isInteger(j.s) || j.s < 0) throw new Error("bad shard");
    return { shard: j.s, key: j.k ?? undefined };
  } catch {
    throw new UsageQueryInvalidError("cursor is not one this API returned");
  }
}
