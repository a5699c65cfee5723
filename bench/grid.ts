/**
 * `npm run bench -- --scenario grid --out FILE`: the ingest's cost over the workload grid
 * (tenants x SQS batch size), the real handler (functions/sqs/ingest.ts, quota evaluation and
 * EMF metrics on) against DynamoDB Local, next to the naive per-event path, interleaved A B B A
 * within each cell in one run; and the seed's workload (300 tenants, 0.95 requests/s, one hour of event
 * time, 1 s batching window) on a simulated clock, priced per year.
 */
import { readFileSync, writeFileSync } from "node:fs";
import os from "node:os";
import { DynamoDBClient, BatchGetItemCommand, ScanCommand, type AttributeValue, type BatchGetItemCommandOutput } from "@aws-sdk/client-dynamodb";
import { ConditionalCheckFailedException } from "@aws-sdk/client-dynamodb";
import { PutCommand, UpdateCommand, type DynamoDBDocumentClient } from "@aws-sdk/lib-dynamodb";
import type { Context, SQSEvent } from "aws-lambda";
import { startDynamoLocal } from "../local/dynamodb-local";
import { INVOCATION_DETAIL_TYPE, INVOCATION_SOURCES, type InvocationEventV1 } from "../shared/events/invocation";
import { PriceCatalog } from "../shared/pricing/catalog";
import { plan, SEED_WORKLOAD, seedOptions } from "../shared/planner/plan";
import { addAndSetUpdate, ensureUsageTable } from "../shared/storage/adapters/dynamodb";
import { keys } from "../shared/storage/keys";
import { targetId, targetsOf } from "../shared/usage/coalesce";
import { COUNTER_NAMES, type PricedEvent } from "../shared/usage/model";
import { mulberry32 } from "../shared/util/random";
import { startFakeBus } from "../test/helpers/fake-bus";
import { count, emptyTally, itemSize, keyString, settle, type Tally } from "./grid-billing";
import { naiveTargets } from "./naive-layout";

/** DynamoDB on-demand prices, us-east-1, standard table class, as published since 1 Nov 2024. */
export const DYNAMODB_PRICES = {
  asOf: "2024-11-01 (on-demand price reduction; not re-checked: this machine is offline)",
  region: "us-east-1",
  perMillionWriteRequestUnitsUsd: 0.625,
  perMillionReadRequestUnitsUsd: 0.125,
  perGbMonthUsd: 0.25,
};

const TENANTS = [1, 30, 300, 3000] as const;
const BATCHES = [1, 10, 100, 2000] as const;
/** Concurrent batches: the ingest event source's maxConcurrency (INGEST_RULE). */
const CONCURRENCY = 5;
const DUP_RATE = 0.1;
/** Events of one batch the naive path writes at once (ours claims up to 32 ledger entries at once). */
const NAIVE_CONCURRENCY = 32;
const SONNET = "anthropic.claude-3-5-sonnet-20240620-v1:0";
const HAIKU = "anthropic.claude-3-haiku-20240307-v1:0";

interface PathFigures {
  eventsPerSecond: number;
  wcuPerEvent: number;
  writeRequestsPerEvent: number;
  readRequestsPerEvent: number;
}
interface Detail {
  rruPerEvent: number;
  requestsPerEvent: number;
  emfBytesPerEvent?: number;
  maxItemBytes: number;
  duplicates: { deliveries: number; wcuPerDuplicate: number; readRequestsPerDuplicate: number; writeRequestsPerDuplicate: number };
  byCommand: Record<string, number>;
}
export interface GridCell {
  tenants: number;
  batch: number;
  ours: PathFigures;
  naive: PathFigures;
  floorWcuPerEvent: number;
}

type Handler = (e: SQSEvent, c: Context) => Promise<{ batchItemFailures: { itemIdentifier: string }[] }>;

