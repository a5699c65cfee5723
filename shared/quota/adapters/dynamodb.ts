import { ConditionalCheckFailedException } from "@aws-sdk/client-dynamodb";
import {
  BatchGetCommand,
  GetCommand,
  PutCommand,
  QueryCommand,
  UpdateCommand,
  type DynamoDBDocumentClient,
  type UpdateCommandInput,
  type UpdateCommandOutput,
} from "@aws-sdk/lib-dynamodb";
import { keys } from "../../storage/keys";
import { USAGE_TABLE } from "../../storage/table";
import { batchGetAll } from "../../storage/adapters/dynamodb";
import { setBounded } from "../../util/bounded";

/** Most keys one BatchGetItem may ask for. */
const BATCH_GET_MAX = 100;
import type { UsageCounters } from "../../usage/model";
import { minuteCountersOf, type MinuteCounters } from "../../usage/minute-window";
import { nextMonthStart } from "../../usage/periods";
import { monthOf, previousMonth } from "../evaluate";
import { ENFORCEMENT_DETAIL_TYPES, enforcementEventDetailSchema } from "../events";
import type { EnforcementState, OutboxEntry, RateState, Restriction, TenantConfig, Transition } from "../model";
import type { DecisionSnapshot, EnforcementLogEntry, EvaluationQuery, EvaluationSnapshot, Page, PendingOutboxIndex, QuotaStore } from "../ports";

type Item = Record<string, unknown>;

export interface DynamoQuotaStoreOptions {
  /** Days an enforcement log entry is kept (TTL). */
  logTtlDays?: number;
  /** Days after its month ends that an enforcement state item is kept (TTL). */
  stateTtlDays?: number;
  /**
   * Tenants (per month) whose config and enforcement states an evaluation holds between batches
   * (see {@link DynamoQuotaStore.loadManyForEvaluation}); 0 holds none. Default 10,000.
   */
  heldInputs?: number;
}

/** Change mark attributes of a tenant's month item: begun and ended changes of its quota inputs. */
const MARK_BEGUN = "qb";
const MARK_ENDED = "qd";

/** A tenant's quota inputs as read after its month item showed change mark `mark`. */
interface HeldInputs {
  mark: number;
  config?: TenantConfig;
  state?: EnforcementState;
  prevState?: EnforcementState;
}

/**
 * A change of a tenant-month's quota inputs made by this process, begun right after mark `from`
 * closed (nobody else's change open then), with the config and last month's state held under
 * `from`. If it stays the only change until its end (`ended`), what it leaves is known here: the
 * config and last month's state as they were, and this month's state as the write that cleared
 * its last outbox entry returned it.
 */
interface OwnChange {
  from: number;
  inputs: Omit<HeldInputs, "mark" | "state">;
  ended?: number;
  /** A write of this change touched another month's state (last month's): not held. */
  spoiled?: boolean;
}

/** The tenant's month aggregate item: it carries the change mark. */
const monthItemKey = (tenantId: string, month: string) => keys.aggregate(tenantId, { kind: "tenant", granularity: "month", period: month });
/** Key of a tenant-month in the per-process memories (held inputs, own changes). */
const tenantMonth = (tenantId: string, month: string) => `${tenantId}|${month}`;

/** The month item's change mark, or undefined while a change is under way (or one was cut short). */
function closedMark(monthItem: Record<string, unknown>): number | undefined {
  const begun = typeof monthItem[MARK_BEGUN] === "number" ? (monthItem[MARK_BEGUN] as number) : 0;
  const ended = typeof monthItem[MARK_ENDED] === "number" ? (monthItem[MARK_ENDED] as number) : 0;
  return begun === ended ? begun : undefined;
}

const hasPending = (s: EnforcementState | undefined) => s !== undefined && Object.keys(s.outbox).length > 0;

const EPOCH = new Date(0).toISOString();
/** Adds the transition's outbox entry and lists the item on the sweeper's sparse index. */
const OUTBOX_SET = "outbox.#id = :entry, #gpk = :gpk, #gsk = :gsk";

