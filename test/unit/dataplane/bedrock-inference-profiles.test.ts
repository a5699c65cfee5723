import { BedrockRuntimeClient } from "@aws-sdk/client-bedrock-runtime";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MeteredBedrock } from "../../../shared/dataplane/adapters/bedrock";
import type { DecisionSource, TenantDecision } from "../../../shared/dataplane/decisions";
import { InferenceProfiles, InferenceProfilesInvalidError } from "../../../shared/pricing/inference-profiles";
import { parseConfig } from "../../../shared/runtime/config";
import { CollectingSink, quietLogger, startWireBedrock } from "./fakes";

/**
 * Native per-tenant attribution: the wrapper calls the tenant's (else its tier's) application
 * inference profile ARN instead of the model id, and the usage event keeps the model id that
 * prices it. Asserted on the wire: a real client sends to a local HTTP/2 server, which records
 * the model segment of each request path.
 */
let wire: Awaited<ReturnType<typeof startWireBedrock>>;
let endpoint: string;

beforeAll(async () => {
  wire = await startWireBedrock();
  endpoint = wire.endpoint;
});
afterAll(() => wire.close());

const HAIKU = "anthropic.claude-3-haiku-20240307-v1:0";
const SONNET = "anthropic.claude-3-5-sonnet-20240620-v1:0";
const arn = (region: string, id: string) => `arn:aws:bedrock:${region}:123456789012:application-inference-profile/${id}`;
const PROFILES = InferenceProfiles.fromJson(
  JSON.stringify([
    { arn: arn("us-west-2", "tadv07haiku"), model: HAIKU, tenant: "adv-07" },
    { arn: arn("us-east-1", "tadv07haikueast"), model: HAIKU, tenant: "adv-07" },
    { arn: arn("us-west-2", "gpremhaiku"), model: HAIKU, tier: "premium" },
    { arn: arn("us-west-2", "gpremsonnet"), model: `arn:aws:bedrock:us-west-2::foundation-model/${SONNET}`, tier: "premium" },
    { arn: arn("us-west-2", "pricedonly"), model: HAIKU },
  ]),
);

function wrapper(decision: Omit<TenantDecision, "tenantId"> = { decision: "allow", tier: "premium" }, region = "us-west-2") {
  const client = new BedrockRuntimeClient({ region, endpoint, credentials: { accessKeyId: "local", secretAccessKey: "local" } });
  const decisions: DecisionSource = { get: async (tenantId) => ({ tenantId, ...decision }) as TenantDecision };
  const sink = new CollectingSink();
  return { sink, bedrock: new MeteredBedrock({ client, sink, decisions, logger: quietLogger, inferenceProfiles: PROFILES }) };
}

// the model segment of the last request's path, decoded (an ARN's ':' and '/' arrive encoded)
const last = () => decodeURIComponent(wire.received[wire.received.length - 1].path);
const messages = [{ role: "user" as const, content: [{ text: "hello" }] }];
const body = JSON.stringify({ prompt: "hello" });

