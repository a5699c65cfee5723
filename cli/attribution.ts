import { BedrockClient } from "@aws-sdk/client-bedrock";
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { BedrockProfiles } from "../shared/reconciliation/adapters/bedrock";
import { planProfiles, profileMapEntries } from "../shared/reconciliation/attribution";
import { compareCur, readCurCsv } from "../shared/reconciliation/cur";
import { awsClients } from "../shared/runtime/aws";
import { DynamoUsageStore } from "../shared/usage/adapters/dynamodb";
import { cliConfig, TABLE_OPTIONS } from "./local-config";

const USAGE = `usage:
  npm run cli -- attribution profiles --stage prod --per tenant|tier --tenants adv-01:advanced,prem-01:premium
         --model <foundation-model or system inference-profile ARN> [--model ...] [--region us-west-2] [--apply]
      plans one Bedrock application inference profile per tenant (or tier) and model, tagged tenantId / tier /
      genai-metering-stage for cost allocation, against the 2,000-per-region limit; --apply creates them (AWS
      credentials needed; idempotent: a rerun creates only what is missing).
  npm run cli -- attribution cur --file cur.csv --tenants adv-01,prem-01 [--endpoint-url ...] [--table ...]
      compares Bedrock cost by tenant tag in a CUR 2.0 CSV export with our per-tenant cost of the same days.`;

export async function run(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  const { values } = parseArgs({
    args: rest,
    options: {
      stage: { type: "string" },
      per: { type: "string", default: "tenant" },
      tenants: { type: "string" },
      model: { type: "string", multiple: true },
      region: { type: "string", default: process.env.AWS_REGION ?? "us-west-2" },
      apply: { type: "boolean", default: false },
      file: { type: "string" },
      ...TABLE_OPTIONS,
      help: { type: "boolean" },
    },
  });
  if (sub === "profiles" && values.stage && values.tenants && values.model?.length && (values.per === "tenant" || values.per === "tier")) {
    const tenants = values.tenants.split(",").map((t) => {
      const [tenantId, tier] = t.split(":");
      return { tenantId, tier: tier ?? "basic" };
    });
    const profiles = new BedrockProfiles(new BedrockClient({ region: values.region }));
    const existing = values.apply ? await profiles.existing() : new Map<string, string>();
    const plan = planProfiles({ stage: values.stage, per: values.per, tenants, models: values.model, existing });
    console.log(`${plan.create.length} to create, ${plan.existing.length} existing; ${plan.totalAfter} / ${plan.limit} application profiles in ${values.region} after this`);
    for (const s of plan.create) console.log(`  + ${s.inferenceProfileName}  <- ${s.copyFrom}  ${s.tags.map((t) => `${t.key}=${t.value}`).join(" ")}`);
    if (!values.apply) {
      console.log("(dry run: the region's existing profiles were not read; --apply reads them, then creates only what is missing)");
      return 0;
    }
    const created = await profiles.apply(plan);
    for (const [name, arn] of created) console.log(`  created ${name} ${arn}`);
    // what the wrappers (MeteredBedrock inferenceProfiles) and the ingest / reconciliation need
    console.log(`INFERENCE_PROFILES_JSON='${JSON.stringify(profileMapEntries(plan, created))}'`);
    return 0;
  }
  if (sub === "cur" && values.file && values.tenants) {
    const cur = readCurCsv(readFileSync(values.file, "utf8"));
    const days = [...new Set(cur.map((r) => r.day))].sort();
    const cfg = cliConfig(values);
    const usage = new DynamoUsageStore(awsClients(cfg).doc, cfg.USAGE_TABLE_NAME, { ledgerTtlDays: cfg.LEDGER_TTL_DAYS });
    const metered = new Map<string, Map<string, number>>();
    for (const tenantId of values.tenants.split(",")) {
      const rows = days.length ? await usage.tenantPeriods(tenantId, "day", days[0], days[days.length - 1]) : [];
      metered.set(tenantId, new Map(rows.map((r) => [r.period, r.counters.costNanoUsd / 1e9])));
    }
    const cmp = compareCur(cur, metered);
    for (const r of cmp.rows) console.log(`${r.day} ${r.tenantId.padEnd(20)} CUR $${r.curUsd}  ours $${r.meteredUsd}  diff $${r.differenceUsd} (${r.differencePercent}%)`);
    for (const [day, usd] of Object.entries(cmp.untaggedUsd)) console.log(`${day} untagged Bedrock cost $${usd} (not through a tenant profile)`);
    return 0;
  }
  console.log(USAGE);
  return values.help ? 0 : 2;
}
