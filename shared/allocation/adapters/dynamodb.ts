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
import type { AllocationState, AllocationStore, ShareCommitResult } from "../ports";

type Item = Record<string, unknown>;
type TransactItem = NonNullable<ConstructorParameters<typeof TransactWriteCommand>[0]["TransactItems"]>[number];

/**
 * Allocation on the single usage table. Item shapes:
 * - `ENDPOINT#<name>#<hour>` / `TENANT#<id>`: usage, written by the ingest (read here)
 * - `ENDPOINT#<name>#<hour>` / `ALLOCATION`: the marker, with the plan (shares, idle cost) and a status
 * - `ENDPOINT#<name>#<hour>` / `ALLOCATION#<tenant>`: one tenant's share was added (chunked hours only)
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
    return out.Item.status === "complete" ? { status: "complete", plan } : { status: "pending", plan };
  }

  async writtenShares(endpointName: string, hour: string): Promise<Set<string>> {
    const items = await queryAll(this.doc, {
      TableName: this.tableName,
      KeyConditionExpression: "pk = :pk AND begins_with(sk, :p)",
      ExpressionAttributeValues: {
        ":pk": endpointKeys.partition(endpointName, hour),
        ":p": endpointKeys.tenantAllocationPrefix,
      },
      ProjectionExpression: "sk",
      ConsistentRead: true,
    });
    return new Set(items.map((i) => String(i.sk).slice(endpointKeys.tenantAllocationPrefix.length)));
  }

  async commitWhole(plan: HourAllocation) {
    const now = this.clock();
    const items: TransactItem[] = [
      { Put: this.markerPut(plan, "complete", now) },
      ...plan.shares.flatMap((s) => this.shareUpdates(plan, s, now)),
    ];
    try {
      await this.doc.send(new TransactWriteCommand({ TransactItems: items }));
      return { kind: "committed" as const };
    } catch (error) {
      if (!(error instanceof TransactionCanceledException)) throw error;
      const reasons = error.CancellationReasons ?? [];
      if (reasons[0]?.Code === "ConditionalCheckFailed") return { kind: "exists" as const };
      return { kind: "retryable" as const, reason: firstReason(reasons) || error.message };
    }
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
    const items: TransactItem[] = shares.flatMap((s) => [
      {
        Put: {
          TableName: this.tableName,
          Item: {
            ...endpointKeys.tenantAllocation(plan.endpointName, plan.hour, s.tenantId),
            type: "allocation-share",
            endpointName: plan.endpointName,
            hour: plan.hour,
            tenantId: s.tenantId,
            weight: s.weight,
            allocatedCostNanoUsd: s.allocatedCostNanoUsd,
            allocatedAt: now.toISOString(),
          },
          // The share's ADDs below ride on this record: if it exists, an earlier or
          // concurrent run already added this tenant's share, and adding again would
          // bill the tenant twice.
          ConditionExpression: "attribute_not_exists(pk)",
        },
      },
      ...this.shareUpdates(plan, s, now),
    ]);
    try {
      await this.doc.send(new TransactWriteCommand({ TransactItems: items }));
      return { kind: "committed" };
    } catch (error) {
      if (!(error instanceof TransactionCanceledException)) throw error;
      const reasons = error.CancellationReasons ?? [];
      const written: string[] = [];
      let other = "";
      reasons.forEach((r, i) => {
        if (!r.Code || r.Code === "None") return;
        if (r.Code === "ConditionalCheckFailed" && i % this.itemsPerShare === 0) written.push(shares[i / this.itemsPerShare].tenantId);
        else other ||= `${r.Code}${r.Message ? `: ${r.Message}` : ""}`;
      });
      if (written.length > 0 && !other) return { kind: "already-written", tenantIds: written };
      return { kind: "retryable", reason: other || error.message };
    }
  }

  async complete(plan: HourAllocation): Promise<void> {
    try {
      await this.doc.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: endpointKeys.allocation(plan.endpointName, plan.hour),
          UpdateExpression: "SET #s = :complete, completedAt = :at",
          // Only a pending marker moves to complete; a complete one stays as it was
          // (a concurrent run finished first), and a missing one is not resurrected.
          ConditionExpression: "#s = :pending",
          ExpressionAttributeNames: { "#s": "status" },
          ExpressionAttributeValues: { ":complete": "complete", ":pending": "pending", ":at": this.clock().toISOString() },
        }),
      );
    } catch (error) {
      if (!(error instanceof ConditionalCheckFailedException)) throw error;
      const state = await this.readState(plan.endpointName, plan.hour);
      if (state.status !== "complete") throw new AllocationStateInvalidError(`marker of ${plan.endpointName} ${plan.hour} is ${state.status}`, { cause: error });
    }
  }

  private markerPut(plan: HourAllocation, status: "pending" | "complete", now: Date) {
    return {
      TableName: this.tableName,
      Item: {
        ...endpointKeys.allocation(plan.endpointName, plan.hour),
        type: "allocation",
        status,
        ...plan,
        allocatedAt: now.toISOString(),
        ...(status === "complete" ? { completedAt: now.toISOString() } : {}),
      },
      // The job is idempotent per endpoint-hour: a second run (retry, overlapping
      // schedule, operator rerun) must not add the hour's cost again.
      ConditionExpression: "attribute_not_exists(pk)",
    };
  }

  /** ADD the share to the tenant's month/day/hour and tenant x endpoint month/day aggregates. */
  private shareUpdates(plan: HourAllocation, s: TenantShare, now: Date): TransactItem[] {
    const day = plan.hour.slice(0, 10);
    const month = plan.hour.slice(0, 7);
    const t = s.tenantId;
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
    // The conditional marker/share record in the same transaction makes this happen once.
    return targets.map(({ key, sets }) =>
      addAndSetUpdate(this.tableName, key, { allocatedCostNanoUsd: s.allocatedCostNanoUsd }, { tenantId: t, updatedAt: now.toISOString(), ...sets }),
    );
  }

}

function int(v: unknown): number {
  const n = Number(v ?? 0);
  return Number.isFinite(n) ? Math.round(n) : 0;
}

function firstReason(reasons: { Code?: string; Message?: string }[]): string {
  const r = reasons.find((x) => x.Code && x.Code !== "None");
  return r ? `${r.Code}${r.Message ? `: ${r.Message}` : ""}` : "";
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