/**
 * DynamoDB adapter of {@link QuotaStore}: enforcement state items, tenant config, enforcement log;
 * and of {@link PendingOutboxIndex}: the sparse `OUTBOX#<shard>` partitions of gsi1.
 */
export class DynamoQuotaStore implements QuotaStore, PendingOutboxIndex {
  private readonly logTtlDays: number;
  private readonly stateTtlDays: number;
  private readonly heldMax: number;
  /** Quota inputs held between batches, by `tenant|month` (insertion order: oldest first). */
  private readonly held = new Map<string, HeldInputs>();
  /** This process's own changes under way or just ended, by `tenant|month` (see {@link OwnChange}). */
  private readonly own = new Map<string, OwnChange>();
  /** Outbox partitions of gsi1 (`OUTBOX#<shard>`). */
  readonly shards: number = USAGE_TABLE.outboxShards;

  constructor(
    private readonly doc: DynamoDBDocumentClient,
    private readonly tableName: string,
    options: DynamoQuotaStoreOptions = {},
  ) {
    this.logTtlDays = options.logTtlDays ?? 90;
    this.stateTtlDays = options.stateTtlDays ?? 400;
    this.heldMax = options.heldInputs ?? 10_000;
  }

  async changeBegins(tenantId: string, months: readonly string[]): Promise<boolean[]> {
    return Promise.all(months.map(async (month) => {
      const res = await this.updateIf({
        Key: monthItemKey(tenantId, month),
        // only an existing month item: nobody holds inputs checked against a month item that does not exist
        ConditionExpression: "attribute_exists(pk)",
        UpdateExpression: "ADD #b :one",
        ExpressionAttributeNames: { "#b": MARK_BEGUN },
        ExpressionAttributeValues: { ":one": 1 },
        // the counter pair in the write's own response (no read): was the mark closed just before?
        ReturnValues: "ALL_NEW",
      });
      const key = tenantMonth(tenantId, month);
      this.own.delete(key);
      const after = res?.Attributes;
      if (after && months.length === 1) {
        const from = Number(after[MARK_BEGUN]) - 1;
        const h = this.held.get(key);
        // Nobody else's change was open, and what is held here is what that closed mark stood for.
        if (from === (typeof after[MARK_ENDED] === "number" ? after[MARK_ENDED] : 0) && h?.mark === from) {
          setBounded(this.own, key, { from, inputs: { config: h.config, prevState: h.prevState } }, this.heldMax);
        }
      }
      return res !== undefined;
    }));
  }

  async changeEnds(tenantId: string, months: readonly string[], begun: readonly boolean[]): Promise<void> {
    await Promise.all(months.map(async (month, i) => {
      const res = await this.updateIf({
        Key: monthItemKey(tenantId, month),
        ConditionExpression: "attribute_exists(pk)",
        // Without a begin mark (no item then), the item may have been created, and inputs read and
        // held, during the change: both counters move, so what was held no longer matches.
        UpdateExpression: begun[i] ? "ADD #d :one" : "ADD #b :one, #d :one",
        ExpressionAttributeNames: begun[i] ? { "#d": MARK_ENDED } : { "#b": MARK_BEGUN, "#d": MARK_ENDED },
        ExpressionAttributeValues: { ":one": 1 },
        ReturnValues: "ALL_NEW",
      });
      const key = tenantMonth(tenantId, month);
      const own = this.own.get(key);
      if (!own) return;
      const mark = res?.Attributes ? closedMark(res.Attributes) : undefined;
      // Ours was the only change since `from`: its own begin and end, nobody else's.
      if (begun[i] && !own.spoiled && mark === own.from + 1) own.ended = mark;
      else this.own.delete(key);
    }));
  }

  async loadForEvaluation(q: EvaluationQuery): Promise<EvaluationSnapshot> {
    const out = await this.loadManyForEvaluation([q]);
    return out.get(q.tenantId)!;
  }

