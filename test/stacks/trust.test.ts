import { App as CdkApp, Stack } from "aws-cdk-lib";
import { Template } from "aws-cdk-lib/assertions";
import * as s3 from "aws-cdk-lib/aws-s3";
import { beforeAll, describe, expect, it } from "vitest";
import { HTTP_ROUTES } from "../../shared/http/routes";
import { SCHEDULED_JOBS } from "../../shared/runtime/schedules";
import { Api, API_CALLER_ROUTES, API_THROTTLE, DATA_PLANE_TENANT_PREFIX_TAG, DATA_PLANE_TENANT_TAG } from "../../stacks/Api";
import { Jobs, JOB_TARGET_RETRY_ATTEMPTS } from "../../stacks/Jobs";
import { WILDCARD_RESOURCE_ACTIONS } from "../../stacks/nag-suppressions";
import { Ops } from "../../stacks/Ops";
import { addNagChecks, nagErrors } from "./nag";
import { asArray, refId, routeFunctionId, statements, synth, type Synth } from "./synth";

type Resource = { Type: string; Properties: Record<string, any> };

const DATA_PLANE_BUS_ARN = "arn:aws:events:us-west-2:111122223333:event-bus/data-plane";
let plain: Synth;
let full: Synth;
let api: Template;

beforeAll(async () => {
  // Given the app for a plain stage, and for a production stage with every stage parameter set
  plain = await synth({ stage: "test", env: { DATA_PLANE_BUS_ARN: undefined, OPS_ALERT_EMAIL: undefined, BEDROCK_INVOCATION_LOGGING: undefined } });
  api = plain.template(Api as never);
  full = await synth({ stage: "prod", env: { DATA_PLANE_BUS_ARN, OPS_ALERT_EMAIL: "ops@example.com", BEDROCK_INVOCATION_LOGGING: "managed" } });
}, 300_000);

const cdkStacks = (s: Synth) => s.app.node.children.filter((c): c is Stack => Stack.isStack(c));
/** Every stack of an app with its template (Template caches nothing, so build once per test). */
const templates = (s: Synth) => cdkStacks(s).map((st) => ({ name: st.stackName, t: Template.fromStack(st) }));

/** Statements of the managed policies of a template (statements() reads inline policies only). */
function managedStatements(t: Template): Record<string, any>[] {
  return (Object.values(t.findResources("AWS::IAM::ManagedPolicy")) as Resource[]).flatMap((p) => p.Properties.PolicyDocument.Statement);
}

function managedPolicy(logicalPrefix: string): Resource {
  const found = Object.entries(api.findResources("AWS::IAM::ManagedPolicy")).filter(([id]) => id.startsWith(logicalPrefix));
  expect(found, logicalPrefix).toHaveLength(1);
  return found[0][1] as Resource;
}

/** `arn:...:execute-api:...:<api>/<rest>` -> `<rest>` (Fn::Join flattened). */
function apiPath(resource: any): string {
  const parts: any[] = resource["Fn::Join"][1];
  const text = parts.map((p) => (typeof p === "string" ? p : "<ref>")).join("");
  return text.slice(text.indexOf("<ref>/") + "<ref>/".length);
}

