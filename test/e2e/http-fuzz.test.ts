import { request as httpRequest } from "node:http";
import { PutCommand } from "@aws-sdk/lib-dynamodb";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { LocalStack } from "../../local/stack";
import { CursorCodec } from "../../shared/http/cursor";
import { HTTP_ROUTES } from "../../shared/http/routes";
import { documentClient } from "../../shared/storage/adapters/dynamodb";
import { keys } from "../../shared/storage/keys";
import { localDynamoClient } from "../helpers/dynamo";
import { startTestStack } from "./stack-harness";
import { mulberry32 as prng } from "../../shared/util/random";

/**
 * Issue 10, finding 7: no input gets a 500. The issue's reproductions one by one, then a seeded
 * fuzz of every route's path, query and body through the local stack's HTTP server (the same
 * handlers Lambda runs), then a normal request to show the server is still healthy.
 */

interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/** A raw request: the path goes on the wire exactly as given (fetch would normalise it). */
function send(base: string, method: string, path: string, body?: string | Buffer, headers: Record<string, string> = {}): Promise<Reply> {
  const { hostname, port } = new URL(base);
  // Node refuses to send spaces and control characters in a request line; those are sent encoded.
  path = path.replace(/[^\u0021-\u00ff]/gu, (c) => encodeURIComponent(c));
  return new Promise((resolve, reject) => {
    const req = httpRequest({ hostname, port, method, path, headers: { ...(body !== undefined ? { "content-length": String(Buffer.byteLength(body)) } : {}), ...headers } }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString("utf8") }));
      res.on("error", reject);
    });
    req.on("error", reject);
    if (body !== undefined) req.write(body);
    req.end();
  });
}

const MONTH = "2026-11";
const DAY = "2026-11-20";
const SEEDED_TENANTS = ["fz-a", "fz-b", "fz-c", "fz-d"];

let stack: LocalStack;

beforeAll(async () => {
  ({ stack } = await startTestStack({ rules: [] }));
  const doc = documentClient(localDynamoClient());
  for (const tenantId of SEEDED_TENANTS) {
    await doc.send(
      new PutCommand({
        TableName: stack.tableName,
        Item: { ...keys.aggregate(tenantId, { kind: "tenant", granularity: "month", period: MONTH }), ...keys.billing(tenantId, MONTH), tenantId, requests: 1, inputTokens: 10, outputTokens: 5, costNanoUsd: 7 },
      }),
    );
    await doc.send(
      new PutCommand({
        TableName: stack.tableName,
        Item: { ...keys.quarantine(DAY, `${DAY}T01:00:00.000Z`, `m-${tenantId}`), messageId: `m-${tenantId}`, receivedAt: `${DAY}T01:00:00.000Z`, reason: "schema", message: "tenantId: required", body: "" },
      }),
    );
  }
});

afterAll(async () => {
  await stack?.stop();
});

function jsonOf(r: Reply): Record<string, unknown> {
  expect(String(r.headers["content-type"])).toMatch(/application\/json/);
  return JSON.parse(r.body) as Record<string, unknown>;
}

async function firstBillingCursor(): Promise<string> {
  const page = jsonOf(await send(stack.url, "GET", `/billing/${MONTH}?limit=1`));
  expect(typeof page.cursor).toBe("string");
  return page.cursor as string;
}