interface Env {
  raw: DynamoDBClient;
  doc: DynamoDBDocumentClient;
  handler: Handler;
  oursTable: string;
  naiveTable: string;
  /** Where the client's requests are counted now (undefined: not counted). */
  tally: { current?: Tally };
  emf: { bytes: number; capture: boolean };
  /** DynamoDB Local's JVM (for `GRID_CPU=1`; undefined with `--dynamo-endpoint`). */
  jvmPid?: number;
}

/** CPU seconds so far of this process and of the JVM (`/proc/<pid>/stat`: utime + stime, in clock ticks). */
function cpuNow(env: Env): { node: number; jvm: number } {
  const u = process.cpuUsage();
  let jvm = Number.NaN;
  if (env.jvmPid !== undefined) {
    try {
      const f = readFileSync(`/proc/${env.jvmPid}/stat`, "utf8").split(") ")[1].split(" ");
      jvm = (Number(f[11]) + Number(f[12])) / 100;
    } catch {
      // not Linux, or the JVM is gone: NaN
    }
  }
  return { node: (u.user + u.system) / 1e6, jvm };
}

function events(opts: { n: number; tenants: number; prefix: string; seed: number; at: (i: number) => number }): InvocationEventV1[] {
  const rand = mulberry32(opts.seed);
  return Array.from({ length: opts.n }, (_, i) => ({
    eventId: `${opts.prefix}-e${i}`,
    tenantId: `${opts.prefix}-t${Math.floor(rand() * opts.tenants)}`,
    occurredAt: new Date(opts.at(i)).toISOString(),
    provider: "bedrock" as const,
    modelId: rand() < 1 / 3 ? SONNET : HAIKU,
    inputTokens: 250 + Math.floor(rand() * 115),
    outputTokens: 450 + Math.floor(rand() * 166),
  }));
}

let messageNo = 0;
function sqsRecord(e: InvocationEventV1, receiveCount = 1) {
  const n = ++messageNo;
  return {
    messageId: `gm-${n}`,
    body: JSON.stringify({ version: "0", id: `gid-${n}`, source: INVOCATION_SOURCES.bedrock, "detail-type": INVOCATION_DETAIL_TYPE, detail: e }),
    attributes: { ApproximateReceiveCount: String(receiveCount) },
  };
}

async function pool<T>(items: readonly T[], concurrency: number, fn: (t: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(concurrency, items.length) }, async () => {
    while (next < items.length) await fn(items[next++]);
  }));
}

/** The real handler over `batches` (5 at once); failed records are redelivered until none fail. */
async function runOurs(env: Env, batches: InvocationEventV1[][]): Promise<void> {
  await pool(batches, CONCURRENCY, async (batch) => {
    let records = batch.map((e) => sqsRecord(e));
    for (let attempt = 2; records.length > 0; attempt++) {
      if (attempt > 10) throw new Error(`grid: ${records.length} records still failing`);
      const out = await env.handler({ Records: records } as unknown as SQSEvent, { awsRequestId: `r-${messageNo}`, functionName: "ingest" } as Context);
      const failed = new Set(out.batchItemFailures.map((f) => f.itemIdentifier));
      records = records.filter((r) => failed.has(r.messageId)).map((r) => ({ ...r, attributes: { ApproximateReceiveCount: String(attempt) } }));
    }
  });
}

/**
 * The naive path: per event a conditional ledger Put, then one UpdateItem per aggregate (the
 * same views and GSI keys; it ADDs the counters only and sets none of the attributes the usage
 * API reads, and no condition, so its updates are lighter than ours), in its own layout: the minute window a
 * separate item (`naiveTargets`). Not crash-safe: a failure between the Put and the
 * updates loses counts. No quota evaluation, no metrics.
 */
