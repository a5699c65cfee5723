import { BedrockClient, ConflictException, CreateInferenceProfileCommand, ListInferenceProfilesCommand } from "@aws-sdk/client-bedrock";
import { mockClient } from "aws-sdk-client-mock";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { BedrockProfiles } from "../../../shared/reconciliation/adapters/bedrock";
import { AttributionInvalidInputError, AttributionProfileLimitError, planProfiles, profileMapEntries, profileName } from "../../../shared/reconciliation/attribution";
import { InferenceProfiles } from "../../../shared/pricing/inference-profiles";
import { compareCur, CurInvalidError, readCurCsv } from "../../../shared/reconciliation/cur";

const SONNET = "arn:aws:bedrock:us-west-2::foundation-model/anthropic.claude-3-5-sonnet-20240620-v1:0";
const HAIKU = "arn:aws:bedrock:us-west-2::foundation-model/anthropic.claude-3-haiku-20240307-v1:0";
const tenants = [
  { tenantId: "adv-01", tier: "advanced" },
  { tenantId: "prem-01", tier: "premium" },
  { tenantId: "ops@example.com", tier: "advanced" },
];

describe("application inference profiles: the plan", () => {
  it("one profile per tenant and model, tagged for cost allocation, with stable names and tokens", () => {
    const plan = planProfiles({ stage: "prod", per: "tenant", tenants, models: [SONNET, HAIKU], existing: new Map() });
    expect(plan.create).toHaveLength(6);
    expect(plan.totalAfter).toBe(6);
    const first = plan.create[0];
    expect(first.tags).toEqual([
      { key: "genai-metering-stage", value: "prod" },
      { key: "tier", value: "advanced" },
      { key: "tenantId", value: "adv-01" },
    ]);
    for (const s of plan.create) {
      expect(s.inferenceProfileName.length).toBeLessThanOrEqual(64);
      expect(s.inferenceProfileName).toMatch(/^([0-9a-zA-Z:.][ _-]?)+$/);
      expect(s.clientRequestToken).toMatch(/^[a-zA-Z0-9](-*[a-zA-Z0-9])*$/);
    }
    const again = planProfiles({ stage: "prod", per: "tenant", tenants, models: [SONNET, HAIKU], existing: new Map() });
    expect(again.create.map((s) => [s.inferenceProfileName, s.clientRequestToken])).toEqual(plan.create.map((s) => [s.inferenceProfileName, s.clientRequestToken]));
    expect(new Set(plan.create.map((s) => s.inferenceProfileName)).size).toBe(6);
    expect(profileName("prod", "tenant", "ops@example.com", SONNET)).not.toContain("@");
  });

  it("profiles that exist are not created again; the 2,000-per-region limit counts every existing profile", () => {
    const first = planProfiles({ stage: "prod", per: "tenant", tenants, models: [SONNET], existing: new Map() });
    const existing = new Map([[first.create[0].inferenceProfileName, "arn:aws:bedrock:us-west-2:1:application-inference-profile/x"]]);
    const second = planProfiles({ stage: "prod", per: "tenant", tenants, models: [SONNET], existing });
    expect(second.create).toHaveLength(2);
    expect(second.existing).toHaveLength(1);

    const many = Array.from({ length: 700 }, (_, i) => ({ tenantId: `t-${i}`, tier: "advanced" }));
    expect(() => planProfiles({ stage: "prod", per: "tenant", tenants: many, models: [SONNET, HAIKU, SONNET.replace("sonnet", "opus")], existing: new Map() })).toThrow(AttributionProfileLimitError);
    // per tier it fits
    expect(planProfiles({ stage: "prod", per: "tier", tenants: many, models: [SONNET, HAIKU], existing: new Map() }).create).toHaveLength(2);
    expect(() => planProfiles({ stage: "prod", per: "tier", tenants, models: ["anthropic.claude"], existing: new Map() })).toThrow(AttributionInvalidInputError);
  });

  it("the plan's profiles resolve a tenant to its own profile, else its tier's (what the wrappers call)", () => {
    const perTenant = planProfiles({ stage: "prod", per: "tenant", tenants: tenants.slice(0, 1), models: [SONNET], existing: new Map() });
    const perTier = planProfiles({ stage: "prod", per: "tier", tenants, models: [SONNET], existing: new Map() });
    const created = new Map([...perTenant.create, ...perTier.create].map((s, i) => [s.inferenceProfileName, `arn:aws:bedrock:us-west-2:123456789012:application-inference-profile/p${i}`]));
    const profiles = new InferenceProfiles(profileMapEntries({ ...perTenant, create: [...perTenant.create, ...perTier.create] }, created));
    expect(profiles.forCall("adv-01", "advanced", SONNET, "us-west-2")).toBe("arn:aws:bedrock:us-west-2:123456789012:application-inference-profile/p0");
    expect(profiles.forCall("ops@example.com", "advanced", SONNET, "us-west-2")).toBe(created.get(perTier.create.find((s) => s.owner.id === "advanced")!.inferenceProfileName));
    expect(profiles.forCall("x", "basic", SONNET, "us-west-2")).toBeUndefined();
  });
});