describe("finding 7: the issue's reproductions answer a clear 4xx JSON error", () => {
  it.each(["/usage/%E0%A4%A", "/usage/%ZZ", "/tenants/%E0%A4%A/decision", "/tenants/%ZZ/config"])("GET %s -> 400 InvalidTenantId", async (path) => {
    const r = await send(stack.url, "GET", path);
    expect(r.status).toBe(400);
    const body = jsonOf(r);
    expect(body.error).toMatch(/InvalidTenantId|UsageQueryInvalidError/);
    expect(JSON.stringify(body)).toMatch(/tenantId/);
  });

  it("a forged /billing cursor that decodes to another key -> 400 InvalidCursor", async () => {
    // The pre-signing format: base64url JSON of {shard, LastEvaluatedKey}; here a key of another partition.
    const forged = Buffer.from(JSON.stringify({ s: 0, k: { pk: "TENANT#x", sk: "CONFIG", gsi1pk: "OUTBOX#0", gsi1sk: "x" } })).toString("base64url");
    const r = await send(stack.url, "GET", `/billing/${MONTH}?cursor=${forged}`);
    expect(r.status).toBe(400);
    expect(jsonOf(r).error).toBe("InvalidCursor");
  });

  it("/enforcement/events?cursor=zzz -> 400 InvalidCursor", async () => {
    const r = await send(stack.url, "GET", `/enforcement/events?day=${DAY}&cursor=zzz`);
    expect(r.status).toBe(400);
    expect(jsonOf(r).error).toBe("InvalidCursor");
  });

  it("a tampered /billing cursor -> 400, not a 200 with an empty page", async () => {
    const cursor = await firstBillingCursor();
    const [v, payload, mac] = cursor.split(".");
    const flipped = payload.slice(0, -1) + (payload.endsWith("A") ? "B" : "A");
    for (const bad of [`${v}.${flipped}.${mac}`, `${v}.${payload}.${mac.slice(0, -2)}AA`, cursor.slice(0, -1), `${cursor}x`]) {
      const r = await send(stack.url, "GET", `/billing/${MONTH}?cursor=${encodeURIComponent(bad)}`);
      expect(r.status, bad).toBe(400);
      expect(jsonOf(r).error).toBe("InvalidCursor");
    }
  });

  it("a cursor is valid only for the listing that issued it, and only with this stack's key", async () => {
    const cursor = await firstBillingCursor();
    expect((await send(stack.url, "GET", `/billing/2026-10?cursor=${cursor}`)).status).toBe(400);
    expect((await send(stack.url, "GET", `/quarantine?day=${DAY}&cursor=${cursor}`)).status).toBe(400);
    expect((await send(stack.url, "GET", `/enforcement/events?day=${DAY}&cursor=${cursor}`)).status).toBe(400);
    const otherKey = new CursorCodec("another-stage-key-0123456789abcdef").seal(JSON.stringify({ s: 0, k: null }), `billing/${MONTH}`)!;
    expect((await send(stack.url, "GET", `/billing/${MONTH}?cursor=${otherKey}`)).status).toBe(400);
  });

  it("genuine cursors page through every seeded row exactly once (billing and quarantine)", async () => {
    for (const [path, field, want] of [
      [`/billing/${MONTH}?limit=1`, "tenants", SEEDED_TENANTS.length],
      [`/quarantine?day=${DAY}&limit=1`, "items", SEEDED_TENANTS.length],
    ] as const) {
      const seen: unknown[] = [];
      let cursor: string | undefined;
      let pages = 0;
      do {
        const r = await send(stack.url, "GET", cursor ? `${path}&cursor=${encodeURIComponent(cursor)}` : path);
        expect(r.status).toBe(200);
        const body = jsonOf(r);
        seen.push(...(body[field] as unknown[]));
        cursor = body.cursor as string | undefined;
        pages++;
      } while (cursor && pages < 20);
      expect(seen).toHaveLength(want);
    }
  });
});


const FUZZ_SEED = 0x10f7;
const FUZZ_REQUESTS = 320;

/** Path segments no route accepts: bad percent-encoding, delimiters, unicode, huge, empty-ish. */
const BAD_SEGMENTS = [
  "%E0%A4%A", "%ZZ", "%", "%2", "%C3%28", "%ED%A0%80", "%F0%9F", "%00", "a%00b", "%23", "a%23b", "TENANT%23x", "%2F", "a%2Fb", "%20", "a%20b",
  "%E2%80%AE", "%F0%9F%92%A9", "%C3%A9t%C3%A9", "..", ".", "%2E%2E", "-leading", "_x", "x".repeat(65), "y".repeat(5000),
  "%25", "%25ZZ", "a%2Cb", "%3Cscript%3E", "'%20OR%201=1", "%7B%7D", "%5B%5D", "null", "undefined", "NaN", "1e309", "%FF%FE",
];
const BAD_MONTHS = ["2026-13", "2026-00", "26-11", "2026-1", "2026-11-01", "%ZZ", "%E0%A4%A", "9999-99", "x".repeat(3000), "2026%2D11", "%F0%9F%92%A9"];
const BAD_DAYS = ["2026-13-01", "2026-11-32", "2026-02-30", "yesterday", "", "%ZZ", "2026-11", "0000-00-00", "9".repeat(4000), "2026-11-20T00:00:00Z", "%F0%9F%92%A9"];
const BAD_INTS = ["-1", "0", "1001", "1e309", "1e3", "1.5", "abc", "", "0x10", " 5", "5 ", "99999999999999999999999", "NaN", "Infinity", "%ZZ", "1,2"];
const GRANULARITIES = ["hour", "day", "month", "week", "", "HOUR", "%ZZ", "hour,day", "x".repeat(2000)];

