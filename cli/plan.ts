import { parseArgs } from "node:util";
import { PriceCatalog } from "../shared/pricing/catalog";
import { formatPlan, plan, SEED_WORKLOAD, seedOptions } from "../shared/planner/plan";

const USAGE = `usage: npm run cli -- plan [--requests N] [--in TOKENS] [--out TOKENS] [--time SECONDS] [--tenants N]
                            [--region us-west-2] [--at yyyy-mm-dd] [--json]
Defaults are the seed's example (300 tenants, 30,000,000 requests/yr, 307 in / 533 out, 4.4 s).`;

export async function run(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      requests: { type: "string" },
      in: { type: "string" },
      out: { type: "string" },
      time: { type: "string" },
      tenants: { type: "string" },
      region: { type: "string", default: "us-west-2" },
      at: { type: "string", default: "2024-10-22" },
      json: { type: "boolean" },
      help: { type: "boolean" },
    },
  });
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  const num = (v: string | undefined, fallback: number | undefined) => (v === undefined ? fallback : Number(v));
  const workload = {
    tenants: num(values.tenants, SEED_WORKLOAD.tenants),
    requestsPerYear: num(values.requests, SEED_WORKLOAD.requestsPerYear)!,
    inputTokensPerRequest: num(values.in, SEED_WORKLOAD.inputTokensPerRequest)!,
    outputTokensPerRequest: num(values.out, SEED_WORKLOAD.outputTokensPerRequest)!,
    meanProcessingSeconds: num(values.time, SEED_WORKLOAD.meanProcessingSeconds)!,
  };
  const report = plan(workload, seedOptions(new PriceCatalog(), values.region, values.at));
  console.log(values.json ? JSON.stringify(report, null, 2) : formatPlan(report));
  return 0;
}
