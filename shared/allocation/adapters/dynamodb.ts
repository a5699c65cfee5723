import { ConditionalCheckFailedException, TransactionCanceledException } from "@aws-sdk/client-dynamodb";
import {
  GetCommand,
  PutCommand,
  TransactWriteCommand,
  UpdateCommand,
  type DynamoDBDocumentClient,
} from "@aws-sdk/lib-dynamodb";
import { addAndSetUpdate, queryAll } from "../../storage/adapters/dynamodb";
import { endpointKeys, keys } from "../../storage/keys";
import type { HourAllocation, TenantHourUsage, TenantShare } from "../allocate";
import { AllocationStateInvalidError } from "../errors";
import type { AllocationState, AllocationStore, ReallocationCommitResult, ShareCommitResult } from "../ports";
import type { Reallocation, TenantDelta } from "../reallocate";

type Item = Record<string, unknown>;
type TransactItem = NonNullable<ConstructorParameters<typeof TransactWriteCommand>[0]["TransactItems"]>[number];

/**
 * Allocation on the single usage table. Item shapes:
 * - `ENDPOINT#<name>#<hour>` / `TENANT#<id>`: usage, written by the ingest (read here)
 * - `ENDPOINT#<name>#<hour>` / `ALLOCATION`: the marker, with the plan (shares, idle cost) and a status
 * - `ENDPOINT#<name>#<hour>` / `ALLOCATION#<tenant>`: one tenant's share was added (chunked hours only)
 * - `ENDPOINT#<name>#<hour>` / `REALLOCATION#<v>`: the deltas of re-allocation version v (>= 2)
 * - `ENDPOINT#<name>#<hour>` / `REALLOCATION#<v>#<tenant>`: one tenant's delta of version v was added
 * and `ADD allocatedCostNanoUsd` on the tenant's hour/day/month aggregates and its
 * tenant x model (model = endpoint name) day/month aggregates.
 */
export class DynamoAllocationStore implements AllocationStore {
  /** Share record + tenant month/day/hour + model month/day. */
  readonly itemsPerShare = 6;
  private readonly clock: () => Date;

  constructor(
    private readonly doc: DynamoDBDocumentClient,
    private readonly tableName: string,
    opts: { clock?: () => Date } = {},
  ) {
    this.clock = opts.clock ?? (() => new Date());
  }

  async readUsage(endpointName: string, hour: string): Promise<TenantHourUsage[]> {
    const items = await queryAll(this.doc, {
      TableName: this.tableName,
      KeyConditionExpression: "pk = :pk AND begins_with(sk, :p)",
      ExpressionAttributeValues: { ":pk": endpointKeys.partition(endpointName, hour), ":p": endpointKeys.usagePrefix },
      // the allocation job must see every write the ingest acknowledged before it ran
      ConsistentRead: true,
    });
    return items.map((i) => ({
      tenantId: String(i.sk).slice(endpointKeys.usagePrefix.length),
      requests: int(i.requests),
      inputTokens: int(i.inputTokens),
      outputTokens: int(i.outputTokens),
      inferenceMs: int(i.inferenceMs),
    }));
  }

  async readState(endpointName: string, hour: string): Promise<AllocationState> {
    const out = await this.doc.send(
      new GetCommand({ TableName: this.tableName, Key: endpointKeys.allocation(endpointName, hour), ConsistentRead: true }),
    );
    if (!out.Item) return { status: "absent" };
    const plan = planFromItem(out.Item);
    // markers written before re-allocation existed carry no version: they are the first split
    const version = out.Item.version === undefined ? 1 : Number(out.Item.version);
    if (!Number.isSafeInteger(version) || version < 1) throw new AllocationStateInvalidError(`allocation marker ${String(out.Item.pk)} has version ${String(out.Item.version)}`);
    return out.Item.status === "complete" ? { status: "complete", version, plan } : { status: "pending", version, plan };
  }

  async writtenShares(endpointName: string, hour: string): Promise<Set<string>> {
    return this.recordedTenants(endpointName, hour, endpointKeys.tenantAllocationPrefix);
  }

  async commitWhole(plan: HourAllocation) {
    const now = this.clock();
    const items: TransactItem[] = [
      { Put: this.markerPut(plan, "complete", now) },
      ...plan.shares.flatMap((s) => this.aggregateAdds(plan, s.tenantId, s.allocatedCostNanoUsd, now)),
    ];
    const canceled = await this.transact(items);
    if (!canceled) return { kind: "committed" as const };
    const reasons = canceled.CancellationReasons ?? [];
    if (reasons[0]?.Code === "ConditionalCheckFailed") return { kind: "exists" as const };
    return { kind: "retryable" as const, reason: firstReason(reasons) || canceled.message };
  }

