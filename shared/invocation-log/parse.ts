import { callFactsFromConverse, usageFromConverse } from "../dataplane/usage";
import {
  INVOCATION_SCHEMA_VERSION,
  formatIssues,
  invocationEventV1Schema,
  type InvocationEventV1,
} from "../events/invocation";
import type { TenantBinding } from "./tenant-binding";

/**
 * Pure parser of Bedrock model invocation log records (as Bedrock writes them to S3 and
 * CloudWatch Logs, `schemaType: "ModelInvocationLog"`) into v1 invocation events.
 *
 * `eventId` is the record's `requestId`: the same id the data-plane wrapper uses for the same
 * call (Bedrock's `x-amzn-RequestId`), so the ingest ledger counts a call once whichever
 * source delivers it first.
 */

export type InvocationLogRejectReason =
  | "malformed-json"
  | "not-an-invocation-log"
  | "missing-request-id"
  | "missing-tenant"
  /** The record claims a tenant its calling principal may not act for (see `tenant-binding.ts`). */
  | "untrusted-tenant"
  | "missing-token-counts"
  | "schema";

export class InvocationLogRecordInvalidError extends Error {
  constructor(
    message: string,
    readonly reason: InvocationLogRejectReason,
    readonly requestId?: string,
    readonly tenantId?: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = "InvocationLogRecordInvalidError";
  }
}

export interface InvocationLogParseOptions {
  /**
   * Which principals (`identity.arn`) may claim which tenants in `requestMetadata.tenantId`. A
   * claim it does not allow is rejected as `untrusted-tenant` and not counted. Required: there
   * is no implicit trust; `tenantBinding(undefined)` denies every claim.
   */
  binding: TenantBinding;
  /**
   * Attributes a record whose `requestMetadata` has no `tenantId` (e.g. InvokeModel calls,
   * which carry no request metadata): in a dedicated-account deployment the account or the
   * caller's role (`identity.arn`) names the tenant. Return undefined when it does not.
   */
  resolveTenant?: (record: { accountId?: string; identityArn?: string; modelId?: string; operation?: string }) => string | undefined;
}

export type ParsedRecord =
  | { kind: "event"; event: InvocationEventV1 }
  /** A well-formed record of a call that failed (`errorCode`): nothing to attribute; reported, not counted. */
  | { kind: "failed-invocation"; requestId: string; errorCode: string };

export function parseInvocationLogRecord(raw: unknown, opts: InvocationLogParseOptions): ParsedRecord {
  const r = record(raw);
  if (!r || r.schemaType !== "ModelInvocationLog") {
    throw new InvocationLogRecordInvalidError("not a Bedrock ModelInvocationLog record", "not-an-invocation-log");
  }
  const requestId = typeof r.requestId === "string" && r.requestId ? r.requestId : undefined;
  if (!requestId) throw new InvocationLogRecordInvalidError("record has no requestId", "missing-request-id");

  if (typeof r.errorCode === "string" && r.errorCode) return { kind: "failed-invocation", requestId, errorCode: r.errorCode };
  // Messages are kept in the quarantine: they name the record by values of a known form only.
  const name = `record ${idLike(requestId) ?? `<request id of ${requestId.length} chars>`}`;

  const metadata = requestMetadataOf(r.requestMetadata);
  const identityArn = typeof record(r.identity)?.arn === "string" ? (record(r.identity)!.arn as string) : undefined;
  const claimed = str(metadata?.tenantId);
  if (claimed) {
    // A claim is whatever the caller wrote: honoured only for a principal bound to that tenant.
    const verdict = opts.binding.check(identityArn, claimed);
    if (!verdict.allowed) {
      throw new InvocationLogRecordInvalidError(`${name}: ${verdict.why}`, "untrusted-tenant", requestId, claimed);
    }
  }
  const tenantId =
    claimed ?? opts.resolveTenant?.({ accountId: str(r.accountId), identityArn, modelId: str(r.modelId), operation: str(r.operation) });
  if (!tenantId) {
    throw new InvocationLogRecordInvalidError(
      `${name} (${operationName(r.operation)}) has no requestMetadata.tenantId`,
      "missing-tenant",
      requestId,
    );
  }

  const input = record(r.input);
  const output = record(r.output);
  const inputTokens = input?.inputTokenCount;
  const outputTokens = output?.outputTokenCount;
  if (inputTokens === undefined && outputTokens === undefined) {
    throw new InvocationLogRecordInvalidError(`${name} has no token counts`, "missing-token-counts", requestId, tenantId);
  }
  const latency = record(record(output?.outputBodyJson)?.metrics)?.latencyMs;
  const candidate = compact({
    eventId: requestId,
    tenantId,
    occurredAt: r.timestamp,
    provider: "bedrock",
    modelId: r.modelId,
    inputTokens: inputTokens ?? 0,
    // Embedding models log no output count: they produce no output tokens.
    outputTokens: outputTokens ?? 0,
    cacheReadInputTokens: input?.cacheReadInputTokenCount,
    cacheWriteInputTokens: input?.cacheWriteInputTokenCount,
    // pricing facts (shared/pricing): the log's region, and what a Converse body says of tier, router and 1h writes
    region: str(r.region),
    cacheWrite1hInputTokens: usageFromConverse(record(output?.outputBodyJson)?.usage).cacheWrite1hInputTokens,
    ...callFactsFromConverse(output?.outputBodyJson),
    latencyMs: typeof latency === "number" ? latency : undefined,
    feature: str(metadata?.feature),
    tier: label(metadata?.tier),
    status: "success",
    schemaVersion: INVOCATION_SCHEMA_VERSION,
  });
  const parsed = invocationEventV1Schema.safeParse(candidate);
  if (!parsed.success) {
    throw new InvocationLogRecordInvalidError(
      `${name} does not make a valid event: ${formatIssues(parsed.error)}`,
      "schema",
      requestId,
      tenantId,
    );
  }
  return { kind: "event", event: parsed.data };
}

