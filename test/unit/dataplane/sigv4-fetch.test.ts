import { createHash, createHmac } from "node:crypto";
import { createServer, type IncomingHttpHeaders, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { signedFetch } from "../../../shared/dataplane/adapters/sigv4-fetch";
import { HttpDecisionSource } from "../../../shared/dataplane/decisions";
import { DecisionUnavailableError } from "../../../shared/dataplane/errors";

const REGION = "us-west-2";
const SERVICE = "execute-api";
const KEY = "AKIDEXAMPLE";
const SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
const TOKEN = "session-token-example";

const AUTH = /^AWS4-HMAC-SHA256 Credential=([^/]+)\/(\d{8})\/([^/]+)\/([^/]+)\/aws4_request, SignedHeaders=([a-z0-9;-]+), Signature=([0-9a-f]{64})$/;

/** RFC 3986 encoding, as SigV4 defines it (encodeURIComponent leaves !'()* alone). */
const enc = (s: string) => encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
const sha256 = (data: string | Buffer) => createHash("sha256").update(data).digest("hex");
const hmac = (key: string | Buffer, data: string) => createHmac("sha256", key).update(data).digest();

/**
 * Verifies a request the way API Gateway does, written from the SigV4 specification with
 * node:crypto (not with the signer under test): canonical request from what actually arrived
 * (method, double-encoded path, sorted query, the signed headers' received values, body hash),
 * string to sign, derived key, signature. Returns why it does not match, or undefined.
 */
function verify(req: IncomingMessage, body: Buffer): string | undefined {
  const m = AUTH.exec(String(req.headers.authorization ?? ""));
  if (!m) return "no SigV4 authorization header";
  const [, key, date, region, service, signedHeaders, signature] = m;
  if (key !== KEY) return "unknown key";
  const amzDate = String(req.headers["x-amz-date"] ?? "");
  if (!amzDate.startsWith(date)) return "x-amz-date is not the credential date";

  const [rawPath, rawQuery = ""] = (req.url ?? "/").split("?");
  const path = rawPath.split("/").map(enc).join("/");
  const query = rawQuery
    .split("&")
    .filter(Boolean)
    .map((pair) => pair.split("=").map((part) => enc(decodeURIComponent(part ?? ""))))
    .map(([k, v = ""]) => `${k}=${v}`)
    .sort()
    .join("&");
  const names = signedHeaders.split(";");
  if (!names.includes("host")) return "host is not signed";
  const headers = names.map((n) => `${n}:${String(req.headers[n] ?? "").trim().replace(/\s+/g, " ")}\n`).join("");
  const canonical = [req.method, path, query, headers, signedHeaders, sha256(body)].join("\n");
  const toSign = ["AWS4-HMAC-SHA256", amzDate, `${date}/${region}/${service}/aws4_request`, sha256(canonical)].join("\n");
  const signingKey = hmac(hmac(hmac(hmac(`AWS4${SECRET}`, date), region), service), "aws4_request");
  return createHmac("sha256", signingKey).update(toSign).digest("hex") === signature ? undefined : "signature does not match";
}

describe("signedFetch (SigV4 for execute-api)", () => {
  let server: Server;
  let base: string;
  let received: { url: string; headers: IncomingHttpHeaders; body: string; refused?: string }[] = [];

  beforeAll(async () => {
    // Given an API behind IAM auth: a request whose signature does not verify gets a 403
    server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on("data", (c: Buffer) => chunks.push(c));
      req.on("end", () => {
        const body = Buffer.concat(chunks);
        const refused = verify(req, body);
        received.push({ url: req.url ?? "", headers: req.headers, body: body.toString("utf8"), refused });
        if (refused) {
          res.writeHead(403, { "content-type": "application/json" });
          res.end(JSON.stringify({ message: refused }));
          return;
        }
        const tenant = /^\/tenants\/([^/]+)\/decision$/.exec(req.url ?? "");
        res.writeHead(200, { "content-type": "application/json" });
        res.end(JSON.stringify(tenant ? { tenantId: decodeURIComponent(tenant[1]), decision: "throttle", retryAfterSeconds: 60 } : { ok: true }));
      });
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(() => new Promise<void>((r) => server.close(() => r())));
  beforeEach(() => {
    received = [];
  });

  const withToken = () => signedFetch({ region: REGION, service: SERVICE, credentials: { accessKeyId: KEY, secretAccessKey: SECRET, sessionToken: TOKEN } });
  const signature = (headers: IncomingHttpHeaders) => AUTH.exec(String(headers.authorization))![6];

  it("signs with the execute-api credential scope, x-amz-date and the session token", async () => {
    const response = await withToken()(`${base}/tenants/tenant-a/decision`, { headers: { accept: "application/json" } });

    expect(received[0].refused).toBeUndefined();
    expect(response.status).toBe(200);
    const { headers } = received[0];
    const [, key, date, region, service, signedHeaders] = AUTH.exec(String(headers.authorization))!;
    expect(String(headers.authorization)).toMatch(new RegExp(`^AWS4-HMAC-SHA256 Credential=${KEY}/\\d{8}/${REGION}/execute-api/aws4_request, `));
    expect([key, region, service]).toEqual([KEY, REGION, "execute-api"]);
    expect(headers["x-amz-date"]).toMatch(/^\d{8}T\d{6}Z$/);
    expect(String(headers["x-amz-date"]).slice(0, 8)).toBe(date);
    expect(headers["x-amz-security-token"]).toBe(TOKEN);
    expect(signedHeaders.split(";")).toEqual(expect.arrayContaining(["accept", "host", "x-amz-date", "x-amz-security-token"]));
  });

  it("sends no x-amz-security-token for long-term credentials, and resolves a credential provider", async () => {
    const calls: number[] = [];
    const fetchSigned = signedFetch({
      region: REGION,
      credentials: async () => {
        calls.push(1);
        return { accessKeyId: KEY, secretAccessKey: SECRET };
      },
    });
    const response = await fetchSigned(new URL(`${base}/tenants/tenant-a/decision`));
    expect(response.status).toBe(200);
    expect(calls.length).toBeGreaterThan(0);
    expect(received[0].headers["x-amz-security-token"]).toBeUndefined();
    expect(String(received[0].headers.authorization)).toContain(`/${REGION}/execute-api/aws4_request`);
  });

  it("signs the path and the query string: other paths or queries get other signatures, and a signature does not carry over", async () => {
    const f = withToken();
    const urls = [
      `${base}/usage/tenant-a?from=2026-11-01&granularity=day`,
      `${base}/usage/tenant-a?from=2026-11-02&granularity=day`,
      `${base}/usage/tenant-b?from=2026-11-01&granularity=day`,
      `${base}/usage/tenant%20c?granularity=day&from=2026-11-01`,
    ];
    for (const url of urls) expect((await f(url)).status).toBe(200);
    expect(received.map((r) => r.refused)).toEqual([undefined, undefined, undefined, undefined]);
    expect(new Set(received.map((r) => signature(r.headers))).size).toBe(urls.length);

    // The first request's headers replayed with the second's query string: refused.
    const { host: _host, connection: _connection, ...replayed } = received[0].headers as Record<string, string>;
    const replay = await fetch(urls[1], { headers: replayed });
    expect(replay.status).toBe(403);
    expect(received.at(-1)!.refused).toBe("signature does not match");
  });

  it("signs the body of a POST", async () => {
    const body = JSON.stringify({ monthlyTokenLimit: 1_000_000 });
    const response = await withToken()(`${base}/tenants/tenant-a/config`, { method: "POST", body, headers: { "content-type": "application/json" } });
    expect(response.status).toBe(200);
    expect(received[0]).toMatchObject({ body, refused: undefined });
    expect(AUTH.exec(String(received[0].headers.authorization))![5].split(";")).toContain("content-type");
  });

  it("is the fetch HttpDecisionSource uses for the deployed (IAM) decision route; unsigned it is refused", async () => {
    const signed = new HttpDecisionSource({ baseUrl: base, fetch: withToken() });
    await expect(signed.get("tenant-a")).resolves.toEqual({ tenantId: "tenant-a", decision: "throttle", retryAfterSeconds: 60 });
    expect(received[0]).toMatchObject({ url: "/tenants/tenant-a/decision", refused: undefined });

    const unsigned = new HttpDecisionSource({ baseUrl: base });
    const error = await unsigned.get("tenant-a").catch((e: unknown) => e);
    expect(error).toBeInstanceOf(DecisionUnavailableError);
    expect(error).toMatchObject({ status: 403 });
  });

  it("turns a credential failure into DecisionUnavailableError (the cache then keeps or fails open)", async () => {
    const failing = signedFetch({
      region: REGION,
      credentials: async () => {
        throw new Error("no credentials in the chain");
      },
    });
    const error = await new HttpDecisionSource({ baseUrl: base, fetch: failing }).get("tenant-a").catch((e: unknown) => e);
    expect(error).toBeInstanceOf(DecisionUnavailableError);
    expect(String((error as Error).message)).toContain("no credentials in the chain");
    expect(received).toEqual([]);
  });
});
