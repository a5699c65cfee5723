import { EventBridgeClient, PutEventsCommand } from "@aws-sdk/client-eventbridge";
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { INVOCATION_DETAIL_TYPE, INVOCATION_SOURCES } from "../../shared/events/invocation";
import { INGEST_RULE } from "../../shared/events/rules";
import { invocation } from "../helpers/events";

/**
 * Issue 10, finding 8: with `--data`, `kill -9` of the local stack while batches were in flight
 * lost events PutEvents had answered 200 for. Here: the CLI (`local/main.ts`, what `npm start`
 * runs) as a child process, 3,000 events acknowledged, SIGKILL mid-ingest, a restart on the same
 * directory with no re-send, and every event counted exactly once through the usage API.
 */

const TENANTS = 30;
const PER_TENANT = 100;
const started: ChildProcess[] = [];
const strayPids = new Set<number>();
const dataDir = mkdtempSync(join(tmpdir(), "genai-local-crash-"));

interface Running {
  child: ChildProcess;
  url: string;
  output: () => string;
}

/** `node --import tsx local/main.ts ...`: one process (no tsx wrapper), so SIGKILL hits the stack itself. */
async function startCli(args: string[]): Promise<Running> {
  const child = spawn(process.execPath, ["--import", "tsx", "local/main.ts", ...args], {
    cwd: process.cwd(),
    env: { ...process.env, AWS_PROFILE: undefined, AWS_SESSION_TOKEN: undefined },
    stdio: ["ignore", "pipe", "pipe"],
  });
  started.push(child);
  let out = "";
  child.stdout!.on("data", (d) => (out += String(d)));
  child.stderr!.on("data", (d) => (out += String(d)));
  const deadline = Date.now() + 240_000;
  for (;;) {
    const m = /Local stack on (http:\/\/127\.0\.0\.1:\d+)/.exec(out);
    if (m) return { child, url: m[1], output: () => out };
    if (child.exitCode !== null) throw new Error(`the local stack exited (${child.exitCode}) while starting:\n${out}`);
    if (Date.now() > deadline) throw new Error(`the local stack did not start within 240 s:\n${out}`);
    await sleep(100);
  }
}

async function getJson<T>(url: string): Promise<T> {
  const res = await fetch(url);
  if (res.status !== 200) throw new Error(`${url}: ${res.status} ${await res.text()}`);
  return (await res.json()) as T;
}

interface QueuesResponse {
  queues: { rule: string; concurrency: number; sent: number; deleted: number; visible: number; delayed: number; inFlight: number; deadLetters: number }[];
  journal: { path: string; pending: number } | null;
}

afterAll(async () => {
  for (const child of started) if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
  for (const pid of strayPids) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      // already gone
    }
  }
  rmSync(dataDir, { recursive: true, force: true });
});

