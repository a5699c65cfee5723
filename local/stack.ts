import { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { randomUUID } from "node:crypto";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { join, resolve } from "node:path";
import { QUEUE_RULES, UNCONSUMED_METERING_RULE, type QueueRule } from "../shared/events/rules";
import { ENFORCEMENT_SOURCE } from "../shared/quota/events";
import { HTTP_ROUTES, type HttpRoute } from "../shared/http/routes";
import { resetConfig } from "../shared/runtime/config";
import { ensureUsageTable } from "../shared/storage/adapters/dynamodb";
import { DASHBOARD_HTML } from "./dashboard";
import { AwsJsonError, LocalBus, type BusTarget, type Delivery, type EventEnvelope, type RecentEvent } from "./bus";
import { freePort, startDynamoLocal, StartupError, type DynamoLocal } from "./dynamodb-local";
import { HandlerLoader, lambdaContext, LocalHandlerMissingError, type LambdaHandler } from "./handlers";
import { apiGatewayEvent, findRoute, invokeRoute, json, type HttpReply } from "./http-api";
import { journalPath, LocalJournal, type JournaledMessage } from "./journal";
import { LOCAL_JOBS, LocalJobUnknownError, LocalScheduler, type JobRun, type JobStatus, type LocalJob } from "./jobs";
import { SimQueue, type DeadLetter, type QueueStats } from "./sqs";
import { LocalCloudWatch, isCloudWatchRequest } from "./cloudwatch";

/** A queue rule whose handler may also be a function (tests inject their own). */
export interface LocalQueueRule extends Omit<QueueRule, "handler"> {
  handler: string | LambdaHandler;
}

export interface LocalStackOptions {
  /** HTTP port for the bus, the usage API and /local/*; 0 picks a free one. Default 4000. */
  port?: number;
  host?: string;
  /**
   * Persist DynamoDB Local data in this directory (default: in memory), and journal the queues
   * there: what PutEvents accepted is fsynced before the 200 and delivered again after a crash.
   */
  dataDir?: string;
  /** Port for the DynamoDB Local it starts (default: a free one). */
  dynamoPort?: number;
  /** Use this running DynamoDB (Local) instead of starting one (tests share the run's instance). */
  dynamoEndpoint?: string;
  tableName?: string;
  busName?: string;
  region?: string;
  /** Queue rules (default `QUEUE_RULES`). */
  rules?: readonly LocalQueueRule[];
  /** HTTP routes (default `HTTP_ROUTES`). */
  routes?: readonly HttpRoute[];
  /** Local visibility timeout for failed messages (default 1000 ms; AWS uses the rule's, in seconds). */
  visibilityTimeoutMs?: number;
  /** Override every rule's batching window (default: the rule's `maxBatchingWindowSeconds`). */
  batchingWindowMs?: number;
  /** Batches in flight per queue (default 1: deterministic order). */
  concurrency?: number;
  /** Batches in flight for the named rules' queues, overriding `concurrency` (`npm start`: `{ ingest: --ingest-concurrency }`). */
  concurrencyByRule?: Readonly<Record<string, number>>;
  /** Events kept for GET /local/events (default 500). */
  recentEvents?: number;
  /** Where log lines go (default console.log). */
  log?: (line: string) => void;
  /**
   * "quiet" turns the handlers' Powertools output down (log level ERROR, no EMF metric lines)
   * unless the environment already says otherwise; "inherit" (default) leaves it as configured.
   */
  handlerLogs?: "quiet" | "inherit";
  /** Scheduled jobs (default `LOCAL_JOBS`: the crons of stacks/Jobs.ts); a job's `handler` may be a function. */
  jobs?: readonly LocalJob[];
  /**
   * Fire the jobs on their schedules (default false, so tests stay deterministic; `npm start`
   * turns it on unless `--no-jobs`). Jobs can always be run now with `runJob` / `POST /local/jobs/{name}`.
   */
  scheduleJobs?: boolean;
  /** Where the billing export writes (BILLING_EXPORT_DIR). Default: the environment's, else `<dataDir>/billing`, else `.local/billing` under the cwd. */
  billingExportDir?: string;
}

export interface LocalStack {
  url: string;
  port: number;
  dynamoEndpoint: string;
  tableName: string;
  busName: string;
  region: string;
  /** Resolves once every queue is empty and no batch is in flight. */
  drain(opts?: { timeoutMs?: number }): Promise<void>;
  queues(): QueueStats[];
  /** The queue journal (with `dataDir`): its file and the accepted messages not yet deleted. */
  journal(): { path: string; pending: number } | null;
  deadLetters(): DeadLetter[];
  recentEvents(filter?: { source?: string; detailType?: string; limit?: number }): RecentEvent[];
  /** Absolute directory the billing export job writes to. */
  billingExportDir: string;
  /** Per job: schedule, next run, counts, last run and last failure (also `GET /local/jobs`). */
  jobs(): JobStatus[];
  /**
   * Runs a job's handler now (also `POST /local/jobs/{name}`); `time` is the event's time (default
   * now). Resolves with the run, failed or not; rejects only for an unknown job.
   */
  runJob(name: string, opts?: { time?: Date }): Promise<JobRun>;
  /** The local CloudWatch (`POST /` with a CloudWatch X-Amz-Target): metrics put, EMF captured, simulated AWS/ metrics. */
  cloudwatch: LocalCloudWatch;
  stop(): Promise<void>;
}

/**
 * Starts the local stack: DynamoDB Local with the usage table, and one HTTP server that speaks
 * EventBridge PutEvents, routes events through in-memory SQS queues to the same handler
 * modules Lambda runs, and serves the usage API routes with API Gateway v2 events.
 *
 * Sets `process.env` for the handlers (table, endpoints, bus, region, dummy credentials)
 * before any handler is imported, so one stack per process.
 */
export async function startLocalStack(opts: LocalStackOptions = {}): Promise<LocalStack> {
  const log = opts.log ?? ((line: string) => console.log(line));
  const region = opts.region ?? "us-west-2";
  const busName = opts.busName ?? "local-bus";
  const tableName = opts.tableName ?? "genai-usage-local";
  const host = opts.host ?? "127.0.0.1";
  const loader = new HandlerLoader();
  const started = Date.now();
  const billingExportDir = resolve(
    opts.billingExportDir ?? process.env.BILLING_EXPORT_DIR ?? (opts.dataDir ? join(opts.dataDir, "billing") : join(".local", "billing")),
  );

  let ready!: () => void;
  const readyPromise = new Promise<void>((r) => (ready = r));
  let handle: (req: IncomingMessage, res: ServerResponse) => Promise<void> = async () => undefined;
  const server = createServer((req, res) => {
    readyPromise
      .then(() => handle(req, res))
      .catch((error: unknown) => {
        log(`[local] request ${req.method} ${req.url} failed: ${describe(error)}`);
        if (!res.headersSent) send(res, json(500, { message: "Internal Server Error" }));
        else res.destroy();
      });
  });
  // Keep idle keep-alive connections longer than SDK clients do (Node's default is 5 s): a client
  // reusing a socket the server is just closing gets ECONNRESET, which a loaded machine makes likely.
  server.keepAliveTimeout = 65_000;
  server.headersTimeout = 66_000;
  const port = await listen(server, opts.port ?? 4000, host);
  const url = `http://${host}:${port}`;

  let dynamo: DynamoLocal | undefined;
  let dynamoEndpoint = opts.dynamoEndpoint;
  try {
    if (!dynamoEndpoint) {
      dynamo = await startDynamoLocal({ port: opts.dynamoPort ?? (await freePort()), dataDir: opts.dataDir, log });
      dynamoEndpoint = dynamo.endpoint;
    }
    // Handlers read their configuration on first use; everything they need is set before
    // any of them is imported.
    Object.assign(process.env, {
      USAGE_TABLE_NAME: tableName,
      AWS_ENDPOINT_URL_DYNAMODB: dynamoEndpoint,
      AWS_ENDPOINT_URL_EVENTBRIDGE: url,
      AWS_ENDPOINT_URL_CLOUDWATCH: url,
      EVENT_BUS_NAME: busName,
      AWS_REGION: region,
      AWS_DEFAULT_REGION: region,
      AWS_ACCESS_KEY_ID: "local",
      AWS_SECRET_ACCESS_KEY: "local",
      BILLING_EXPORT_DIR: billingExportDir,
    });
    // The export handler prefers a bucket; locally it must write to the directory, never to S3.
    delete process.env.BILLING_EXPORT_BUCKET;
    // The claim lease protects a run still working from a concurrent duplicate (see
    // shared/usage/README.md): it must outlast a local batch (a few seconds on DynamoDB Local).
    // Local redelivery comes after `visibilityTimeoutMs` (1 s), not AWS's minutes, so a crashed
    // batch's claims may still be leased then: its redelivery waits them out (~3 s of retries)
    // or fails once more and is redelivered again, well inside maxReceiveCount.
    process.env.INGEST_CLAIM_LEASE_SECONDS ??= "5";
    if (opts.handlerLogs === "quiet") {
      process.env.POWERTOOLS_LOG_LEVEL ??= "ERROR";
      // EMF lines stay on (the local CloudWatch keeps them) but are not printed: see captureEmf below
    }
    delete process.env.AWS_SESSION_TOKEN;
    delete process.env.AWS_PROFILE;
    resetConfig();
    const client = new DynamoDBClient({
      endpoint: dynamoEndpoint,
      region,
      credentials: { accessKeyId: "local", secretAccessKey: "local" },
    });
    await ensureUsageTable(client, tableName);
    client.destroy();
  } catch (error) {
    await new Promise<void>((r) => server.close(() => r()));
    await dynamo?.stop();
    if (error instanceof StartupError) throw error;
    throw new StartupError(`could not prepare DynamoDB at ${dynamoEndpoint}: ${describe(error)}`, { cause: error });
  }

  // With --data, the queues' journal: what the bus accepted survives a crash of this process.
  const opened = opts.dataDir ? LocalJournal.open(journalPath(resolve(opts.dataDir))) : undefined;
  const journal = opened?.journal;
  const journalSafely = (what: string, write: () => void) => {
    try {
      write();
    } catch (error) {
      // Only an ack or a dead letter: at worst the message is delivered again after a restart.
      log(`[journal] could not record ${what}: ${describe(error)}`);
    }
  };

  // One in-memory queue (with its event source mapping) per rule.
  const missingReported = new Set<string>();
  const queues = (opts.rules ?? QUEUE_RULES).map((rule) => {
    const functionName = `local-${rule.name}`;
    const queue = new SimQueue({
      name: `local-${rule.name}-queue`,
      region,
      batchSize: rule.batchSize,
      maxReceiveCount: rule.maxReceiveCount,
      visibilityTimeoutMs: opts.visibilityTimeoutMs ?? 1000,
      batchingWindowMs: opts.batchingWindowMs ?? rule.maxBatchingWindowSeconds * 1000,
      concurrency: opts.concurrencyByRule?.[rule.name] ?? opts.concurrency ?? 1,
      invoke: async (event) => {
        const fn = typeof rule.handler === "function" ? rule.handler : await loader.load(rule.handler);
        return fn(event, lambdaContext(functionName, region, rule.visibilityTimeoutSeconds * 1000));
      },
      onBatchError: (name, error) => {
        if (error instanceof LocalHandlerMissingError) {
          if (!missingReported.has(name)) log(`[queue ${name}] ${error.message}: messages will retry, then go to the DLQ`);
          missingReported.add(name);
          return;
        }
        log(`[queue ${name}] batch failed, will be redelivered: ${describe(error)}`);
      },
      onDeadLetter: (name, letter) => {
        if (journal) journalSafely(`dead letter ${letter.messageId}`, () => journal.deadLetter(letter));
        log(`[queue ${name}] message ${letter.messageId} moved to the DLQ after ${letter.receiveCount} receives: ${letter.reason}`);
      },
      onDeleted: journal ? (_name, messageId) => journalSafely(`ack of ${messageId}`, () => journal.ack(messageId)) : undefined,
    });
    return { rule, queue };
  });
  const queueByName = new Map(queues.map(({ queue }) => [queue.name, queue]));

  // The rules on the bus: one per queue rule, and the catch rule for genai.metering.* entries no
  // consumer takes, into the queue it names (when this stack has that queue).
  const targets: BusTarget[] = queues.map(({ rule, queue }) => ({ name: rule.name, patterns: [rule.pattern], queue: queue.name }));
  const catchQueue = queues.find(({ rule }) => rule.name === UNCONSUMED_METERING_RULE.target)?.queue;
  if (catchQueue) targets.push({ name: UNCONSUMED_METERING_RULE.name, patterns: UNCONSUMED_METERING_RULE.patterns, queue: catchQueue.name });

  const bus = new LocalBus({
    busName,
    region,
    recentLimit: opts.recentEvents ?? 500,
    targets,
    dispatch: (deliveries: Delivery[]) => {
      const sentAt = Date.now();
      const messages: JournaledMessage[] = deliveries.map((d) => ({ queue: d.queue, messageId: randomUUID(), body: JSON.stringify(d.envelope), sentAt }));
      // Persisted (fsync) before any queue sees them and before the 200; a failure fails the request.
      journal?.append(messages);
      for (const m of messages) queueByName.get(m.queue)!.send(m.body, { messageId: m.messageId, sentAt: m.sentAt });
    },
    onEvent: (event) => {
      if (event.envelope.source === ENFORCEMENT_SOURCE) log(enforcementLine(event.envelope));
    },
    onDefaultBus: (event) =>
      log(
        `[bus] WARNING: event ${event.envelope.id} (${event.envelope.source} / ${event.envelope["detail-type"]}) went to the account's default bus ` +
          `(EventBusName omitted or 'default'): on AWS no rule of this stack sees it, so it is counted nowhere. Send it to '${busName}'.`,
      ),
  });

  if (opened) {
    const unknown = new Map<string, number>();
    for (const m of opened.pending) {
      const queue = queueByName.get(m.queue);
      if (queue) queue.send(m.body, { messageId: m.messageId, sentAt: m.sentAt });
      else unknown.set(m.queue, (unknown.get(m.queue) ?? 0) + 1);
    }
    for (const letter of opened.deadLetters) queueByName.get(letter.queue)?.restoreDeadLetter(letter);
    const redelivered = opened.pending.length - [...unknown.values()].reduce((a, b) => a + b, 0);
    log(
      `[journal] ${journal!.path}: ${redelivered} accepted message(s) not processed before the last stop delivered again` +
        (opened.deadLetters.length ? `, ${opened.deadLetters.length} dead letter(s) listed again` : "") +
        (opened.skippedLines ? `, ${opened.skippedLines} torn line(s) skipped` : ""),
    );
    for (const [name, n] of unknown) log(`[journal] ${n} message(s) for queue ${name}, which this stack does not have, are kept in the journal`);
  }

  // Built before the server handles requests; a bad schedule expression fails startup here.
  const scheduler = new LocalScheduler({ jobs: opts.jobs ?? LOCAL_JOBS, region, load: (spec) => loader.load(spec), log });

  // The handlers' EMF lines become metrics of the local CloudWatch, as CloudWatch Logs extracts them on AWS.
  const cloudwatch = new LocalCloudWatch();
  const stopEmfCapture = cloudwatch.captureEmf(process.stdout, { swallow: opts.handlerLogs === "quiet" });

  const routes = opts.routes ?? HTTP_ROUTES;
  handle = async (req, res) => {
    const reqUrl = new URL(req.url ?? "/", url);
    const body = await readBody(req);
    const method = req.method ?? "GET";
    if (method === "POST" && reqUrl.pathname === "/" && isCloudWatchRequest(req.headers)) return send(res, cloudwatch.handle(req.headers, body));
    if (method === "GET" && reqUrl.pathname === "/local/metrics") {
      return send(res, json(200, { metrics: cloudwatch.list({ namespace: reqUrl.searchParams.get("namespace") ?? undefined }) }));
    }
    if (method === "POST" && reqUrl.pathname === "/") {
      return send(res, eventBridge(bus, req, body));
    }
    if (method === "POST" && reqUrl.pathname.startsWith("/local/jobs/")) {
      return send(res, await triggerJob(scheduler, decodeURIComponent(reqUrl.pathname.slice("/local/jobs/".length)), reqUrl, body));
    }
    if (method === "GET" && reqUrl.pathname.startsWith("/local/") && reqUrl.pathname !== "/local/") {
      return send(res, localEndpoint(reqUrl));
    }
    if (method === "GET" && reqUrl.pathname === "/") {
      return send(res, { status: 200, headers: { "content-type": "text/html; charset=utf-8" }, body: Buffer.from(DASHBOARD_HTML) });
    }
    if (method === "GET" && (reqUrl.pathname === "/local" || reqUrl.pathname === "/local/")) return send(res, index(url, routes));
    const match = findRoute(routes, method, reqUrl.pathname);
    if (!match) return send(res, json(404, { message: "Not Found" }));
    const event = apiGatewayEvent(req, reqUrl, match, body);
    const reply = await invokeRoute(loader, match, event, region, (route, error) =>
      log(`[http ${route}] handler threw: ${describe(error)}`),
    );
    return send(res, reply);
  };

  const localEndpoint = (u: URL): HttpReply => {
    switch (u.pathname) {
      case "/local/health":
        return json(200, {
          status: "ok",
          url,
          dynamoEndpoint,
          tableName,
          busName,
          region,
          pid: process.pid,
          dynamoPid: dynamo?.pid ?? null,
          journal: journalStatus(),
          uptimeSeconds: Math.round((Date.now() - started) / 1000),
        });
      case "/local/queues":
        return json(200, { queues: queues.map(({ rule, queue }) => ({ rule: rule.name, ...queue.stats() })), bus: bus.stats(), journal: journalStatus() });
      case "/local/dlq": {
        const name = u.searchParams.get("queue");
        return json(200, { deadLetters: deadLetters().filter((d) => !name || d.queue === name) });
      }
      case "/local/jobs":
        return json(200, { scheduling: scheduler.scheduling, billingExportDir, jobs: scheduler.status() });
      case "/local/events": {
        const limit = u.searchParams.get("limit");
        const events = bus.recentEvents({
          source: u.searchParams.get("source") ?? undefined,
          detailType: u.searchParams.get("detail-type") ?? undefined,
          limit: limit ? Math.max(1, Number(limit) || 1) : undefined,
        });
        return json(200, { events });
      }
      default:
        return json(404, { message: "Not Found" });
    }
  };

  const deadLetters = () => queues.flatMap(({ queue }) => queue.deadLetters);
  const journalStatus = () => (journal ? { path: journal.path, pending: journal.pendingCount() } : null);
  ready();
  if (opts.scheduleJobs) scheduler.start();

  let stopping: Promise<void> | undefined;
  return {
    url,
    port,
    dynamoEndpoint: dynamoEndpoint!,
    tableName,
    busName,
    region,
    queues: () => queues.map(({ queue }) => queue.stats()),
    journal: journalStatus,
    deadLetters,
    recentEvents: (filter) => bus.recentEvents(filter),
    billingExportDir,
    jobs: () => scheduler.status(),
    runJob: (name, runOpts) => scheduler.trigger(name, runOpts),
    cloudwatch,
    async drain({ timeoutMs } = {}) {
      const deadline = timeoutMs === undefined ? Infinity : Date.now() + timeoutMs;
      // Polling keeps this simple and race-free: a batch that publishes follow-up events
      // enqueues them before it completes, so "all idle" is only seen once the cascade ends.
      while (!queues.every(({ queue }) => queue.idle())) {
        if (Date.now() > deadline) {
          throw new Error(`drain timed out after ${timeoutMs} ms: ${JSON.stringify(queues.map(({ queue }) => queue.stats()))}`);
        }
        await new Promise((r) => setTimeout(r, 10));
      }
    },
    stop() {
      stopping ??= (async () => {
        for (const { queue } of queues) queue.stop();
        journal?.close();
        await scheduler.stop();
        stopEmfCapture();
        server.closeAllConnections();
        await new Promise<void>((r) => server.close(() => r()));
        await dynamo?.stop();
      })();
      return stopping;
    },
  };
}

/** `POST /` with `X-Amz-Target`: the EventBridge JSON 1.1 API (PutEvents only). */
function eventBridge(bus: LocalBus, req: IncomingMessage, body: Buffer): HttpReply {
  const target = String(req.headers["x-amz-target"] ?? "");
  try {
    if (target !== "AWSEvents.PutEvents") {
      throw new AwsJsonError("UnknownOperationException", `Operation ${target || "(none)"} is not supported by the local event bus; only AWSEvents.PutEvents is.`);
    }
    let request: unknown;
    try {
      request = JSON.parse(body.toString("utf8") || "{}");
    } catch {
      throw new AwsJsonError("SerializationException", "Request body is not valid JSON.");
    }
    return amzJson(200, bus.putEvents(request));
  } catch (error) {
    if (!(error instanceof AwsJsonError)) throw error;
    return amzJson(error.status, { __type: error.type, message: error.message });
  }
}

/**
 * `POST /local/jobs/{name}`: runs the job now and answers with the run (200, or 500 when the
 * handler threw: the error is in the body, the stack keeps serving). The event's time comes from
 * `?time=` or a JSON body `{ "time": "..." }`, default now.
 */
async function triggerJob(scheduler: LocalScheduler, name: string, u: URL, body: Buffer): Promise<HttpReply> {
  let timeText = u.searchParams.get("time") ?? undefined;
  if (timeText === undefined && body.length > 0) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(body.toString("utf8"));
    } catch {
      return json(400, { message: "body must be JSON, e.g. {\"time\":\"2026-11-25T21:05:00Z\"}" });
    }
    const t = (parsed as { time?: unknown } | null)?.time;
    if (t !== undefined && typeof t !== "string") return json(400, { message: "time must be an ISO 8601 string" });
    timeText = t;
  }
  const time = timeText === undefined ? undefined : new Date(timeText);
  if (time && Number.isNaN(time.getTime())) return json(400, { message: `time '${timeText}' is not a date` });
  try {
    const run = await scheduler.trigger(name, { time });
    return json(run.ok ? 200 : 500, run);
  } catch (error) {
    if (error instanceof LocalJobUnknownError) return json(404, { message: error.message, jobs: error.known });
    throw error;
  }
}

