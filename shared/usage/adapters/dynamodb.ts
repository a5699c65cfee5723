import {
  ConditionalCheckFailedException,
  InternalServerError,
  ProvisionedThroughputExceededException,
  RequestLimitExceeded,
  ThrottlingException,
  TransactionCanceledException,
  TransactionInProgressException,
} from "@aws-sdk/client-dynamodb";
import { unmarshall } from "@aws-sdk/util-dynamodb";
import {
  BatchExecuteStatementCommand,
  GetCommand,
  PutCommand,
  QueryCommand,
  TransactWriteCommand,
  UpdateCommand,
  type DynamoDBDocumentClient,
} from "@aws-sdk/lib-dynamodb";
import { endpointKeys, keys } from "../../storage/keys";
import { setBounded } from "../../util/bounded";
import { addAndSetUpdate, batchGetAll, queryAll } from "../../storage/adapters/dynamodb";
import { USAGE_TABLE } from "../../storage/table";
import { countedAt, targetId, targetsOf, type AggregateDelta } from "../coalesce";
import { UsageQueryInvalidError } from "../errors";
import type { InvocationSource } from "../../events/invocation";
import { COUNTER_NAMES, SOURCE_COUNT_ATTRIBUTES, SOURCE_COUNT_NAMES, tenantDayTarget, zeroCounters, zeroSourceCounts, type AggregateTarget, type PricedEvent, type SourceCounts, type UsageCounters } from "../model";
import type { UnpricedEntry, RepriceStore } from "../reprice";
import type { Retryable } from "../retry";
import { LEDGER_BATCH_MAX, type AggregateRow, type AggregateWrite, type Claim, type EpochState, type HighWaterMarks, type LedgerHolder, type LedgerWrite, type MarkerState, type CorrectResult, type CountedEstimate, type Page, type QuarantineRecord, type UsageReader, type UsageStore } from "../ports";
import { contentFreeMessage, keepIds, type RecordShape } from "../quarantine";
import { MINUTE_KEEP, minutesPresent, minuteWindowUpdate } from "../minute-window";
import { reachedBy } from "../epochs";

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
  quarantineTtlDays?: number;
  clock?: () => Date;
}

/** Usage store on the single table: owns the item shapes of ledger, aggregates and quarantine. */
export class DynamoUsageStore implements UsageStore, UsageReader, RepriceStore {
  private readonly clock: () => Date;
  /**
   * Aggregate items (`pk|sk`) that a recent write of this process returned with their descriptive
   * attributes, with when: their next updates set only the counters, `updatedAt` and the mark.
   */
  private readonly described = new Map<string, Seen>();

  constructor(
    private readonly doc: DynamoDBDocumentClient,
    private readonly tableName: string,
    private readonly opts: DynamoUsageStoreOptions,
  ) {
    this.clock = opts.clock ?? (() => new Date());
  }

  async putLedger(e: PricedEvent, claim: Claim, now: Date): Promise<LedgerWrite> {
    // The dedupe guard: one entry per event, ever (until its TTL, beyond the accepted event age).
    if (await this.conditionalPut(this.ledgerItem(e, claim, now), "attribute_not_exists(pk)")) return { kind: "created" };
    return { kind: "exists", holder: await this.holderOf(e) };
  }