describe("finding 4: managed policies for the three kinds of API caller", () => {
  it("billing reader may invoke only GET /usage/* and GET /billing/*", () => {
    const [stmt, ...rest] = managedPolicy("BillingReaderPolicy").Properties.PolicyDocument.Statement;
    expect(rest).toEqual([]);
    expect(stmt).toMatchObject({ Effect: "Allow", Action: "execute-api:Invoke" });
    expect(asArray(stmt.Resource).map(apiPath).sort()).toEqual(["*/GET/billing/*", "*/GET/usage/*"]);
  });

  it("operator may invoke only tenant config (GET, PUT), the quarantine and the enforcement log", () => {
    const [stmt, ...rest] = managedPolicy("OperatorPolicy").Properties.PolicyDocument.Statement;
    expect(rest).toEqual([]);
    expect(stmt).toMatchObject({ Effect: "Allow", Action: "execute-api:Invoke" });
    expect(asArray(stmt.Resource).map(apiPath).sort()).toEqual(["*/GET/enforcement/events", "*/GET/quarantine", "*/GET/tenants/*/config", "*/PUT/tenants/*/config"]);
  });

  it("data plane may read only the decision of tenants named by its principal tags, and publish only wrapper usage events", () => {
    const stmts = managedPolicy("DataPlanePolicy").Properties.PolicyDocument.Statement as any[];
    expect(stmts).toHaveLength(2);
    const invoke = stmts.find((s) => s.Action === "execute-api:Invoke");
    expect(asArray(invoke.Resource).map(apiPath).sort()).toEqual([
      `*/GET/tenants/\${aws:PrincipalTag/${DATA_PLANE_TENANT_PREFIX_TAG}}*/decision`,
      `*/GET/tenants/\${aws:PrincipalTag/${DATA_PLANE_TENANT_TAG}}/decision`,
    ]);
    const put = stmts.find((s) => s.Action === "events:PutEvents");
    expect(put.Condition).toEqual({ StringEquals: { "events:source": ["genai.metering.bedrock", "genai.metering.sagemaker"] } });
    expect(JSON.stringify(put.Resource)).toMatch(/-Ingest:ExportsOutputFnGetAttBusEventBus.*Arn/);
  });

  it("the three policies cover every route, and no caller gets a route of another kind", () => {
    const all = Object.values(API_CALLER_ROUTES).flat().map(([m, p]) => `${m} ${p}`);
    expect(all.sort()).toEqual(HTTP_ROUTES.map((r) => `${r.method} ${r.path}`).sort());
    expect(new Set(all).size).toBe(all.length);
  });

  it("exports the three policy ARNs as stack outputs", () => {
    const outputs = api.toJSON().Outputs as Record<string, any>;
    for (const [name, policy] of [
      ["BillingReaderPolicyArn", "BillingReaderPolicy"],
      ["OperatorPolicyArn", "OperatorPolicy"],
      ["DataPlanePolicyArn", "DataPlanePolicy"],
    ]) {
      expect(outputs[name], name).toBeDefined();
      expect(refId(outputs[name].Value)).toMatch(new RegExp(`^${policy}`));
      expect(outputs[name].Export.Name).toBe(`test-genai-metering-${name}`);
    }
  });

  it("throttles the default stage and keeps access logs three months", () => {
    const stages = Object.values(api.findResources("AWS::ApiGatewayV2::Stage")) as Resource[];
    expect(stages).toHaveLength(1);
    expect(stages[0].Properties.DefaultRouteSettings).toMatchObject({ ThrottlingBurstLimit: API_THROTTLE.burst, ThrottlingRateLimit: API_THROTTLE.rate });
    const destination = refId(stages[0].Properties.AccessLogSettings.DestinationArn);
    const group = api.toJSON().Resources[destination] as Resource;
    expect(group.Type).toBe("AWS::Logs::LogGroup");
    expect(group.Properties.RetentionInDays).toBe(90);
  });

  it("gives every API function the cursor key from a generated secret, never a literal", () => {
    const secrets = Object.entries(api.findResources("AWS::SecretsManager::Secret")) as [string, Resource][];
    expect(secrets).toHaveLength(1);
    const [secretId, secret] = secrets[0];
    expect(secret.Properties.GenerateSecretString).toMatchObject({ PasswordLength: 64 });
    for (const route of HTTP_ROUTES) {
      const fn = api.toJSON().Resources[routeFunctionId(api, `${route.method} ${route.path}`)] as Resource;
      const value = JSON.stringify(fn.Properties.Environment.Variables.CURSOR_SECRET);
      expect(value, route.path).toContain("{{resolve:secretsmanager:");
      expect(value).toContain(secretId);
    }
  });
});