function amzJson(status: number, value: unknown): HttpReply {
  return {
    status,
    headers: { "content-type": "application/x-amz-json-1.1", "x-amzn-requestid": randomUUID() },
    body: Buffer.from(JSON.stringify(value)),
  };
}

function index(url: string, routes: readonly HttpRoute[]): HttpReply {
  const lines = [
    "genai-usage-metering local stack",
    "",
    `POST ${url}/   X-Amz-Target: AWSEvents.PutEvents   (EventBridge endpoint for the AWS SDK)`,
    "GET  /               the dashboard (local/dashboard.ts)",
    "GET  /local/         this index",
    "GET  /local/health",
    "GET  /local/queues",
    "GET  /local/dlq[?queue=]",
    "GET  /local/events[?source=&detail-type=&limit=]",
    "GET  /local/jobs     scheduled jobs: schedule, next run, last result, last failure",
    "POST /local/jobs/{name}[?time=ISO]   run a job now (allocate | billing-export | outbox-sweep); answers with the run",
    "",
    "Usage API (same handlers as API Gateway):",
    ...routes.map((r) => `${r.method.padEnd(4)} ${r.path}   -> ${r.handler}`),
    "",
  ];
  return { status: 200, headers: { "content-type": "text/plain; charset=utf-8" }, body: Buffer.from(lines.join("\n")) };
}

