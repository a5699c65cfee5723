import { USAGE_TABLE } from "./table";

/**
 * Every key of the usage table is built here and nowhere else. Tenant and model ids are
 * validated by the event contract to contain no '#', so the segments below cannot collide.
 */
export type AggregateScope =
  | { kind: "tenant"; granularity: "month" | "day" | "hour"; period: string }
  | { kind: "model"; granularity: "month" | "day" | "hour"; period: string; modelId: string };

const G = { month: "M", day: "D", hour: "H" } as const;

export const keys = {
  ledger: (tenantId: string, eventId: string) => ({ pk: `EVENT#${tenantId}#${eventId}`, sk: "EVENT" }),
  /** Decides one aggregate group of one ingest run: committed or aborted (see shared/usage). */
  commitMarker: (run: string, group: number) => ({ pk: `RUN#${run}`, sk: `GROUP#${group}` }),
  /** An ingest epoch's record: its lease and its last run done (see shared/usage, high-water commits). */
  epoch: (epoch: string) => ({ pk: `EPOCH#${epoch}`, sk: "EPOCH" }),
  tenant: (tenantId: string) => `TENANT#${tenantId}`,
  aggregate(tenantId: string, scope: AggregateScope) {
    const sk =
      scope.kind === "tenant"
        ? `USAGE#${G[scope.granularity]}#${scope.period}`
        : `MODEL#${G[scope.granularity]}#${scope.period}#${scope.modelId}`;
    return { pk: `TENANT#${tenantId}`, sk };
  },
  /** sk prefix for a range query of one tenant's tenant-level aggregates of a granularity. */
  usagePrefix: (granularity: "month" | "day" | "hour") => `USAGE#${G[granularity]}#`,
  modelPrefix: (granularity: "month" | "day" | "hour", period: string) => `MODEL#${G[granularity]}#${period}#`,
  config: (tenantId: string) => ({ pk: `TENANT#${tenantId}`, sk: "CONFIG" }),
  enforcement: (tenantId: string, period: string) => ({ pk: `TENANT#${tenantId}`, sk: `ENFORCE#${period}` }),
  quarantine: (day: string, receivedAt: string, messageId: string) => ({
    pk: `QUARANTINE#${day}`,
    sk: `${receivedAt}#${messageId}`,
  }),
  enforcementLog: (day: string, at: string, tenantId: string, kind: string) => ({
    pk: `ENFORCEMENT#${day}`,
    sk: `${at}#${tenantId}#${kind}`,
  }),
  /** GSI1 keys of a month aggregate: spreads the month over `billingShards` partitions. */
  billing(tenantId: string, month: string) {
    return { gsi1pk: `MONTH#${month}#${billingShard(tenantId)}`, gsi1sk: `TENANT#${tenantId}` };
  },
  billingPartition: (month: string, shard: number) => `MONTH#${month}#${shard}`,
  /**
   * Sparse GSI1 keys an `ENFORCE#<period>` item carries while its outbox holds pending entries,
   * so the outbox sweeper finds them without a Scan. Never a `MONTH#` partition: billing
   * queries cannot see these items.
   */
  outboxIndex(tenantId: string, period: string) {
    return { gsi1pk: `OUTBOX#${outboxShard(tenantId)}`, gsi1sk: `TENANT#${tenantId}#ENFORCE#${period}` };
  },
  outboxPartition: (shard: number) => `OUTBOX#${shard}`,
  /** What the reconciliation of one hour last signalled (report digest, unmetered tokens): metrics once per hour. */
  reconciliationSignal: (hour: string) => ({ pk: `RECON#${hour}`, sk: "SIGNAL" }),
};

/** FNV-1a: stable across runtimes and cheap. */
function fnv1a(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

export function billingShard(tenantId: string): number {
  return fnv1a(tenantId) % USAGE_TABLE.billingShards;
}

export function outboxShard(tenantId: string): number {
  return fnv1a(tenantId) % USAGE_TABLE.outboxShards;
}

/** Endpoint-hour usage per tenant, for sharing a fixed-cost endpoint's hour (allocation job). */
export const endpointKeys = {
  usage: (endpointName: string, hour: string, tenantId: string) => ({
    pk: `ENDPOINT#${endpointName}#${hour}`,
    sk: `TENANT#${tenantId}`,
  }),
  partition: (endpointName: string, hour: string) => `ENDPOINT#${endpointName}#${hour}`,
  /** Marker that an endpoint-hour was allocated (makes the job idempotent). */
  allocation: (endpointName: string, hour: string) => ({ pk: `ENDPOINT#${endpointName}#${hour}`, sk: "ALLOCATION" }),
  /** sk prefix of the endpoint-hour's per-tenant usage items. */
  usagePrefix: "TENANT#",
  /** Record that one tenant's share of an endpoint-hour was added (exactly-once across chunks). */
  tenantAllocation: (endpointName: string, hour: string, tenantId: string) => ({
    pk: `ENDPOINT#${endpointName}#${hour}`,
    sk: `ALLOCATION#${tenantId}`,
  }),
  tenantAllocationPrefix: "ALLOCATION#",
  /**
   * The change a re-allocation of the endpoint-hour made at `version` (>= 2): its deltas,
   * fixed when the marker moved to that version, so a crashed run can finish them.
   */
  reallocation: (endpointName: string, hour: string, version: number) => ({
    pk: `ENDPOINT#${endpointName}#${hour}`,
    sk: `REALLOCATION#${version}`,
  }),
  /** Record that one tenant's delta of `version` was added (exactly-once across chunks and runs). */
  tenantReallocation: (endpointName: string, hour: string, version: number, tenantId: string) => ({
    pk: `ENDPOINT#${endpointName}#${hour}`,
    sk: `REALLOCATION#${version}#${tenantId}`,
  }),
  /** sk prefix of the per-tenant delta records of one version (the trailing '#' keeps 2 from matching 21). */
  tenantReallocationPrefix: (version: number) => `REALLOCATION#${version}#`,
};

/**
 * Admission (shared/admission). Own partitions, not `TENANT#`, so the data plane's IAM policy
 * can write them (dynamodb:LeadingKeys `ADMIT#*`, `POOL#*`) without being able to touch
 * aggregates, config or the ledger.
 */
export const admissionKeys = {
  /** A tenant's budget of one month: limits, used, remaining, grants out. */
  budget: (tenantId: string, month: string) => ({ pk: `ADMIT#${tenantId}`, sk: `BUDGET#${month}` }),
  /** An account quota pool's use per tier in one window (epoch seconds of its start). */
  poolWindow: (poolId: string, window: number) => ({ pk: `POOL#${poolId}`, sk: `WINDOW#${window}` }),
  budgetPartitionPrefix: "ADMIT#",
  poolPartitionPrefix: "POOL#",
};