  async insertLedgers(entries: readonly { event: PricedEvent; claim: Claim }[], now: Date): Promise<(LedgerWrite | { kind: "error"; error: string })[]> {
    if (entries.length > LEDGER_BATCH_MAX) throw new RangeError(`at most ${LEDGER_BATCH_MAX} ledger entries per request, got ${entries.length}`);
    const events = entries.map((x) => x.event);
    // PartiQL INSERT fails with DuplicateItem when the key exists: a conditional put, 25 per
    // request, billed like PutItem (1 WCU per entry), unlike a transactional put (2 WCU).
    const statements = entries.map(({ event: e, claim }) => {
      const item = this.ledgerItem(e, claim, now);
      const names = Object.keys(item);
      return { Statement: `INSERT INTO "${this.tableName}" VALUE {${names.map((n) => `'${n}': ?`).join(", ")}}`, Parameters: names.map((n) => item[n]) };
    });
    const out = await this.doc.send(new BatchExecuteStatementCommand({ Statements: statements }));
    const responses = out.Responses ?? [];
    // The holders of the entries that exist, in one strongly consistent read.
    const existing = events.filter((_, i) => responses[i]?.Error?.Code === "DuplicateItem");
    const items = existing.length
      ? await batchGetAll(this.doc, { TableName: this.tableName, Keys: existing.map((e) => keys.ledger(e.event.tenantId, e.event.eventId)), ConsistentRead: true })
      : [];
    const byPk = new Map(items.map((i) => [String(i.pk), i]));
    return events.map((e, i): LedgerWrite | { kind: "error"; error: string } => {
      const error = responses[i]?.Error;
      if (!responses[i]) return { kind: "error", error: "no response for this statement" };
      if (!error) return { kind: "created" };
      if (error.Code !== "DuplicateItem") return { kind: "error", error: `${error.Code}: ${error.Message ?? ""}` };
      return { kind: "exists", holder: holderIn(byPk.get(keys.ledger(e.event.tenantId, e.event.eventId).pk) ?? {}) };
    });
  }

  private async holderOf(e: PricedEvent): Promise<LedgerHolder> {
    const key = keys.ledger(e.event.tenantId, e.event.eventId);
    const out = await this.doc.send(new GetCommand({ TableName: this.tableName, Key: key, ConsistentRead: true }));
    return holderIn(out.Item ?? {});
  }

  async correct(e: PricedEvent, held: Claim, deltas: readonly AggregateDelta[], now: Date): Promise<CorrectResult> {
    const { tenantId, eventId } = e.event;
    return this.transactOnLedger(
      {
        Update: {
          TableName: this.tableName,
          Key: keys.ledger(tenantId, eventId),
          UpdateExpression:
            "SET estimated = :false, counters = :counters, inputTokens = :in, outputTokens = :out, costNanoUsd = :cost, correctedAt = :now" +
            // an exact log record replacing a wrapper's estimate: the call was seen by both paths
            (e.crossSource ? ", crossSource = :cross" : ""),
          // Once: only the committed estimate of this holder is replaced; a second exact
          // delivery finds `estimated = false` and is a plain duplicate.
          ConditionExpression: "#run = :run AND #group = :group AND estimated = :true",
          ExpressionAttributeNames: { "#run": "run", "#group": "group" },
          ExpressionAttributeValues: {
            ":false": false,
            ":true": true,
            ":counters": { ...e.counters },
            ":in": e.counters.inputTokens,
            ":out": e.counters.outputTokens,
            ":cost": e.counters.costNanoUsd,
            ":now": now.toISOString(),
            ":run": held.run,
            ":group": held.group,
            ...(e.crossSource ? { ":cross": e.crossSource } : {}),
          },
        },
      },
      deltas,
      now,
    );
  }

  async markCrossSource(tenantId: string, eventId: string, source: InvocationSource, now: Date): Promise<boolean> {
    return this.conditionalUpdate({
      TableName: this.tableName,
      Key: keys.ledger(tenantId, eventId),
      UpdateExpression: "SET crossSource = :src, crossSourceAt = :now",
      // Once per call: a redelivery of the same report, or a third report, finds the mark.
      // Only on an entry another path claimed (an entry without `source` predates sources).
      ConditionExpression: "attribute_exists(pk) AND attribute_exists(#source) AND #source <> :src AND attribute_not_exists(crossSource)",
      ExpressionAttributeNames: { "#source": "source" },
      ExpressionAttributeValues: { ":src": source, ":now": now.toISOString() },
    });
  }

  async addSourceCounts(tenantId: string, day: string, counts: SourceCounts, now: Date): Promise<void> {
    const target = tenantDayTarget(tenantId, day);
    const adds: Record<string, number> = {};
    for (const c of SOURCE_COUNT_NAMES) if (counts[c] !== 0) adds[SOURCE_COUNT_ATTRIBUTES[c]] = counts[c];
    if (Object.keys(adds).length === 0) return;
    const { Update } = addAndSetUpdate(this.tableName, targetKey(target), adds, { tenantId, updatedAt: now.toISOString(), ...describeTarget(target) });
    await this.doc.send(new UpdateCommand(Update));
  }

