import { ScanCommand } from "@aws-sdk/client-dynamodb";
import type { APIGatewayProxyEventV2, Context, S3Event } from "aws-lambda";
import { gzipSync } from "node:zlib";
import { afterAll, beforeAll, describe, expect, inject, it, vi } from "vitest";
import { createInvocationLogHandler } from "../../../functions/s3/invocation-log";
import { INVOCATION_DETAIL_TYPE, INVOCATION_SOURCES, type InvocationEventV1 } from "../../../shared/events/invocation";
import { quarantineRejected } from "../../../shared/invocation-log/quarantine";
import { InvocationLogSource } from "../../../shared/invocation-log/source";
import { trustMap } from "../../../shared/invocation-log/tenant-binding";
import { PriceCatalog } from "../../../shared/pricing/catalog";
import { resetConfig } from "../../../shared/runtime/config";
import { documentClient } from "../../../shared/storage/adapters/dynamodb";
import { DynamoUsageStore } from "../../../shared/usage/adapters/dynamodb";
import { IngestService } from "../../../shared/usage/ingest";
import { freshUsageTable, localDynamoClient } from "../../helpers/dynamo";
import { envelope, invocation, record } from "../../helpers/events";

/**
 * No prompt or completion text is ever stored or served, from any source. Bedrock invocation
 * logs with text delivery on carry the whole prompt and answer; bus messages may carry anything
 * a sender put in them. Each is fed through the real writers into DynamoDB Local, then every
 * item of the table, every GET /quarantine response and every log line is searched for the
 * canary.
 */
const CANARY = "CANARY-5e1d: my card is 4111 1111 1111 1111, summarise my medical file";
const ANSWER = "ANSWER-5e1d: the patient was diagnosed with";
/** Fragments that must not appear either (a store that truncated or re-encoded the text). */
const FRAGMENTS = [CANARY, ANSWER, "4111 1111", "medical file", "diagnosed with", "5e1d"];

const APP_ROLE_SESSION = "arn:aws:sts::123456789012:assumed-role/app-role/i-0abc";
const INTRUDER_SESSION = "arn:aws:sts::123456789012:assumed-role/intern-role/laptop";
const NOW = new Date();
const DAY = NOW.toISOString().slice(0, 10);

function base(requestId: string, operation: string, identityArn: string) {
  return {
    schemaType: "ModelInvocationLog",
    schemaVersion: "1.0",
    timestamp: NOW.toISOString(),
    accountId: "123456789012",
    identity: { arn: identityArn },
    region: "us-west-2",
    requestId,
    operation,
    modelId: "anthropic.claude-3-5-sonnet-20240620-v1:0",
  };
}

/** Converse with text delivery on: the prompt in inputBodyJson, the answer in outputBodyJson. */
const converse = (requestId: string, identityArn: string, metadata?: Record<string, string>) => ({
  ...base(requestId, "Converse", identityArn),
  input: {
    inputContentType: "application/json",
    inputBodyJson: { system: [{ text: `You are a clinic assistant. ${CANARY}` }], messages: [{ role: "user", content: [{ text: CANARY }] }], inferenceConfig: { maxTokens: 512 } },
    inputTokenCount: 412,
  },
  output: {
    outputContentType: "application/json",
    outputBodyJson: {
      output: { message: { role: "assistant", content: [{ text: ANSWER }] } },
      stopReason: "end_turn",
      metrics: { latencyMs: 2100 },
      usage: { inputTokens: 412, outputTokens: 96, totalTokens: 508 },
    },
    outputTokenCount: 96,
  },
  ...(metadata ? { requestMetadata: metadata } : {}),
});

/** InvokeModel (Anthropic Messages body). */
const invokeModel = (requestId: string, identityArn: string, metadata?: Record<string, string>) => ({
  ...base(requestId, "InvokeModel", identityArn),
  input: {
    inputContentType: "application/json",
    inputBodyJson: { anthropic_version: "bedrock-2023-05-31", max_tokens: 512, messages: [{ role: "user", content: [{ type: "text", text: CANARY }] }] },
    inputTokenCount: 388,
  },
  output: {
    outputContentType: "application/json",
    outputBodyJson: { id: "msg_01", type: "message", role: "assistant", content: [{ type: "text", text: ANSWER }], usage: { input_tokens: 388, output_tokens: 70 } },
    outputTokenCount: 70,
  },
  ...(metadata ? { requestMetadata: metadata } : {}),
});

