import { parseArgs } from "node:util";
import { DynamoBillingSource } from "../shared/billing/adapters/dynamodb";
import { LocalDirectorySink } from "../shared/billing/adapters/local-dir";
import { BillingExportService } from "../shared/billing/service";
import { formatNanoUsd } from "../shared/billing/invoice";
import { awsClients } from "../shared/runtime/aws";
import { cliConfig, TABLE_OPTIONS } from "./local-config";

const USAGE = `usage: npm run cli -- billing-export --month yyyy-mm --out DIR [--endpoint-url http://127.0.0.1:<port>] [--table genai-usage-local]
Writes DIR/billing/<month>/invoice-lines.jsonl and .csv (the same content for the same data).`;

export async function run(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      month: { type: "string" },
      out: { type: "string" },
      ...TABLE_OPTIONS,
      help: { type: "boolean" },
    },
  });
  if (values.help || !values.month || !values.out) {
    console.log(USAGE);
    return values.help ? 0 : 2;
  }
  const cfg = cliConfig(values);
  const service = new BillingExportService(
    new DynamoBillingSource(awsClients(cfg).doc, cfg.USAGE_TABLE_NAME),
    new LocalDirectorySink(values.out),
  );
  const r = await service.export(values.month);
  console.log(`${r.month}: ${r.lines.length} invoice lines`);
  for (const f of r.files) console.log(`  ${f}`);
  console.log(
    `  revenue $${formatNanoUsd(r.totals.revenueNanoUsd)}, cost $${formatNanoUsd(r.totals.totalCostNanoUsd)}, ` +
      `margin $${formatNanoUsd(r.totals.marginNanoUsd)}, unpriced requests ${r.totals.unpricedRequests}`,
  );
  return 0;
}