async function runNaive(env: Env, batches: InvocationEventV1[][]): Promise<void> {
  const prices = new PriceCatalog();
  await pool(batches, CONCURRENCY, async (batch) => {
    await pool(batch, NAIVE_CONCURRENCY, async (e) => {
      try {
        await env.doc.send(new PutCommand({
          TableName: env.naiveTable,
          Item: { ...keys.ledger(e.tenantId, e.eventId), tenantId: e.tenantId, eventId: e.eventId },
          // the dedupe guard: one entry per event
          ConditionExpression: "attribute_not_exists(pk)",
        }));
      } catch (error) {
        if (error instanceof ConditionalCheckFailedException) return; // duplicate
        throw error;
      }
      const price = prices.price(e, "us-west-2");
      const values: Partial<Record<(typeof COUNTER_NAMES)[number], number>> = { requests: 1, inputTokens: e.inputTokens, outputTokens: e.outputTokens, costNanoUsd: price.costNanoUsd };
      for (const t of naiveTargets(e)) {
        await env.doc.send(new UpdateCommand(addAndSetUpdate(env.naiveTable, t.key, values, t.month ? keys.billing(e.tenantId, t.month) : {}).Update));
      }
    });
  });
}

/** Sizes of the items a phase updated, read after it with an uncounted client. */
async function sizesOf(env: Env, table: string, t: Tally): Promise<Map<string, { size: number; gsi: boolean }>> {
  const ks = [...t.updates.values()].map((u) => u.key);
  const out = new Map<string, { size: number; gsi: boolean }>();
  for (let i = 0; i < ks.length; i += 100) {
    let pending: Record<string, AttributeValue>[] | undefined = ks.slice(i, i + 100);
    while (pending && pending.length) {
      const r: BatchGetItemCommandOutput = await env.raw.send(new BatchGetItemCommand({ RequestItems: { [table]: { Keys: pending } } }));
      for (const item of r.Responses?.[table] ?? []) out.set(keyString(item), { size: itemSize(item), gsi: item.gsi1pk !== undefined });
      pending = r.UnprocessedKeys?.[table]?.Keys;
    }
  }
  return out;
}

interface Timed {
  seconds: number;
  tally: Tally;
  emfBytes: number;
}

/** Runs `run` with its requests counted into `acc` (a phase measured in parts adds them up). */
async function timed(env: Env, run: () => Promise<void>, acc: Timed = { seconds: 0, tally: emptyTally(), emfBytes: 0 }): Promise<Timed> {
  env.tally.current = acc.tally;
  env.emf.bytes = 0;
  env.emf.capture = true;
  const t0 = performance.now();
  try {
    await run();
  } finally {
    env.tally.current = undefined;
    env.emf.capture = false;
  }
  return { seconds: acc.seconds + (performance.now() - t0) / 1000, tally: acc.tally, emfBytes: acc.emfBytes + env.emf.bytes };
}

/** Write units of what `t` counted, from the sizes its updated items have now. */
async function settled(env: Env, table: string, t: Timed): Promise<{ seconds: number; tally: Tally; wcu: number; maxItemBytes: number; emfBytes: number }> {
  const { wcu, maxItemBytes } = settle(t.tally, await sizesOf(env, table, t.tally));
  return { ...t, wcu, maxItemBytes };
}

async function phase(env: Env, table: string, run: () => Promise<void>) {
  return settled(env, table, await timed(env, run));
}

/** Month totals of `tenants` in `table` must add up to `expected` requests. */
async function checkCounted(env: Env, table: string, evs: InvocationEventV1[]): Promise<void> {
  const want = new Map<string, number>();
  for (const e of evs) {
    const k = `${e.tenantId}|${e.occurredAt.slice(0, 7)}`;
    want.set(k, (want.get(k) ?? 0) + 1);
  }
  const ks = [...want.keys()].map((k) => {
    const [tenantId, month] = k.split("|");
    const key = keys.aggregate(tenantId, { kind: "tenant", granularity: "month", period: month });
    return { pk: { S: key.pk }, sk: { S: key.sk } };
  });
  let got = 0;
  for (let i = 0; i < ks.length; i += 100) {
    let pending: Record<string, AttributeValue>[] | undefined = ks.slice(i, i + 100);
    while (pending && pending.length) {
      const r: BatchGetItemCommandOutput = await env.raw.send(new BatchGetItemCommand({ RequestItems: { [table]: { Keys: pending, ConsistentRead: true } } }));
      for (const item of r.Responses?.[table] ?? []) got += Number(item.requests?.N ?? 0);
      pending = r.UnprocessedKeys?.[table]?.Keys;
    }
  }
  if (got !== evs.length) throw new Error(`grid: ${table} counted ${got} requests, expected ${evs.length}`);
}