/** InvokeModelWithResponseStream: the answer logged as the stream's chunks. */
const invokeStream = (requestId: string, identityArn: string, metadata?: Record<string, string>) => ({
  ...base(requestId, "InvokeModelWithResponseStream", identityArn),
  input: {
    inputContentType: "application/json",
    inputBodyJson: { anthropic_version: "bedrock-2023-05-31", max_tokens: 512, messages: [{ role: "user", content: CANARY }] },
    inputTokenCount: 377,
  },
  output: {
    outputContentType: "application/json",
    outputBodyJson: [
      { type: "message_start", message: { role: "assistant", content: [], usage: { input_tokens: 377, output_tokens: 1 } } },
      { type: "content_block_delta", index: 0, delta: { type: "text_delta", text: ANSWER.slice(0, 20) } },
      { type: "content_block_delta", index: 0, delta: { type: "text_delta", text: ANSWER.slice(20) } },
      { type: "message_delta", delta: { stop_reason: "end_turn" }, usage: { output_tokens: 61 } },
    ],
    outputTokenCount: 61,
  },
  ...(metadata ? { requestMetadata: metadata } : {}),
});

const LOG_KEY = `AWSLogs/123456789012/BedrockModelInvocationLogs/us-west-2/${DAY.replaceAll("-", "/")}/14/log_7c1e.json.gz`;
const LOG_LINES = [
  // counted: a bound principal, tenant and tier from the wrapper's metadata
  converse("d0c1a2b3-0000-4000-8000-000000000001", APP_ROLE_SESSION, { tenantId: "adv-01", tier: "advanced" }),
  invokeModel("d0c1a2b3-0000-4000-8000-000000000002", APP_ROLE_SESSION, { tenantId: "adv-01" }),
  // untrusted-tenant: a principal claiming a tenant it may not act for
  converse("d0c1a2b3-0000-4000-8000-000000000003", INTRUDER_SESSION, { tenantId: "adv-01" }),
  invokeStream("d0c1a2b3-0000-4000-8000-000000000004", INTRUDER_SESSION, { tenantId: "adv-02" }),
  // missing-tenant: calls made outside the wrappers, no metadata
  invokeModel("d0c1a2b3-0000-4000-8000-000000000005", INTRUDER_SESSION),
  invokeStream("d0c1a2b3-0000-4000-8000-000000000006", INTRUDER_SESSION),
  // missing-token-counts, schema, not-an-invocation-log: text present all the same
  { ...converse("d0c1a2b3-0000-4000-8000-000000000007", APP_ROLE_SESSION, { tenantId: "adv-01" }), input: { inputBodyJson: { messages: [{ role: "user", content: [{ text: CANARY }] }] } }, output: { outputBodyJson: { text: ANSWER } } },
  { ...converse("d0c1a2b3-0000-4000-8000-000000000008", APP_ROLE_SESSION, { tenantId: "adv-01" }), timestamp: CANARY },
  { ...converse("d0c1a2b3-0000-4000-8000-000000000009", APP_ROLE_SESSION), schemaType: "ModelInvocationLogV9" },
];
/** A line cut short mid-prompt (malformed-json), and a request id that is itself text. */
const RAW_LINES = [
  JSON.stringify(converse("d0c1a2b3-0000-4000-8000-00000000000a", APP_ROLE_SESSION)).slice(0, 400),
  JSON.stringify({ ...invokeModel(CANARY, APP_ROLE_SESSION), operation: CANARY }),
];

/** Bus messages the ingest rejects: text in a detail field, in a field name, in the detail-type, in a body that is not JSON. */
const BUS_MESSAGES = [
  envelope({ ...invocation({ tenantId: "adv-01" }), prompt: CANARY, completion: ANSWER }),
  envelope({ ...invocation({ tenantId: "adv-01" }), [CANARY]: true }),
  envelope(invocation({ tenantId: "adv-01" }), { "detail-type": CANARY }),
  envelope({ ...invocation({ tenantId: "adv-01" }), messages: [{ role: "user", content: [{ text: CANARY }] }] }),
  `{"detail": {"prompt": "${CANARY}`,
  envelope({ ...invocation({ tenantId: "adv-01" }), inputTokens: -1, feature: "chat" }, { source: INVOCATION_SOURCES.bedrock, "detail-type": INVOCATION_DETAIL_TYPE }),
];

let table: string;
let store: DynamoUsageStore;
const logLines: string[] = [];
const emitted: InvocationEventV1[] = [];

/** Everything written to the console or stdout/stderr while `fn` runs. */
async function captured<T>(fn: () => Promise<T>): Promise<T> {
  const spies = (["log", "info", "warn", "error", "debug"] as const).map((m) =>
    vi.spyOn(console, m).mockImplementation((...args: unknown[]) => void logLines.push(args.map((a) => (typeof a === "string" ? a : JSON.stringify(a))).join(" "))),
  );
  const out = vi.spyOn(process.stdout, "write").mockImplementation((c: string | Uint8Array) => (logLines.push(String(c)), true));
  const err = vi.spyOn(process.stderr, "write").mockImplementation((c: string | Uint8Array) => (logLines.push(String(c)), true));
  try {
    return await fn();
  } finally {
    for (const s of [...spies, out, err]) s.mockRestore();
  }
}