  /** A conditional update of a ledger entry plus aggregate deltas, at once; the condition failing means done before. */
  private async transactOnLedger(ledgerUpdate: TransactItem, deltas: readonly AggregateDelta[], now: Date): Promise<CorrectResult> {
    const out = await this.transact([ledgerUpdate, ...deltas.map((d) => this.aggregateUpdate(d, now))]);
    if (out.kind === "committed") return { kind: "corrected" };
    return out.kind === "first-condition-failed" ? { kind: "already" } : out;
  }

  async moveLedger(e: PricedEvent, from: Claim, to: Claim, now: Date, prev?: readonly Claim[]): Promise<boolean> {
    const item = this.ledgerItem(e, to, now);
    if (prev?.length) item.prev = prev.map((c) => ({ run: c.run, group: c.group }));
    return this.conditionalPut(item, "#run = :run AND #group = :group", {
      names: { "#run": "run", "#group": "group" },
      values: { ":run": from.run, ":group": from.group },
    });
  }

  async marker(claim: Claim): Promise<MarkerState | undefined> {
    const out = await this.doc.send(
      new GetCommand({ TableName: this.tableName, Key: keys.commitMarker(claim.run, claim.group), ConsistentRead: true }),
    );
    return out.Item ? (out.Item.state as MarkerState) : undefined;
  }

  async abort(claim: Claim, now: Date): Promise<MarkerState> {
    if (await this.conditionalPut(this.markerItem(claim, "aborted", now), "attribute_not_exists(pk)")) return "aborted";
    const state = await this.marker(claim);
    if (!state) throw new Error(`marker ${claim.run}#${claim.group} exists but could not be read`);
    return state;
  }

  // ---- high-water commits (see shared/usage/README.md) ----

  async startEpoch(epoch: string, leaseUntil: number, now: Date): Promise<void> {
    const created = await this.conditionalPut(
      {
        ...keys.epoch(epoch),
        type: "ingest-epoch",
        done: 0,
        leaseUntil,
        startedAt: now.toISOString(),
        // read while a ledger entry names it: outlives the ledger
        expiresAt: ttl(now, this.opts.ledgerTtlDays + 30),
      },
      "attribute_not_exists(pk)",
    );
    if (!created) throw new Error(`epoch ${epoch} exists already`);
  }

  async extendLease(epoch: string, leaseUntil: number, now: Date): Promise<boolean> {
    return this.conditionalUpdate({
      TableName: this.tableName,
      Key: keys.epoch(epoch),
      UpdateExpression: "SET leaseUntil = :lease",
      // only a lease still running: once it passed, a taker-over may be reading the marks
      ConditionExpression: "attribute_exists(pk) AND leaseUntil > :now AND leaseUntil < :lease",
      ExpressionAttributeValues: { ":lease": leaseUntil, ":now": now.getTime() },
    });
  }