/** Write units of the best exactly-once design imaginable: each ledger entry once, each aggregate item once per batch, 1 KB items, month items' GSI copy. */
function floorWcu(batches: InvocationEventV1[][]): number {
  let wcu = 0;
  for (const batch of batches) {
    const ids = new Set<string>();
    let months = 0;
    for (const e of batch) {
      wcu += 1;
      for (const t of targetsOf({ event: e } as PricedEvent)) {
        const id = targetId(t);
        if (ids.has(id)) continue;
        ids.add(id);
        if (t.kind === "tenant" && t.granularity === "month") months++;
      }
    }
    wcu += ids.size + months;
  }
  return wcu;
}

function split<T>(xs: T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < xs.length; i += size) out.push(xs.slice(i, i + size));
  return out;
}

async function setUp(endpoint?: string): Promise<{ env: Env; stop: () => Promise<void> }> {
  // an already running DynamoDB Local (`--dynamo-endpoint`), or one of our own
  const dynamo = endpoint ? { endpoint, pid: undefined, stop: async () => undefined } : await startDynamoLocal();
  const bus = await startFakeBus({ up: true });
  const raw = new DynamoDBClient({ endpoint: dynamo.endpoint, region: "us-west-2", credentials: { accessKeyId: "local", secretAccessKey: "local" } });
  const stamp = Date.now().toString(36);
  const oursTable = `grid-ours-${stamp}`;
  const naiveTable = `grid-naive-${stamp}`;
  await ensureUsageTable(raw, oursTable);
  await ensureUsageTable(raw, naiveTable);
  Object.assign(process.env, {
    USAGE_TABLE_NAME: oursTable,
    AWS_ENDPOINT_URL_DYNAMODB: dynamo.endpoint,
    AWS_ENDPOINT_URL_EVENTBRIDGE: bus.url,
    EVENT_BUS_NAME: "grid-bench",
    AWS_REGION: "us-west-2",
    AWS_ACCESS_KEY_ID: "local",
    AWS_SECRET_ACCESS_KEY: "local",
    POWERTOOLS_METRICS_DISABLED: "false",
    POWERTOOLS_LOG_LEVEL: "WARN",
    AWS_SDK_JS_SUPPRESS_NODE_DEPRECATION_WARNING: "1",
  });
  const { handler } = (await import("../functions/sqs/ingest")) as unknown as { handler: Handler };
  const { awsClients } = await import("../shared/runtime/aws");
  const { config } = await import("../shared/runtime/config");
  const clients = awsClients(config());
  const env: Env = { raw, doc: clients.doc, handler, oursTable, naiveTable, tally: {}, emf: { bytes: 0, capture: false }, jvmPid: dynamo.pid };
  // Every request of the handler's (and the naive path's) client, with its marshalled input and output.
  clients.dynamo.middlewareStack.add(
    (next, context) => async (args) => {
      const tally = env.tally.current;
      try {
        const out = await next(args);
        if (tally) count(tally, String(context.commandName), args.input as Record<string, unknown>, out.output as unknown as Record<string, unknown>);
        return out;
      } catch (error) {
        // a failed condition or a cancelled transaction is billed too
        if (tally) count(tally, String(context.commandName), args.input as Record<string, unknown>, undefined);
        throw error;
      }
    },
    { step: "build", name: "gridBilling" },
  );
  // EMF documents and logs go to stdout: measured (EMF bytes) and kept off the terminal.
  const write = process.stdout.write.bind(process.stdout);
  process.stdout.write = ((chunk: string | Uint8Array) => {
    if (!env.emf.capture) return true;
    const s = typeof chunk === "string" ? chunk : Buffer.from(chunk).toString("utf8");
    for (const line of s.split("\n")) if (line.includes('"_aws"')) env.emf.bytes += Buffer.byteLength(line) + 1;
    return true;
  }) as typeof process.stdout.write;
  return {
    env,
    stop: async () => {
      process.stdout.write = write;
      await bus.close();
      await dynamo.stop();
    },
  };
}

