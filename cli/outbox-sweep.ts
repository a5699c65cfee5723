import { parseArgs } from "node:util";
import { outboxSweeperFromConfig } from "../shared/quota/adapters/runtime";
import { cliConfig, TABLE_OPTIONS } from "./local-config";

const USAGE = `usage: npm run cli -- outbox-sweep [--endpoint-url http://127.0.0.1:<port>] [--events-url URL] [--bus NAME]
                                   [--table genai-usage-local]
--events-url and --bus default to AWS_ENDPOINT_URL_EVENTBRIDGE and EVENT_BUS_NAME; for the local stack pass
--events-url http://127.0.0.1:4000 --bus local-bus.
Publishes pending enforcement events (outbox entries whose publish failed and whose lease ran out) of every
tenant, as the 5-minute scheduled job does. Entries another publisher holds are left alone. Safe to rerun.
Exit code 1 when the bus refused an event (it stays pending).`;

export async function run(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      "events-url": { type: "string" },
      bus: { type: "string" },
      ...TABLE_OPTIONS,
      help: { type: "boolean" },
    },
  });
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  const base = cliConfig(values);
  const cfg = {
    ...base,
    AWS_ENDPOINT_URL_EVENTBRIDGE: values["events-url"] ?? base.AWS_ENDPOINT_URL_EVENTBRIDGE,
    EVENT_BUS_NAME: values.bus ?? base.EVENT_BUS_NAME,
  };
  const report = await outboxSweeperFromConfig(cfg).sweep();
  for (const p of report.published) console.log(`published ${p.action.padEnd(9)} ${p.enforcementId}`);
  for (const f of report.failed) console.log(`FAILED    ${f.enforcementId}: ${f.reason}`);
  console.log(
    `${report.states} state(s) listed: ${report.published.length} published, ${report.failed.length} failed, ` +
      `${report.leaseHeld} held by a live publisher, ${report.claimLost} taken by another publisher, ${report.unindexed} unindexed`,
  );
  return report.failed.length > 0 ? 1 : 0;
}
