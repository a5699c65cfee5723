import { describe, expect, it, vi } from "vitest";
import { run } from "../../../cli/tenant";

function fakeApi(stored?: Record<string, unknown>) {
  const calls: { url: string; method: string; body?: unknown }[] = [];
  const fetchImpl = (async (url: string, init?: RequestInit) => {
    calls.push({ url, method: init?.method ?? "GET", body: init?.body ? JSON.parse(init.body as string) : undefined });
    const payload = init?.method === "PUT" ? { config: JSON.parse(init.body as string) } : { configured: !!stored, config: stored, effective: { tier: stored?.tier ?? "basic" } };
    return new Response(JSON.stringify(payload), { status: 200 });
  }) as typeof fetch;
  return { calls, fetchImpl };
}

describe("cli tenant", () => {
  it("set merges flags over the stored config and PUTs it to the API", async () => {
    const log = vi.spyOn(console, "log").mockImplementation(() => undefined);
    const api = fakeApi({ tenantId: "acme", tier: "basic", monthlyUsd: 20, updatedAt: "x" });
    const code = await run(["set", "acme", "--tier", "advanced", "--monthly-tokens", "5000", "--api", "http://127.0.0.1:4000/"], api.fetchImpl);
    expect(code).toBe(0);
    expect(api.calls.map((c) => `${c.method} ${c.url}`)).toEqual([
      "GET http://127.0.0.1:4000/tenants/acme/config",
      "PUT http://127.0.0.1:4000/tenants/acme/config",
    ]);
    expect(api.calls[1].body).toEqual({ tier: "advanced", monthlyUsd: 20, monthlyTokens: 5000 });
    log.mockRestore();
  });

  it("refuses unknown options and a missing tenant id with exit code 2", async () => {
    const err = vi.spyOn(console, "error").mockImplementation(() => undefined);
    const api = fakeApi();
    expect(await run(["set", "acme", "--colour", "red"], api.fetchImpl)).toBe(2);
    expect(await run(["get"], api.fetchImpl)).toBe(2);
    expect(api.calls).toEqual([]);
    err.mockRestore();
  });
});
