import "./node-version-check";
import { parseArgs } from "node:util";
import { INGEST_RULE } from "../shared/events/rules";
import { demoScenario, formatDemoResult, runDemo } from "./demo";
import { StartupError } from "./dynamodb-local";
import { startLocalStack, type LocalStack } from "./stack";

const USAGE = `npm start -- [options]

Runs the metering pipeline locally: DynamoDB Local, an EventBridge-compatible PutEvents
endpoint, in-memory SQS queues in front of the same Lambda handlers, and the usage API.

Options:
  --port N          HTTP port (bus, usage API, /local/*)          default 4000
  --data DIR        keep DynamoDB Local data and the queue journal in DIR: events PutEvents
                    accepted survive a crash (kill -9) and are delivered after a restart
                                                                   default in memory (lost on exit)
  --ingest-concurrency N  ingest batches handled at once (the deployed event source's
                    maxConcurrency)                                default ${INGEST_RULE.maxConcurrency}
  --dynamo-port N   port for DynamoDB Local                        default a free port
  --no-demo         do not send demo traffic; just serve
  --no-jobs         do not run the scheduled jobs on their schedules (POST /local/jobs/{name} still runs one)
  --billing-dir DIR where the billing export job writes             default DIR/billing with --data, else .local/billing
  --tenants N       demo tenants, spread over Basic/Advanced/Premium  default 30
  --events N        about N distinct demo requests (scales the tier volumes)
  --verbose         keep the handlers' JSON logs and EMF metric lines on stdout
  --help            this text

Point an AWS SDK client at it: new EventBridgeClient({ endpoint: "http://127.0.0.1:4000", region: "us-west-2" }).
`;

function parse(argv: string[]) {
  const { values } = parseArgs({
    args: argv,
    options: {
      port: { type: "string", default: "4000" },
      data: { type: "string" },
      "dynamo-port": { type: "string" },
      demo: { type: "boolean", default: true },
      "no-demo": { type: "boolean", default: false },
      "no-jobs": { type: "boolean", default: false },
      "billing-dir": { type: "string" },
      "ingest-concurrency": { type: "string", default: String(INGEST_RULE.maxConcurrency) },
      tenants: { type: "string", default: "30" },
      events: { type: "string" },
      verbose: { type: "boolean", default: false },
      help: { type: "boolean", default: false },
    },
    strict: true,
  });
  const int = (name: string, v: string | undefined, min: number, max: number) => {
    if (v === undefined) return undefined;
    const n = Number(v);
    if (!Number.isInteger(n) || n < min || n > max) throw new UsageError(`--${name} must be an integer from ${min} to ${max}, got '${v}'`);
    return n;
  };
  return {
    help: values.help,
    port: int("port", values.port, 0, 65535)!,
    dataDir: values.data,
    dynamoPort: int("dynamo-port", values["dynamo-port"], 1, 65535),
    demo: values.demo && !values["no-demo"],
    jobs: !values["no-jobs"],
    billingDir: values["billing-dir"],
    ingestConcurrency: int("ingest-concurrency", values["ingest-concurrency"], 1, 100)!,
    tenants: int("tenants", values.tenants, 1, 999)!,
    events: int("events", values.events, 1, 1_000_000),
    verbose: values.verbose,
  };
}

/** `allocate next 01:05Z, billing-export next 12-01 03:00Z, outbox-sweep next 00:52Z` */
function jobSchedule(stack: LocalStack): string {
  return stack
    .jobs()
    .map((j) => `${j.name} next ${j.nextRunAt ? shortTime(j.nextRunAt) : "-"}`)
    .join(", ");
}

function shortTime(iso: string): string {
  const today = new Date().toISOString().slice(0, 10);
  return iso.slice(0, 10) === today ? `${iso.slice(11, 16)}Z` : `${iso.slice(5, 10)} ${iso.slice(11, 16)}Z`;
}

class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

async function main(argv: string[]): Promise<number> {
  let args: ReturnType<typeof parse>;
  try {
    args = parse(argv);
  } catch (error) {
    console.error(`${error instanceof Error ? error.message : String(error)}\n\n${USAGE}`);
    return 2;
  }
  if (args.help) {
    console.log(USAGE);
    return 0;
  }

  console.log(`Starting DynamoDB Local${args.dataDir ? ` (data in ${args.dataDir})` : " (in memory)"} and the local stack...`);
  let stack: LocalStack;
  try {
    stack = await startLocalStack({
      port: args.port,
      dataDir: args.dataDir,
      dynamoPort: args.dynamoPort,
      handlerLogs: args.verbose ? "inherit" : "quiet",
      scheduleJobs: args.jobs,
      billingExportDir: args.billingDir,
      concurrencyByRule: { [INGEST_RULE.name]: args.ingestConcurrency },
    });
  } catch (error) {
    if (error instanceof StartupError) {
      console.error(`Cannot start: ${error.message}`);
      return 1;
    }
    throw error;
  }

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    console.log(`\n${signal}: stopping (DynamoDB Local included)...`);
    await stack.stop();
    process.exit(0);
  };
  process.on("SIGINT", () => void stop("SIGINT"));
  process.on("SIGTERM", () => void stop("SIGTERM"));

  console.log(
    [
      "",
      `Local stack on ${stack.url}   (dashboard: open ${stack.url}/ in a browser)`,
      `  EventBridge PutEvents  POST ${stack.url}/  (bus '${stack.busName}', region ${stack.region})`,
      `  usage API              GET  ${stack.url}/usage/{tenantId}?from=&to=&granularity=day|month, /billing/{month}, /quarantine?day=`,
      `  inspection             GET  ${stack.url}/local/ (index) | /local/health | /local/queues | /local/dlq | /local/events | /local/jobs`,
      `  scheduled jobs         ${args.jobs ? jobSchedule(stack) : "not scheduled (--no-jobs)"}; run one now: POST ${stack.url}/local/jobs/{name}`,
      `  billing export dir     ${stack.billingExportDir}`,
      `  DynamoDB Local         ${stack.dynamoEndpoint}  table ${stack.tableName}`,
      `  ingest                 up to ${args.ingestConcurrency} batch(es) at once; ` +
        (stack.journal() ? `accepted events journaled in ${stack.journal()!.path} (survive a crash)` : "queues in memory: accepted events not yet ingested are lost on exit (use --data DIR)"),
      "",
    ].join("\n"),
  );

  if (args.demo) {
    const scenario = demoScenario({ tenants: args.tenants, events: args.events });
    const requests = scenario.tenants.reduce((a, t) => a + t.requests, 0);
    console.log(`Demo: ${scenario.tenants.length} tenants, ${requests} requests (+${Math.round(scenario.duplicateRate * 100)}% duplicates, ${scenario.invalid.length} invalid) through the real EventBridge client`);
    try {
      const result = await runDemo(stack, scenario, { write: (t) => process.stdout.write(t) });
      console.log(formatDemoResult(result, scenario));
    } catch (error) {
      console.error(`\nDemo failed: ${error instanceof Error ? error.message : String(error)}`);
    }
    console.log(`\nStill serving on ${stack.url} (Ctrl-C to stop).`);
  } else {
    console.log("Serving (Ctrl-C to stop).");
  }
  return new Promise<number>(() => undefined);
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error: unknown) => {
    console.error(error);
    process.exit(1);
  },
);