  async recordPlan(plan: HourAllocation): Promise<boolean> {
    try {
      await this.doc.send(new PutCommand(this.markerPut(plan, "pending", this.clock())));
      return true;
    } catch (error) {
      if (error instanceof ConditionalCheckFailedException) return false;
      throw error;
    }
  }

  async commitShares(plan: HourAllocation, shares: readonly TenantShare[]): Promise<ShareCommitResult> {
    const now = this.clock();
    return this.commitRecorded(
      plan,
      shares.map((s) => ({
        tenantId: s.tenantId,
        amount: s.allocatedCostNanoUsd,
        record: {
          ...endpointKeys.tenantAllocation(plan.endpointName, plan.hour, s.tenantId),
          type: "allocation-share",
          endpointName: plan.endpointName,
          hour: plan.hour,
          tenantId: s.tenantId,
          weight: s.weight,
          allocatedCostNanoUsd: s.allocatedCostNanoUsd,
          allocatedAt: now.toISOString(),
        },
      })),
      now,
    );
  }

  async commitDeltas(change: Reallocation, deltas: readonly TenantDelta[]): Promise<ShareCommitResult> {
    const now = this.clock();
    return this.commitRecorded(
      change.plan,
      deltas.map((d) => ({
        tenantId: d.tenantId,
        amount: d.deltaNanoUsd,
        record: {
          ...endpointKeys.tenantReallocation(change.endpointName, change.hour, change.version, d.tenantId),
          type: "reallocation-delta",
          endpointName: change.endpointName,
          hour: change.hour,
          version: change.version,
          ...d,
          reallocatedAt: now.toISOString(),
        },
      })),
      now,
    );
  }

  /**
   * One transaction: per entry, its record (only if absent) and the ADDs of its amount. The
   * ADDs ride on the record: if it exists, an earlier or concurrent run already added this
   * tenant's amount, and adding again would bill the tenant twice.
   */
  private async commitRecorded(
    plan: HourAllocation,
    entries: readonly { tenantId: string; amount: number; record: Item }[],
    now: Date,
  ): Promise<ShareCommitResult> {
    const items: TransactItem[] = entries.flatMap((e) => [
      {
        Put: {
          TableName: this.tableName,
          Item: e.record,
          // Written once per tenant and version: see above.
          ConditionExpression: "attribute_not_exists(pk)",
        },
      },
      ...this.aggregateAdds(plan, e.tenantId, e.amount, now),
    ]);
    const canceled = await this.transact(items);
    if (!canceled) return { kind: "committed" };
    const written: string[] = [];
    let other = "";
    (canceled.CancellationReasons ?? []).forEach((r, i) => {
      if (!r.Code || r.Code === "None") return;
      if (r.Code === "ConditionalCheckFailed" && i % this.itemsPerShare === 0) written.push(entries[i / this.itemsPerShare].tenantId);
      else other ||= describeReason(r);
    });
    if (written.length > 0 && !other) return { kind: "already-written", tenantIds: written };
    return { kind: "retryable", reason: other || canceled.message };
  }

  async writtenDeltas(endpointName: string, hour: string, version: number): Promise<Set<string>> {
    return this.recordedTenants(endpointName, hour, endpointKeys.tenantReallocationPrefix(version));
  }

  /** Tenants with a per-tenant record (`<prefix><tenant>`) in the endpoint-hour partition. */
  private async recordedTenants(endpointName: string, hour: string, prefix: string): Promise<Set<string>> {
    const items = await queryAll(this.doc, {
      TableName: this.tableName,
      KeyConditionExpression: "pk = :pk AND begins_with(sk, :p)",
      ExpressionAttributeValues: { ":pk": endpointKeys.partition(endpointName, hour), ":p": prefix },
      ProjectionExpression: "sk",
      // a record written by a run that just crashed must be seen, or its ADDs would repeat
      ConsistentRead: true,
    });
    return new Set(items.map((i) => String(i.sk).slice(prefix.length)));
  }

  async readReallocationDeltas(endpointName: string, hour: string, version: number): Promise<TenantDelta[]> {
    const out = await this.doc.send(
      new GetCommand({ TableName: this.tableName, Key: endpointKeys.reallocation(endpointName, hour, version), ConsistentRead: true }),
    );
    if (!out.Item || !Array.isArray(out.Item.deltas)) {
      throw new AllocationStateInvalidError(`re-allocation ${version} of ${endpointName} ${hour} has no change record`);
    }
    return (out.Item.deltas as Item[]).map((d) => ({
      tenantId: String(d.tenantId),
      previousNanoUsd: Number(d.previousNanoUsd),
      nextNanoUsd: Number(d.nextNanoUsd),
      deltaNanoUsd: Number(d.deltaNanoUsd),
    }));
  }

