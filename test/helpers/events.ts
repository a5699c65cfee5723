import { INVOCATION_DETAIL_TYPE, INVOCATION_SOURCES, type InvocationEventV1 } from "../../shared/events/invocation";
import type { IngestRecord } from "../../shared/usage/ingest";

/** Deterministic PRNG for reproducible random fault runs. */
export { mulberry32 as prng } from "../../shared/util/random";

let n = 0;
/** A valid v1 invocation event; override any field. */
export function invocation(over: Partial<InvocationEventV1> = {}): InvocationEventV1 {
  n++;
  return {
    eventId: `evt-${process.pid}-${n}`,
    tenantId: "tenant-a",
    occurredAt: new Date().toISOString(),
    provider: "bedrock",
    modelId: "anthropic.claude-3-haiku-20240307-v1:0",
    inputTokens: 307,
    outputTokens: 533,
    ...over,
  };
}

/** The EventBridge envelope as an SQS message body. */
export function envelope(detail: unknown, over: Record<string, unknown> = {}): string {
  return JSON.stringify({
    version: "0",
    id: `eb-${n}`,
    "detail-type": INVOCATION_DETAIL_TYPE,
    source: INVOCATION_SOURCES.bedrock,
    account: "000000000000",
    time: new Date().toISOString(),
    region: "us-west-2",
    resources: [],
    detail,
    ...over,
  });
}

let m = 0;
export function record(body: string): IngestRecord {
  return { messageId: `msg-${process.pid}-${++m}`, body };
}

export function recordOf(e: InvocationEventV1): IngestRecord {
  return record(envelope(e));
}