  async finishRun(epoch: string, run: number, leaseUntil: number, now: Date): Promise<void> {
    try {
      await this.doc.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: keys.epoch(epoch),
          UpdateExpression: "SET done = :run, leaseUntil = :lease, finishedAt = :now",
          // only upwards: a retry after a lost response finds it done
          ConditionExpression: "attribute_exists(pk) AND done < :run",
          ExpressionAttributeValues: { ":run": run, ":lease": leaseUntil, ":now": now.toISOString() },
        }),
      );
    } catch (error) {
      if (!(error instanceof ConditionalCheckFailedException)) throw error;
      const s = (await this.epochStates([epoch])).get(epoch);
      if (!s || s.done < run) throw new Error(`epoch ${epoch} has no record to finish run ${run} on`);
    }
  }

  async epochStates(epochs: readonly string[]): Promise<Map<string, EpochState>> {
    const out = new Map<string, EpochState>();
    for (let i = 0; i < epochs.length; i += 100) {
      const items = await batchGetAll(this.doc, { TableName: this.tableName, Keys: epochs.slice(i, i + 100).map((e) => keys.epoch(e)), ConsistentRead: true });
      for (const it of items) out.set(String(it.pk).slice("EPOCH#".length), { done: Number(it.done ?? 0), leaseUntil: Number(it.leaseUntil ?? 0) });
    }
    return out;
  }

  async addAggregate(d: AggregateDelta, mark: { epoch: string; run: number }, clean: readonly { epoch: string; upTo: number }[], now: Date, opts: { item?: boolean } = {}): Promise<AggregateWrite> {
    const own = markAttribute(mark.epoch);
    const key = targetKey(d.target);
    const itemKey = `${key.pk}|${key.sk}`;
    const s = this.described.get(itemKey);
    const seen = s !== undefined && now.getTime() - s.at < DESCRIBED_FOR_MS ? s : undefined;
    const { Update } = this.aggregateUpdate(d, now, { [own]: mark.run }, clean.map((c) => markAttribute(c.epoch)), seen);
    // The item comes back when the caller needs it, or when this process has not seen it in the last
    // 10 minutes (its description and other epochs' marks are learnt from it). Otherwise nothing comes
    // back: on DynamoDB Local the returned item was a measurable part of the update's CPU.
    const returnItem = opts.item !== false || seen === undefined;
    const names: Record<string, string> = { ...Update.ExpressionAttributeNames };
    const placeholder = new Map(Object.entries(names).map(([p, attribute]) => [attribute, p]));
    const values: Record<string, unknown> = { ...Update.ExpressionAttributeValues, ":hwrun": mark.run };
    // Once per run and item: a write whose earlier attempt landed finds the mark at this run.
    const conditions = [`(attribute_not_exists(${placeholder.get(own)}) OR ${placeholder.get(own)} < :hwrun)`];
    clean.forEach((c, i) => {
      const p = placeholder.get(markAttribute(c.epoch));
      values[`:hwc${i}`] = c.upTo;
      // only a mark of a run known done: an unfinished run's marks are what a take-over reads
      conditions.push(`(attribute_not_exists(${p}) OR ${p} <= :hwc${i})`);
    });
    try {
      const out = await this.doc.send(
        new UpdateCommand({
          ...Update,
          ConditionExpression: conditions.join(" AND "),
          ExpressionAttributeNames: names,
          ExpressionAttributeValues: values,
          ReturnValues: returnItem ? "ALL_NEW" : "NONE",
          ReturnValuesOnConditionCheckFailure: "ALL_OLD",
        }),
      );
      if (!returnItem) return { kind: "applied", marks: undefined, item: undefined };
      const item = out.Attributes ?? {};
      if (isDescribed(d.target, item)) setBounded(this.described, itemKey, { at: now.getTime(), ...(d.minutes ? { minutes: minutesPresent(item) } : {}) }, DESCRIBED_MAX);
      return { kind: "applied", marks: marksIn(item), item };
    } catch (error) {
      if (RETRYABLE_ERRORS.some((type) => error instanceof type)) return { kind: "retryable", reason: (error as Error).name };
      if (!(error instanceof ConditionalCheckFailedException)) throw error;
      const old = error.Item ? unmarshall(error.Item) : await this.itemAt(Update.Key);
      const marks = marksIn(old);
      return (marks[mark.epoch] ?? 0) >= mark.run ? { kind: "already", marks, item: old } : { kind: "clean-conflict", marks };
    }
  }

  async highWaterMarks(targets: readonly AggregateTarget[]): Promise<Map<string, HighWaterMarks>> {
    const byKey = new Map<string, { key: { pk: string; sk: string }; id: string }>();
    for (const t of targets) {
      const key = targetKey(t);
      byKey.set(`${key.pk}|${key.sk}`, { key, id: targetId(t) });
    }
    const keyList = [...byKey.values()].map((x) => x.key);
    const out = new Map<string, HighWaterMarks>();
    for (let i = 0; i < keyList.length; i += 100) {
      for (const it of await batchGetAll(this.doc, { TableName: this.tableName, Keys: keyList.slice(i, i + 100), ConsistentRead: true })) {
        const id = byKey.get(`${String(it.pk)}|${String(it.sk)}`)?.id;
        if (id) out.set(id, marksIn(it));
      }
    }
    return out;
  }

  private async itemAt(key: Record<string, unknown>): Promise<Item> {
    const out = await this.doc.send(new GetCommand({ TableName: this.tableName, Key: key, ConsistentRead: true }));
    return out.Item ?? {};
  }

  /**
   * One transaction. Throttling, server faults and cancellations other than the first item's
   * condition (a TransactionConflict with a concurrent writer of the same aggregate) outlasted
   * the SDK's own retries: nothing was written (all-or-nothing), so the same write may simply be
   * retried. The first item's failed condition is the caller's to interpret.
   */
  private async transact(items: TransactItem[]): Promise<{ kind: "committed" } | { kind: "first-condition-failed" } | Retryable> {
    try {
      await this.doc.send(new TransactWriteCommand({ TransactItems: items }));
      return { kind: "committed" };
    } catch (error) {
      if (RETRYABLE_ERRORS.some((type) => error instanceof type)) return { kind: "retryable", reason: (error as Error).name };
      if (!(error instanceof TransactionCanceledException)) throw error;
      const reasons = error.CancellationReasons ?? [];
      if (reasons[0]?.Code === "ConditionalCheckFailed") return { kind: "first-condition-failed" };
      const other = reasons.find((r) => r.Code && r.Code !== "None");
      return { kind: "retryable", reason: other ? `${other.Code}${other.Message ? `: ${other.Message}` : ""}` : error.message };
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
        // Field by field, never a spread: only ids, reason and shape are stored (no content).
        Item: {
          ...key,
          type: "quarantine",
          messageId: record.messageId,
          receivedAt: record.receivedAt,
          reason: record.reason,
          message: contentFreeMessage(record.message),
          shape: record.shape,
          ...keepIds(record),
          expiresAt: ttl(this.clock(), this.opts.quarantineTtlDays ?? 90),
        },
      }),
    );
  }

  // ---- repricing (shared/usage/reprice.ts) ----

  async unpricedNotes(day: string): Promise<{ tenantId: string; eventId: string }[]> {
    const items = await queryAll(this.doc, {
      TableName: this.tableName,
      KeyConditionExpression: "pk = :pk AND begins_with(sk, :p)",
      ExpressionAttributeValues: { ":pk": keys.quarantine(day, "", "").pk, ":p": `${keys.quarantine(day, "unpriced", "").sk}` },
    });
    return items
      .filter((i) => i.reason === "unknown-model" && typeof i.tenantId === "string" && typeof i.eventId === "string")
      .map((i) => ({ tenantId: String(i.tenantId), eventId: String(i.eventId) }));
  }

  async unpricedEntry(tenantId: string, eventId: string): Promise<UnpricedEntry | undefined> {
    const out = await this.doc.send(new GetCommand({ TableName: this.tableName, Key: keys.ledger(tenantId, eventId), ConsistentRead: true }));
    const i = out.Item;
    if (!i || i.unpriced !== true || !i.counters || typeof i.run !== "string" || typeof i.group !== "number") return undefined;
    const holder = holderIn(i);
    return { tenantId, eventId, held: { run: i.run, group: i.group }, ...(holder.hw ? { hw: true } : {}), ...(holder.prev ? { prev: holder.prev } : {}), ...countedOf(i) };
  }

  /** Whether a ledger entry's holder counted the call (see `RepriceStore.isCounted`). */
  async isCounted(entry: CountedClaim): Promise<boolean> {
    if (!entry.hw) return (await this.marker(entry.held)) === "committed";
    const state = (await this.epochStates([entry.held.run])).get(entry.held.run);
    if (state && state.done >= entry.held.group) return true;
    // a run that was not recorded done: counted if every item of the call carries a holder's mark
    const holders = [...(entry.prev ?? []), entry.held];
    const targets = targetsOf({ event: { ...countedAt(entry), tenantId: entry.tenantId, eventId: entry.eventId, inputTokens: 0, outputTokens: 0 }, baseModelId: entry.modelId, counters: zeroCounters() });
    const marks = await this.highWaterMarks(targets);
    return targets.every((t) => reachedBy(marks.get(targetId(t)) ?? {}, holders));
  }

  async reprice(entry: UnpricedEntry, costNanoUsd: number, deltas: readonly AggregateDelta[], now: Date): Promise<CorrectResult> {
    return this.transactOnLedger(
      {
        Update: {
          TableName: this.tableName,
          Key: keys.ledger(entry.tenantId, entry.eventId),
          UpdateExpression: "SET unpriced = :false, costNanoUsd = :cost, counters.costNanoUsd = :cost, counters.unpricedRequests = :zero, repricedAt = :now",
          // Once: a second run finds `unpriced = false`. The same holder: an entry taken over
          // since was counted again by its new group, priced or not.
          ConditionExpression: "unpriced = :true AND #run = :run AND #group = :group",
          ExpressionAttributeNames: { "#run": "run", "#group": "group" },
          ExpressionAttributeValues: {
            ":false": false,
            ":true": true,
            ":zero": 0,
            ":cost": costNanoUsd,
            ":now": now.toISOString(),
            ":run": entry.held.run,
            ":group": entry.held.group,
          },
        },
      },
      deltas,
      now,
    );
  }

  private ledgerItem(e: PricedEvent, claim: Claim, now: Date): Item {
    const { tenantId, eventId, occurredAt, modelId, provider } = e.event;
    return {
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
      run: claim.run,
      group: claim.group,
      // a high-water claim: `run` is an epoch, decided by its record and the items' marks
      hw: true,
      claimedAt: now.toISOString(),
      expiresAt: ttl(now, this.opts.ledgerTtlDays),
      // An estimate keeps what it added, so an exact report of the same call can replace it;
      // an unpriced call too, so it can be priced once its model's price is known.
      ...(e.event.estimated ? { estimated: true } : {}),
      ...(e.unpricedReason === "unknown-model" ? { unpriced: true } : {}),
      ...(e.event.estimated || e.unpricedReason === "unknown-model" ? { counters: { ...e.counters } } : {}),
      // with event time, provider and model: where the call's aggregate items are
      ...(e.event.endpointName ? { endpointName: e.event.endpointName } : {}),
      ...(e.unpricedReason === "unknown-model" && e.pricing ? { pricing: { ...e.pricing } } : {}),
      // which path claimed it (and, when one batch carried both, the other): the cross-source diagnostic
      ...(e.source ? { source: e.source } : {}),
      ...(e.crossSource ? { crossSource: e.crossSource } : {}),
    };
  }

  private markerItem(claim: Claim, state: MarkerState, now: Date): Item {
    return {
      ...keys.commitMarker(claim.run, claim.group),
      type: "commit-marker",
      state,
      at: now.toISOString(),
      // Read while a ledger entry names the group: lives as long as the ledger does.
      expiresAt: ttl(now, this.opts.ledgerTtlDays),
    };
  }

  /** A single conditional update; false when the condition failed. */
  private async conditionalUpdate(input: ConstructorParameters<typeof UpdateCommand>[0]): Promise<boolean> {
    try {
      await this.doc.send(new UpdateCommand(input));
      return true;
    } catch (error) {
      if (error instanceof ConditionalCheckFailedException) return false;
      throw error;
    }
  }

  /** A single conditional put; false when the condition failed. */
  private async conditionalPut(item: Item, condition: string, expr?: { names: Record<string, string>; values: Item }): Promise<boolean> {
    try {
      await this.doc.send(
        new PutCommand({
          TableName: this.tableName,
          Item: item,
          ConditionExpression: condition,
          ExpressionAttributeNames: expr?.names,
          ExpressionAttributeValues: expr?.values,
        }),
      );
      return true;
    } catch (error) {
      if (error instanceof ConditionalCheckFailedException) return false;
      throw error;
    }
  }

  /**
   * The aggregate item's update; `extraSets` / `extraRemoves`: attributes besides the aggregate's own (the high-water marks).
   * `seen`: the item as a recent write of this process returned it. It carries its descriptive attributes (tenant,
   * type, granularity, period, model, billing index keys), which never change: they are not set again (they cost
   * DynamoDB work on every update). Of a tenant-hour item's minute windows, only those it carried then are removed
   * (a REMOVE of every ended minute of the hour is a long expression on every write); one another process added
   * since is removed by that process's next write, or by ours once a response showed it.
   */
  private aggregateUpdate(d: AggregateDelta, now: Date, extraSets: Record<string, unknown> = {}, extraRemoves: readonly string[] = [], seen?: Seen) {
    const described = seen !== undefined;
    const t = d.target;
    const adds: Record<string, number> = {};
    for (const c of COUNTER_NAMES) if (c === "requests" || d.counters[c] !== 0) adds[c] = d.counters[c];
    if (d.sources) for (const c of SOURCE_COUNT_NAMES) if (d.sources[c] !== 0) adds[SOURCE_COUNT_ATTRIBUTES[c]] = d.sources[c];
    const sets: Record<string, unknown> = described ? { updatedAt: now.toISOString(), ...extraSets } : { ...descriptionOf(t), updatedAt: now.toISOString(), ...extraSets };
    // Tenant-hour items: the minute windows ride along (and the ended ones are removed).
    const window = d.minutes ? minuteWindowUpdate(d.minutes, now, MINUTE_KEEP, seen?.minutes) : undefined;
    if (window) Object.assign(adds, window.adds);
    // Once per run: the caller adds the high-water condition (`addAggregate`) or a ledger condition in a transaction.
    return addAndSetUpdate(this.tableName, targetKey(t), adds, sets, [...(window?.removes ?? []), ...extraRemoves]);
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

  async modelPeriods(tenantId: string, granularity: "month" | "day" | "hour", from: string, to: string): Promise<AggregateRow[]> {
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
      message: contentFreeMessage(String(i.message)),
      // Items written before bodies were dropped still have `body`: it is never served.
      shape: shapeOf(i.shape),
      ...keepIds({ source: str(i.source), detailType: str(i.detailType), tenantId: str(i.tenantId), eventId: str(i.eventId) }),
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
  }
}