  async commitReallocationWhole(change: Reallocation): Promise<ReallocationCommitResult> {
    const now = this.clock();
    return this.transactReallocation(change, "complete", [
      ...change.deltas.flatMap((d) => this.aggregateAdds(change.plan, d.tenantId, d.deltaNanoUsd, now)),
    ], now);
  }

  async recordReallocation(change: Reallocation): Promise<ReallocationCommitResult> {
    return this.transactReallocation(change, "pending", [], this.clock());
  }

  /** Marker move + change record (+ `rest`), one transaction. */
  private async transactReallocation(
    change: Reallocation,
    status: "pending" | "complete",
    rest: TransactItem[],
    now: Date,
  ): Promise<ReallocationCommitResult> {
    const at = now.toISOString();
    const p = change.plan;
    const fields: Item = {
      status,
      version: change.version,
      basis: p.basis,
      shares: p.shares,
      usedInferenceMs: p.usedInferenceMs,
      idleCostNanoUsd: p.idleCostNanoUsd,
      reallocatedAt: at,
      ...(status === "complete" ? { completedAt: at } : {}),
    };
    const names: Record<string, string> = {};
    const values: Record<string, unknown> = { ":complete": "complete", ":from": change.fromVersion };
    const sets = Object.entries(fields).map(([k, v]) => {
      names[`#${k}`] = k;
      values[`:${k}`] = v;
      return `#${k} = :${k}`;
    });
    const items: TransactItem[] = [
      {
        Update: {
          TableName: this.tableName,
          Key: endpointKeys.allocation(change.endpointName, change.hour),
          UpdateExpression: `SET ${sets.join(", ")}`,
          // The deltas were computed against version `from`'s plan: if another run moved
          // the marker first, applying them would add a second change on top of its change.
          // A pending version must finish first, or its missing shares would never land.
          // (Markers written before versions existed are version 1.)
          ConditionExpression:
            change.fromVersion === 1
              ? "#status = :complete AND (#version = :from OR attribute_not_exists(#version))"
              : "#status = :complete AND #version = :from",
          ExpressionAttributeNames: names,
          ExpressionAttributeValues: values,
        },
      },
      {
        Put: {
          TableName: this.tableName,
          Item: {
            ...endpointKeys.reallocation(change.endpointName, change.hour, change.version),
            type: "reallocation",
            endpointName: change.endpointName,
            hour: change.hour,
            fromVersion: change.fromVersion,
            version: change.version,
            deltas: change.deltas,
            createdAt: at,
          },
          // One change per version: the marker condition above already implies it; this
          // refuses to overwrite the deltas a pending version is being finished from.
          ConditionExpression: "attribute_not_exists(pk)",
        },
      },
      ...rest,
    ];
    const canceled = await this.transact(items);
    if (!canceled) return { kind: "committed" };
    const reasons = canceled.CancellationReasons ?? [];
    if (reasons[0]?.Code === "ConditionalCheckFailed") return { kind: "superseded" };
    if (reasons[1]?.Code === "ConditionalCheckFailed") {
      throw new AllocationStateInvalidError(`change record ${change.version} of ${change.endpointName} ${change.hour} exists but the marker is at ${change.fromVersion}`, { cause: canceled });
    }
    return { kind: "retryable", reason: firstReason(reasons) || canceled.message };
  }

  /**
   * Runs one transaction: undefined when it committed, the cancellation (whose per-item
   * reasons the caller maps to an outcome) when a condition or a conflict cancelled it.
   * Any other error is thrown.
   */
  private async transact(items: TransactItem[]): Promise<TransactionCanceledException | undefined> {
    try {
      await this.doc.send(new TransactWriteCommand({ TransactItems: items }));
      return undefined;
    } catch (error) {
      if (error instanceof TransactionCanceledException) return error;
      throw error;
    }
  }