function pick<T>(rand: () => number, list: readonly T[]): T {
  return list[Math.floor(rand() * list.length)];
}

/** Garbage cursors: random text, random base64url, forged old-format keys, sealed with another key, huge. */
function badCursor(rand: () => number, genuine: string): string {
  const other = new CursorCodec("fuzz-other-key-0123456789abcdefghij");
  const r = Math.floor(rand() * 10);
  switch (r) {
    case 0:
      return "zzz";
    case 1:
      return Buffer.from(JSON.stringify({ s: Math.floor(rand() * 50) - 10, k: { pk: `TENANT#${rand()}`, sk: "x" } })).toString("base64url");
    case 2:
      return Buffer.from(JSON.stringify({ pk: "ENFORCEMENT#2026-11-20", sk: "x#y#z" })).toString("base64url");
    case 3:
      return other.seal(JSON.stringify({ s: 0, k: null }), `billing/${MONTH}`)!;
    case 4: {
      const i = Math.floor(rand() * genuine.length);
      return genuine.slice(0, i) + (genuine[i] === "A" ? "B" : "A") + genuine.slice(i + 1);
    }
    case 5:
      return "c1." + "A".repeat(Math.floor(rand() * 6000)) + ".x";
    case 6:
      return "%ZZ%E0%A4%A";
    case 7:
      return encodeURIComponent("c1.\u{1F4A9}.\u00e9");
    case 8:
      return genuine.split(".").reverse().join(".");
    default:
      return encodeURIComponent(Buffer.from(Array.from({ length: 1 + Math.floor(rand() * 200) }, () => Math.floor(rand() * 256))).toString("latin1"));
  }
}

const BAD_BODIES: (string | Buffer)[] = [
  "",
  "{tier",
  "null",
  "[]",
  "42",
  '"basic"',
  "{}",
  '{"tier":5}',
  '{"tier":"gold"}',
  '{"monthlyTokens":-1}',
  '{"monthlyTokens":"many"}',
  '{"monthlyTokens":1e400}',
  '{"monthlyUsd":{"$gt":0}}',
  '{"tier":"basic","extra":"x"}',
  '{"__proto__":{"admin":true}}',
  '{"tier":"basic","tier":"premium","monthlyTokens":1.5}',
  "[".repeat(20_000) + "]".repeat(20_000),
  JSON.stringify({ tier: "basic", note: "x".repeat(300_000) }),
  Buffer.from([0xff, 0xfe, 0x00, 0x7b, 0x80]),
  "\u0000\u0001\u0002",
  '{"tier":"\uD800"}',
  "{\"tier\":\"basic\"}".repeat(1000),
];

