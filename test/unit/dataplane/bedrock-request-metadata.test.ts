import { BedrockRuntimeClient } from "@aws-sdk/client-bedrock-runtime";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MeteredBedrock } from "../../../shared/dataplane/adapters/bedrock";
import type { DecisionSource } from "../../../shared/dataplane/decisions";
import { DataplaneRequestInvalidError } from "../../../shared/dataplane/errors";
import { parseInvocationLogRecord } from "../../../shared/invocation-log/parse";
import { trustMap } from "../../../shared/invocation-log/tenant-binding";
import { CollectingSink, quietLogger, startWireBedrock, type WireRequest } from "./fakes";
import { invokeModelRecord } from "../invocation-log/samples";

/**
 * The tenant must reach Bedrock on every call, so the invocation log can be joined to the
 * wrapper's event: `requestMetadata` in the Converse body, the `X-Amzn-Bedrock-Request-Metadata`
 * header on InvokeModel. Asserted on the wire: a real client sends to a local HTTP server.
 */
type Received = WireRequest;

let wire: Awaited<ReturnType<typeof startWireBedrock>>;
let endpoint: string;
let received: Received[];

beforeAll(async () => {
  wire = await startWireBedrock();
  ({ endpoint, received } = wire);
});
afterAll(() => wire.close());

const premium: DecisionSource = { get: async (tenantId) => ({ tenantId, decision: "allow", tier: "premium" }) };

function wrapper() {
  // The client's own (HTTP/2) handler, to a plaintext HTTP/2 server on loopback.
  const client = new BedrockRuntimeClient({ region: "us-west-2", endpoint, credentials: { accessKeyId: "local", secretAccessKey: "local" } });
  const sink = new CollectingSink();
  return { sink, bedrock: new MeteredBedrock({ client, sink, decisions: premium, logger: quietLogger }) };
}

const last = () => received[received.length - 1];
const headerJson = (r: Received) => JSON.parse(String(r.headers["x-amzn-bedrock-request-metadata"]));
const messages = [{ role: "user" as const, content: [{ text: "hello" }] }];
const body = JSON.stringify({ prompt: "hello" });
const MODEL = "anthropic.claude-3-haiku-20240307-v1:0";

describe("the Bedrock wrapper sends the tenant on every call", () => {
  it("InvokeModel: X-Amzn-Bedrock-Request-Metadata is a JSON object with tenantId, tier and feature", async () => {
    const { bedrock, sink } = wrapper();
    await bedrock.invokeModel({ modelId: MODEL, contentType: "application/json", body }, { tenantId: "adv-07", feature: "summarize" });
    expect(last().path).toContain("/invoke");
    expect(headerJson(last())).toEqual({ tenantId: "adv-07", tier: "premium", feature: "summarize" });
    expect(sink.events[0]).toMatchObject({ tenantId: "adv-07", eventId: "req-" + received.length });
  });

  it("InvokeModelWithResponseStream: the same header", async () => {
    const { bedrock } = wrapper();
    const out = await bedrock.invokeModelWithResponseStream({ modelId: MODEL, contentType: "application/json", body }, { tenantId: "adv-08" });
    for await (const _ of out.body ?? []) void _;
    expect(last().path).toContain("/invoke-with-response-stream");
    expect(headerJson(last())).toEqual({ tenantId: "adv-08", tier: "premium" });
  });

  it("keeps the caller's own pairs in the header, and the tenant wins over a caller's tenantId", async () => {
    const { bedrock } = wrapper();
    await bedrock.invokeModel(
      { modelId: MODEL, body, requestMetadata: JSON.stringify({ team: "search", tenantId: "someone-else" }) },
      { tenantId: "adv-09" },
    );
    expect(headerJson(last())).toEqual({ team: "search", tenantId: "adv-09", tier: "premium" });
  });

  it("Converse and ConverseStream: requestMetadata in the body", async () => {
    const { bedrock } = wrapper();
    await bedrock.converse({ modelId: MODEL, messages, requestMetadata: { team: "search" } }, { tenantId: "adv-10", feature: "chat" });
    expect(JSON.parse(last().body).requestMetadata).toEqual({ team: "search", tenantId: "adv-10", tier: "premium", feature: "chat" });
    const stream = await bedrock.converseStream({ modelId: MODEL, messages }, { tenantId: "adv-11" });
    for await (const _ of stream.stream ?? []) void _;
    expect(last().path).toContain("/converse-stream");
    expect(JSON.parse(last().body).requestMetadata).toEqual({ tenantId: "adv-11", tier: "premium" });
  });

  it("leaves out a feature label Bedrock's metadata cannot carry, instead of failing the call", async () => {
    const { bedrock } = wrapper();
    await bedrock.invokeModel({ modelId: MODEL, body }, { tenantId: "adv-12", feature: "résumé (v2)!" });
    expect(headerJson(last())).toEqual({ tenantId: "adv-12", tier: "premium" });
  });

  it("refuses, before calling the model, metadata Bedrock would reject: not a JSON object, or more than 16 pairs", async () => {
    const { bedrock } = wrapper();
    const before = received.length;
    await expect(bedrock.invokeModel({ modelId: MODEL, body, requestMetadata: "not json" }, { tenantId: "adv-13" })).rejects.toBeInstanceOf(
      DataplaneRequestInvalidError,
    );
    const sixteen = Object.fromEntries(Array.from({ length: 16 }, (_, i) => [`k${i}`, "v"]));
    await expect(bedrock.converse({ modelId: MODEL, messages, requestMetadata: sixteen }, { tenantId: "adv-13" })).rejects.toThrow(/at most 16/);
    expect(received.length).toBe(before);
  });

  it("the log record of such an InvokeModel call is attributed, not quarantined as missing-tenant", async () => {
    const { bedrock } = wrapper();
    await bedrock.invokeModel({ modelId: MODEL, body }, { tenantId: "adv-14" });
    // Bedrock logs the header's pairs as the record's requestMetadata.
    const record = invokeModelRecord({ requestId: `req-${received.length}`, requestMetadata: headerJson(last()) });
    const parsed = parseInvocationLogRecord(record, { binding: trustMap({ "*": ["*"] }) });
    expect(parsed).toMatchObject({ kind: "event", event: { tenantId: "adv-14", tier: "premium", eventId: `req-${received.length}` } });
  });
});