/** Each figure's median over the runs of one cell (the lower middle of an even count). */
function medianCell(cells: readonly GridCell[]): GridCell {
  const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)];
  const path = (p: "ours" | "naive"): PathFigures => ({
    eventsPerSecond: med(cells.map((c) => c[p].eventsPerSecond)),
    wcuPerEvent: med(cells.map((c) => c[p].wcuPerEvent)),
    writeRequestsPerEvent: med(cells.map((c) => c[p].writeRequestsPerEvent)),
    readRequestsPerEvent: med(cells.map((c) => c[p].readRequestsPerEvent)),
  });
  return { tenants: cells[0].tenants, batch: cells[0].batch, ours: path("ours"), naive: path("naive"), floorWcuPerEvent: med(cells.map((c) => c.floorWcuPerEvent)) };
}

/** Events per cell: bounded so the whole grid (both paths) stays within minutes on 2 cores. */
function eventsFor(batch: number, scale: number): number {
  const base = { 1: 200, 10: 300, 100: 400, 2000: 2000 }[batch as 1 | 10 | 100 | 2000];
  return Math.max(batch, Math.round((base * scale) / batch) * batch);
}

function figures(p: Awaited<ReturnType<typeof phase>>, n: number): PathFigures {
  return {
    eventsPerSecond: round(n / p.seconds, 1),
    wcuPerEvent: round(p.wcu / n, 3),
    writeRequestsPerEvent: round(p.tally.writeRequests / n, 3),
    readRequestsPerEvent: round(p.tally.readRequests / n, 3),
  };
}

const round = (x: number, d: number) => Math.round(x * 10 ** d) / 10 ** d;

/**
 * `cold`: the measured events are the first this process sees of their tenants this month (every
 * evaluation reads its tenants' config and states). Otherwise (the default, the steady state of a
 * running ingest) each cell's tenants have had one earlier event this month with each model they
 * call in the cell, not measured, through both paths, so the process holds their quota inputs and
 * has seen their items, as it does after a tenant's first batches.
 */
