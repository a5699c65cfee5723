import { CloudWatchClient } from "@aws-sdk/client-cloudwatch";
import { parseArgs } from "node:util";
import { LocalDirectorySink } from "../shared/billing/adapters/local-dir";
import { PutMetricDataDriftSignals } from "../shared/reconciliation/adapters/cloudwatch";
import { reconciliationService } from "../shared/reconciliation/adapters/wiring";
import { parseConfig } from "../shared/runtime/config";
import { awsClients } from "../shared/runtime/aws";
import { cliConfig, TABLE_OPTIONS } from "./local-config";

const USAGE = `usage: npm run cli -- reconcile --from ISO --to ISO --out DIR
         [--endpoint-url http://127.0.0.1:<dynamo-port>] [--cloudwatch-url http://127.0.0.1:4000] [--table genai-usage-local]
         [--threshold 0.5]
Compares our counted usage with AWS's CloudWatch figures (AWS/Bedrock per ModelId, AWS/SageMaker per
endpoint and inference component) for each whole UTC hour in [from, to), writes
DIR/reconciliation/<day>/<hour>.json and .csv (the same bytes for the same figures) and puts
UnmeteredTokens / DriftPercent with PutMetricData, once per hour however often it is re-run.
The report of a day's last hour (T23) also lists, per tenant, the day's calls only a wrapper
reported, only the invocation log reported, and both (include that hour in [from, to) to see it).
--cloudwatch-url: the local stack (npm start) answers CloudWatch on its port; without it, AWS's.
Exit code 3 when an hour's drift is above the threshold.`;

export async function run(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      from: { type: "string" },
      to: { type: "string" },
      out: { type: "string" },
      "cloudwatch-url": { type: "string" },
      ...TABLE_OPTIONS,
      threshold: { type: "string" },
      help: { type: "boolean" },
    },
  });
  if (values.help || !values.from || !values.to || !values.out) {
    console.log(USAGE);
    return values.help ? 0 : 2;
  }
  const base = cliConfig(values);
  const cfg = parseConfig({
    ...process.env,
    USAGE_TABLE_NAME: base.USAGE_TABLE_NAME,
    AWS_ENDPOINT_URL_DYNAMODB: base.AWS_ENDPOINT_URL_DYNAMODB,
    AWS_ENDPOINT_URL_CLOUDWATCH: values["cloudwatch-url"] ?? process.env.AWS_ENDPOINT_URL_CLOUDWATCH,
    RECONCILE_DRIFT_THRESHOLD_PERCENT: values.threshold ?? process.env.RECONCILE_DRIFT_THRESHOLD_PERCENT,
  });
  const cw = new CloudWatchClient({ region: cfg.AWS_REGION, endpoint: cfg.AWS_ENDPOINT_URL_CLOUDWATCH });
  const service = reconciliationService(cfg, awsClients(cfg), {
    sink: new LocalDirectorySink(values.out),
    signals: new PutMetricDataDriftSignals(cw, cfg.METRICS_NAMESPACE, cfg.SERVICE_NAME),
  });
  const results = await service.reconcile({ from: new Date(values.from), to: new Date(values.to) });
  let alarm = false;
  for (const r of results) {
    const t = r.report.totals;
    alarm ||= r.report.alarm;
    console.log(
      `${r.hour}  drift ${t.driftPercent}%  unmetered ${t.unmeteredTokens} tokens (${t.unmeteredPercent}%) of AWS ${t.awsTokens}, ` +
        `metered ${t.meteredTokens}; SageMaker calls AWS ${t.sageMakerAwsInvocations} / ours ${t.sageMakerMeteredInvocations}` +
        `${r.report.alarm ? "  ALARM" : ""}  [${r.signal}]`,
    );
    for (const row of r.report.bedrock.filter((b) => b.unmeteredTokens > 0 || b.overMeteredTokens > 0)) {
      console.log(`    ${row.modelId}: unmetered ${row.unmeteredTokens}, over-metered ${row.overMeteredTokens}, drift ${row.driftPercent}%`);
    }
    const sources = r.report.invocationSources;
    if (sources) {
      const t = sources.totals;
      console.log(
        `  ${sources.day} calls by path (wrapper event / invocation log): wrapper only ${t.wrapperOnlyCalls}, log only ${t.logOnlyCalls}, ` +
          `both ${t.bothCalls}, untracked ${t.untrackedCalls}`,
      );
      for (const row of sources.rows) {
        console.log(`    ${row.tenantId}: wrapper only ${row.wrapperOnlyCalls}, log only ${row.logOnlyCalls}, both ${row.bothCalls}, untracked ${row.untrackedCalls}`);
      }
    }
  }
  for (const r of results) for (const f of r.files) console.log(`  ${f}`);
  return alarm ? 3 : 0;
}
