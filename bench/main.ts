/**
 * `npm run bench`: measures, on DynamoDB Local (Amazon's engine) on this machine:
 *  (a) ingest throughput of our handler path vs a naive per-event baseline,
 *  (b) write units per 1,000 events for both (as AWS bills them) and DynamoDB requests per 1,000 events,
 *  (c) enforcement delay median/p99 and overshoot through the local stack (bench/enforcement.ts),
 *  (d) a single hot tenant: the most writes one aggregate item takes in any second, also
 *      sustained over `--hot-events` (default 20,000) events of one tenant.
 * Each scenario runs `--runs` times (default 3) on fresh tables; medians are printed.
 */
import { writeFileSync, mkdirSync } from "node:fs";
import os from "node:os";
import { DynamoDBClient } from "@aws-sdk/client-dynamodb";
import { startDynamoLocal } from "../local/dynamodb-local";
import { documentClient, ensureUsageTable } from "../shared/storage/adapters/dynamodb";
import { INGEST_RULE } from "../shared/events/rules";
import { formatEnforcementTable, median, poolResults, startBenchStack, measureEnforcementDelay, warmUp, type EnforcementBenchResult } from "./enforcement";
import { runBaseline, runOurs, workload, type RunResult } from "./ingest";

interface Args { events: number; hotEvents: number; tenants: number; runs: number; concurrency: number; out: string }

function args(argv: string[]): Args {
  const get = (name: string, d: number) => {
    const i = argv.indexOf(`--${name}`);
    return i >= 0 ? Number(argv[i + 1]) : d;
  };
  const outIdx = argv.indexOf("--out");
  return { events: get("events", 2_000), hotEvents: get("hot-events", 20_000), tenants: get("tenants", 30), runs: get("runs", 3), concurrency: get("concurrency", 4), out: outIdx >= 0 ? argv[outIdx + 1] : "bench/results.json" };
}

