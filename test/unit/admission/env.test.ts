import { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { DynamoDBDocumentClient, GetCommand } from "@aws-sdk/lib-dynamodb";
import { mockClient } from "aws-sdk-client-mock";
import { beforeEach, describe, expect, it } from "vitest";
import { ADMISSION_ENV, admissionConfigFromEnv, admissionFromEnv } from "../../../shared/admission/adapters/env";
import { AdmissionConfigInvalidError } from "../../../shared/admission/errors";
import { DEFAULT_TIER_MODES } from "../../../shared/admission/model";
import { DataplaneRequestInvalidError } from "../../../shared/dataplane/errors";
import { QuotaConfigInvalidError } from "../../../shared/quota/errors";
import { documentClient } from "../../../shared/storage/adapters/dynamodb";

const ddb = mockClient(DynamoDBDocumentClient);
beforeEach(() => ddb.reset());
const doc = () => documentClient(new DynamoDBClient({ region: "us-west-2", credentials: { accessKeyId: "x", secretAccessKey: "y" } }));

function thrown(f: () => unknown): Error {
  try {
    f();
  } catch (error) {
    return error as Error;
  }
  throw new Error("expected a throw");
}

describe("admissionConfigFromEnv: ADMISSION_CONFIG_JSON", () => {
  it("reads a valid configuration, keeping the defaults of what it leaves out", () => {
    const cfg = admissionConfigFromEnv({
      ADMISSION_CONFIG_JSON: JSON.stringify({ tiers: { basic: { mode: "hard", defaultMaxTokens: 512 } }, requireMaxTokens: true, serviceTiers: { premium: "priority" } }),
    });
    expect(cfg.tiers.basic).toEqual({ mode: "hard", leaseTokens: 20_000, defaultMaxTokens: 512 });
    expect(cfg.tiers.premium).toEqual(DEFAULT_TIER_MODES.premium);
    expect(cfg.requireMaxTokens).toBe(true);
    expect(cfg.serviceTiers).toEqual({ premium: "priority" });
    expect(cfg.leaseSeconds).toBe(30);
  });

  it("gives the defaults when the variable is absent or blank", () => {
    for (const env of [{}, { ADMISSION_CONFIG_JSON: "" }, { ADMISSION_CONFIG_JSON: "  " }]) {
      const cfg = admissionConfigFromEnv(env);
      expect(cfg.tiers).toEqual(DEFAULT_TIER_MODES);
      expect(cfg.pools).toEqual([]);
    }
  });

  it("refuses JSON that does not parse with AdmissionConfigInvalidError naming the variable", () => {
    const error = thrown(() => admissionConfigFromEnv({ ADMISSION_CONFIG_JSON: "{ tiers: " }));
    expect(error).toBeInstanceOf(AdmissionConfigInvalidError);
    expect(error.message).toMatch(/^ADMISSION_CONFIG_JSON is not valid JSON/);
  });

  it("refuses a wrong shape, naming the variable and every offending path", () => {
    const error = thrown(() =>
      admissionConfigFromEnv({
        ADMISSION_CONFIG_JSON: JSON.stringify({ tiers: { basic: { mode: "soft" } }, leaseSeconds: -1, surprise: 1 }),
      }),
    );
    expect(error).toBeInstanceOf(AdmissionConfigInvalidError);
    expect(error.message).toMatch(/^ADMISSION_CONFIG_JSON is not a valid admission configuration/);
    expect(error.message).toContain("tiers.basic.mode");
    expect(error.message).toContain("leaseSeconds");
    expect(error.message).toContain("surprise");
  });

  it("refuses JSON that is not an object (an array, a string)", () => {
    for (const text of ["[]", '"lease"', "null"]) {
      const error = thrown(() => admissionConfigFromEnv({ ADMISSION_CONFIG_JSON: text }));
      expect(error, text).toBeInstanceOf(AdmissionConfigInvalidError);
      expect(error.message, text).toContain("ADMISSION_CONFIG_JSON");
    }
  });
});

describe("admissionFromEnv", () => {
  it("wires Admission to the table named by USAGE_TABLE_NAME and the tier defaults of the configuration", async () => {
    ddb.on(GetCommand).resolves({}); // no CONFIG item: the default tier
    const env = {
      USAGE_TABLE_NAME: "usage-table-test",
      ADMISSION_CONFIG_JSON: JSON.stringify({ tiers: { advanced: { mode: "hard", defaultMaxTokens: 777 } } }),
      QUOTA_DEFAULT_TIER: "advanced",
    };
    const built = admissionFromEnv(env, { doc: doc() });
    expect(built.tableName).toBe("usage-table-test");
    // the tenant has no CONFIG item, so QUOTA_DEFAULT_TIER decides its tier, and the config that tier's max_tokens
    expect(await built.admission.defaultMaxTokens("tenant-a")).toBe(777);
    const reads = ddb.commandCalls(GetCommand).map((c) => c.args[0].input);
    expect(reads).toHaveLength(1);
    expect(reads[0].TableName).toBe("usage-table-test");
    expect(reads[0].Key).toMatchObject({ pk: "TENANT#tenant-a" });
    await built.admission.close();
  });

  it("gives the gate the configuration's requireMaxTokens and the region to price in", async () => {
    const built = admissionFromEnv(
      { USAGE_TABLE_NAME: "t", AWS_REGION: "eu-central-1", ADMISSION_CONFIG_JSON: JSON.stringify({ requireMaxTokens: true }) },
      { doc: doc() },
    );
    expect(built.gate.region).toBe("eu-central-1");
    // a request without max_tokens is refused by the gate before anything is read or reserved
    const refused = await built.gate
      .admit({
        tenantId: "tenant-a",
        provider: "bedrock",
        routing: { modelId: "anthropic.claude-3-haiku-20240307-v1:0", decision: { tenantId: "tenant-a", decision: "allow" } as never },
        canDowngrade: false,
        request: {},
        promptText: "hi",
        messages: 1,
        maxTokensOf: () => undefined,
        withMaxTokens: (r) => r,
      })
      .catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(DataplaneRequestInvalidError);
    expect(ddb.commandCalls(GetCommand)).toHaveLength(0);
    expect(admissionFromEnv({ USAGE_TABLE_NAME: "t" }, { doc: doc() }).gate.region).toBe("us-west-2");
  });

  it("with profileScopes, routes a Premium tenant's call to the global profile, its tier from the policy Admission caches (one CONFIG read)", async () => {
    ddb.on(GetCommand).callsFake((input: { Key: { pk: string; sk: string } }) =>
      input.Key.sk === "CONFIG" ? { Item: { ...input.Key, tenantId: input.Key.pk.slice("TENANT#".length), tier: input.Key.pk.endsWith("#vip") ? "premium" : "basic" } } : {},
    );
    const SONNET45 = "anthropic.claude-sonnet-4-5-20250929-v1:0";
    const built = admissionFromEnv(
      { USAGE_TABLE_NAME: "t", ADMISSION_CONFIG_JSON: JSON.stringify({ profileScopes: { premium: "global" } }) },
      { doc: doc() },
    );
    const admit = (tenantId: string) =>
      built.gate.admit({
        tenantId,
        provider: "bedrock",
        routing: { modelId: SONNET45, decision: { tenantId, decision: "allow" } as never },
        canDowngrade: false,
        request: { maxTokens: 100 },
        promptText: "hi",
        messages: 1,
        maxTokensOf: (r) => r.maxTokens,
        withMaxTokens: (r) => r,
      });
    const vip = await admit("vip");
    expect(vip.routing.modelId).toBe(`global.${SONNET45}`);
    expect(vip.ticket.reservation.modelId).toBe(`global.${SONNET45}`);
    await vip.ticket.release();
    const again = await admit("vip");
    await again.ticket.release();
    // the gate asks Admission for the tier: one policy read (cached) serves both, for both calls
    expect(ddb.commandCalls(GetCommand).filter((c) => c.args[0].input.Key?.pk === "TENANT#vip" && c.args[0].input.Key?.sk === "CONFIG")).toHaveLength(1);
    await built.admission.close();
  });

  it("fails at start-up, naming the variable, without the table name or with a bad tier or catalog", () => {
    const missing = thrown(() => admissionFromEnv({}, { doc: doc() }));
    expect(missing).toBeInstanceOf(AdmissionConfigInvalidError);
    expect(missing.message).toContain(ADMISSION_ENV.table);

    const tier = thrown(() => admissionFromEnv({ USAGE_TABLE_NAME: "t", QUOTA_DEFAULT_TIER: "gold" }, { doc: doc() }));
    expect(tier).toBeInstanceOf(AdmissionConfigInvalidError);
    expect(tier.message).toContain("QUOTA_DEFAULT_TIER");

    const tiers = thrown(() => admissionFromEnv({ USAGE_TABLE_NAME: "t", TIER_CATALOG_JSON: "{" }, { doc: doc() }));
    expect(tiers).toBeInstanceOf(QuotaConfigInvalidError);
    expect(tiers.message).toContain("TIER_CATALOG_JSON");

    const prices = thrown(() => admissionFromEnv({ USAGE_TABLE_NAME: "t", PRICE_CATALOG_JSON: "{" }, { doc: doc() }));
    expect(prices).toBeInstanceOf(AdmissionConfigInvalidError);
    expect(prices.message).toContain("PRICE_CATALOG_JSON");

    const config = thrown(() => admissionFromEnv({ USAGE_TABLE_NAME: "t", ADMISSION_CONFIG_JSON: "{" }, { doc: doc() }));
    expect(config).toBeInstanceOf(AdmissionConfigInvalidError);
    expect(config.message).toContain("ADMISSION_CONFIG_JSON");
  });
});