/** How long an item seen described is written without its descriptive attributes (aggregates are never deleted; bounded anyway). */
const DESCRIBED_FOR_MS = 10 * 60_000;
/** An aggregate item as a write of this process returned it: when, and (tenant-hour items) its minute windows. */
interface Seen {
  at: number;
  minutes?: number[];
}
const DESCRIBED_MAX = 50_000;

/** Every attribute an aggregate item carries besides its counters, marks and `updatedAt`: fixed by its key. */
function descriptionOf(t: AggregateTarget): Item {
  return { tenantId: t.tenantId, ...describeTarget(t), ...(t.kind === "tenant" && t.granularity === "month" ? keys.billing(t.tenantId, t.period) : {}) };
}

/** Whether the item (as a write returned it) carries all of its description. */
function isDescribed(t: AggregateTarget, item: Item): boolean {
  return Object.entries(descriptionOf(t)).every(([k, v]) => item[k] === v);
}

function describeTarget(t: AggregateTarget): Item {
  switch (t.kind) {
    case "tenant":
      return { type: "usage", granularity: t.granularity, period: t.period };
    case "model":
      return { type: "model-usage", granularity: t.granularity, period: t.period, modelId: t.modelId };
    case "endpoint":
      return { type: "endpoint-usage", granularity: "hour", period: t.hour, endpointName: t.endpointName };
  }
}