  /**
   * Every tenant's evaluation keys in shared BatchGetItems of up to 100 keys (not one request per
   * tenant). Consistent reads: the ingest's writes have just landed; a stale read would delay a
   * crossing to the next batch (or past the end of the month). The minute windows are
   * attributes of the tenant-hour items (shared/usage/minute-window.ts): one key per hour asked.
   *
   * Inputs held between batches: when the caller passes the month item its write returned
   * (`known.month`), a tenant's config and this and last month's states are read only if what this
   * store holds for the tenant and month was read under another change mark (`qb`/`qd` on that
   * month item; every change of them is bracketed by `changeBegins`/`changeEnds`). They are held
   * only under a closed mark, and only without pending outbox entries (a pending entry is
   * retried from a fresh read, or by the sweeper).
   */
  async loadManyForEvaluation(qs: readonly EvaluationQuery[]): Promise<Map<string, EvaluationSnapshot>> {
    const plan = qs.map((q) => {
      const mark = q.known?.month ? closedMark(q.known.month) : undefined;
      const heldKey = tenantMonth(q.tenantId, q.month);
      const h = mark === undefined ? undefined : this.held.get(heldKey);
      const held = h && h.mark === mark ? h : undefined;
      const k = this.keysOf(q);
      // A minute the batch did not write (its hour item not among `known.hours`, e.g. the minute of
      // `now` just after an hour starts) matters only to lift a throttle: the batch that wrote to it
      // evaluates its crossings. With inputs held and no throttle active, it is not read.
      return { q, mark, heldKey, held, ...k, hours: held && !held.state?.rate?.active ? [] : k.hours };
    });
    // items the caller just wrote (and holds) are not read again, nor inputs held under the same mark
    const all = plan.flatMap((p) => [...(p.held ? [] : [p.config, p.state, p.prevState]), ...(p.q.known?.month ? [] : [p.aggregate]), ...p.hours]);
    const items = new Map<string, Item>();
    for (let i = 0; i < all.length; i += BATCH_GET_MAX) {
      for (const it of await batchGetAll(this.doc, { TableName: this.tableName, Keys: all.slice(i, i + BATCH_GET_MAX), ConsistentRead: true })) {
        items.set(`${String(it.pk)}|${String(it.sk)}`, it);
      }
    }
    const at = (k: { pk: string; sk: string }) => items.get(`${k.pk}|${k.sk}`);
    const out = new Map<string, EvaluationSnapshot>();
    for (const p of plan) {
      const minuteTotals: Record<string, MinuteCounters> = {};
      for (const m of p.q.minutes) {
        const hour = m.slice(0, 13);
        const c = minuteCountersOf(p.q.known?.hours?.[hour] ?? at(keys.aggregate(p.q.tenantId, { kind: "tenant", granularity: "hour", period: hour })), m);
        if (c) minuteTotals[m] = c;
      }
      const inputs = p.held ?? { config: configFromItem(at(p.config)), state: stateFromItem(at(p.state)), prevState: stateFromItem(at(p.prevState)) };
      if (!p.held && p.mark !== undefined && !hasPending(inputs.state) && !hasPending(inputs.prevState)) setBounded(this.held, p.heldKey, { mark: p.mark, ...inputs }, this.heldMax);
      out.set(p.q.tenantId, {
        config: structuredClone(inputs.config),
        monthTotals: (p.q.known?.month ?? at(p.aggregate)) as unknown as UsageCounters | undefined,
        minuteTotals,
        state: structuredClone(inputs.state),
        prevState: structuredClone(inputs.prevState),
      });
    }
    return out;
  }

  private keysOf(q: EvaluationQuery) {
    return {
      config: keys.config(q.tenantId),
      aggregate: monthItemKey(q.tenantId, q.month),
      state: keys.enforcement(q.tenantId, q.month),
      prevState: keys.enforcement(q.tenantId, q.prevMonth),
      hours: [...new Set(q.minutes.map((m) => m.slice(0, 13)))].filter((hour) => !q.known?.hours?.[hour]).map((hour) => keys.aggregate(q.tenantId, { kind: "tenant", granularity: "hour", period: hour })),
    };
  }

