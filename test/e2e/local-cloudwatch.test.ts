import {
  CloudWatchClient,
  CloudWatchServiceException,
  GetMetricDataCommand,
  InvalidParameterValueException,
  ListMetricsCommand,
  PutMetricDataCommand,
} from "@aws-sdk/client-cloudwatch";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { LocalStack } from "../../local/stack";
import { startTestStack } from "./stack-harness";

let stack: LocalStack;
let cw: CloudWatchClient;
const MIN = 60_000;

beforeAll(async () => {
  ({ stack } = await startTestStack());
  cw = new CloudWatchClient({ endpoint: stack.url, region: stack.region, credentials: { accessKeyId: "local", secretAccessKey: "local" }, maxAttempts: 1 });
});

afterAll(async () => {
  cw?.destroy();
  await stack?.stop();
});

async function rejection(p: Promise<unknown>): Promise<CloudWatchServiceException> {
  const e = await p.then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(CloudWatchServiceException);
  return e as CloudWatchServiceException;
}

describe("local CloudWatch: the real @aws-sdk/client-cloudwatch against the local stack", () => {
  const start = Math.floor((Date.now() - 90 * MIN) / (60 * MIN)) * 60 * MIN; // an hour boundary 1-2 hours ago

  it("PutMetricData then GetMetricData: hourly Sum, Average, SampleCount, Maximum of what was put, in time order", async () => {
    const dims = [{ Name: "Queue", Value: "q1" }];
    await cw.send(
      new PutMetricDataCommand({
        Namespace: "Test/Local",
        MetricData: [
          { MetricName: "Work", Dimensions: dims, Timestamp: new Date(start + 5 * MIN), Value: 3, Unit: "Count" },
          { MetricName: "Work", Dimensions: dims, Timestamp: new Date(start + 50 * MIN), Values: [1, 2], Counts: [1, 3], Unit: "Count" },
          { MetricName: "Work", Dimensions: dims, Timestamp: new Date(start + 65 * MIN), Value: 10, Unit: "Count" },
        ],
      }),
    );
    const stat = (Id: string, Stat: string) => ({ Id, MetricStat: { Metric: { Namespace: "Test/Local", MetricName: "Work", Dimensions: dims }, Period: 3600, Stat } });
    const out = await cw.send(
      new GetMetricDataCommand({
        StartTime: new Date(start),
        EndTime: new Date(start + 2 * 60 * MIN),
        ScanBy: "TimestampAscending",
        MetricDataQueries: [stat("sum", "Sum"), stat("avg", "Average"), stat("n", "SampleCount"), stat("max", "Maximum")],
      }),
    );
    const r = Object.fromEntries((out.MetricDataResults ?? []).map((x) => [x.Id, x]));
    expect(r.sum.Timestamps).toEqual([new Date(start), new Date(start + 60 * MIN)]);
    expect(r.sum.Values).toEqual([3 + 1 + 6, 10]);
    expect(r.n.Values).toEqual([5, 1]);
    expect(r.avg.Values).toEqual([2, 10]);
    expect(r.max.Values).toEqual([3, 10]);
    expect(r.sum.StatusCode).toBe("Complete");
    // default scan order is newest first, as on AWS
    const desc = await cw.send(new GetMetricDataCommand({ StartTime: new Date(start), EndTime: new Date(start + 2 * 60 * MIN), MetricDataQueries: [stat("sum", "Sum")] }));
    expect(desc.MetricDataResults?.[0].Values).toEqual([10, 10]);
  });

  it("an unknown namespace, metric or dimension set answers empty, not an error", async () => {
    const q = (Namespace: string, MetricName: string, Dimensions: { Name: string; Value: string }[]) =>
      cw.send(new GetMetricDataCommand({ StartTime: new Date(start), EndTime: new Date(start + 60 * MIN), MetricDataQueries: [{ Id: "a", MetricStat: { Metric: { Namespace, MetricName, Dimensions }, Period: 60, Stat: "Sum" } }] }));
    for (const out of [await q("Nope/Nothing", "Work", []), await q("Test/Local", "Nope", [{ Name: "Queue", Value: "q1" }]), await q("Test/Local", "Work", [])]) {
      expect(out.MetricDataResults).toEqual([expect.objectContaining({ Id: "a", Values: [], Timestamps: [], StatusCode: "Complete" })]);
    }
    const listed = await cw.send(new ListMetricsCommand({ Namespace: "Nope/Nothing" }));
    expect(listed.Metrics).toEqual([]);
  });

  it("mistakes fail as on AWS: AWS/ namespaces, bad period, bad id, duplicate ids, Value with Values, old timestamps", async () => {
    const awsNs = await rejection(cw.send(new PutMetricDataCommand({ Namespace: "AWS/Bedrock", MetricData: [{ MetricName: "Invocations", Value: 1 }] })));
    expect(awsNs).toBeInstanceOf(InvalidParameterValueException);
    expect(awsNs.$metadata.httpStatusCode).toBe(400);
    expect(awsNs.message).toMatch(/Namespace is invalid/);

    const metric = { Namespace: "Test/Local", MetricName: "Work" };
    const period = await rejection(cw.send(new GetMetricDataCommand({ StartTime: new Date(start), EndTime: new Date(start + 60 * MIN), MetricDataQueries: [{ Id: "a", MetricStat: { Metric: metric, Period: 90, Stat: "Sum" } }] })));
    // query-compatible code ValidationError; the SDK names it by its own registry
    expect(period.$metadata.httpStatusCode).toBe(400);
    expect(period.message).toMatch(/multiple of 60/);

    const id = await rejection(cw.send(new GetMetricDataCommand({ StartTime: new Date(start), EndTime: new Date(start + 60 * MIN), MetricDataQueries: [{ Id: "Upper", MetricStat: { Metric: metric, Period: 60, Stat: "Sum" } }] })));
    expect(id.$metadata.httpStatusCode).toBe(400);
    expect(id.message).toMatch(/must start with a lowercase letter/);

    const twice = { Id: "a", MetricStat: { Metric: metric, Period: 60, Stat: "Sum" } };
    expect((await rejection(cw.send(new GetMetricDataCommand({ StartTime: new Date(start), EndTime: new Date(start + 60 * MIN), MetricDataQueries: [twice, twice] })))).message).toMatch(/must be unique/);

    const reversed = await rejection(cw.send(new GetMetricDataCommand({ StartTime: new Date(start + 60 * MIN), EndTime: new Date(start), MetricDataQueries: [twice] })));
    expect(reversed.message).toMatch(/StartTime must be less than/);

    const both = await rejection(cw.send(new PutMetricDataCommand({ Namespace: "Test/Local", MetricData: [{ MetricName: "Work", Value: 1, Values: [1] }] })));
    expect(both.name).toBe("InvalidParameterCombinationException");

    const old = await rejection(cw.send(new PutMetricDataCommand({ Namespace: "Test/Local", MetricData: [{ MetricName: "Work", Value: 1, Timestamp: new Date(Date.now() - 15 * 86_400_000) }] })));
    expect(old).toBeInstanceOf(InvalidParameterValueException);

    const math = await rejection(cw.send(new GetMetricDataCommand({ StartTime: new Date(start), EndTime: new Date(start + 60 * MIN), MetricDataQueries: [{ Id: "e", Expression: "SEARCH('{AWS/Bedrock,ModelId}', 'Sum', 3600)" }] })));
    expect(math.message).toMatch(/not supported by the local CloudWatch/);

    // nothing of a rejected request was stored
    const listed = await cw.send(new ListMetricsCommand({ Namespace: "AWS/Bedrock" }));
    expect(listed.Metrics).toEqual([]);
  });

  it("a large PutMetricData arrives gzip-compressed and is stored whole", async () => {
    const data = Array.from({ length: 400 }, (_, i) => ({ MetricName: "Bulk", Dimensions: [{ Name: "Shard", Value: `s-${i % 40}` }], Timestamp: new Date(start + 10 * MIN), Value: 1 }));
    await cw.send(new PutMetricDataCommand({ Namespace: "Test/Bulk", MetricData: data }));
    const listed = await cw.send(new ListMetricsCommand({ Namespace: "Test/Bulk", MetricName: "Bulk" }));
    expect(listed.Metrics).toHaveLength(40);
    const out = await cw.send(
      new GetMetricDataCommand({
        StartTime: new Date(start),
        EndTime: new Date(start + 60 * MIN),
        MetricDataQueries: [{ Id: "s0", MetricStat: { Metric: { Namespace: "Test/Bulk", MetricName: "Bulk", Dimensions: [{ Name: "Shard", Value: "s-0" }] }, Period: 3600, Stat: "Sum" } }],
      }),
    );
    expect(out.MetricDataResults?.[0].Values).toEqual([10]);
  });

  it("keeps the EMF lines handlers print on stdout as metrics (dimension sets as CloudWatch Logs extracts them)", async () => {
    const at = start + 20 * MIN;
    const line = JSON.stringify({
      _aws: { Timestamp: at, CloudWatchMetrics: [{ Namespace: "Test/Emf", Dimensions: [["service"], ["service", "tenantId"]], Metrics: [{ Name: "CostUsd", Unit: "None" }] }] },
      service: "genai-metering",
      tenantId: "t-1",
      CostUsd: [0.5, 0.25],
    });
    process.stdout.write(`${line}\n`);
    const q = (Id: string, Dimensions: { Name: string; Value: string }[]) => ({ Id, MetricStat: { Metric: { Namespace: "Test/Emf", MetricName: "CostUsd", Dimensions }, Period: 3600, Stat: "Sum" } });
    const out = await cw.send(
      new GetMetricDataCommand({
        StartTime: new Date(start),
        EndTime: new Date(start + 60 * MIN),
        MetricDataQueries: [q("svc", [{ Name: "service", Value: "genai-metering" }]), q("tenant", [{ Name: "tenantId", Value: "t-1" }, { Name: "service", Value: "genai-metering" }])],
      }),
    );
    expect(out.MetricDataResults?.map((r) => r.Values)).toEqual([[0.75], [0.75]]);
  });
});
