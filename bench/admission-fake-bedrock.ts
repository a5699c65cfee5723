/**
 * A fake Bedrock runtime endpoint for the admission bench, on 127.0.0.1 only. It answers
 * Converse (`POST /model/{modelId}/converse`) the way the SDK expects: usage counted from the
 * request (input ~ chars / 4, output a deterministic share of max_tokens), latency growing with
 * the output, the tenant read from `requestMetadata` to tally what each tenant was served.
 * Optionally it enforces an account quota per model like Bedrock does: at the start it reserves
 * input + max_tokens against the window's TPM (and one request against RPM) and answers 429
 * ThrottlingException when that does not fit; at the end it settles to input + output x burn.
 *
 * It speaks HTTP/2 in plaintext (h2c, prior knowledge) because that is what the Bedrock runtime
 * client speaks: @aws-sdk/client-bedrock-runtime uses `NodeHttp2Handler` (one session per
 * request, `disableConcurrentStreams`), so an HTTP/1.1 server makes every call fail with
 * `Protocol error`. The bench keeps the client's default handler, as a deployment would.
 */
import { createServer, type Http2Server, type Http2ServerRequest, type Http2ServerResponse, type ServerHttp2Session } from "node:http2";
import { randomUUID } from "node:crypto";
import { outputBurnRate } from "../shared/admission/model";

/** The usage the fake reports for a prompt and a max_tokens: the bench sizes budgets from it. */
export function fakeUsage(text: string, maxTokens: number): { inputTokens: number; outputTokens: number } {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193);
  const share = 0.35 + 0.65 * (((h >>> 0) % 1000) / 1000);
  return { inputTokens: Math.ceil(text.length / 4) + 7, outputTokens: Math.max(1, Math.floor(maxTokens * share)) };
}

export interface FakeQuota {
  tpm: number;
  rpm: number;
  windowSeconds: number;
}

export interface FakeBedrock {
  url: string;
  /** Quota tokens (input + output) served per tenant, and calls answered / throttled. */
  served: Map<string, { tokens: number; calls: number; throttled: number }>;
  stop(): Promise<void>;
}

export async function startFakeBedrock(opts: { baseLatencyMs?: number; msPerOutputToken?: number; quota?: FakeQuota } = {}): Promise<FakeBedrock> {
  const served = new Map<string, { tokens: number; calls: number; throttled: number }>();
  const windows = new Map<string, { tokens: number; requests: number }>();
  const tally = (tenant: string) => {
    let t = served.get(tenant);
    if (!t) served.set(tenant, (t = { tokens: 0, calls: 0, throttled: 0 }));
    return t;
  };
  const sessions = new Set<ServerHttp2Session>();
  const server: Http2Server = createServer({ settings: { maxConcurrentStreams: 1_000 } }, (req: Http2ServerRequest, res: Http2ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const m = /^\/model\/([^/]+)\/converse$/.exec(req.url ?? "");
      if (req.method !== "POST" || !m) {
        res.writeHead(404, { "content-type": "application/json" }).end(JSON.stringify({ message: "not found" }));
        return;
      }
      const modelId = decodeURIComponent(m[1]);
      const body = JSON.parse(Buffer.concat(chunks).toString("utf8")) as {
        messages?: { content?: { text?: string }[] }[];
        system?: { text?: string }[];
        inferenceConfig?: { maxTokens?: number };
        requestMetadata?: Record<string, string>;
      };
      const text = [...(body.system ?? []).map((s) => s.text ?? ""), ...(body.messages ?? []).flatMap((msg) => (msg.content ?? []).map((c) => c.text ?? ""))].join("\n");
      const maxTokens = body.inferenceConfig?.maxTokens ?? 4096;
      const tenant = body.requestMetadata?.tenantId ?? "-";
      const usage = fakeUsage(text, maxTokens);
      const requestId = randomUUID();
      let window: { tokens: number; requests: number } | undefined;
      const reserved = usage.inputTokens + maxTokens;
      if (opts.quota) {
        const q = opts.quota;
        const key = `${modelId}|${Math.floor(Date.now() / 1000 / q.windowSeconds)}`;
        window = windows.get(key) ?? { tokens: 0, requests: 0 };
        windows.set(key, window);
        const scale = q.windowSeconds / 60;
        if (window.tokens + reserved > q.tpm * scale || window.requests + 1 > q.rpm * scale) {
          tally(tenant).throttled++;
          res
            .writeHead(429, { "content-type": "application/json", "x-amzn-errortype": "ThrottlingException:http://internal.amazon.com/coral/com.amazon.bedrock/", "x-amzn-requestid": requestId })
            .end(JSON.stringify({ message: "Too many tokens, please wait before trying again." }));
          return;
        }
        window.tokens += reserved;
        window.requests += 1;
      }
      const latencyMs = Math.round((opts.baseLatencyMs ?? 100) + usage.outputTokens * (opts.msPerOutputToken ?? 0.5));
      setTimeout(() => {
        if (window) window.tokens += usage.inputTokens + usage.outputTokens * outputBurnRate(modelId) - reserved;
        const t = tally(tenant);
        t.tokens += usage.inputTokens + usage.outputTokens;
        t.calls++;
        res.writeHead(200, { "content-type": "application/json", "x-amzn-requestid": requestId }).end(
          JSON.stringify({
            output: { message: { role: "assistant", content: [{ text: "ok ".repeat(Math.min(usage.outputTokens, 2000)) }] } },
            stopReason: usage.outputTokens >= maxTokens ? "max_tokens" : "end_turn",
            usage: { inputTokens: usage.inputTokens, outputTokens: usage.outputTokens, totalTokens: usage.inputTokens + usage.outputTokens },
            metrics: { latencyMs },
          }),
        );
      }, latencyMs);
    });
  });
  server.on("session", (session: ServerHttp2Session) => {
    sessions.add(session);
    session.on("close", () => sessions.delete(session));
    session.on("error", () => undefined);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  const addr = server.address();
  const port = typeof addr === "object" && addr ? addr.port : 0;
  return {
    url: `http://127.0.0.1:${port}`,
    served,
    stop: () =>
      new Promise<void>((r) => {
        server.close(() => r());
        for (const session of sessions) session.destroy();
      }),
  };
}
