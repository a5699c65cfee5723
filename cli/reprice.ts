import { parseArgs } from "node:util";
import { nanoToUsd, priceCatalogFromEnv } from "../shared/pricing/catalog";
import { awsClients } from "../shared/runtime/aws";
import { DynamoUsageStore } from "../shared/usage/adapters/dynamodb";
import { DAY_PATTERN } from "../shared/usage/periods";
import { RepriceService } from "../shared/usage/reprice";
import { cliConfig, TABLE_OPTIONS } from "./local-config";

const USAGE = `usage: npm run cli -- reprice [--from yyyy-mm-dd] [--to yyyy-mm-dd] [--dry-run]
                              [--endpoint-url http://127.0.0.1:<port>] [--table genai-usage-local]
Prices usage that was counted without a price (Bedrock models missing from the catalog, noted in the
quarantine as unknown-model on the day they were counted) with the catalog in force now
(PRICE_CATALOG_JSON merged over the defaults), at the price of each event's day. Each event is priced
once: its cost is added to every aggregate it counted in and unpricedRequests taken off. Safe to rerun.
--from defaults to MAX_EVENT_AGE_DAYS ago, --to to today (UTC days the events were counted).`;

export async function run(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      from: { type: "string" },
      to: { type: "string" },
      "dry-run": { type: "boolean" },
      ...TABLE_OPTIONS,
      help: { type: "boolean" },
    },
  });
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  for (const k of ["from", "to"] as const) {
    if (values[k] !== undefined && !DAY_PATTERN.test(values[k])) {
      console.error(`--${k} must be yyyy-mm-dd\n\n${USAGE}`);
      return 2;
    }
  }
  const cfg = cliConfig(values);
  const today = new Date().toISOString().slice(0, 10);
  const from = values.from ?? new Date(Date.now() - cfg.MAX_EVENT_AGE_DAYS * 86_400_000).toISOString().slice(0, 10);
  const to = values.to ?? today;
  const store = new DynamoUsageStore(awsClients(cfg).doc, cfg.USAGE_TABLE_NAME, { ledgerTtlDays: cfg.LEDGER_TTL_DAYS });
  const service = new RepriceService({ store, prices: priceCatalogFromEnv(cfg), region: cfg.AWS_REGION });
  const report = await service.reprice({ from, to, dryRun: values["dry-run"] });
  const verb = values["dry-run"] ? "would price" : "priced";
  for (const r of report.repriced) console.log(`${verb} ${r.tenantId} ${r.eventId} ${r.modelId}: $${nanoToUsd(r.costNanoUsd).toFixed(6)}`);
  for (const r of report.stillUnpriced) console.log(`no price yet ${r.tenantId} ${r.eventId} ${r.modelId}`);
  for (const r of report.failed) console.log(`FAILED ${r.tenantId} ${r.eventId}: ${r.error}`);
  const total = report.repriced.reduce((s, r) => s + r.costNanoUsd, 0);
  console.log(
    `${from}..${to}: ${report.notes} unpriced note(s): ${report.repriced.length} ${verb} ($${nanoToUsd(total).toFixed(6)}), ` +
      `${report.stillUnpriced.length} still without a price, ${report.skipped} priced before or never counted, ${report.failed.length} failed`,
  );
  return report.failed.length > 0 ? 1 : 0;
}