/** One log line per enforcement event: `[enforcement] Tenant Throttled tenant=t-07 tier=advanced ...`. */
export function enforcementLine(envelope: EventEnvelope): string {
  const detail = (envelope.detail ?? {}) as Record<string, unknown>;
  const parts = [`[enforcement] ${envelope["detail-type"]}`];
  if (detail.tenantId !== undefined) parts.push(`tenant=${String(detail.tenantId)}`);
  for (const [k, v] of Object.entries(detail)) {
    if (k === "tenantId" || v === null || typeof v === "object") continue;
    parts.push(`${k}=${String(v)}`);
  }
  return parts.join(" ");
}

function send(res: ServerResponse, reply: HttpReply): void {
  res.writeHead(reply.status, { ...reply.headers, "content-length": String(reply.body.length) });
  res.end(reply.body);
}

async function readBody(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

function listen(server: Server, port: number, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const onError = (error: NodeJS.ErrnoException) => {
      if (error.code === "EADDRINUSE") {
        reject(new StartupError(`Port ${port} on ${host} is taken: stop what uses it or choose another with --port.`, { cause: error }));
      } else reject(new StartupError(`cannot listen on ${host}:${port}: ${error.message}`, { cause: error }));
    };
    server.once("error", onError);
    server.listen(port, host, () => {
      server.off("error", onError);
      const addr = server.address();
      resolve(typeof addr === "object" && addr ? addr.port : port);
    });
  });
}

function describe(error: unknown): string {
  return error instanceof Error ? `${error.name}: ${error.message}` : String(error);
}