/** One malformed request for route `i % routes`: method, raw path, body, headers. */
function malformed(rand: () => number, i: number, genuine: string): { method: string; path: string; body?: string | Buffer; headers?: Record<string, string> } {
  const seg = () => pick(rand, BAD_SEGMENTS);
  const kind = i % 9;
  switch (kind) {
    case 0:
      return { method: "GET", path: `/usage/${seg()}${rand() < 0.5 ? `?from=${pick(rand, BAD_DAYS)}` : ""}` };
    case 1: {
      const q = [`granularity=${pick(rand, GRANULARITIES)}`, `from=${pick(rand, BAD_DAYS)}`, `to=${pick(rand, BAD_DAYS)}`, "from=2026-01-01&to=2026-12-31&granularity=hour", "from=1900-01-01&to=2999-12-31", "from=2026-11-30&to=2026-11-01"];
      return { method: "GET", path: `/usage/fz-a?${pick(rand, q)}&${pick(rand, q)}` };
    }
    case 2:
      return { method: "GET", path: `/billing/${rand() < 0.5 ? pick(rand, BAD_MONTHS) : MONTH}?limit=${pick(rand, BAD_INTS)}&cursor=${badCursor(rand, genuine)}` };
    case 3:
      return { method: "GET", path: `/quarantine?day=${pick(rand, BAD_DAYS)}&limit=${pick(rand, BAD_INTS)}${rand() < 0.6 ? `&cursor=${badCursor(rand, genuine)}` : ""}` };
    case 4:
      return { method: "GET", path: `/tenants/${seg()}/decision${rand() < 0.3 ? "?x=%ZZ" : ""}` };
    case 5:
      return { method: "GET", path: `/tenants/${seg()}/config` };
    case 6: {
      const ct = pick(rand, ["application/json", "text/plain", "application/octet-stream", "application/x-www-form-urlencoded", "image/png", "application/json; charset=utf-16"]);
      return { method: "PUT", path: `/tenants/${rand() < 0.5 ? "fz-put" : seg()}/config`, body: pick(rand, BAD_BODIES), headers: { "content-type": ct } };
    }
    case 7:
      return { method: "GET", path: `/enforcement/events?day=${pick(rand, BAD_DAYS)}&limit=${pick(rand, BAD_INTS)}&cursor=${badCursor(rand, genuine)}` };
    default: {
      // Wrong methods on real routes, and bodies on GETs.
      const route = pick(rand, HTTP_ROUTES);
      const method = pick(rand, ["POST", "DELETE", "PATCH", "OPTIONS", "PUT", "GET"]);
      const path = route.path.replace("{tenantId}", "fz-a").replace("{month}", MONTH);
      return { method: method === route.method ? (method === "GET" ? "POST" : "DELETE") : method, path, body: pick(rand, BAD_BODIES), headers: { "content-type": "application/json" } };
    }
  }
}

describe("finding 7: fuzz every route with malformed input", () => {
  it(`answers ${FUZZ_REQUESTS} malformed requests (seed ${FUZZ_SEED}) without a 5xx, then still serves a normal request`, async () => {
    const rand = prng(FUZZ_SEED);
    const genuine = await firstBillingCursor();
    const statuses = new Map<number, number>();
    const covered = new Set<string>();
    const failures: string[] = [];
    for (let i = 0; i < FUZZ_REQUESTS; i++) {
      const req = malformed(rand, i, genuine);
      const r = await send(stack.url, req.method, req.path, req.body, req.headers);
      statuses.set(r.status, (statuses.get(r.status) ?? 0) + 1);
      const routed = HTTP_ROUTES.find((route) => route.method === req.method && new RegExp(`^${route.path.replace(/\{[^}]+\}/g, "[^/]*")}(\\?|$)`).test(req.path));
      if (routed) covered.add(`${routed.method} ${routed.path}`);
      if (r.status >= 500) failures.push(`${req.method} ${req.path.slice(0, 200)} -> ${r.status} ${r.body.slice(0, 200)}`);
      // A 4xx is JSON with a reason (431/413 come from Node's HTTP parser, before any route).
      else if (r.status >= 400 && r.status !== 431 && r.status !== 413) {
        expect(() => JSON.parse(r.body), `${req.method} ${req.path.slice(0, 120)}: ${r.body.slice(0, 200)}`).not.toThrow();
      }
    }
    expect(failures).toEqual([]);
    // Every route was reached with malformed input, and most of it was rejected.
    expect([...covered].sort()).toEqual(HTTP_ROUTES.map((r) => `${r.method} ${r.path}`).sort());
    const rejected = [...statuses].filter(([s]) => s >= 400 && s < 500).reduce((n, [, c]) => n + c, 0);
    expect(rejected, JSON.stringify([...statuses].sort())).toBeGreaterThanOrEqual(200);

    const health = await send(stack.url, "GET", "/local/health");
    expect(health.status).toBe(200);
    const usage = await send(stack.url, "GET", `/usage/fz-a?granularity=month&from=${MONTH}-01&to=${MONTH}-30`);
    expect(usage.status).toBe(200);
    expect(jsonOf(usage)).toMatchObject({ tenantId: "fz-a", totals: { requests: 1, inputTokens: 10 } });
  });
});