async function main() {
  const argv = process.argv.slice(2);
  const scenario = argv.includes("--scenario") ? argv[argv.indexOf("--scenario") + 1] : undefined;
  const out = argv.includes("--out") ? argv[argv.indexOf("--out") + 1] : undefined;
  if (scenario === "grid") {
    const { runGrid } = await import("./grid");
    const gridOut = out ?? "bench/grid.json";
    const scale = argv.includes("--scale") ? Number(argv[argv.indexOf("--scale") + 1]) : 1;
    const dynamoEndpoint = argv.includes("--dynamo-endpoint") ? argv[argv.indexOf("--dynamo-endpoint") + 1] : undefined;
    return runGrid({ out: gridOut, detailsOut: gridOut.replace(/\.json$/, "") + "-details.json", scale, cold: argv.includes("--cold"), runs: argv.includes("--runs") ? Number(argv[argv.indexOf("--runs") + 1]) : 1, dynamoEndpoint, log: (s) => process.stderr.write(`${s}\n`) });
  }
  if (scenario === "admission") {
    const { runAdmissionBench } = await import("./admission");
    await runAdmissionBench({ out: out ?? "bench/admission.json" });
    return;
  }
  if (scenario !== undefined) throw new Error(`unknown --scenario ${scenario}: expected grid or admission`);
  const a = args(argv);
  process.env.AWS_SDK_JS_SUPPRESS_NODE_DEPRECATION_WARNING ??= "1";
  const dynamo = await startDynamoLocal();
  const client = new DynamoDBClient({ endpoint: dynamo.endpoint, region: "us-west-2", credentials: { accessKeyId: "local", secretAccessKey: "local" } });
  // Every request the client sends (a Lambda's network round trips and SDK CPU scale with it).
  let requests = 0;
  client.middlewareStack.add((next) => (args) => (requests++, next(args)), { step: "initialize", name: "countRequests" });
  const counted = async (run: () => Promise<RunResult>): Promise<RunResult> => {
    const before = requests;
    const r = await run();
    return { ...r, requests: requests - before };
  };
  const doc = documentClient(client);
  let n = 0;
  const table = async () => {
    const name = `bench-${Date.now()}-${n++}`;
    await ensureUsageTable(client, name);
    return name;
  };
  const machine = `${os.cpus().length} x ${os.cpus()[0]?.model ?? "cpu"}, ${Math.round(os.totalmem() / 2 ** 30)} GiB, Node ${process.version}, DynamoDB Local (in memory)`;
  console.log(`machine: ${machine}`);
  console.log(`workload: ${a.events} events, ${a.tenants} tenants, 10% duplicate deliveries, SQS batches of ${INGEST_RULE.batchSize}, ${a.concurrency} concurrent batches, ${a.runs} runs\n`);

  const scenarios: { name: string; rows: Record<string, RunResult[]> }[] = [];
  try {
    for (const [scenario, tenants] of [["mixed tenants", a.tenants], ["single hot tenant", 1]] as const) {
      const rows: Record<string, RunResult[]> = {};
      for (let run = 0; run < a.runs; run++) {
        const w = workload({ events: a.events, tenants, dupRate: 0.1, batchSize: INGEST_RULE.batchSize, seed: 100 + run });
        const tables = [await table(), await table(), await table()];
        for (const r of [
          await counted(() => runOurs(doc, tables[0], w, a.concurrency)),
          await counted(() => runBaseline(doc, tables[1], w, a.concurrency)),
          await counted(() => runBaseline(doc, tables[2], w, a.concurrency, { onlyMonth: true })),
        ]) (rows[r.name] ??= []).push(r);
        process.stdout.write(`  ${scenario}: run ${run + 1}/${a.runs} done\n`);
      }
      scenarios.push({ name: scenario, rows });
    }
    // (d) sustained: one tenant at full speed for many batches, ours only (the naive paths
    // take one write per event on the tenant's items, see the scenario above)
    const sustained: RunResult[] = [];
    for (let run = 0; run < a.runs; run++) {
      const w = workload({ events: a.hotEvents, tenants: 1, dupRate: 0.1, batchSize: INGEST_RULE.batchSize, seed: 200 + run });
      const t = await table();
      sustained.push(await counted(() => runOurs(doc, t, w, a.concurrency)));
      process.stdout.write(`  sustained hot tenant: run ${run + 1}/${a.runs} done\n`);
    }
    scenarios.push({ name: `sustained hot tenant (${a.hotEvents} events)`, rows: { [sustained[0].name]: sustained } });
  } finally {
    await dynamo.stop();
  }

  const summary = scenarios.map((s) => ({
    scenario: s.name,
    results: Object.entries(s.rows).map(([name, runs]) => ({
      name,
      eventsPerSecond: median(runs.map((r) => r.eventsPerSecond)),
      awsWcuPer1k: median(runs.map((r) => (r.awsModelWcu / r.events) * 1000)),
      itemWritesPer1k: median(runs.map((r) => (r.itemWrites / r.events) * 1000)),
      requestsPer1k: median(runs.map((r) => ((r.requests ?? 0) / r.events) * 1000)),
      maxItemWritesPerSecond: median(runs.map((r) => r.maxItemWritesPerSecond)),
      runs: runs.length,
    })),
  }));
  for (const s of summary) {
    const ours = s.results[0];
    console.log(`\n${s.scenario} (medians of ${ours.runs} runs)`);
    console.log(["path".padEnd(42), "events/s".padStart(9), "x ours".padStart(7), "item writes/1k".padStart(15), "WCU/1k (AWS)".padStart(13), "requests/1k".padStart(12), "max writes/item/s".padStart(18)].join(" "));
    for (const r of s.results) {
      console.log([
        r.name.padEnd(42),
        r.eventsPerSecond.toFixed(0).padStart(9),
        (ours.eventsPerSecond / r.eventsPerSecond).toFixed(2).padStart(7),
        r.itemWritesPer1k.toFixed(0).padStart(15),
        r.awsWcuPer1k.toFixed(0).padStart(13),
        r.requestsPer1k.toFixed(0).padStart(12),
        r.maxItemWritesPerSecond.toFixed(0).padStart(18),
      ].join(" "));
    }
  }

  // (c) enforcement delay: the local stack with the ingest rule's own 1 s batching window
  console.log(`\nenforcement delay: 20 basic tenants, quota 30 calls x 840 tokens, ${a.runs} runs per rate, medians/p99 over all tenants`);
  const bench = await startBenchStack();
  const enforcement: EnforcementBenchResult[] = [];
  try {
    await warmUp(bench);
    for (const rate of [5, 20]) {
      const runs: EnforcementBenchResult[] = [];
      for (let run = 0; run < a.runs; run++) {
        runs.push(await measureEnforcementDelay({ ratePerTenant: rate, stack: bench, tenantPrefix: `b${rate}r${run}-${Date.now().toString(36)}` }));
      }
      enforcement.push(poolResults(runs));
    }
  } finally {
    await bench.stack.stop();
  }
  console.log(formatEnforcementTable(enforcement));

  mkdirSync("bench", { recursive: true });
  const enforcementSummary = enforcement.map((r) => ({ ratePerTenant: r.ratePerTenant, delayMs: r.delayMs, overshootTokens: r.overshootTokens, overshootCalls: r.overshootCalls, missing: r.missing }));
  writeFileSync(a.out, JSON.stringify({ machine, args: a, at: new Date().toISOString(), summary, enforcement: enforcementSummary }, null, 2));
  console.log(`\nwritten: ${a.out}`);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