export type LineOutcome =
  | { line: number; kind: "event"; event: InvocationEventV1 }
  | { line: number; kind: "failed-invocation"; requestId: string; errorCode: string }
  | { line: number; kind: "rejected"; error: InvocationLogRecordInvalidError; raw: string };

/** Parses a log object's text: one JSON record per line (blank lines ignored). Line numbers are 1-based. */
export function parseInvocationLogText(text: string, opts: InvocationLogParseOptions): LineOutcome[] {
  const outcomes: LineOutcome[] = [];
  const lines = text.split("\n");
  lines.forEach((rawLine, i) => {
    const raw = rawLine.trim();
    if (!raw) return;
    const line = i + 1;
    let json: unknown;
    try {
      json = JSON.parse(raw);
    } catch (cause) {
      outcomes.push({
        line,
        kind: "rejected",
        raw,
        error: new InvocationLogRecordInvalidError(`line ${line} is not valid JSON`, "malformed-json", undefined, undefined, { cause }),
      });
      return;
    }
    try {
      const parsed = parseInvocationLogRecord(json, opts);
      outcomes.push({ line, ...parsed });
    } catch (error) {
      if (!(error instanceof InvocationLogRecordInvalidError)) throw error;
      outcomes.push({ line, kind: "rejected", error, raw });
    }
  });
  return outcomes;
}

function record(v: unknown): Record<string, unknown> | undefined {
  return typeof v === "object" && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
}

/** The record's request metadata: an object (as logged for Converse) or its JSON text (the InvokeModel header's value). */
function requestMetadataOf(v: unknown): Record<string, unknown> | undefined {
  if (typeof v !== "string") return record(v);
  try {
    return record(JSON.parse(v));
  } catch {
    return undefined;
  }
}

/** A tier label as the event contract accepts it; anything else is left out rather than failing the record. */
function label(v: unknown): string | undefined {
  return typeof v === "string" && /^[^#\u0000-\u001f]{1,256}$/.test(v) ? v : undefined;
}

function idLike(v: string): string | undefined {
  return /^[A-Za-z0-9._:/@+=-]{1,128}$/.test(v) ? v : undefined;
}

function operationName(v: unknown): string {
  return typeof v === "string" && /^[A-Za-z]{1,64}$/.test(v) ? v : "unknown operation";
}

function str(v: unknown): string | undefined {
  return typeof v === "string" && v.length > 0 ? v : undefined;
}

function compact<T extends object>(o: T): T {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
}
