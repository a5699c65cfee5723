import { describe, expect, it } from "vitest";
import { Alerts } from "../../stacks/Alerts";
import { ENFORCEMENT_SOURCE, Enforcement } from "../../stacks/Enforcement";
import { Ingest } from "../../stacks/Ingest";
import { Jobs } from "../../stacks/Jobs";
import { Storage } from "../../stacks/Storage";
import { asArray, roleStatements, synth } from "./synth";

const DATA_PLANE_BUS_ARN = "arn:aws:events:us-west-2:111122223333:event-bus/data-plane";

describe("stage and parameters", () => {
  it("lets a dev stage drop its table and bucket on `sst remove`", async () => {
    // Given the app synthesized for the disposable `dev` stage
    const s = await synth({ stage: "dev" });
    // Then data resources are deleted with the stack and the table is not deletion-protected
    s.template(Storage).hasResource("AWS::DynamoDB::Table", { DeletionPolicy: "Delete" });
    expect(Object.values(s.template(Storage).findResources("AWS::DynamoDB::Table"))[0].Properties.DeletionProtectionEnabled).toBe(false);
    s.template(Jobs).hasResource("AWS::S3::Bucket", { DeletionPolicy: "Delete" });
  });

  it("retains them on a production stage", async () => {
    const s = await synth({ stage: "prod" });
    s.template(Storage).hasResource("AWS::DynamoDB::Table", { DeletionPolicy: "Retain", UpdateReplacePolicy: "Retain" });
    s.template(Jobs).hasResource("AWS::S3::Bucket", { DeletionPolicy: "Retain" });
  });

  it("adds the cross-account data-plane bus target, with a role that may only PutEvents there, when DATA_PLANE_BUS_ARN is set", async () => {
    // Given DATA_PLANE_BUS_ARN in the environment (or .env.<stage>)
    const s = await synth({ env: { DATA_PLANE_BUS_ARN } });
    const t = s.template(Enforcement);
    // Then the data-plane rule has a second target: the remote bus, published to through a role
    const rules = Object.values(t.findResources("AWS::Events::Rule")).filter((r) =>
      (r.Properties.EventPattern.source as string[]).includes(ENFORCEMENT_SOURCE),
    );
    const remote = rules.flatMap((r) => r.Properties.Targets as any[]).filter((target) => target.Arn === DATA_PLANE_BUS_ARN);
    expect(remote).toHaveLength(1);
    const roleId = remote[0].RoleArn["Fn::GetAtt"][0] as string;
    const stmts = roleStatements(t, roleId).filter((st) => st.Effect === "Allow");
    expect(stmts.flatMap((st) => asArray(st.Action))).toEqual(["events:PutEvents"]);
    expect(stmts.flatMap((st) => asArray(st.Resource))).toEqual([DATA_PLANE_BUS_ARN]);
    // enforcement events only
    expect(stmts.map((st) => st.Condition)).toEqual([{ StringEquals: { "events:source": ENFORCEMENT_SOURCE } }]);
  });

  it("subscribes OPS_ALERT_EMAIL to the ops topic when set, and nothing when unset", async () => {
    const withEmail = await synth({ env: { OPS_ALERT_EMAIL: "ops@example.com" } });
    withEmail.template(Alerts).hasResourceProperties("AWS::SNS::Subscription", { Protocol: "email", Endpoint: "ops@example.com" });
    const without = await synth({ env: { OPS_ALERT_EMAIL: undefined } });
    without.template(Alerts).resourceCountIs("AWS::SNS::Subscription", 0);
  });
});

describe("pricing configuration of the stage", () => {
  const PROFILE = "arn:aws:bedrock:us-west-2:111122223333:application-inference-profile/abc123def456";
  const profiles = JSON.stringify([{ arn: PROFILE, model: "anthropic.claude-3-haiku-20240307-v1:0", tenant: "acme" }]);
  const catalog = JSON.stringify({ aliases: { "my-router": "anthropic.claude-3-haiku-20240307-v1:0" } });

  it("passes PRICE_CATALOG_JSON and INFERENCE_PROFILES_JSON to the handlers that price, checked at synth", async () => {
    const s = await synth({ env: { PRICE_CATALOG_JSON: catalog, INFERENCE_PROFILES_JSON: profiles } });
    const functions = [Ingest, Jobs].flatMap((stack) => Object.values(s.template(stack).findResources("AWS::Lambda::Function")));
    const withPricing = functions.filter((f) => f.Properties.Environment?.Variables?.USAGE_TABLE_NAME !== undefined);
    expect(withPricing.length).toBeGreaterThan(3);
    for (const f of withPricing) {
      expect(f.Properties.Environment.Variables).toMatchObject({ PRICE_CATALOG_JSON: catalog, INFERENCE_PROFILES_JSON: profiles });
    }
  });

  it("refuses to synthesize a malformed value or one too large for Lambda's 4 KB environment", async () => {
    await expect(synth({ env: { INFERENCE_PROFILES_JSON: '[{"arn":"not-an-arn","model":"m"}]' } })).rejects.toThrow(/INFERENCE_PROFILES_JSON|profile/i);
    await expect(synth({ env: { PRICE_CATALOG_JSON: "{not json" } })).rejects.toThrow(/price catalog/i);
    const big = JSON.stringify({ aliases: Object.fromEntries(Array.from({ length: 200 }, (_, i) => [`alias-${i}`, "anthropic.claude-3-haiku-20240307-v1:0"])) });
    await expect(synth({ env: { PRICE_CATALOG_JSON: big } })).rejects.toThrow(/4 KB/);
  });
});
