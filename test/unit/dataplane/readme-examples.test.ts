import { BedrockRuntimeClient, ConverseCommand } from "@aws-sdk/client-bedrock-runtime";
import { EventBridgeClient, PutEventsCommand } from "@aws-sdk/client-eventbridge";
import { InvokeEndpointCommand, SageMakerRuntimeClient } from "@aws-sdk/client-sagemaker-runtime";
import { mockClient } from "aws-sdk-client-mock";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it, vi } from "vitest";
import { MeteredBedrock } from "../../../shared/dataplane/adapters/bedrock";
import { createUsageEmitter } from "../../../shared/dataplane/adapters/eventbridge";
import { MeteredSageMaker } from "../../../shared/dataplane/adapters/sagemaker";
import { signedFetch } from "../../../shared/dataplane/adapters/sigv4-fetch";
import { CachedDecisionSource, HttpDecisionSource } from "../../../shared/dataplane/decisions";
import { TenantThrottledError } from "../../../shared/dataplane/errors";

/**
 * The two integration examples of shared/dataplane/README.md, verbatim (the last test checks
 * the README still says exactly this), compiled by tsc with the rest of the project and run
 * here against mocked runtime clients, a mocked EventBridge and a stubbed decision endpoint.
 */
const bedrockMock = mockClient(BedrockRuntimeClient);
const sagemakerMock = mockClient(SageMakerRuntimeClient);
const eventsMock = mockClient(EventBridgeClient);
const sent: Record<string, unknown>[] = [];
eventsMock.on(PutEventsCommand).callsFake((input: { Entries: { Detail: string }[] }) => {
  sent.push(...input.Entries.map((e) => JSON.parse(e.Detail) as Record<string, unknown>));
  return { FailedEntryCount: 0, Entries: input.Entries.map((_, i) => ({ EventId: `ev-${sent.length}-${i}` })) };
});
bedrockMock.on(ConverseCommand).resolves({
  $metadata: { requestId: "readme-req-1" },
  output: { message: { role: "assistant", content: [{ text: "Hello!" }] } },
  stopReason: "end_turn",
  usage: { inputTokens: 307, outputTokens: 533, totalTokens: 840 },
  metrics: { latencyMs: 300 },
});
sagemakerMock.on(InvokeEndpointCommand).callsFake(() => ({
  $metadata: { requestId: "readme-sm-1" },
  InvokedProductionVariant: "AllTraffic",
  Body: new TextEncoder().encode(JSON.stringify({ generated_text: "Hi.", details: { prompt_tokens: 12, generated_tokens: 3 } })),
}));
// The decision endpoint, behind IAM auth like the deployed route: a request without a SigV4
// authorization header is refused (403). Signed: tenant-throttled is throttled, everyone else
// allowed. The example's signer takes its credentials from the default chain, here the
// environment vitest.config.ts sets (AWS_ACCESS_KEY_ID=local).
const decisionUrls: string[] = [];
const decisionAuth: string[] = [];
vi.stubGlobal("fetch", async (url: string, init?: { headers?: Record<string, string> }) => {
  decisionUrls.push(url);
  const authorization = init?.headers?.authorization ?? "";
  decisionAuth.push(authorization);
  if (!authorization.startsWith("AWS4-HMAC-SHA256 ")) return new Response(JSON.stringify({ message: "Forbidden" }), { status: 403 });
  const tenantId = decodeURIComponent(url.split("/tenants/")[1].split("/")[0]);
  const body = tenantId === "tenant-throttled" ? { tenantId, decision: "throttle", retryAfterSeconds: 3600 } : { tenantId, decision: "allow" };
  return new Response(JSON.stringify(body), { status: 200, headers: { "content-type": "application/json" } });
});
const sigtermBefore = new Set(process.listeners("SIGTERM"));

// ---- README: Bedrock ----
const emitter = createUsageEmitter({ clientConfig: { region: "us-west-2" }, eventBusName: "metering" });
// The deployed decision route has IAM auth: sign each request (SigV4) with the caller's credentials.
const decisionApi = new HttpDecisionSource({ baseUrl: "https://api.example.com", fetch: signedFetch({ region: "us-west-2", service: "execute-api" }) });
const decisions = new CachedDecisionSource(decisionApi, { ttlMs: 5_000 });
const bedrock = new MeteredBedrock({ client: new BedrockRuntimeClient({}), sink: emitter, decisions });

export async function chat(tenantId: string, text: string) {
  try {
    const out = await bedrock.converse(
      { modelId: "anthropic.claude-3-5-sonnet-20240620-v1:0", messages: [{ role: "user", content: [{ text }] }] },
      { tenantId, feature: "chat" },
    );
    return { status: 200, text: out.output?.message?.content?.[0]?.text };
  } catch (e) {
    if (e instanceof TenantThrottledError) return { status: 429, retryAfterSeconds: e.retryAfterSeconds };
    throw e;
  }
}
process.once("SIGTERM", () => void emitter.close());

