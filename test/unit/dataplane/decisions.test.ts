import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { CachedDecisionSource, HttpDecisionSource, type DecisionSource, type TenantDecision } from "../../../shared/dataplane/decisions";
import { DecisionUnavailableError } from "../../../shared/dataplane/errors";

/** A decision source whose answers the test scripts; counts calls. */
function scripted(...answers: Array<TenantDecision | Error>) {
  const calls: string[] = [];
  const source: DecisionSource = {
    async get(tenantId) {
      calls.push(tenantId);
      const next = answers.length > 1 ? answers.shift()! : answers[0];
      if (next instanceof Error) throw next;
      return next;
    },
  };
  return { source, calls };
}

const logger = () => ({ warn: vi.fn(), error: vi.fn() });

describe("HttpDecisionSource", () => {
  let server: Server;
  let baseUrl: string;
  const seen: string[] = [];
  beforeAll(async () => {
    server = createServer((req, res) => {
      seen.push(req.url ?? "");
      if (req.url === "/tenants/tenant-b/decision") {
        res.writeHead(200, { "content-type": "application/json" });
        res.end(JSON.stringify({ tenantId: "tenant-b", decision: "downgrade", targetModelId: "anthropic.claude-3-haiku-20240307-v1:0", tier: "advanced", period: "2026-11" }));
      } else if (req.url === "/tenants/wrong/decision") {
        res.writeHead(200, { "content-type": "application/json" });
        res.end(JSON.stringify({ tenantId: "someone-else", decision: "allow" }));
      } else {
        res.writeHead(503);
        res.end();
      }
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
  });
  afterAll(() => new Promise<void>((r) => server.close(() => r())));

  it("GETs /tenants/{id}/decision and parses the decision", async () => {
    const source = new HttpDecisionSource({ baseUrl });
    await expect(source.get("tenant-b")).resolves.toEqual({
      tenantId: "tenant-b",
      decision: "downgrade",
      targetModelId: "anthropic.claude-3-haiku-20240307-v1:0",
      tier: "advanced",
      period: "2026-11",
    });
    expect(seen).toContain("/tenants/tenant-b/decision");
  });

  it("throws DecisionUnavailableError on a non-2xx answer or a decision for another tenant", async () => {
    const source = new HttpDecisionSource({ baseUrl });
    await expect(source.get("tenant-x")).rejects.toMatchObject({ name: "DecisionUnavailableError", status: 503 });
    await expect(source.get("wrong")).rejects.toBeInstanceOf(DecisionUnavailableError);
  });

  it("throws DecisionUnavailableError when the endpoint is unreachable", async () => {
    const source = new HttpDecisionSource({ baseUrl: "http://127.0.0.1:1", timeoutMs: 500 });
    await expect(source.get("tenant-a")).rejects.toBeInstanceOf(DecisionUnavailableError);
  });
});

describe("CachedDecisionSource", () => {
  const allow: TenantDecision = { tenantId: "t1", decision: "allow" };
  const throttle: TenantDecision = { tenantId: "t1", decision: "throttle", retryAfterSeconds: 30 };

  it("serves a decision from cache within the TTL and refetches after it", async () => {
    let now = 0;
    const { source, calls } = scripted(allow, throttle);
    const cache = new CachedDecisionSource(source, { ttlMs: 5_000, now: () => now, logger: logger() });
    expect(await cache.get("t1")).toEqual(allow);
    now = 4_999;
    expect(await cache.get("t1")).toEqual(allow);
    expect(calls).toHaveLength(1);
    now = 5_000;
    expect(await cache.get("t1")).toEqual(throttle);
    expect(calls).toHaveLength(2);
  });

  it("shares one request among concurrent callers", async () => {
    const { source, calls } = scripted(allow);
    const cache = new CachedDecisionSource(source, { logger: logger() });
    await Promise.all([cache.get("t1"), cache.get("t1"), cache.get("t1")]);
    expect(calls).toHaveLength(1);
  });

  it("keeps the last decision when a refresh fails (stale-while-error)", async () => {
    let now = 0;
    const log = logger();
    const { source, calls } = scripted(throttle, new DecisionUnavailableError("down"));
    const cache = new CachedDecisionSource(source, { ttlMs: 1_000, now: () => now, logger: log });
    expect(await cache.get("t1")).toEqual(throttle);
    now = 2_000;
    expect(await cache.get("t1")).toEqual(throttle);
    expect(log.warn).toHaveBeenCalledWith("decision refresh failed; keeping the last decision", expect.objectContaining({ tenantId: "t1" }));
    // not retried on every call while the endpoint is down
    expect(await cache.get("t1")).toEqual(throttle);
    expect(calls).toHaveLength(2);
  });

  it("fails open to allow, and logs it, when no decision was ever known", async () => {
    let now = 0;
    const log = logger();
    const { source } = scripted(new DecisionUnavailableError("down"), throttle);
    const cache = new CachedDecisionSource(source, { ttlMs: 1_000, now: () => now, logger: log });
    expect(await cache.get("t1")).toMatchObject({ tenantId: "t1", decision: "allow" });
    expect(log.warn).toHaveBeenCalledWith("no decision available; failing open to allow", expect.objectContaining({ tenantId: "t1" }));
    now = 1_000;
    expect(await cache.get("t1")).toEqual(throttle); // the endpoint is back: the real decision wins
  });

  it("applies enforcement events at once, without waiting for the TTL", async () => {
    const { source, calls } = scripted(allow);
    const cache = new CachedDecisionSource(source, { ttlMs: 60_000, logger: logger() });
    expect(await cache.get("t1")).toEqual(allow);

    expect(cache.applyEnforcementEvent({ tenantId: "t1", action: "downgrade", targetModelId: "meta.llama3-1-70b-instruct-v1:0", period: "2026-11" })).toBe(true);
    expect(await cache.get("t1")).toEqual({ tenantId: "t1", decision: "downgrade", targetModelId: "meta.llama3-1-70b-instruct-v1:0", period: "2026-11" });

    cache.applyEnforcementEvent({ tenantId: "t1", action: "throttle", retryAfterSeconds: 120 });
    expect(await cache.get("t1")).toEqual({ tenantId: "t1", decision: "throttle", retryAfterSeconds: 120 });

    cache.applyEnforcementEvent({ tenantId: "t1", action: "warning" });
    expect((await cache.get("t1")).decision).toBe("throttle");

    cache.applyEnforcementEvent({ tenantId: "t1", action: "restore" });
    expect(await cache.get("t1")).toEqual({ tenantId: "t1", decision: "allow" });
    expect(calls).toHaveLength(1);
  });

  it("does not let a refresh that started before an enforcement event overwrite it", async () => {
    let release!: (d: TenantDecision) => void;
    const slow: DecisionSource = { get: () => new Promise<TenantDecision>((r) => (release = r)) };
    const cache = new CachedDecisionSource(slow, { ttlMs: 60_000, logger: logger() });
    const pending = cache.get("t1");
    cache.applyEnforcementEvent({ tenantId: "t1", action: "throttle", retryAfterSeconds: 30 });
    release(allow); // computed before the throttle
    expect(await pending).toEqual({ tenantId: "t1", decision: "throttle", retryAfterSeconds: 30 });
    expect(await cache.get("t1")).toEqual({ tenantId: "t1", decision: "throttle", retryAfterSeconds: 30 });
  });

  it("ignores a detail that is not an enforcement event", () => {
    const cache = new CachedDecisionSource(scripted(allow).source, { logger: logger() });
    expect(cache.applyEnforcementEvent({ tenantId: "t1", action: "explode" })).toBe(false);
  });
});
