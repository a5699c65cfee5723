import { Metrics } from "@aws-lambda-powertools/metrics";
import { describe, expect, it, vi } from "vitest";
import { MemoryBudgetStore, MemoryPoolStore, MemoryUsageTruth, StaticPolicySource } from "../../shared/admission/adapters/memory";
import { powertoolsAdmissionMetrics } from "../../shared/admission/adapters/metrics";
import { parseAdmissionConfig } from "../../shared/admission/model";
import { Admission as AdmissionService } from "../../shared/admission/service";
import { ADMISSION_METRICS } from "../../shared/observability/metric-names";
import { DEFAULT_TIERS } from "../../shared/quota/tiers";
import { Admission } from "../../stacks/Admission";
import { ADMISSION_PANELS, Ops } from "../../stacks/Ops";
import { METRICS_NAMESPACE } from "../../stacks/support";
import { asArray, synth } from "./synth";

describe("admission stack", () => {
  it("gives the data plane a managed policy: writes only in ADMIT#/POOL# partitions, GetItem only on what admission reads", async () => {
    const s = await synth();
    const t = s.template(Admission);
    const policies = Object.values(t.findResources("AWS::IAM::ManagedPolicy"));
    expect(policies).toHaveLength(1);
    const statements = policies[0].Properties.PolicyDocument.Statement as any[];
    const actions = statements.flatMap((st) => asArray(st.Action));
    // no wildcard, no Scan/Query/Delete/BatchWrite
    expect(actions.every((a: string) => !a.includes("*"))).toBe(true);
    expect(actions).not.toContain("dynamodb:Scan");
    expect(actions).not.toContain("dynamodb:DeleteItem");
    const writer = statements.find((st) => asArray(st.Action).includes("dynamodb:UpdateItem"));
    expect(writer.Condition["ForAllValues:StringLike"]["dynamodb:LeadingKeys"]).toEqual(["ADMIT#*", "POOL#*"]);
    const reader = statements.find((st) => !asArray(st.Action).includes("dynamodb:UpdateItem"));
    expect(asArray(reader.Action)).toEqual(["dynamodb:GetItem"]);
    expect(reader.Condition["ForAllValues:StringLike"]["dynamodb:LeadingKeys"]).toEqual(["TENANT#*", "EVENT#*", "EPOCH#*", "RUN#*"]);
    // every statement on the usage table only (no index, no other table)
    for (const st of statements) expect(asArray(st.Resource)).toHaveLength(1);
    t.hasOutput("DataPlaneAdmissionPolicyArn", {});
  });
});

/** The dashboard body as the console reads it: the Fn::Join's references (region, ...) as placeholders. */
function dashboardWidgets(body: unknown): { properties: { title?: string; metrics?: unknown[][] } }[] {
  const join = (body as { "Fn::Join"?: [string, unknown[]] })["Fn::Join"];
  const text = join ? join[1].map((part) => (typeof part === "string" ? part : "REF")).join(join[0]) : String(body);
  return (JSON.parse(text) as { widgets: { properties: { title?: string; metrics?: unknown[][] } }[] }).widgets;
}

/** Runs admission through the Powertools adapter and returns the EMF documents it printed. */
async function emittedAdmissionEmf(): Promise<EmfDocument[]> {
  const lines: string[] = [];
  const spy = vi.spyOn(process.stdout, "write").mockImplementation((chunk: string | Uint8Array) => {
    lines.push(String(chunk));
    return true;
  });
  try {
    // a data-plane process names its own service; the namespace is the pipeline's
    const metrics = powertoolsAdmissionMetrics(new Metrics({ namespace: METRICS_NAMESPACE, serviceName: "tenant-app" }));
    const policies = new StaticPolicySource({
      basic: { ...DEFAULT_TIERS.basic, monthlyTokens: 100 },
      adv: { ...DEFAULT_TIERS.advanced, monthlyTokens: 100 },
      lease: { ...DEFAULT_TIERS.basic, monthlyTokens: 1_000_000 },
    });
    // A pool for one model only (the other calls do not enter it): 1,000 tokens a minute, of which
    // Basic may borrow 30% beyond the free floors, so a Basic call of 550 is shed.
    const OPUS = "anthropic.claude-3-opus-20240229-v1:0";
    const config = parseAdmissionConfig({ pools: [{ id: "opus@us-west-2", models: [OPUS], scope: "us-west-2", tpm: 1_000, rpm: 100 }] });
    const admission = new AdmissionService({ config, budgets: new MemoryBudgetStore(), pools: new MemoryPoolStore(), truth: new MemoryUsageTruth(), policies, metrics });
    const call = (tenantId: string, modelId = "anthropic.claude-3-5-sonnet-20240620-v1:0") =>
      admission.admit({ tenantId, provider: "bedrock", modelId, baseModelId: modelId, inputTokens: 50, maxOutputTokens: 500, nanoUsd: 0, canDowngrade: true });
    await expect(call("basic")).rejects.toThrow(/budget/); // refused: budget
    expect((await call("adv")).downgradeTo).toBe(DEFAULT_TIERS.advanced.downgradeModelId); // downgraded
    await expect(call("lease", OPUS)).rejects.toThrow(/shed/); // shed by the pool
    const ticket = await call("lease"); // a lease taken ...
    await ticket.settle({ inputTokens: 40, outputTokens: 10 });
    await admission.close(); // ... and given back
  } finally {
    spy.mockRestore();
  }
  return lines
    .flatMap((l) => l.split("\n"))
    .filter((l) => l.includes('"_aws"'))
    .map((l) => JSON.parse(l) as EmfDocument);
}