// ---- README: SageMaker ----
const sagemaker = new MeteredSageMaker({ client: new SageMakerRuntimeClient({}), sink: emitter, decisions });

export async function complete(tenantId: string, prompt: string) {
  const out = await sagemaker.invokeEndpoint(
    {
      EndpointName: "llama31-70b-lora",
      ContentType: "application/json",
      Body: JSON.stringify({ inputs: prompt, parameters: { max_new_tokens: 512, details: true } }),
    },
    { tenantId, adapterId: `${tenantId}-lora` }, // LoRA adapter, DJL LMI: body `adapters`
  );
  return JSON.parse(new TextDecoder().decode(out.Body)) as { generated_text: string };
}
// ---- end of README examples ----

afterAll(async () => {
  // The example's SIGTERM hook would keep this worker from exiting on SIGTERM.
  for (const l of process.listeners("SIGTERM")) if (!sigtermBefore.has(l)) process.removeListener("SIGTERM", l);
  await emitter.close();
  vi.unstubAllGlobals();
  bedrockMock.restore();
  sagemakerMock.restore();
  eventsMock.restore();
});

describe("shared/dataplane/README.md examples", () => {
  it("Bedrock: answers, meters the call once with the tenant, and turns a throttle into a 429", async () => {
    expect(await chat("tenant-a", "Hi")).toEqual({ status: 200, text: "Hello!" });
    expect(await chat("tenant-throttled", "Hi")).toEqual({ status: 429, retryAfterSeconds: 3600 });
    expect(bedrockMock.commandCalls(ConverseCommand)).toHaveLength(1);
    expect(bedrockMock.commandCalls(ConverseCommand)[0].args[0].input.requestMetadata).toEqual({ tenantId: "tenant-a", feature: "chat" });
    expect(decisionUrls).toContain("https://api.example.com/tenants/tenant-a/decision");
    expect(decisionAuth.length).toBeGreaterThan(0);
    for (const auth of decisionAuth) expect(auth).toMatch(/^AWS4-HMAC-SHA256 Credential=local\/\d{8}\/us-west-2\/execute-api\/aws4_request, /);

    await emitter.flush();
    expect(sent).toEqual([
      expect.objectContaining({ eventId: "readme-req-1", tenantId: "tenant-a", feature: "chat", provider: "bedrock", inputTokens: 307, outputTokens: 533 }),
    ]);
    expect(eventsMock.commandCalls(PutEventsCommand)[0].args[0].input.Entries?.[0]).toMatchObject({
      EventBusName: "metering",
      Source: "genai.metering.bedrock",
      DetailType: "Model Invocation",
    });
  });

  it("SageMaker: returns the server's reply and meters it with the endpoint and adapter", async () => {
    expect(await complete("tenant-b", "Hello")).toEqual({ generated_text: "Hi.", details: { prompt_tokens: 12, generated_tokens: 3 } });
    const body = JSON.parse(String(sagemakerMock.commandCalls(InvokeEndpointCommand)[0].args[0].input.Body)) as Record<string, unknown>;
    expect(body.adapters).toBe("tenant-b-lora");
    await vi.waitFor(() => expect(emitter.stats.buffered + emitter.stats.sent).toBeGreaterThanOrEqual(2));
    await emitter.flush();
    expect(sent.at(-1)).toMatchObject({
      eventId: "readme-sm-1",
      tenantId: "tenant-b",
      provider: "sagemaker",
      endpointName: "llama31-70b-lora",
      adapterId: "tenant-b-lora",
      inputTokens: 12,
      outputTokens: 3,
    });
    await expect(complete("tenant-throttled", "Hello")).rejects.toBeInstanceOf(TenantThrottledError);
  });

  it("is the code the README shows", () => {
    const normalize = (text: string) =>
      text
        .split("\n")
        .map((l) => l.trim())
        .filter(Boolean);
    const readme = readFileSync(fileURLToPath(new URL("../../../shared/dataplane/README.md", import.meta.url)), "utf8");
    const self = normalize(readFileSync(fileURLToPath(import.meta.url), "utf8")).join("\n");
    const blocks = [...readme.matchAll(/## (Bedrock|SageMaker)[^\n]*\n\n```ts\n([\s\S]*?)```/g)].map((m) => ({ section: m[1], code: m[2] }));
    expect(blocks.map((b) => b.section)).toEqual(["Bedrock", "SageMaker"]);
    for (const b of blocks) expect(self, `README ${b.section} example`).toContain(normalize(b.code).join("\n"));
  });
});
