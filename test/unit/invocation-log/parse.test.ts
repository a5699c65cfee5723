import { describe, expect, it } from "vitest";
import {
  InvocationLogRecordInvalidError,
  parseInvocationLogRecord,
  parseInvocationLogText,
} from "../../../shared/invocation-log/parse";
import { trustMap } from "../../../shared/invocation-log/tenant-binding";
import { converseRecord, invokeModelRecord, jsonLines } from "./samples";

/** Every principal may act for every tenant: the binding itself is tested in tenant-binding.test.ts. */
const TRUST_ALL = { binding: trustMap({ "*": ["*"] }) };

function rejection(raw: unknown): InvocationLogRecordInvalidError {
  try {
    parseInvocationLogRecord(raw, TRUST_ALL);
  } catch (error) {
    if (error instanceof InvocationLogRecordInvalidError) return error;
    throw error;
  }
  throw new Error("expected a rejection");
}

describe("parseInvocationLogRecord", () => {
  it("turns a Converse record into an event keyed by the Bedrock request id", () => {
    expect(parseInvocationLogRecord(converseRecord(), TRUST_ALL)).toEqual({
      kind: "event",
      event: {
        eventId: "915a6a04-3f83-4c70-a277-7fbf7ea546b3",
        tenantId: "tenant-b",
        occurredAt: "2026-11-25T14:08:32Z",
        provider: "bedrock",
        modelId: "anthropic.claude-3-haiku-20240307-v1:0",
        inputTokens: 307,
        outputTokens: 533,
        cacheReadInputTokens: 120,
        cacheWriteInputTokens: 0,
        region: "us-west-2",
        latencyMs: 4400,
        feature: "chat",
        status: "success",
        schemaVersion: "1",
      },
    });
  });

  it("keeps an inference-profile ARN as the model id (the price catalog resolves it)", () => {
    const parsed = parseInvocationLogRecord(invokeModelRecord({ requestMetadata: { tenantId: "tenant-c" } }), TRUST_ALL);
    expect(parsed).toMatchObject({ kind: "event", event: { modelId: expect.stringContaining("inference-profile/us.anthropic"), inputTokens: 13, outputTokens: 300 } });
  });

  it("rejects a record without a tenant with reason missing-tenant, keeping the request id", () => {
    const e = rejection(invokeModelRecord());
    expect(e).toMatchObject({ reason: "missing-tenant", requestId: "3abacd58-8693-4a25-b1c0-e80ab9efb812" });
    expect(e.message).toContain("InvokeModel");
  });

  it("attributes a tenant-less record through resolveTenant (dedicated accounts / roles)", () => {
    const parsed = parseInvocationLogRecord(invokeModelRecord(), {
      ...TRUST_ALL,
      resolveTenant: ({ identityArn }) => identityArn?.match(/assumed-role\/(tenant-[a-z])-role\//)?.[1],
    });
    expect(parsed).toMatchObject({ kind: "event", event: { tenantId: "tenant-c" } });
  });

  it.each([
    ["not-an-invocation-log", { schemaType: "SomethingElse" }],
    ["not-an-invocation-log", [1, 2]],
    ["missing-request-id", converseRecord({ requestId: "" })],
    ["missing-token-counts", converseRecord({ input: { inputContentType: "application/json" }, output: {} })],
    ["schema", converseRecord({ input: { inputTokenCount: -3 } })],
    ["schema", converseRecord({ requestMetadata: { tenantId: "bad tenant#1" } })],
    ["schema", converseRecord({ timestamp: "yesterday" })],
  ])("rejects with reason %s", (reason, raw) => {
    expect(rejection(raw).reason).toBe(reason);
  });

  it("reports a failed invocation (errorCode) instead of counting it", () => {
    expect(parseInvocationLogRecord(converseRecord({ errorCode: "ThrottlingException", output: undefined }), TRUST_ALL)).toEqual({
      kind: "failed-invocation",
      requestId: "915a6a04-3f83-4c70-a277-7fbf7ea546b3",
      errorCode: "ThrottlingException",
    });
  });

  it("counts an embedding record (no output count) with zero output tokens", () => {
    const parsed = parseInvocationLogRecord(converseRecord({ operation: "InvokeModel", modelId: "amazon.titan-embed-text-v2:0", input: { inputTokenCount: 9 }, output: {} }), TRUST_ALL);
    expect(parsed).toMatchObject({ kind: "event", event: { inputTokens: 9, outputTokens: 0 } });
  });
});

describe("parseInvocationLogText", () => {
  it("parses JSON lines, numbering lines and keeping every record's outcome", () => {
    const text = jsonLines(converseRecord(), "{not json", "", invokeModelRecord());
    const outcomes = parseInvocationLogText(text, TRUST_ALL);
    expect(outcomes.map((o) => [o.line, o.kind])).toEqual([
      [1, "event"],
      [2, "rejected"],
      [4, "rejected"],
    ]);
    const bad = outcomes[1];
    expect(bad.kind === "rejected" && bad.error.reason).toBe("malformed-json");
    expect(bad.kind === "rejected" && bad.raw).toBe("{not json");
  });
});