  async loadForDecision(q: { tenantId: string; month: string; prevMonth: string }): Promise<DecisionSnapshot> {
    const { tenantId } = q;
    const aggregate = monthItemKey(tenantId, q.month);
    // One round trip, one partition; eventually consistent (the answer is cached 5 s anyway).
    const items = await this.batchGet(
      [keys.config(tenantId), aggregate, keys.enforcement(tenantId, q.month), keys.enforcement(tenantId, q.prevMonth)],
      false,
    );
    return {
      config: configFromItem(items.get(keys.config(tenantId).sk)),
      monthTotals: items.get(aggregate.sk) as unknown as UsageCounters | undefined,
      state: stateFromItem(items.get(keys.enforcement(tenantId, q.month).sk)),
      prevState: stateFromItem(items.get(keys.enforcement(tenantId, q.prevMonth).sk)),
    };
  }

  /** All keys share the tenant's partition, so items are told apart by sort key. */
  private async batchGet(keyList: { pk: string; sk: string }[], consistent: boolean): Promise<Map<string, Item>> {
    const out = new Map<string, Item>();
    let pending: Record<string, unknown>[] | undefined = keyList;
    for (let attempt = 0; pending && pending.length > 0; attempt++) {
      if (attempt > 0) await new Promise((r) => setTimeout(r, Math.min(1000, 25 * 2 ** attempt)));
      if (attempt > 8) throw new Error(`BatchGetItem left ${pending.length} keys unprocessed`);
      const res = await this.doc.send(
        new BatchGetCommand({ RequestItems: { [this.tableName]: { Keys: pending, ConsistentRead: consistent } } }),
      );
      for (const it of res.Responses?.[this.tableName] ?? []) out.set(it.sk as string, it);
      pending = res.UnprocessedKeys?.[this.tableName]?.Keys as Record<string, unknown>[] | undefined;
    }
    return out;
  }

