import type { Template } from "aws-cdk-lib/assertions";
import { beforeAll, describe, expect, it } from "vitest";
import { Ops } from "../../stacks/Ops";
import { synth } from "./synth";

type Resource = { Type: string; Properties: Record<string, any> };

let ops: Template;

beforeAll(async () => {
  // Given the whole app synthesized for a non-dev stage
  const s = await synth({ stage: "test", env: { DATA_PLANE_BUS_ARN: undefined, OPS_ALERT_EMAIL: undefined } });
  ops = s.template(Ops as never);
});

/** The JobErrors-<job> alarms, by job name. */
function jobAlarms(): Map<string, Resource> {
  const alarms = Object.values(ops.findResources("AWS::CloudWatch::Alarm")) as Resource[];
  const byJob = new Map<string, Resource>();
  for (const alarm of alarms) {
    const match = /^test-genai-metering-JobErrors-(.+)$/.exec(alarm.Properties.AlarmName);
    if (match) byJob.set(match[1], alarm);
  }
  return byJob;
}

describe("scheduled job error alarms", () => {
  it("keep one alarm per job under its existing name", () => {
    expect([...jobAlarms().keys()].sort()).toEqual(["allocate", "billing-export", "outbox-sweep", "reconcile"]);
  });

  it("describe what each job's failure leaves undone, not a shared allocation/export text", () => {
    const description = (job: string) => jobAlarms().get(job)!.Properties.AlarmDescription as string;
    expect(description("allocate")).toMatch(/^The scheduled job allocate failed: .*not allocated to tenants/);
    expect(description("billing-export")).toMatch(/^The scheduled job billing-export failed: .*no invoice lines/);
    expect(description("outbox-sweep")).toMatch(/^The scheduled job outbox-sweep failed: enforcement events .*unpublished/);
    expect(description("outbox-sweep")).not.toMatch(/allocat|export/);
    // CloudWatch's limit on AlarmDescription
    for (const job of ["allocate", "billing-export", "outbox-sweep"]) expect(description(job).length).toBeLessThanOrEqual(1024);
  });
});
