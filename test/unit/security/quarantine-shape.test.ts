import { describe, expect, it } from "vitest";
import { contentFreeMessage, describeShape, envelopeIds, MAX_FIELDS } from "../../../shared/usage/quarantine";

const TEXT = "please forget my password hunter2 and summarise the attached contract";

describe("describeShape keeps field names and sizes, never values of strings", () => {
  it("describes a record by paths, types and lengths", () => {
    const shape = describeShape(JSON.stringify({ detail: { tenantId: "t-1", inputTokens: -1, prompt: TEXT, flags: [true] } }));
    expect(shape).toEqual({
      bytes: expect.any(Number),
      json: true,
      fields: ["(root): object(1)", "detail.tenantId: string(3)", "detail.inputTokens: -1", `detail.prompt: string(${TEXT.length})`, "detail.flags: array(1)"],
    });
  });

  it("replaces a field name that is not a plain identifier by its length", () => {
    const shape = describeShape({ [TEXT]: 1 });
    expect(shape.fields).toEqual(["(root): object(1)", `<key of ${TEXT.length} chars>: 1`]);
  });

  it("keeps only the size of what is not JSON", () => {
    expect(describeShape(`{"prompt": "${TEXT}`)).toEqual({ bytes: TEXT.length + 12, json: false, fields: [] });
  });

  it("is bounded: many fields, and arrays nested without end", () => {
    const wide = describeShape(Object.fromEntries(Array.from({ length: 500 }, (_, i) => [`f${i}`, i])));
    expect(wide.fields).toHaveLength(MAX_FIELDS);
    expect(wide.truncated).toBe(true);
    const nested = describeShape(`${"[".repeat(5_000)}{"prompt": ${JSON.stringify(TEXT)}}${"]".repeat(5_000)}`);
    expect(nested.truncated).toBe(true);
    expect(JSON.stringify(nested)).not.toContain("hunter2");
  });
});

describe("contentFreeMessage and envelopeIds", () => {
  it("keeps quoted identifiers and replaces quoted text by its length", () => {
    expect(contentFreeMessage(`unexpected detail-type '${TEXT}'`)).toBe(`unexpected detail-type <${TEXT.length} chars>`);
    expect(contentFreeMessage(`invalid invocation event: (root): Unrecognized key: "${TEXT}"`)).not.toContain("hunter2");
    expect(contentFreeMessage(`no price for model 'anthropic.claude-3-haiku-20240307-v1:0'`)).toBe("no price for model 'anthropic.claude-3-haiku-20240307-v1:0'");
  });

  it("keeps ids only in the form of such ids", () => {
    const body = JSON.stringify({ source: "genai.metering.bedrock", "detail-type": "Model Invocations", detail: { tenantId: "adv-01", eventId: "e-1" } });
    expect(envelopeIds(body)).toEqual({ source: "genai.metering.bedrock", detailType: "Model Invocations", tenantId: "adv-01", eventId: "e-1" });
    const text = JSON.stringify({ source: TEXT, "detail-type": TEXT, detail: { tenantId: TEXT, eventId: TEXT } });
    expect(envelopeIds(text)).toEqual({});
  });
});