  async apply(tenantId: string, t: Transition): Promise<"applied" | "conflict"> {
    // last month's state is held as it was when the change began: a change that writes it is not held
    this.spoilOwn(tenantId, [previousMonth(t.period), monthOf(nextMonthStart(t.period))]);
    const key = keys.enforcement(tenantId, t.period);
    // Creates the item with empty maps if missing: nested SETs below need their parent map.
    // Idempotent (if_not_exists everywhere), so no condition is needed.
    await this.doc.send(
      new UpdateCommand({
        TableName: this.tableName,
        Key: key,
        UpdateExpression:
          "SET crossed = if_not_exists(crossed, :empty), outbox = if_not_exists(outbox, :empty), tenantId = if_not_exists(tenantId, :tenant), #period = if_not_exists(#period, :period), expiresAt = if_not_exists(expiresAt, :exp)",
        ExpressionAttributeNames: { "#period": "period" },
        ExpressionAttributeValues: { ":empty": {}, ":tenant": tenantId, ":period": t.period, ":exp": this.stateExpiry(t.period) },
      }),
    );
    // Every transition adds an outbox entry and (re)sets the sparse index keys in the same write,
    // so an item with a pending entry is always listed for the sweeper (see unindex for removal).
    const index = keys.outboxIndex(tenantId, t.period);
    const names: Record<string, string> = { "#id": t.entry.enforcementId, "#gpk": USAGE_TABLE.gsi1.partitionKey, "#gsk": USAGE_TABLE.gsi1.sortKey };
    const values: Record<string, unknown> = { ":entry": entryToItem(t.entry), ":gpk": index.gsi1pk, ":gsk": index.gsi1sk };
    let update: string;
    let condition: string;
    switch (t.kind) {
      case "cross":
        names["#k"] = t.key;
        values[":at"] = t.entry.detail.occurredAt;
        update = `SET crossed.#k = :at, ${OUTBOX_SET}`;
        // A threshold is crossed once per period and quota: a racing evaluation or a
        // redelivered batch finds it recorded and publishes nothing.
        condition = "attribute_not_exists(crossed.#k)";
        break;
      case "restrict":
        names["#k"] = t.key;
        values[":at"] = t.entry.detail.occurredAt;
        values[":r"] = t.restriction;
        update = `SET crossed.#k = :at, restriction = :r, ${OUTBOX_SET}`;
        // Once per threshold, and never a second restriction on top of an active one.
        condition = "attribute_not_exists(crossed.#k) AND attribute_not_exists(restriction)";
        break;
      case "release":
        values[":rid"] = t.restrictionId;
        values[":rel"] = { enforcementId: t.entry.enforcementId, at: t.entry.detail.occurredAt, restrictionId: t.restrictionId };
        update = `SET lastRelease = :rel, ${OUTBOX_SET} REMOVE restriction`;
        // Only the restriction we read is lifted, and only once (a racing release finds it gone).
        condition = "restriction.enforcementId = :rid";
        break;
      case "rate-throttle":
        names["#m"] = "minute";
        values[":m"] = t.minute;
        if (t.newWindow) {
          values[":rate"] = t.rate;
          update = `SET rate = :rate, ${OUTBOX_SET}`;
          // Minutes only move forward: an older window can never overwrite a newer one, and a
          // second throttle of the same window takes the branch below.
          condition = "attribute_not_exists(rate) OR rate.#m < :m";
        } else {
          names["#keys"] = "keys";
          values[":kl"] = [t.limit];
          values[":k"] = t.limit;
          update = `SET rate.#keys = list_append(rate.#keys, :kl), ${OUTBOX_SET}`;
          // Once per limit and minute.
          condition = "rate.#m = :m AND NOT contains(rate.#keys, :k)";
        }
        break;
      case "rate-release":
        names["#m"] = "minute";
        values[":m"] = t.minute;
        values[":t"] = true;
        values[":f"] = false;
        values[":at"] = t.entry.detail.occurredAt;
        update = `SET rate.active = :f, rate.restoredAt = :at, ${OUTBOX_SET}`;
        // Once per throttled minute; a newer throttle (other minute) is not lifted by this.
        condition = "rate.#m = :m AND rate.active = :t";
        break;
    }
    const res = await this.updateIf({
      Key: key,
      UpdateExpression: update,
      ConditionExpression: condition,
      ExpressionAttributeNames: names,
      ExpressionAttributeValues: values,
    });
    return res ? "applied" : "conflict";
  }

  async claim(tenantId: string, period: string, enforcementId: string, seenLeaseUntil: string, leaseUntil: string): Promise<boolean> {
    const res = await this.updateIf({
      Key: keys.enforcement(tenantId, period),
      UpdateExpression: "SET outbox.#id.leaseUntil = :new",
      // Compare-and-set on the lease we saw expire: of several evaluations retrying the
      // same pending entry, one publishes it.
      ConditionExpression: "outbox.#id.leaseUntil = :seen",
      ExpressionAttributeNames: { "#id": enforcementId },
      ExpressionAttributeValues: { ":new": leaseUntil, ":seen": seenLeaseUntil },
    });
    return res !== undefined;
  }

  async release(tenantId: string, period: string, enforcementId: string, leaseUntil: string): Promise<void> {
    await this.updateIf({
      Key: keys.enforcement(tenantId, period),
      UpdateExpression: "SET outbox.#id.leaseUntil = :zero",
      // Only our own lease: one taken over meanwhile by another evaluation stays its own.
      ConditionExpression: "outbox.#id.leaseUntil = :mine",
      ExpressionAttributeNames: { "#id": enforcementId },
      ExpressionAttributeValues: { ":zero": EPOCH, ":mine": leaseUntil },
    });
  }

