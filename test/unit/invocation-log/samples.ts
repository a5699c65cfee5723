/** Invocation-log records shaped like the ones Bedrock writes (fields as documented; ids made up). */
export function converseRecord(over: Record<string, unknown> = {}) {
  return {
    schemaType: "ModelInvocationLog",
    schemaVersion: "1.0",
    timestamp: "2026-11-25T14:08:32Z",
    accountId: "123456789012",
    identity: { arn: "arn:aws:sts::123456789012:assumed-role/app-role/session" },
    region: "us-west-2",
    requestId: "915a6a04-3f83-4c70-a277-7fbf7ea546b3",
    operation: "Converse",
    modelId: "anthropic.claude-3-haiku-20240307-v1:0",
    input: {
      inputContentType: "application/json",
      inputBodyJson: { messages: [{ role: "user", content: [{ text: "Where is my order?" }] }] },
      inputTokenCount: 307,
      cacheReadInputTokenCount: 120,
      cacheWriteInputTokenCount: 0,
    },
    output: {
      outputContentType: "application/json",
      outputBodyJson: {
        output: { message: { role: "assistant", content: [{ text: "It ships tomorrow." }] } },
        stopReason: "end_turn",
        metrics: { latencyMs: 4400 },
        usage: { inputTokens: 307, outputTokens: 533, totalTokens: 840 },
      },
      outputTokenCount: 533,
    },
    requestMetadata: { tenantId: "tenant-b", feature: "chat" },
    ...over,
  };
}

/** An InvokeModel record: no request metadata exists for InvokeModel, so no tenant. */
export function invokeModelRecord(over: Record<string, unknown> = {}) {
  return {
    schemaType: "ModelInvocationLog",
    schemaVersion: "1.0",
    timestamp: "2026-11-25T14:09:01Z",
    accountId: "123456789012",
    identity: { arn: "arn:aws:sts::123456789012:assumed-role/tenant-c-role/session" },
    region: "us-west-2",
    requestId: "3abacd58-8693-4a25-b1c0-e80ab9efb812",
    operation: "InvokeModel",
    modelId: "arn:aws:bedrock:us-west-2:123456789012:inference-profile/us.anthropic.claude-3-5-sonnet-20240620-v1:0",
    input: { inputContentType: "application/json", inputBodyJson: { prompt: "hi" }, inputTokenCount: 13 },
    output: { outputContentType: "application/json", outputBodyJson: { generation: "..." }, outputTokenCount: 300 },
    ...over,
  };
}

export const jsonLines = (...records: unknown[]) => records.map((r) => (typeof r === "string" ? r : JSON.stringify(r))).join("\n") + "\n";
