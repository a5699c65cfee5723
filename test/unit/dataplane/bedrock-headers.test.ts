import { BedrockRuntimeClient } from "@aws-sdk/client-bedrock-runtime";
import { Readable } from "node:stream";
import { describe, expect, it } from "vitest";
import { MeteredBedrock } from "../../../shared/dataplane/adapters/bedrock";
import { CollectingSink, quietLogger } from "./fakes";

// No aws-sdk-client-mock in this file: it patches the client class's `send`, and this test
// needs the real middleware stack (signing, deserialization, our header capture).
describe("MeteredBedrock.invokeModel through the real SDK stack", () => {
  it("reads the x-amzn-bedrock token-count headers through the real SDK stack", async () => {
    // A real client with a fake HTTP handler: exercises the per-command middleware end to end.
    const requests: string[] = [];
    const client = new BedrockRuntimeClient({
      region: "us-west-2",
      credentials: { accessKeyId: "local", secretAccessKey: "local" },
      requestHandler: {
        handle: async (req: { path: string }) => {
          requests.push(req.path);
          return {
            response: {
              statusCode: 200,
              headers: {
                "content-type": "application/json",
                "x-amzn-requestid": "3abacd58-8693-4a25-b1c0-e80ab9efb812",
                "x-amzn-bedrock-invocation-latency": "14244",
                "x-amzn-bedrock-output-token-count": "300",
                "x-amzn-bedrock-input-token-count": "13",
              },
              body: Readable.from([Buffer.from(JSON.stringify({ generation: "...", stop_reason: "length" }))]),
            },
          };
        },
      } as never,
    });
    const sink = new CollectingSink();
    const wrapper = new MeteredBedrock({ client, sink, logger: quietLogger });
    const out = await wrapper.invokeModel(
      { modelId: "meta.llama3-1-70b-instruct-v1:0", contentType: "application/json", body: JSON.stringify({ prompt: "Hello" }) },
      { tenantId: "tenant-a" },
    );
    expect(JSON.parse(new TextDecoder().decode(out.body))).toEqual({ generation: "...", stop_reason: "length" });
    expect(requests[0]).toContain("/model/meta.llama3-1-70b-instruct-v1%3A0/invoke");
    expect(sink.events[0]).toMatchObject({
      eventId: "3abacd58-8693-4a25-b1c0-e80ab9efb812",
      inputTokens: 13,
      outputTokens: 300,
      latencyMs: 14244,
    });
  });

});