  async markPublished(tenantId: string, period: string, entry: OutboxEntry, publishedAt: string): Promise<void> {
    const d = entry.detail;
    const day = d.occurredAt.slice(0, 10);
    // Keyed by the event's own time and identity: a republished event rewrites the same entry.
    await this.doc.send(
      new PutCommand({
        TableName: this.tableName,
        Item: {
          ...keys.enforcementLog(day, d.occurredAt, tenantId, `${d.action}:${d.threshold}:${d.period}`),
          enforcementId: d.enforcementId,
          detailType: ENFORCEMENT_DETAIL_TYPES[d.action],
          detail: JSON.stringify(d),
          publishedAt,
          expiresAt: Math.floor(Date.parse(d.occurredAt) / 1000) + this.logTtlDays * 86_400,
        },
      }),
    );
    // ALL_NEW comes back in the write's own response (no extra request, no read capacity):
    // it tells whether this removed the last pending entry.
    const res = await this.updateIf({
      Key: keys.enforcement(tenantId, period),
      UpdateExpression: "REMOVE outbox.#id",
      // Never resurrect a state item TTL has deleted as a key-only stub.
      ConditionExpression: "attribute_exists(pk)",
      ExpressionAttributeNames: { "#id": entry.enforcementId },
      ReturnValues: "ALL_NEW",
    });
    const after = res?.Attributes;
    const empty = after !== undefined && Object.keys((after.outbox as Item | undefined) ?? {}).length === 0;
    // This process's own change, the only one since its mark, has nothing pending any more: its
    // inputs are held under the mark its end left, as this write returned the state.
    const heldKey = tenantMonth(tenantId, period);
    const own = this.own.get(heldKey);
    if (empty && own?.ended !== undefined) {
      this.own.delete(heldKey);
      setBounded(this.held, heldKey, { mark: own.ended, ...own.inputs, state: stateFromItem(after) }, this.heldMax);
    }
    // The last pending entry is gone: take the item off the sweeper's index. A crash right here
    // leaves it listed with an empty outbox; the sweeper unindexes such items itself.
    if (empty && after[USAGE_TABLE.gsi1.partitionKey] !== undefined) {
      await this.unindex(tenantId, period);
    }
  }

  async listPending(shard: number, limit: number, cursor?: string): Promise<Page<EnforcementState>> {
    // The sparse OUTBOX#<shard> partition of gsi1 holds only ENFORCE# items with pending entries
    // (plus, briefly, ones whose last entry was just published). Eventually consistent: every
    // decision on what is read here goes through claim's compare-and-set.
    const res = await this.doc.send(
      new QueryCommand({
        TableName: this.tableName,
        IndexName: USAGE_TABLE.gsi1.name,
        KeyConditionExpression: "#gpk = :p",
        ExpressionAttributeNames: { "#gpk": USAGE_TABLE.gsi1.partitionKey },
        ExpressionAttributeValues: { ":p": keys.outboxPartition(shard) },
        Limit: limit,
        ExclusiveStartKey: decodeCursor(cursor),
      }),
    );
    return {
      items: (res.Items ?? []).map((it) => stateFromItem(it)).filter((st): st is EnforcementState => st !== undefined),
      cursor: encodeCursor(res.LastEvaluatedKey),
    };
  }

  async unindex(tenantId: string, period: string): Promise<void> {
    await this.updateIf({
      Key: keys.enforcement(tenantId, period),
      UpdateExpression: "REMOVE #gpk, #gsk",
      // Only while the outbox is empty: a transition recorded since we looked added an entry
      // (and set the keys again), and must stay listed. Also no stub for a TTL-deleted item.
      ConditionExpression: "attribute_exists(pk) AND size(outbox) = :zero",
      ExpressionAttributeNames: { "#gpk": USAGE_TABLE.gsi1.partitionKey, "#gsk": USAGE_TABLE.gsi1.sortKey },
      ExpressionAttributeValues: { ":zero": 0 },
    });
  }

  async getConfig(tenantId: string): Promise<TenantConfig | undefined> {
    const res = await this.doc.send(new GetCommand({ TableName: this.tableName, Key: keys.config(tenantId) }));
    return configFromItem(res.Item);
  }

