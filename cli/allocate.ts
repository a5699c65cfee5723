import { parseArgs } from "node:util";
import { DynamoAllocationStore } from "../shared/allocation/adapters/dynamodb";
import { EndpointCatalog } from "../shared/allocation/endpoints";
import { hoursEndingAt } from "../shared/allocation/hours";
import { AllocationService } from "../shared/allocation/service";
import { nanoToUsd } from "../shared/pricing/catalog";
import { awsClients } from "../shared/runtime/aws";
import { cliConfig, TABLE_OPTIONS } from "./local-config";

const USAGE = `usage: npm run cli -- allocate --hour yyyy-mm-ddTHH [--hours N] [--endpoint name] [--endpoint-url http://127.0.0.1:<port>] [--table genai-usage-local]
Shares the fixed cost of the hour of every catalogued endpoint (or one) among its tenants. An hour
already allocated is re-split from its current usage when late events changed it (only the
differences are applied). --hours N does the N hours ending with --hour. Idempotent.`;

export async function run(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      hour: { type: "string" },
      hours: { type: "string", default: "1" },
      endpoint: { type: "string" },
      ...TABLE_OPTIONS,
      help: { type: "boolean" },
    },
  });
  const count = Number(values.hours);
  if (values.help || !values.hour || !Number.isSafeInteger(count) || count < 1) {
    console.log(USAGE);
    return values.help ? 0 : 2;
  }
  const cfg = cliConfig(values);
  const service = new AllocationService({
    store: new DynamoAllocationStore(awsClients(cfg).doc, cfg.USAGE_TABLE_NAME),
    catalog: EndpointCatalog.fromJson(cfg.ENDPOINT_CATALOG_JSON),
    maxTransactionItems: cfg.TRANSACTION_MAX_ITEMS,
  });
  const outcomes = await service.reconcileAll(hoursEndingAt(values.hour, count), values.endpoint ? [values.endpoint] : undefined);
  for (const o of outcomes) {
    const p = o.plan;
    console.log(
      `${o.endpointName} ${o.hour}: ${o.status} (version ${o.version}), hour cost $${nanoToUsd(p.hourCostNanoUsd).toFixed(4)} ` +
        `(${p.instanceCount} x ${p.instanceType}, ${p.rate}), ${p.shares.length} tenants by ${p.basis}, idle $${nanoToUsd(p.idleCostNanoUsd).toFixed(4)}`,
    );
    for (const s of p.shares) console.log(`  ${s.tenantId.padEnd(24)} ${String(s.weight).padStart(12)}  $${nanoToUsd(s.allocatedCostNanoUsd).toFixed(6)}`);
    for (const d of o.deltas) {
      const sign = d.deltaNanoUsd < 0 ? "-" : "+";
      console.log(`  moved ${d.tenantId.padEnd(18)} ${sign}$${nanoToUsd(Math.abs(d.deltaNanoUsd)).toFixed(6)}`);
    }
  }
  return 0;
}
