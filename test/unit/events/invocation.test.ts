import { describe, expect, it } from "vitest";
import { InvalidInvocationEventError, MAX_TOKENS_PER_CALL, parseInvocationMessage } from "../../../shared/events/invocation";
import { envelope, invocation } from "../../helpers/events";

function reasonOf(body: string): string {
  try {
    parseInvocationMessage(body);
    return "accepted";
  } catch (e) {
    if (e instanceof InvalidInvocationEventError) return `${e.reason}: ${e.message}`;
    throw e;
  }
}

describe("event contract v1", () => {
  it("accepts a valid event with optional fields", () => {
    const e = invocation({ provider: "sagemaker", endpointName: "llama", variantName: "AllTraffic", adapterId: "tenant-a", latencyMs: 4400, cacheReadInputTokens: 10 });
    expect(parseInvocationMessage(envelope(e))).toEqual(e);
  });

  it.each([
    ["malformed JSON", "{", /^malformed-json/],
    ["not an envelope", JSON.stringify({ hello: 1 }), /^not-an-envelope/],
    ["wrong detail-type", envelope(invocation(), { "detail-type": "Other" }), /^unexpected-detail-type/],
    ["unknown source (caught by the catch rule)", envelope(invocation(), { source: "genai.metering.openai" }), /^unknown-source: unknown source 'genai.metering.openai'/],
    ["enforcement source with the invocation detail-type", envelope(invocation(), { source: "genai.metering.quota" }), /^unknown-source/],
    ["tenant with key delimiter", envelope({ ...invocation(), tenantId: "a#b" }), /^schema: invalid invocation event: tenantId/],
    ["injection attempt in tenant", envelope({ ...invocation(), tenantId: "x' OR 1=1 --" }), /^schema: invalid invocation event: tenantId/],
    ["tenant too long", envelope({ ...invocation(), tenantId: "t".repeat(65) }), /^schema: invalid invocation event: tenantId/],
    ["negative tokens", envelope({ ...invocation(), inputTokens: -1 }), /^schema: invalid invocation event: inputTokens: token counts must be >= 0/],
    ["fractional tokens", envelope({ ...invocation(), outputTokens: 1.5 }), /^schema: invalid invocation event: outputTokens/],
    ["huge tokens", envelope({ ...invocation(), outputTokens: MAX_TOKENS_PER_CALL + 1 }), /^schema: invalid invocation event: outputTokens/],
    ["string tokens", envelope({ ...invocation(), inputTokens: "307" }), /^schema: invalid invocation event: inputTokens/],
    ["unknown provider", envelope({ ...invocation(), provider: "openai" }), /^schema: invalid invocation event: provider/],
    ["missing eventId", envelope({ ...invocation(), eventId: undefined }), /^schema: invalid invocation event: eventId/],
    ["bad timestamp", envelope({ ...invocation(), occurredAt: "yesterday" }), /^schema: invalid invocation event: occurredAt/],
    ["unknown field", envelope({ ...invocation(), prompt: "secret" }), /^schema: invalid invocation event: .*prompt/],
    ["model id with #", envelope({ ...invocation(), modelId: "a#b" }), /^schema: invalid invocation event: modelId/],
  ])("rejects %s with a clear reason", (_name, body, expected) => {
    expect(reasonOf(body)).toMatch(expected);
  });
});