  async putConfig(config: TenantConfig): Promise<void> {
    // the config is held as it was when a change began: a change that writes it is not held
    this.spoilOwn(config.tenantId);
    // Last writer wins: the operator's latest PUT is the config.
    await this.doc.send(new PutCommand({ TableName: this.tableName, Item: { ...keys.config(config.tenantId), ...config } }));
  }

  async listLog(day: string, limit: number, cursor?: string): Promise<Page<EnforcementLogEntry>> {
    const res = await this.doc.send(
      new QueryCommand({
        TableName: this.tableName,
        KeyConditionExpression: "pk = :pk",
        ExpressionAttributeValues: { ":pk": keys.enforcementLog(day, "", "", "").pk },
        Limit: limit,
        ExclusiveStartKey: decodeCursor(cursor),
      }),
    );
    return {
      items: (res.Items ?? []).map((it) => ({
        day,
        detailType: it.detailType as string,
        detail: enforcementEventDetailSchema.parse(JSON.parse(it.detail as string)),
        publishedAt: it.publishedAt as string,
      })),
      cursor: encodeCursor(res.LastEvaluatedKey),
    };
  }

  /**
   * An UpdateItem whose ConditionExpression guards a race: the response, or undefined when the
   * condition failed (another writer got there first; each caller says what that means).
   */
  private async updateIf(input: Omit<UpdateCommandInput, "TableName">): Promise<UpdateCommandOutput | undefined> {
    try {
      return await this.doc.send(new UpdateCommand({ TableName: this.tableName, ...input }));
    } catch (error) {
      if (error instanceof ConditionalCheckFailedException) return undefined;
      throw error;
    }
  }

  /** Own changes of `tenantId` (in `months`, or in any month) wrote what they hold as unchanged: they are not held. */
  private spoilOwn(tenantId: string, months?: readonly string[]): void {
    for (const [key, own] of this.own) {
      if (months ? months.some((m) => key === tenantMonth(tenantId, m)) : key.startsWith(tenantMonth(tenantId, ""))) own.spoiled = true;
    }
  }

  private stateExpiry(period: string): number {
    return Math.floor(nextMonthStart(period.slice(0, 7)).getTime() / 1000) + this.stateTtlDays * 86_400;
  }
}

/** Page cursor: the query's LastEvaluatedKey as base64url JSON (opaque to API callers). */
function encodeCursor(key: Item | undefined): string | undefined {
  return key ? Buffer.from(JSON.stringify(key)).toString("base64url") : undefined;
}

function decodeCursor(cursor: string | undefined): Item | undefined {
  return cursor ? (JSON.parse(Buffer.from(cursor, "base64url").toString("utf8")) as Item) : undefined;
}

function entryToItem(e: OutboxEntry): Item {
  // The detail is stored as JSON text so it comes back byte-for-byte for a republish.
  return { enforcementId: e.enforcementId, leaseUntil: e.leaseUntil, detail: JSON.stringify(e.detail) };
}

function stateFromItem(it: Item | undefined): EnforcementState | undefined {
  if (!it) return undefined;
  const outbox: Record<string, OutboxEntry> = {};
  for (const [id, raw] of Object.entries((it.outbox as Record<string, Item> | undefined) ?? {})) {
    outbox[id] = {
      enforcementId: raw.enforcementId as string,
      leaseUntil: raw.leaseUntil as string,
      detail: enforcementEventDetailSchema.parse(JSON.parse(raw.detail as string)),
    };
  }
  return {
    tenantId: it.tenantId as string,
    period: it.period as string,
    crossed: (it.crossed as Record<string, string> | undefined) ?? {},
    restriction: it.restriction as Restriction | undefined,
    rate: it.rate as RateState | undefined,
    outbox,
  };
}

function configFromItem(it: Item | undefined): TenantConfig | undefined {
  if (!it) return undefined;
  const { pk: _pk, sk: _sk, ...rest } = it;
  return rest as unknown as TenantConfig;
}