  async complete(plan: HourAllocation, version: number): Promise<void> {
    try {
      await this.doc.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: endpointKeys.allocation(plan.endpointName, plan.hour),
          UpdateExpression: "SET #s = :complete, completedAt = :at",
          // Only the pending version this run finished moves to complete. A stale run that
          // finished an older version must not mark a later pending version complete before
          // that version's deltas have all landed; a missing marker is not resurrected.
          ConditionExpression: version === 1 ? "#s = :pending AND (#v = :v OR attribute_not_exists(#v))" : "#s = :pending AND #v = :v",
          ExpressionAttributeNames: { "#s": "status", "#v": "version" },
          ExpressionAttributeValues: { ":complete": "complete", ":pending": "pending", ":v": version, ":at": this.clock().toISOString() },
        }),
      );
    } catch (error) {
      if (!(error instanceof ConditionalCheckFailedException)) throw error;
      const state = await this.readState(plan.endpointName, plan.hour);
      // A concurrent run completed this version (and maybe started the next one): done.
      if (state.status !== "absent" && (state.version > version || state.status === "complete")) return;
      throw new AllocationStateInvalidError(`marker of ${plan.endpointName} ${plan.hour} is ${state.status}`, { cause: error });
    }
  }

  private markerPut(plan: HourAllocation, status: "pending" | "complete", now: Date) {
    return {
      TableName: this.tableName,
      Item: {
        ...endpointKeys.allocation(plan.endpointName, plan.hour),
        type: "allocation",
        status,
        version: 1,
        ...plan,
        allocatedAt: now.toISOString(),
        ...(status === "complete" ? { completedAt: now.toISOString() } : {}),
      },
      // The job is idempotent per endpoint-hour: a second run (retry, overlapping
      // schedule, operator rerun) must not add the hour's cost again.
      ConditionExpression: "attribute_not_exists(pk)",
    };
  }

  /**
   * ADD `amount` (a share, or a re-allocation delta, possibly negative) to the tenant's
   * month/day/hour and tenant x endpoint month/day aggregates.
   */
  private aggregateAdds(plan: HourAllocation, tenantId: string, amount: number, now: Date): TransactItem[] {
    const day = plan.hour.slice(0, 10);
    const month = plan.hour.slice(0, 7);
    const t = tenantId;
    const targets: { key: { pk: string; sk: string }; sets: Item }[] = [
      {
        key: keys.aggregate(t, { kind: "tenant", granularity: "month", period: month }),
        // month aggregates are listed for billing through GSI1
        sets: { type: "usage", granularity: "month", period: month, ...keys.billing(t, month) },
      },
      { key: keys.aggregate(t, { kind: "tenant", granularity: "day", period: day }), sets: { type: "usage", granularity: "day", period: day } },
      { key: keys.aggregate(t, { kind: "tenant", granularity: "hour", period: plan.hour }), sets: { type: "usage", granularity: "hour", period: plan.hour } },
      {
        key: keys.aggregate(t, { kind: "model", granularity: "month", period: month, modelId: plan.endpointName }),
        sets: { type: "model-usage", granularity: "month", period: month, modelId: plan.endpointName },
      },
      {
        key: keys.aggregate(t, { kind: "model", granularity: "day", period: day, modelId: plan.endpointName }),
        sets: { type: "model-usage", granularity: "day", period: day, modelId: plan.endpointName },
      },
    ];
    // The conditional marker/record in the same transaction makes this happen once.
    return targets.map(({ key, sets }) =>
      addAndSetUpdate(this.tableName, key, { allocatedCostNanoUsd: amount }, { tenantId: t, updatedAt: now.toISOString(), ...sets }),
    );
  }
}

function int(v: unknown): number {
  const n = Number(v ?? 0);
  return Number.isFinite(n) ? Math.round(n) : 0;
}

function describeReason(r: { Code?: string; Message?: string }): string {
  return `${r.Code}${r.Message ? `: ${r.Message}` : ""}`;
}

function firstReason(reasons: { Code?: string; Message?: string }[]): string {
  const r = reasons.find((x) => x.Code && x.Code !== "None");
  return r ? describeReason(r) : "";
}

function planFromItem(i: Item): HourAllocation {
  if (!Array.isArray(i.shares) || typeof i.hourCostNanoUsd !== "number") {
    throw new AllocationStateInvalidError(`allocation marker ${String(i.pk)} carries no plan`);
  }
  return {
    endpointName: String(i.endpointName),
    hour: String(i.hour),
    instanceType: String(i.instanceType),
    instanceCount: Number(i.instanceCount),
    rate: i.rate as HourAllocation["rate"],
    hourCostNanoUsd: Number(i.hourCostNanoUsd),
    basis: i.basis as HourAllocation["basis"],
    shares: (i.shares as Item[]).map((s) => ({
      tenantId: String(s.tenantId),
      weight: Number(s.weight),
      allocatedCostNanoUsd: Number(s.allocatedCostNanoUsd),
    })),
    usedInferenceMs: Number(i.usedInferenceMs),
    capacityMs: Number(i.capacityMs),
    idleCostNanoUsd: Number(i.idleCostNanoUsd),
  };
}
