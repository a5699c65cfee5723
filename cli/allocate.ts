import { parseArgs } from "node:util";
import { DynamoAllocationStore } from "../shared/allocation/adapters/dynamodb";
import { EndpointCatalog } from "../shared/allocation/endpoints";
import { AllocationService } from "../shared/allocation/service";
import { nanoToUsd } from "../shared/pricing/catalog";
import { awsClients } from "../shared/runtime/aws";
import { parseConfig } from "../shared/runtime/config";

const USAGE = `usage: npm run cli -- allocate --hour yyyy-mm-ddTHH [--endpoint name] [--endpoint-url http://127.0.0.1:<port>] [--table genai-usage-local]
Shares the fixed cost of the hour of every catalogued endpoint (or one) among its tenants. Idempotent.`;

export async function run(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      hour: { type: "string" },
      endpoint: { type: "string" },
      "endpoint-url": { type: "string" },
      table: { type: "string", default: "genai-usage-local" },
      help: { type: "boolean" },
    },
  });
  if (values.help || !values.hour) {
    console.log(USAGE);
    return values.help ? 0 : 2;
  }
  const cfg = parseConfig({
    ...process.env,
    USAGE_TABLE_NAME: values.table,
    AWS_ENDPOINT_URL_DYNAMODB: values["endpoint-url"] ?? process.env.AWS_ENDPOINT_URL_DYNAMODB,
  });
  localCredentials(cfg.AWS_ENDPOINT_URL_DYNAMODB);
  const service = new AllocationService({
    store: new DynamoAllocationStore(awsClients(cfg).doc, cfg.USAGE_TABLE_NAME),
    catalog: EndpointCatalog.fromJson(cfg.ENDPOINT_CATALOG_JSON),
    maxTransactionItems: cfg.TRANSACTION_MAX_ITEMS,
  });
  const outcomes = await service.allocateAll(values.hour, values.endpoint ? [values.endpoint] : undefined);
  for (const o of outcomes) {
    const p = o.plan;
    console.log(
      `${o.endpointName} ${o.hour}: ${o.status}, hour cost $${nanoToUsd(p.hourCostNanoUsd).toFixed(4)} ` +
        `(${p.instanceCount} x ${p.instanceType}, ${p.rate}), ${p.shares.length} tenants by ${p.basis}, idle $${nanoToUsd(p.idleCostNanoUsd).toFixed(4)}`,
    );
    for (const s of p.shares) console.log(`  ${s.tenantId.padEnd(24)} ${String(s.weight).padStart(12)}  $${nanoToUsd(s.allocatedCostNanoUsd).toFixed(6)}`);
  }
  return 0;
}

/** DynamoDB Local accepts any credentials, but the SDK wants some. Only for loopback endpoints. */
export function localCredentials(endpoint: string | undefined): void {
  if (!endpoint || !/^http:\/\/(127\.0\.0\.1|localhost)(:\d+)?\/?$/.test(endpoint)) return;
  process.env.AWS_ACCESS_KEY_ID ??= "local";
  process.env.AWS_SECRET_ACCESS_KEY ??= "local";
}