export async function runGrid(opts: { out: string; detailsOut: string; scale: number; cold?: boolean; runs?: number; dynamoEndpoint?: string; log: (s: string) => void }): Promise<void> {
  const { env, stop } = await setUp(opts.dynamoEndpoint);
  // each cell's figures in every run (`runs` > 1: the grid again, fresh tenants; the output is each figure's median)
  const byCell = new Map<string, { cells: GridCell[]; details: { ours: Detail; naive: Detail }[] }>();
  let seed: unknown;
  try {
    // warm-up: JIT, connections, table partitions (not measured)
    const warm = events({ n: 200, tenants: 10, prefix: "warm", seed: 1, at: () => Date.now() - 1000 });
    await runOurs(env, split(warm, 20));
    await runNaive(env, split(warm, 20));
    // GRID_CELLS=300x1,3000x10 (diagnosis): only those cells, no seed workload
    const only = process.env.GRID_CELLS?.split(",");
    for (let r = 0; r < (opts.runs ?? 1); r++) {
    let cellNo = 0;
    for (const tenants of TENANTS) {
      for (const batch of BATCHES) {
        if (only && !only.includes(`${tenants}x${batch}`)) {
          cellNo++;
          continue;
        }
        const cell = `r${r}c${cellNo}`;
        const n = eventsFor(batch, opts.scale);
        const now = Date.now();
        const distinct = events({ n, tenants, prefix: cell, seed: 1000 + cellNo, at: (i) => now - 30_000 + Math.floor((i / n) * 25_000) });
        const rand = mulberry32(2000 + cellNo);
        const dups = distinct.filter(() => rand() < DUP_RATE);
        const batches = split(distinct, batch);
        const dupBatches = split(dups, batch);
        // steady state: one earlier event per tenant and model of the cell (their first this month), through both paths, not measured
        const pairs = [...new Map(distinct.map((e) => [`${e.tenantId}|${e.modelId}`, e])).values()];
        const earlier = opts.cold ? [] : pairs.map((e, i) => ({ ...e, eventId: `${cell}-w${i}`, occurredAt: new Date(now - 40_000).toISOString() }));
        if (earlier.length > 0) {
          // ours last: a running ingest's epochs are live (one idle past its lease is replaced, a write)
          await runNaive(env, split(earlier, 100));
          await runOurs(env, split(earlier, 100));
        }
        const tableOf = (path: "ours" | "naive") => (path === "ours" ? env.oursTable : env.naiveTable);
        const go = (path: "ours" | "naive", b: InvocationEventV1[][]) => (path === "ours" ? runOurs(env, b) : runNaive(env, b));
        // Interleaved A B B A: each path's batches in two halves, the first path's halves around the
        // other's, so a drift over the cell (JIT, GC, the engine's tables growing) weighs on both
        // alike; which path is A alternates from cell to cell and from run to run.
        const first: "ours" | "naive" = (TENANTS.indexOf(tenants) + BATCHES.indexOf(batch) + r) % 2 === 0 ? "ours" : "naive";
        const second = first === "ours" ? "naive" : "ours";
        const halves = [batches.slice(0, Math.ceil(batches.length / 2)), batches.slice(Math.ceil(batches.length / 2))];
        const parts: Partial<Record<"ours" | "naive", Timed>> = {};
        for (const [path, half] of [[first, halves[0]], [second, halves[0]], [second, halves[1]], [first, halves[1]]] as const) {
          const before = process.env.GRID_CPU === "1" ? cpuNow(env) : undefined;
          parts[path] = await timed(env, () => go(path, half), parts[path]);
          if (before) {
            // diagnosis: CPU ms per event of this part, Node (both paths run here) and DynamoDB Local's JVM
            const after = cpuNow(env);
            const ev = half.reduce((a, b) => a + b.length, 0);
            opts.log(`    ${path.padEnd(5)} ${ev} events: node ${((1000 * (after.node - before.node)) / ev).toFixed(2)} ms/ev, jvm ${((1000 * (after.jvm - before.jvm)) / ev).toFixed(2)} ms/ev`);
          }
        }
        const measure = async (path: "ours" | "naive") => {
          const table = tableOf(path);
          await checkCounted(env, table, [...earlier, ...distinct]);
          const main = await settled(env, table, parts[path]!);
          const dup = await phase(env, table, () => go(path, dupBatches));
          await checkCounted(env, table, [...earlier, ...distinct]);
          const d: Detail = {
            rruPerEvent: round(main.tally.rru / n, 3),
            requestsPerEvent: round(main.tally.requests / n, 3),
            emfBytesPerEvent: path === "ours" ? round(main.emfBytes / n, 1) : undefined,
            maxItemBytes: main.maxItemBytes,
            duplicates: {
              deliveries: dups.length,
              wcuPerDuplicate: round(dup.wcu / Math.max(1, dups.length), 3),
              readRequestsPerDuplicate: round(dup.tally.readRequests / Math.max(1, dups.length), 3),
              writeRequestsPerDuplicate: round(dup.tally.writeRequests / Math.max(1, dups.length), 3),
            },
            byCommand: main.tally.byCommand,
          };
          return { figures: figures(main, n), detail: d };
        };
        const ours = await measure("ours");
        const naive = await measure("naive");
        const c: GridCell = { tenants, batch, ours: ours.figures, naive: naive.figures, floorWcuPerEvent: round(floorWcu(batches) / n, 3) };
        const k = `${tenants}x${batch}`;
        if (!byCell.has(k)) byCell.set(k, { cells: [], details: [] });
        byCell.get(k)!.cells.push(c);
        byCell.get(k)!.details.push({ ours: ours.detail, naive: naive.detail });
        opts.log(
          `  ${String(tenants).padStart(4)} tenants x batch ${String(batch).padStart(4)} (${n} events): ours ${c.ours.wcuPerEvent} WCU/ev ${c.ours.readRequestsPerEvent} reads/ev ${c.ours.eventsPerSecond} ev/s | naive ${c.naive.wcuPerEvent} WCU/ev ${c.naive.eventsPerSecond} ev/s | floor ${c.floorWcuPerEvent}`,
        );
        cellNo++;
      }
    }
    }
    if (!only) seed = await runSeed(env, opts.log);
  } finally {
    await stop();
  }
  const grid: GridCell[] = [...byCell.values()].map(({ cells }) => medianCell(cells));
  const details = Object.fromEntries(
    [...byCell.entries()].map(([k, { cells, details: ds }]) => [k, { ...ds[ds.length - 1], ...(cells.length > 1 ? { runs: cells.map((c) => ({ ours: c.ours, naive: c.naive })) } : {}) }]),
  );
  writeFileSync(opts.out, `${JSON.stringify({ grid }, null, 2)}\n`);
  writeFileSync(
    opts.detailsOut,
    `${JSON.stringify({ machine: `${os.cpus().length} x ${os.cpus()[0]?.model ?? "cpu"}, Node ${process.version}, DynamoDB Local (in memory)`, at: new Date().toISOString(), concurrency: CONCURRENCY, duplicateRate: DUP_RATE, tenantsSeen: opts.cold ? "cold: the measured events are the first the process sees of their tenants" : "steady state: one earlier event per tenant and model this month, not measured", eventsPerCell: Object.fromEntries(BATCHES.map((b) => [b, eventsFor(b, opts.scale)])), prices: DYNAMODB_PRICES, runs: opts.runs ?? 1, figures: (opts.runs ?? 1) > 1 ? "grid.json: each figure's median over the runs; cells.<cell>.runs: every run's; the other details: the last run's" : "one run", cells: details, seed }, null, 2)}\n`,
  );
}