beforeAll(async () => {
  const client = localDynamoClient();
  table = await freshUsageTable(client, "noprompt");
  store = new DynamoUsageStore(documentClient(client), table, { ledgerTtlDays: 60 });

  // invocation-log source -> quarantine, through the Lambda handler
  const source = new InvocationLogSource({
    reader: { read: async () => gzipSync([...LOG_LINES.map((l) => JSON.stringify(l)), ...RAW_LINES].join("\n") + "\n") },
    sink: { emit: (e) => (emitted.push(e), true), flush: async () => undefined, stats: { failed: 0, dropped: 0, invalid: 0 } },
    rejected: quarantineRejected(store),
    parse: { binding: trustMap({ "arn:aws:iam::123456789012:role/app-role": ["adv-*"] }) },
  });
  const handler = createInvocationLogHandler(() => source);
  const s3Event = { Records: [{ eventName: "ObjectCreated:Put", s3: { bucket: { name: "bedrock-logs" }, object: { key: LOG_KEY } } }] } as unknown as S3Event;
  const result = await captured(() => handler(s3Event, {} as Context));
  logLines.push(JSON.stringify(result));

  // ingest -> quarantine
  const ingest = new IngestService({ store, prices: new PriceCatalog(), region: "us-west-2", maxEventAgeDays: 35 });
  const outcome = await captured(() => ingest.ingest(BUS_MESSAGES.map(record)));
  logLines.push(JSON.stringify([...outcome.outcomes.values()]));
}, 120_000);

afterAll(() => {
  vi.unstubAllEnvs();
  resetConfig();
});

describe("no prompt or completion text is stored or served", () => {
  it("rejects what it should, for the reasons expected (so the searches below look at real quarantine items)", async () => {
    const page = await store.quarantined(DAY, 100);
    const reasons = page.items.map((i) => i.reason).sort();
    expect(reasons).toEqual(
      [
        "invocation-log:untrusted-tenant",
        "invocation-log:untrusted-tenant",
        "invocation-log:missing-tenant",
        "invocation-log:missing-tenant",
        "invocation-log:missing-token-counts",
        "invocation-log:schema",
        "invocation-log:not-an-invocation-log",
        "invocation-log:malformed-json",
        "invocation-log:missing-tenant",
        "schema",
        "schema",
        "unexpected-detail-type",
        "schema",
        "malformed-json",
        "schema",
      ].sort(),
    );
    expect(emitted.map((e) => [e.eventId, e.tenantId])).toEqual([
      ["d0c1a2b3-0000-4000-8000-000000000001", "adv-01"],
      ["d0c1a2b3-0000-4000-8000-000000000002", "adv-01"],
    ]);
    // what an operator gets instead: ids, reason, field names and sizes
    const untrusted = page.items.find((i) => i.eventId === "d0c1a2b3-0000-4000-8000-000000000003");
    expect(untrusted).toMatchObject({ tenantId: "adv-01", source: INVOCATION_SOURCES.invocationLog, message: expect.stringContaining(INTRUDER_SESSION) });
    expect(untrusted?.shape.fields).toContain(`input.inputBodyJson.messages[0].content[0].text: string(${CANARY.length})`);
  });

  it("no DynamoDB item holds the text", async () => {
    const scan = await localDynamoClient().send(new ScanCommand({ TableName: table }));
    expect(scan.Items?.length).toBeGreaterThanOrEqual(15);
    const dump = JSON.stringify(scan.Items);
    for (const f of FRAGMENTS) expect(dump, f).not.toContain(f);
    expect(scan.Items?.some((i) => "body" in i)).toBe(false);
  });

  it("GET /quarantine does not serve it", async () => {
    vi.stubEnv("USAGE_TABLE_NAME", table);
    vi.stubEnv("AWS_ENDPOINT_URL_DYNAMODB", inject("dynamoEndpoint"));
    vi.stubEnv("POWERTOOLS_METRICS_DISABLED", "true");
    resetConfig();
    const { handler } = await import("../../../functions/http/usage");
    const res = await captured(() =>
      handler({ routeKey: "GET /quarantine", rawPath: "/quarantine", queryStringParameters: { day: DAY, limit: "100" } } as unknown as APIGatewayProxyEventV2, {
        awsRequestId: "r-1",
      } as Context),
    );
    const body = typeof res === "string" ? res : String(res.body);
    expect(JSON.parse(body).items.length).toBe(15);
    for (const f of FRAGMENTS) expect(body, f).not.toContain(f);
  });

  it("no log line carries it, and neither do the emitted events", () => {
    expect(logLines.length).toBeGreaterThan(0);
    const logs = logLines.join("\n");
    for (const f of FRAGMENTS) {
      expect(logs, f).not.toContain(f);
      expect(JSON.stringify(emitted), f).not.toContain(f);
    }
  });
});