describe("MeteredBedrock calls the tenant's application inference profile", () => {
  it("all four operations go to the tenant's profile ARN in the client's region; the event keeps the model id", async () => {
    const { bedrock, sink } = wrapper();
    const profile = arn("us-west-2", "tadv07haiku");
    await bedrock.converse({ modelId: HAIKU, messages }, { tenantId: "adv-07" });
    expect(last()).toBe(`/model/${profile}/converse`);
    const s = await bedrock.converseStream({ modelId: HAIKU, messages }, { tenantId: "adv-07" });
    for await (const _ of s.stream ?? []) void _;
    expect(last()).toBe(`/model/${profile}/converse-stream`);
    await bedrock.invokeModel({ modelId: HAIKU, contentType: "application/json", body }, { tenantId: "adv-07" });
    expect(last()).toBe(`/model/${profile}/invoke`);
    const i = await bedrock.invokeModelWithResponseStream({ modelId: HAIKU, contentType: "application/json", body }, { tenantId: "adv-07" });
    for await (const _ of i.body ?? []) void _;
    expect(last()).toBe(`/model/${profile}/invoke-with-response-stream`);
    // what prices the call: the model id, and the region the call was made in
    expect(sink.events.map((e) => e.modelId)).toEqual([HAIKU, HAIKU, HAIKU, HAIKU]);
    expect(sink.events[0]).toMatchObject({ tenantId: "adv-07", region: "us-west-2", tier: "premium" });
  });

  it("falls back to the tier's profile, then to the model id; a profile of another region is never called", async () => {
    const { bedrock } = wrapper();
    await bedrock.converse({ modelId: HAIKU, messages }, { tenantId: "prem-01" });
    expect(last()).toBe(`/model/${arn("us-west-2", "gpremhaiku")}/converse`);
    // the tier's Sonnet profile was configured with the model's ARN: the caller's id still finds it
    await bedrock.converse({ modelId: SONNET, messages }, { tenantId: "prem-01" });
    expect(last()).toBe(`/model/${arn("us-west-2", "gpremsonnet")}/converse`);

    const basic = wrapper({ decision: "allow", tier: "basic" });
    await basic.bedrock.converse({ modelId: HAIKU, messages }, { tenantId: "basic-01" });
    expect(last()).toBe(`/model/${HAIKU}/converse`);

    const east = wrapper({ decision: "allow", tier: "basic" }, "eu-west-1");
    await east.bedrock.converse({ modelId: HAIKU, messages }, { tenantId: "adv-07" });
    expect(last()).toBe(`/model/${HAIKU}/converse`);
  });

  it("a downgrade calls the tenant's profile of the target model, and the event records both models", async () => {
    const { bedrock, sink } = wrapper({ decision: "downgrade", tier: "premium", targetModelId: HAIKU });
    await bedrock.converse({ modelId: SONNET, messages }, { tenantId: "adv-07" });
    expect(last()).toBe(`/model/${arn("us-west-2", "tadv07haiku")}/converse`);
    expect(sink.events[0]).toMatchObject({ modelId: HAIKU, requestedModelId: SONNET });
  });

  it("without profiles, the model id is called as before", async () => {
    const client = new BedrockRuntimeClient({ region: "us-west-2", endpoint, credentials: { accessKeyId: "local", secretAccessKey: "local" } });
    const bedrock = new MeteredBedrock({ client, sink: new CollectingSink(), logger: quietLogger });
    await bedrock.converse({ modelId: HAIKU, messages }, { tenantId: "adv-07" });
    expect(last()).toBe(`/model/${HAIKU}/converse`);
  });
});

describe("InferenceProfiles (INFERENCE_PROFILES_JSON)", () => {
  it("refuses a map that is not one: bad ARN, tenant and tier on one entry, two profiles for one owner and model, one profile with two models", () => {
    const bad = (v: unknown) => () => InferenceProfiles.fromJson(JSON.stringify(v));
    expect(bad([{ arn: "arn:aws:bedrock:us-west-2::foundation-model/x", model: HAIKU }])).toThrow(InferenceProfilesInvalidError);
    expect(bad([{ arn: arn("us-west-2", "a1"), model: HAIKU, tenant: "t1", tier: "premium" }])).toThrow(/not both/);
    expect(bad([{ arn: arn("us-west-2", "a1"), model: HAIKU, tenant: "t1" }, { arn: arn("us-west-2", "a2"), model: HAIKU, tenant: "t1" }])).toThrow(/same tenant/);
    expect(bad([{ arn: arn("us-west-2", "a1"), model: HAIKU }, { arn: arn("us-east-1", "a1"), model: SONNET }])).toThrow(/two different models/);
    expect(() => InferenceProfiles.fromJson("{")).toThrow(/does not parse/);
    expect(InferenceProfiles.fromJson(undefined).size).toBe(0);
  });

  it("the handlers' configuration refuses a malformed INFERENCE_PROFILES_JSON at cold start", () => {
    expect(() => parseConfig({ USAGE_TABLE_NAME: "t", INFERENCE_PROFILES_JSON: JSON.stringify([{ arn: "nope", model: HAIKU }]) })).toThrow(/INFERENCE_PROFILES_JSON/);
    expect(parseConfig({ USAGE_TABLE_NAME: "t", INFERENCE_PROFILES_JSON: JSON.stringify([{ arn: arn("us-west-2", "ok1"), model: HAIKU }]) }).INFERENCE_PROFILES_JSON).toContain("ok1");
  });

  it("without the client's region, a profile is taken only when it is the owner's only one for the model", () => {
    expect(PROFILES.forCall("adv-07", undefined, HAIKU, undefined)).toBeUndefined(); // two regions
    expect(PROFILES.forCall("prem-01", "premium", HAIKU, undefined)).toBe(arn("us-west-2", "gpremhaiku"));
  });
});