/**
 * The seed's workload: 300 tenants, 0.95 requests/s (30M a year), one hour of event time,
 * Poisson arrivals, SQS batches closed by the 1 s batching window. Run as fast as the handler
 * goes (a simulated clock: event times are set, nobody waits), then priced per year.
 */
async function runSeed(env: Env, log: (s: string) => void) {
  const rand = mulberry32(4242);
  const rate = SEED_WORKLOAD.requestsPerYear / (365 * 86_400);
  const start = Date.now() - 3_600_000 - 60_000;
  const arrivals: number[] = [];
  for (let t = 0; ; ) {
    t += -Math.log(1 - rand()) / rate;
    if (t >= 3600) break;
    arrivals.push(t);
  }
  const evs = events({ n: arrivals.length, tenants: SEED_WORKLOAD.tenants ?? 300, prefix: "seed", seed: 77, at: (i) => start + Math.floor(arrivals[i] * 1000) });
  // the batching window: a batch gathers what arrives within 1 s of its first record
  const batches: InvocationEventV1[][] = [];
  for (let i = 0; i < evs.length; ) {
    const open = arrivals[i];
    const b: InvocationEventV1[] = [];
    while (i < evs.length && arrivals[i] < open + 1) b.push(evs[i++]);
    batches.push(b);
  }
  const out: Record<string, unknown> = {};
  // ours only: the naive path's cost per event is in the grid's 1- and 10-event cells
  for (const path of ["ours"] as const) {
    const table = env.oursTable;
    const p = await phase(env, table, () => runOurs(env, batches));
    await checkCounted(env, table, evs);
    const n = evs.length;
    const perYear = SEED_WORKLOAD.requestsPerYear;
    const wcuYear = (p.wcu / n) * perYear;
    const rruYear = (p.tally.rru / n) * perYear;
    out[path] = {
      events: n,
      batches: batches.length,
      meanBatch: round(n / batches.length, 2),
      seconds: round(p.seconds, 1),
      wcuPerEvent: round(p.wcu / n, 3),
      rruPerEvent: round(p.tally.rru / n, 3),
      writeRequestsPerEvent: round(p.tally.writeRequests / n, 3),
      readRequestsPerEvent: round(p.tally.readRequests / n, 3),
      emfBytesPerEvent: round(p.emfBytes / n, 1),
      writeUsdPerYear: round((wcuYear / 1e6) * DYNAMODB_PRICES.perMillionWriteRequestUnitsUsd, 2),
      readUsdPerYear: round((rruYear / 1e6) * DYNAMODB_PRICES.perMillionReadRequestUnitsUsd, 2),
    };
  }
  out.storage = await seedStorage(env);
  const llm = plan(SEED_WORKLOAD, seedOptions(new PriceCatalog()));
  out.llmUsdPerYear = Object.fromEntries(llm.options.map((o) => [o.option.label, Math.round(o.annualCostUsd)]));
  const o = out.ours as { writeUsdPerYear: number; readUsdPerYear: number; wcuPerEvent: number; meanBatch: number };
  log(`  seed workload: ours ${o.wcuPerEvent} WCU/event, mean batch ${o.meanBatch} ($${o.writeUsdPerYear}/yr writes, $${o.readUsdPerYear}/yr reads)`);
  return out;
}