/** Who holds a ledger entry (absent fields: an entry from before claims, or none read). */
function holderIn(item: Item): LedgerHolder {
  return {
    run: typeof item.run === "string" ? item.run : undefined,
    group: typeof item.group === "number" ? item.group : undefined,
    claimedAt: typeof item.claimedAt === "string" ? item.claimedAt : undefined,
    estimate: item.estimated === true && item.counters ? countedOf(item) : undefined,
    source: typeof item.source === "string" ? (item.source as InvocationSource) : undefined,
    crossSource: typeof item.crossSource === "string" ? (item.crossSource as InvocationSource) : undefined,
    occurredAt: typeof item.occurredAt === "string" ? item.occurredAt : undefined,
    modelId: typeof item.modelId === "string" ? item.modelId : undefined,
    ...(item.hw === true ? { hw: true } : {}),
    ...(Array.isArray(item.prev)
      ? { prev: (item.prev as Item[]).filter((c) => typeof c.run === "string" && typeof c.group === "number").map((c) => ({ run: c.run as string, group: c.group as number })) }
      : {}),
  };
}

/** A ledger entry's holder and where its call's aggregate items are. */
export interface CountedClaim {
  tenantId: string;
  eventId: string;
  held: Claim;
  hw?: boolean;
  prev?: Claim[];
  occurredAt: string;
  provider: "bedrock" | "sagemaker";
  modelId: string;
  endpointName?: string;
}

