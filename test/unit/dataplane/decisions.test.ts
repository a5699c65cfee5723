import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { CachedDecisionSource, HttpDecisionSource, type DecisionSource, type TenantDecision } from "../../../shared/dataplane/decisions";
import { DecisionUnavailableError } from "../../../shared/dataplane/errors";
import { enforcementEventDetailSchema, enforcementId, type EnforcementAction, type EnforcementEventDetail } from "../../../shared/quota/events";

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

/**
 * A full enforcement detail as quota enforcement publishes it, checked against the contract so
 * the field names the data plane reads (`occurredAt`, `retryAfterSeconds`, `periodKind`,
 * `threshold`) are the published ones.
 */
function enforcementDetail(
  action: EnforcementAction,
  fields: Pick<EnforcementEventDetail, "period" | "periodKind" | "threshold" | "occurredAt"> & Partial<EnforcementEventDetail>,
): EnforcementEventDetail {
  const key = typeof fields.threshold === "string" ? fields.threshold : "limit";
  return enforcementEventDetailSchema.parse({
    schemaVersion: "1",
    enforcementId: enforcementId("t1", fields.period, key, action),
    tenantId: "t1",
    tier: "basic",
    action,
    usage: { tokens: 0, inputTokens: 0, outputTokens: 0, cacheReadInputTokens: 0, cacheWriteInputTokens: 0, requests: 0, costUsd: 0 },
    quota: { requestsPerMinute: 60, tokensPerMinute: 100_000 },
    reason: "test",
    ...fields,
  });
}