/**
 * Storage after a year of the seed's traffic, from the sizes of the items the seed hour wrote:
 * ledger entries live LEDGER_TTL_DAYS (60), aggregates stay (hour items: one per tenant and
 * active hour, the minute windows on them). DynamoDB adds 100 bytes of overhead per item.
 */
async function seedStorage(env: Env) {
  const sizes: Record<string, { n: number; bytes: number }> = {};
  let key: Record<string, AttributeValue> | undefined;
  do {
    const r = await env.raw.send(new ScanCommand({ TableName: env.oursTable, ExclusiveStartKey: key, FilterExpression: "begins_with(pk, :a) OR begins_with(pk, :b)", ExpressionAttributeValues: { ":a": { S: "EVENT#seed-" }, ":b": { S: "TENANT#seed-" } } }));
    for (const item of r.Items ?? []) {
      const sk = item.sk?.S ?? "";
      const family = sk === "EVENT" ? "ledger" : sk.split("#").slice(0, 2).join("#");
      const s = (sizes[family] ??= { n: 0, bytes: 0 });
      s.n++;
      s.bytes += itemSize(item) + 100;
    }
    key = r.LastEvaluatedKey;
  } while (key);
  const avg = (f: string) => (sizes[f] ? sizes[f].bytes / sizes[f].n : 0);
  const tenants = SEED_WORKLOAD.tenants ?? 300;
  const perYear = SEED_WORKLOAD.requestsPerYear;
  // items alive at the end of year 1
  const items = {
    ledger: { n: (perYear * 60) / 365, bytes: avg("ledger") },
    hour: { n: tenants * 8760 * Math.min(1, (sizes["USAGE#H"]?.n ?? 0) / tenants), bytes: avg("USAGE#H") },
    day: { n: tenants * 365, bytes: avg("USAGE#D") },
    month: { n: tenants * 12, bytes: avg("USAGE#M") },
    modelDay: { n: tenants * 365 * 2, bytes: avg("MODEL#D") },
    modelMonth: { n: tenants * 12 * 2, bytes: avg("MODEL#M") },
    // tenant x model x hour (reconciliation's input): as many per tenant-hour as the seed hour wrote
    modelHour: { n: tenants * 8760 * Math.min(1, (sizes["USAGE#H"]?.n ?? 0) / tenants) * ((sizes["MODEL#H"]?.n ?? 0) / Math.max(1, sizes["USAGE#H"]?.n ?? 0)), bytes: avg("MODEL#H") },
  };
  const gb = Object.values(items).reduce((s, x) => s + x.n * x.bytes, 0) / 2 ** 30;
  return {
    measuredFamilies: sizes,
    itemsAtYearEnd: Object.fromEntries(Object.entries(items).map(([k, v]) => [k, { items: Math.round(v.n), avgBytes: Math.round(v.bytes) }])),
    gbAtYearEnd: round(gb, 3),
    usdPerYearUpperBound: round(gb * DYNAMODB_PRICES.perGbMonthUsd * 12, 2),
  };
}