/** The same, from a ledger item (undefined for an entry written before claims). */
export function countedClaimOf(i: Item): CountedClaim | undefined {
  if (typeof i.run !== "string" || typeof i.group !== "number") return undefined;
  const h = holderIn(i);
  return {
    tenantId: String(i.tenantId),
    eventId: String(i.eventId),
    held: { run: i.run, group: i.group },
    ...(h.hw ? { hw: true } : {}),
    ...(h.prev ? { prev: h.prev } : {}),
    occurredAt: String(i.occurredAt),
    provider: i.provider as CountedClaim["provider"],
    modelId: String(i.modelId),
    ...(typeof i.endpointName === "string" ? { endpointName: i.endpointName } : {}),
  };
}

/** The item attribute holding an epoch's high-water mark. */
export function markAttribute(epoch: string): string {
  return `hw_${epoch}`;
}

/** An item's high-water marks, by epoch. */
export function marksIn(item: Item): HighWaterMarks {
  const marks: HighWaterMarks = {};
  for (const [k, v] of Object.entries(item)) if (k.startsWith("hw_") && typeof v === "number") marks[k.slice(3)] = v;
  return marks;
}


/** What a ledger entry that keeps its counters (estimate, unpriced) counted, and where. */
function countedOf(i: Item): CountedEstimate {
  return {
    occurredAt: String(i.occurredAt),
    provider: i.provider as CountedEstimate["provider"],
    modelId: String(i.modelId),
    endpointName: typeof i.endpointName === "string" ? i.endpointName : undefined,
    counters: countersOf(i.counters as Item),
    ...(i.pricing && typeof i.pricing === "object" ? { pricing: i.pricing as CountedEstimate["pricing"] } : {}),
  };
}