describe("local stack with --data: events acknowledged before a kill -9 are all counted after a restart", () => {
  it("counts 3,000 acknowledged events exactly once after SIGKILL mid-ingest and a restart with no re-send", { timeout: 900_000 }, async () => {
    // prepare: the CLI with --data and the default ingest concurrency
    const t0 = Date.now();
    const mark = (what: string) => console.log(`[crash-test] ${((Date.now() - t0) / 1000).toFixed(1)} s ${what}`);
    const args = ["--data", dataDir, "--no-demo", "--no-jobs", "--port", "0"];
    const first = await startCli(args);
    mark("started");
    const health = await getJson<{ pid?: number; dynamoPid?: number | null }>(`${first.url}/local/health`);
    if (health.dynamoPid) strayPids.add(health.dynamoPid);
    const before = await getJson<QueuesResponse>(`${first.url}/local/queues`);

    const tenantIds = Array.from({ length: TENANTS }, (_, i) => `crash-${i.toString().padStart(2, "0")}`);
    const events = tenantIds.flatMap((tenantId) => Array.from({ length: PER_TENANT }, () => invocation({ tenantId, inputTokens: 11, outputTokens: 7 })));
    const client = new EventBridgeClient({ endpoint: first.url, region: "us-west-2", credentials: { accessKeyId: "local", secretAccessKey: "local" } });

    // act 1: 300 PutEvents of 10 entries, 8 in flight; every entry answered with an EventId. The
    // SDK's default retries stay on, as for any producer: a retried call repeats its events, and
    // a repeated event must still be counted once.
    let acknowledged = 0;
    let next = 0;
    const sender = async () => {
      while (next < events.length) {
        const slice = events.slice(next, (next += 10));
        const out = await client.send(
          new PutEventsCommand({
            Entries: slice.map((e) => ({ Source: INVOCATION_SOURCES.bedrock, DetailType: INVOCATION_DETAIL_TYPE, Detail: JSON.stringify(e), EventBusName: "local-bus" })),
          }),
        );
        expect(out.FailedEntryCount).toBe(0);
        acknowledged += out.Entries!.filter((e) => e.EventId).length;
      }
    };
    await Promise.all(Array.from({ length: 8 }, sender));
    client.destroy();
    expect(acknowledged).toBe(events.length);

    mark("sent");
    // act 2: SIGKILL while the ingest is still working through them
    const atKill = await getJson<QueuesResponse>(`${first.url}/local/queues`);
    const ingestAtKill = atKill.queues.find((q) => q.rule === INGEST_RULE.name)!;
    first.child.kill("SIGKILL");
    await new Promise((r) => first.child.once("exit", r));
    // the crash came before the ingest had deleted every message: this is what was lost before
    expect(ingestAtKill.sent).toBe(events.length);
    expect(ingestAtKill.deleted).toBeLessThan(events.length);

    mark(`killed ${JSON.stringify(ingestAtKill)}`);
    // act 3: restart on the same directory, no re-send
    const second = await startCli(args);
    mark("restarted");
    const health2 = await getJson<{ dynamoPid?: number | null }>(`${second.url}/local/health`);
    if (health2.dynamoPid) strayPids.add(health2.dynamoPid);

    // wait until the journal has nothing pending and the ingest queue is idle
    const deadline = Date.now() + 420_000;
    let q: QueuesResponse;
    for (;;) {
      q = await getJson<QueuesResponse>(`${second.url}/local/queues`);
      const ingest = q.queues.find((x) => x.rule === INGEST_RULE.name)!;
      if (!q.journal?.pending && ingest.visible + ingest.delayed + ingest.inFlight === 0) break;
      if (Date.now() > deadline) throw new Error(`not drained after the restart: ${JSON.stringify(q)}\n${second.output()}`);
      await sleep(250);
    }

    mark(`drained ${JSON.stringify(q!)}`);
    // assess: every acknowledged event counted exactly once, per tenant, through the usage API
    const today = new Date();
    const from = new Date(today.getTime() - 86_400_000).toISOString().slice(0, 10);
    const to = today.toISOString().slice(0, 10);
    const counted = await Promise.all(
      tenantIds.map(async (tenantId) => {
        const usage = await getJson<{ totals: { requests: number; inputTokens: number; outputTokens: number } }>(
          `${second.url}/usage/${tenantId}?from=${from}&to=${to}&granularity=day`,
        );
        return usage.totals;
      }),
    );
    expect(counted.reduce((a, t) => a + t.requests, 0)).toBe(events.length);
    expect(counted).toEqual(tenantIds.map(() => ({ ...counted[0], requests: PER_TENANT, inputTokens: 11 * PER_TENANT, outputTokens: 7 * PER_TENANT })));
    expect(q!.queues.find((x) => x.rule === INGEST_RULE.name)!.deadLetters).toBe(0);
    expect(second.output()).toMatch(/\[journal\] .*: \d+ accepted message\(s\) not processed before the last stop delivered again/);
    // the first run's DynamoDB Local (orphaned by the SIGKILL) was stopped by the restart
    expect(health.dynamoPid && alive(health.dynamoPid)).toBe(false);
    // issue 13: the CLI's ingest runs as many batches at once as the deployed event source
    expect(before.queues.find((x) => x.rule === INGEST_RULE.name)?.concurrency).toBe(INGEST_RULE.maxConcurrency);

    second.child.kill("SIGTERM");
    await new Promise((r) => second.child.once("exit", r));
  });
});

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