interface EmfDocument {
  _aws: { CloudWatchMetrics: { Namespace: string; Dimensions: string[][]; Metrics: { Name: string }[] }[] };
  [k: string]: unknown;
}

describe("admission on the pipeline dashboard", () => {
  it("has refusals by tier and reason, downgrades by tier, and the lease writes, as Metrics Insights over the namespace", async () => {
    const s = await synth();
    const dashboards = Object.values(s.template(Ops).findResources("AWS::CloudWatch::Dashboard"));
    expect(dashboards).toHaveLength(1);
    const widgets = dashboardWidgets(dashboards[0].Properties.DashboardBody);
    const expressionOf = (title: string) => {
      const w = widgets.find((x) => x.properties.title === title);
      expect(w, title).toBeDefined();
      const [spec] = w!.properties.metrics!;
      return (spec[0] as { expression: string }).expression;
    };
    expect(expressionOf("Admission refusals (per 5 min)")).toBe("SELECT SUM(AdmissionRefused) FROM GenAIMetering GROUP BY tier, reason");
    expect(expressionOf("Admission downgrades (per 5 min)")).toBe("SELECT SUM(AdmissionDowngraded) FROM GenAIMetering GROUP BY tier");
    expect(expressionOf("Admission budget leases taken (writes, per 5 min)")).toBe("SELECT SUM(AdmissionLeaseTaken) FROM GenAIMetering");
    expect(expressionOf("Admission budget leases given back (writes, per 5 min)")).toBe("SELECT SUM(AdmissionLeaseReturned) FROM GenAIMetering");
    expect(expressionOf("Admission calls shed by account quota pools (per 5 min)")).toBe("SELECT SUM(AdmissionShed) FROM GenAIMetering GROUP BY tier, pool");
    // not filtered on the pipeline's service name: data-plane processes emit with their own
    for (const p of ADMISSION_PANELS) expect(p.expression).not.toContain("service");
  });

  it("queries the namespace and dimensions the data plane's admission metrics are emitted with", async () => {
    const docs = await emittedAdmissionEmf();
    for (const panel of ADMISSION_PANELS) {
      const matching = docs.flatMap((d) =>
        d._aws.CloudWatchMetrics.filter((m) => m.Metrics.some((x) => x.Name === panel.metric)).map((m) => ({ m, d })),
      );
      expect(matching.length, `${panel.metric} emitted`).toBeGreaterThan(0);
      for (const { m, d } of matching) {
        expect(m.Namespace).toBe(METRICS_NAMESPACE);
        // every dimension the panel groups by is in the document's dimension set, with a value
        for (const dim of panel.groupBy) {
          expect(m.Dimensions[0], `${panel.metric} has ${dim}`).toContain(dim);
          expect(typeof d[dim], `${panel.metric}.${dim}`).toBe("string");
        }
      }
    }
    const refused = docs.find((d) => d._aws.CloudWatchMetrics[0].Metrics[0].Name === ADMISSION_METRICS.refused)!;
    expect(refused).toMatchObject({ tier: "basic", reason: "budget", service: "tenant-app", [ADMISSION_METRICS.refused]: 1 });
  });
});