describe("the plan as INFERENCE_PROFILES_JSON (what the wrappers and the price catalog read)", () => {
  it("existing and created profiles become entries the wrappers resolve; a failed create is left out", () => {
    const perTenant = planProfiles({ stage: "prod", per: "tenant", tenants: tenants.slice(0, 2), models: [SONNET], existing: new Map() });
    const perTier = planProfiles({ stage: "prod", per: "tier", tenants, models: [SONNET], existing: new Map() });
    const plan = { ...perTenant, create: [...perTenant.create, ...perTier.create] };
    const arnOf = (i: number) => `arn:aws:bedrock:us-west-2:123456789012:application-inference-profile/p${i}`;
    // the second tenant's create failed: no ARN
    const created = new Map(plan.create.filter((_, i) => i !== 1).map((s, i) => [s.inferenceProfileName, arnOf(i)]));
    const entries = profileMapEntries(plan, created);
    expect(entries).toHaveLength(plan.create.length - 1);
    const profiles = InferenceProfiles.fromJson(JSON.stringify(entries));
    // a tenant's own profile where its create succeeded, else its tier's
    const arnOfSpec = (owner: string) => created.get(plan.create.find((s) => s.owner.id === owner)?.inferenceProfileName ?? "");
    for (const t of tenants) expect(profiles.forCall(t.tenantId, t.tier, SONNET, "us-west-2"), t.tenantId).toBe(arnOfSpec(t.tenantId) ?? arnOfSpec(t.tier));
    expect(profiles.baseModelOf(arnOf(0))).toBe(SONNET);
  });
});

describe("application inference profiles: Bedrock adapter (aws-sdk-client-mock)", () => {
  const mock = mockClient(BedrockClient);
  afterEach(() => mock.reset());

  it("creates each planned profile with its token and tags; a lost response (Conflict on retry) is looked up by name", async () => {
    const plan = planProfiles({ stage: "prod", per: "tenant", tenants: tenants.slice(0, 2), models: [SONNET], existing: new Map() });
    const [a, b] = plan.create;
    mock.on(CreateInferenceProfileCommand, { inferenceProfileName: a.inferenceProfileName }).resolves({ inferenceProfileArn: "arn:a", status: "ACTIVE" });
    mock.on(CreateInferenceProfileCommand, { inferenceProfileName: b.inferenceProfileName }).rejects(new ConflictException({ message: "exists", $metadata: {} }));
    mock.on(ListInferenceProfilesCommand).resolvesOnce({ inferenceProfileSummaries: [], nextToken: "n" } as never).resolves({
      inferenceProfileSummaries: [{ inferenceProfileName: b.inferenceProfileName, inferenceProfileArn: "arn:b" }],
    } as never);
    const created = await new BedrockProfiles(new BedrockClient({ region: "us-west-2" })).apply(plan);
    expect(created).toEqual(new Map([[a.inferenceProfileName, "arn:a"], [b.inferenceProfileName, "arn:b"]]));
    const sent = mock.commandCalls(CreateInferenceProfileCommand).map((c) => c.args[0].input);
    expect(sent[0]).toMatchObject({ clientRequestToken: a.clientRequestToken, modelSource: { copyFrom: SONNET }, tags: a.tags });
    expect(mock.commandCalls(ListInferenceProfilesCommand)[0].args[0].input).toMatchObject({ typeEquals: "APPLICATION" });
  });
});

// The fixture's rows are written by hand in the CUR 2.0 CSV layout (no AWS account here to record
// an export): usage types as AWS documents them for Bedrock (`*-input-tokens`), and one Marketplace
// line (third-party model, own product code, "(Amazon Bedrock Edition)") in the shape AWS's own
// cost-allocation queries match.
describe("CUR 2.0 reader (Bedrock rows in the CUR 2.0 CSV layout)", () => {
  const csv = readFileSync(join(__dirname, "fixtures", "cur2-bedrock.csv"), "utf8");

  it("reads Bedrock line items with their tenant tag; other products are skipped; untagged cost is kept apart", () => {
    const rows = readCurCsv(csv);
    expect(rows).toHaveLength(7);
    expect(rows.filter((r) => r.tenantId === "adv-01").map((r) => r.day)).toEqual(["2026-11-25", "2026-11-25", "2026-11-26", "2026-11-25"]);
    // the Marketplace-billed model (its own product code) is a Bedrock charge too
    expect(rows.find((r) => r.usageType === "USW2-MP:USW2_InputTokenCount-Units")).toMatchObject({ tenantId: "adv-01", costUsd: 0.0001 });
    const cmp = compareCur(
      rows,
      new Map([
        ["adv-01", new Map([["2026-11-25", 0.0157], ["2026-11-26", 0.0031]])],
        ["prem-01", new Map([["2026-11-25", 0.021]])],
        ["basic-01", new Map([["2026-11-25", 0.5]])],
      ]),
    );
    expect(cmp.rows).toEqual([
      { day: "2026-11-25", tenantId: "adv-01", curUsd: 0.0157, meteredUsd: 0.0157, differenceUsd: 0, differencePercent: 0 },
      { day: "2026-11-25", tenantId: "basic-01", curUsd: 0, meteredUsd: 0.5, differenceUsd: -0.5, differencePercent: 100 },
      { day: "2026-11-25", tenantId: "prem-01", curUsd: 0.021, meteredUsd: 0.021, differenceUsd: 0, differencePercent: 0 },
      { day: "2026-11-26", tenantId: "adv-01", curUsd: 0.003, meteredUsd: 0.0031, differenceUsd: -0.0001, differencePercent: 3.3333 },
    ]);
    expect(cmp.untaggedUsd).toEqual({ "2026-11-25": 0.001 });
  });

  it("refuses a file that is not a CUR 2.0 export, and bad numbers, with the line", () => {
    expect(() => readCurCsv("a,b\n1,2\n")).toThrow(CurInvalidError);
    const bad = csv.replace(",0.0036,", ",abc,");
    expect(() => readCurCsv(bad)).toThrow(/line 2: line_item_unblended_cost/);
  });
});