function countersOf(i: Item): UsageCounters {
  const counters: UsageCounters = zeroCounters();
  for (const c of COUNTER_NAMES) counters[c] = Number(i[c] ?? 0);
  return counters;
}

function toRow(i: Item): AggregateRow {
  const counters: UsageCounters = zeroCounters();
  for (const c of COUNTER_NAMES) counters[c] = Number(i[c] ?? 0);
  const sources = zeroSourceCounts();
  let tracked = false;
  for (const c of SOURCE_COUNT_NAMES) {
    const v = i[SOURCE_COUNT_ATTRIBUTES[c]];
    if (v !== undefined) tracked = true;
    sources[c] = Number(v ?? 0);
  }
  return {
    tenantId: String(i.tenantId),
    period: String(i.period),
    modelId: i.modelId === undefined ? undefined : String(i.modelId),
    counters,
    ...(tracked ? { sources } : {}),
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

function str(v: unknown): string | undefined {
  return typeof v === "string" ? v : undefined;
}

/** A stored shape as served: only its known fields (older items have none). */
function shapeOf(v: unknown): RecordShape {
  const o = (typeof v === "object" && v !== null ? v : {}) as Record<string, unknown>;
  const fields = Array.isArray(o.fields) ? o.fields.filter((f): f is string => typeof f === "string") : [];
  return {
    bytes: typeof o.bytes === "number" ? o.bytes : 0,
    json: o.json === true,
    fields,
    ...(o.truncated === true ? { truncated: true } : {}),
  };
}
