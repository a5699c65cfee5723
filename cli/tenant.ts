/**
 * `npm run cli -- tenant get <tenantId> [--api URL]`
 * `npm run cli -- tenant set <tenantId> [--tier basic|advanced|premium] [--monthly-tokens N] [--monthly-usd X]
 *     [--warnings 0.5,0.8] [--tpm N] [--rpm N] [--api URL]`
 *
 * Calls the control-plane HTTP API (the local stack serves it on http://127.0.0.1:4000).
 * `set` replaces the config: flags not given keep their current stored value.
 */
const USAGE = `usage:
  tenant get <tenantId> [--api URL]
  tenant set <tenantId> [--tier basic|advanced|premium] [--monthly-tokens N] [--monthly-usd X]
                        [--warnings 0.5,0.8] [--tpm N] [--rpm N] [--api URL]`;

const FLAGS: Record<string, { field: string; parse: (v: string) => unknown }> = {
  "--tier": { field: "tier", parse: (v) => v },
  "--monthly-tokens": { field: "monthlyTokens", parse: Number },
  "--monthly-usd": { field: "monthlyUsd", parse: Number },
  "--warnings": { field: "warningThresholds", parse: (v) => v.split(",").map(Number) },
  "--tpm": { field: "tokensPerMinute", parse: Number },
  "--rpm": { field: "requestsPerMinute", parse: Number },
};

export async function run(argv: string[], fetchImpl: typeof fetch = fetch): Promise<number> {
  const [sub, tenantId, ...rest] = argv;
  if ((sub !== "get" && sub !== "set") || !tenantId || tenantId.startsWith("--")) {
    console.error(USAGE);
    return 2;
  }
  let api = "http://127.0.0.1:4000";
  const patch: Record<string, unknown> = {};
  for (let i = 0; i < rest.length; i += 2) {
    const flag = rest[i];
    const value = rest[i + 1];
    if (value === undefined) {
      console.error(`${flag}: missing value\n${USAGE}`);
      return 2;
    }
    if (flag === "--api") api = value.replace(/\/$/, "");
    else if (FLAGS[flag] && sub === "set") patch[FLAGS[flag].field] = FLAGS[flag].parse(value);
    else {
      console.error(`unknown option ${flag}\n${USAGE}`);
      return 2;
    }
  }
  const url = `${api}/tenants/${encodeURIComponent(tenantId)}/config`;
  const current = await fetchImpl(url);
  const currentBody = (await current.json()) as { config?: Record<string, unknown>; effective?: { tier?: string } };
  if (!current.ok) {
    console.error(JSON.stringify(currentBody, null, 2));
    return 1;
  }
  if (sub === "get") {
    console.log(JSON.stringify(currentBody, null, 2));
    return 0;
  }
  const { tenantId: _t, updatedAt: _u, pk: _pk, sk: _sk, ...stored } = currentBody.config ?? {};
  const body = { tier: currentBody.effective?.tier ?? "basic", ...stored, ...patch };
  const res = await fetchImpl(url, { method: "PUT", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
  const out = await res.json();
  console.log(JSON.stringify(out, null, 2));
  return res.ok ? 0 : 1;
}