describe("finding 9: IAM hygiene on every stack", () => {
  it("grants no dynamodb:TransactWriteItems (not an IAM action) anywhere", { timeout: 300_000 }, () => {
    for (const s of [plain, full]) {
      for (const { name, t } of templates(s)) {
        const actions = statements(t).flatMap(({ statement }) => asArray<string>(statement.Action));
        expect(actions, name).not.toContain("dynamodb:TransactWriteItems");
      }
    }
  });

  it("conditions every events:PutEvents grant on the sources its role may publish", () => {
    const seen: string[][] = [];
    for (const { name, t } of templates(full)) {
      for (const statement of [...statements(t).map((s) => s.statement), ...managedStatements(t)]) {
        if (!asArray<string>(statement.Action).includes("events:PutEvents")) continue;
        const sources = asArray<string>(statement.Condition?.StringEquals?.["events:source"]);
        expect(sources.length, `${name}: ${JSON.stringify(statement)}`).toBeGreaterThan(0);
        seen.push(sources.sort());
      }
    }
    // quota publishers (ingest, config PUT, outbox sweep, forward to the data-plane bus), the invocation-log function, the data-plane policy
    expect(new Set(seen.map((s) => s.join(",")))).toEqual(
      new Set(["genai.metering.quota", "genai.metering.invocation-log", "genai.metering.bedrock,genai.metering.sagemaker"]),
    );
  });

  it('allows Resource "*" only for actions without resource-level permissions', () => {
    for (const { name, t } of templates(full)) {
      for (const statement of [...statements(t).map((s) => s.statement), ...managedStatements(t)]) {
        if (!asArray(statement.Resource).includes("*")) continue;
        for (const action of asArray<string>(statement.Action)) expect(WILDCARD_RESOURCE_ACTIONS, `${name}: ${action}`).toContain(action);
      }
    }
  });

  it("gives each cron target the jobs DLQ, and sends a run that failed its retries there too", () => {
    const jobs = plain.template(Jobs as never);
    const dlqId = Object.keys(jobs.findResources("AWS::SQS::Queue")).find((id) => id.startsWith("JobFailures"));
    expect(dlqId).toBeDefined();
    const rules = Object.values(jobs.findResources("AWS::Events::Rule")).filter((r: any) => r.Properties.ScheduleExpression) as Resource[];
    expect(rules).toHaveLength(Object.keys(SCHEDULED_JOBS).length);
    for (const rule of rules) {
      const [target] = rule.Properties.Targets as any[];
      expect(refId(target.DeadLetterConfig.Arn)).toBe(dlqId);
      expect(target.RetryPolicy).toMatchObject({ MaximumRetryAttempts: JOB_TARGET_RETRY_ATTEMPTS });
    }
    const invokeConfigs = Object.values(jobs.findResources("AWS::Lambda::EventInvokeConfig")) as Resource[];
    expect(invokeConfigs).toHaveLength(Object.keys(SCHEDULED_JOBS).length);
    for (const c of invokeConfigs) expect(refId(c.Properties.DestinationConfig.OnFailure.Destination)).toBe(dlqId);
    // and Ops alarms when anything is in it
    const ops = plain.template(Ops as never);
    const alarms = Object.values(ops.findResources("AWS::CloudWatch::Alarm")) as Resource[];
    expect(alarms.filter((a) => /DlqDepth-jobs-dlq$/.test(a.Properties.AlarmName))).toHaveLength(1);
  });
});

describe("finding 9: cdk-nag AwsSolutions on every synthesized stack", () => {
  it("finds no unsuppressed error in any stack, plain or with every stage parameter", () => {
    for (const s of [plain, full]) {
      const stacks = cdkStacks(s);
      expect(stacks.length).toBeGreaterThanOrEqual(8);
      for (const st of stacks) expect(nagErrors(st), st.stackName).toEqual([]);
    }
    // 16 stacks through the whole pack: ~50 s on a loaded 2-core box
  }, 300_000);

  it("does fail on a stack that breaks the pack (the check can fail)", () => {
    const app = new CdkApp();
    const stack = new Stack(app, "Bad");
    new s3.Bucket(stack, "Loose");
    addNagChecks(app);
    const errors = nagErrors(stack);
    // a bucket without TLS-only policy and without access logs; neither is on the suppression list for this id
    expect(errors.some((e) => e.includes("AwsSolutions-S10"))).toBe(true);
  });
});