describe("CachedDecisionSource with late enforcement events", () => {
  const allow: TenantDecision = { tenantId: "t1", decision: "allow" };
  const downgrade: TenantDecision = { tenantId: "t1", decision: "downgrade", targetModelId: "anthropic.claude-3-haiku-20240307-v1:0" };
  const at = (iso: string) => Date.parse(iso);
  // Decided at 00:40:15 during minute 00:40: throttled until the minute ends at 00:41:00.
  const rpmThrottle = enforcementDetail("throttle", {
    period: "2026-11-26T00:40",
    periodKind: "minute",
    threshold: "rpm",
    retryAfterSeconds: 45,
    occurredAt: "2026-11-26T00:40:15.000Z",
  });

  it("ignores a per-minute throttle whose minute ended before it arrived (outbox sweeper republish)", async () => {
    let now = at("2026-11-26T00:44:30Z");
    const { source, calls } = scripted(allow);
    const cache = new CachedDecisionSource(source, { ttlMs: 60_000, now: () => now, logger: logger() });
    expect(await cache.get("t1")).toEqual(allow);

    now = at("2026-11-26T00:45:00Z");
    expect(cache.applyEnforcementEvent(rpmThrottle)).toBe(true);
    expect(await cache.get("t1")).toEqual(allow);
    expect(calls).toHaveLength(1);
  });

  it("also ignores it (tpm) for a tenant with no cached decision, and asks the endpoint as usual", async () => {
    const now = at("2026-11-26T00:41:00Z"); // exactly the end instant: the minute is over
    const { source, calls } = scripted(allow);
    const cache = new CachedDecisionSource(source, { ttlMs: 60_000, now: () => now, logger: logger() });
    expect(cache.applyEnforcementEvent({ ...rpmThrottle, threshold: "tpm" })).toBe(true);
    expect(await cache.get("t1")).toEqual(allow);
    expect(calls).toHaveLength(1);
  });

  it("enforces a late per-minute throttle only until occurredAt + retryAfterSeconds, not for a TTL from arrival", async () => {
    let now = at("2026-11-26T00:40:50Z");
    const { source, calls } = scripted(allow);
    const cache = new CachedDecisionSource(source, { ttlMs: 60_000, now: () => now, logger: logger() });
    expect(cache.applyEnforcementEvent(rpmThrottle)).toBe(true);
    expect(await cache.get("t1")).toMatchObject({ decision: "throttle", retryAfterSeconds: 45, period: "2026-11-26T00:40" });
    now = at("2026-11-26T00:40:59.999Z");
    expect((await cache.get("t1")).decision).toBe("throttle");
    expect(calls).toHaveLength(0);

    now = at("2026-11-26T00:41:00Z");
    expect(await cache.get("t1")).toEqual(allow);
    expect(calls).toHaveLength(1);
  });

  it("does not keep an ended per-minute throttle while the endpoint is down: the decision before it stays in force", async () => {
    let now = at("2026-11-26T00:40:20Z");
    const log = logger();
    const { source } = scripted(downgrade, new DecisionUnavailableError("down"));
    const cache = new CachedDecisionSource(source, { ttlMs: 60_000, now: () => now, logger: log });
    expect(await cache.get("t1")).toEqual(downgrade);
    cache.applyEnforcementEvent(rpmThrottle);
    expect((await cache.get("t1")).decision).toBe("throttle");

    now = at("2026-11-26T00:41:05Z");
    expect(await cache.get("t1")).toEqual(downgrade);
    expect(log.warn).toHaveBeenCalledWith("decision refresh failed; keeping the last decision", expect.objectContaining({ decision: "downgrade" }));
  });

  it("fails open after an ended per-minute throttle when the endpoint is down and nothing came before it", async () => {
    let now = at("2026-11-26T00:40:20Z");
    const log = logger();
    const { source } = scripted(new DecisionUnavailableError("down"));
    const cache = new CachedDecisionSource(source, { ttlMs: 60_000, now: () => now, logger: log });
    cache.applyEnforcementEvent(rpmThrottle);
    expect((await cache.get("t1")).decision).toBe("throttle");

    now = at("2026-11-26T00:41:05Z");
    expect(await cache.get("t1")).toMatchObject({ tenantId: "t1", decision: "allow" });
    expect(log.warn).toHaveBeenCalledWith("no decision available; failing open to allow", expect.objectContaining({ tenantId: "t1" }));
  });

  it("lets a refresh answer win over a per-minute throttle that ended while the request was in flight", async () => {
    let now = at("2026-11-26T00:40:50Z");
    let release!: (d: TenantDecision) => void;
    const slow: DecisionSource = { get: () => new Promise<TenantDecision>((r) => (release = r)) };
    const cache = new CachedDecisionSource(slow, { ttlMs: 60_000, now: () => now, logger: logger() });
    const pending = cache.get("t1");
    cache.applyEnforcementEvent(rpmThrottle);
    now = at("2026-11-26T00:41:01Z");
    release(allow);
    expect(await pending).toEqual(allow);
  });

  it("applies a late monthly throttle and a late downgrade as they arrive", async () => {
    const now = at("2026-12-01T00:04:00Z");
    const { source } = scripted(allow);
    const cache = new CachedDecisionSource(source, { ttlMs: 60_000, now: () => now, logger: logger() });
    // Decided 10 s before the month ended, arriving 4 minutes into the next one.
    const monthly = enforcementDetail("throttle", {
      period: "2026-11",
      periodKind: "month",
      threshold: 1,
      retryAfterSeconds: 10,
      occurredAt: "2026-11-30T23:59:50.000Z",
    });
    expect(cache.applyEnforcementEvent(monthly)).toBe(true);
    expect(await cache.get("t1")).toMatchObject({ decision: "throttle", retryAfterSeconds: 10, period: "2026-11" });

    const downgraded = enforcementDetail("downgrade", {
      period: "2026-11",
      periodKind: "month",
      threshold: 1,
      targetModelId: "anthropic.claude-3-haiku-20240307-v1:0",
      occurredAt: "2026-11-30T23:59:50.000Z",
    });
    expect(cache.applyEnforcementEvent(downgraded)).toBe(true);
    expect(await cache.get("t1")).toMatchObject({ decision: "downgrade", targetModelId: "anthropic.claude-3-haiku-20240307-v1:0" });
  });

  it("applies a late per-minute restore", async () => {
    const now = at("2026-11-26T00:45:00Z");
    const { source, calls } = scripted(allow);
    const cache = new CachedDecisionSource(source, { ttlMs: 60_000, now: () => now, logger: logger() });
    cache.applyEnforcementEvent({ tenantId: "t1", action: "throttle", retryAfterSeconds: 30 });
    expect((await cache.get("t1")).decision).toBe("throttle");

    const restored = enforcementDetail("restore", {
      period: "2026-11-26T00:41",
      periodKind: "minute",
      threshold: "rate",
      occurredAt: "2026-11-26T00:41:02.000Z",
    });
    expect(cache.applyEnforcementEvent(restored)).toBe(true);
    expect(await cache.get("t1")).toMatchObject({ tenantId: "t1", decision: "allow", period: "2026-11-26T00:41" });
    expect(calls).toHaveLength(0);
  });

  it("a per-minute restore lifts only the per-minute throttle: a monthly restriction stays", async () => {
    const now = at("2026-11-26T00:41:05Z");
    const { source, calls } = scripted(allow);
    const cache = new CachedDecisionSource(source, { ttlMs: 60_000, now: () => now, logger: logger() });
    const monthlyDowngrade = enforcementDetail("downgrade", {
      period: "2026-11", periodKind: "month", threshold: 1, targetModelId: "anthropic.claude-3-haiku-20240307-v1:0", occurredAt: "2026-11-26T00:30:00.000Z",
    });
    const minuteThrottle = enforcementDetail("throttle", {
      period: "2026-11-26T00:41", periodKind: "minute", threshold: "rpm", retryAfterSeconds: 50, occurredAt: "2026-11-26T00:41:01.000Z",
    });
    const minuteRestore = enforcementDetail("restore", { period: "2026-11-26T00:41", periodKind: "minute", threshold: "rate", occurredAt: "2026-11-26T00:41:04.000Z" });
    cache.applyEnforcementEvent(monthlyDowngrade);
    cache.applyEnforcementEvent(minuteThrottle);
    expect((await cache.get("t1")).decision).toBe("throttle");
    cache.applyEnforcementEvent(minuteRestore);
    expect(await cache.get("t1")).toMatchObject({ decision: "downgrade", targetModelId: "anthropic.claude-3-haiku-20240307-v1:0" });

    const monthlyThrottle = enforcementDetail("throttle", { period: "2026-11", periodKind: "month", threshold: 1, retryAfterSeconds: 3600, occurredAt: "2026-11-26T00:41:04.500Z" });
    cache.applyEnforcementEvent(monthlyThrottle);
    cache.applyEnforcementEvent({ ...minuteRestore, occurredAt: "2026-11-26T00:41:04.800Z" });
    expect((await cache.get("t1")).decision).toBe("throttle");
    expect(calls).toHaveLength(0);
  });

  it("ignores an event decided before the one in force (out of order after a republish)", async () => {
    const now = at("2026-12-01T00:06:00Z");
    const { source } = scripted(allow);
    const cache = new CachedDecisionSource(source, { ttlMs: 60_000, now: () => now, logger: logger() });
    // the period reset restored the tenant at 00:00:30; the November throttle is republished late
    cache.applyEnforcementEvent(enforcementDetail("restore", { period: "2026-11", periodKind: "month", threshold: 1, occurredAt: "2026-12-01T00:00:30.000Z" }));
    cache.applyEnforcementEvent(
      enforcementDetail("throttle", { period: "2026-11", periodKind: "month", threshold: 1, retryAfterSeconds: 10, occurredAt: "2026-11-30T23:59:50.000Z" }),
    );
    expect((await cache.get("t1")).decision).toBe("allow");
  });
});
