import { createServer, type Http2Server, type IncomingHttpHeaders } from "node:http2";
import type { AddressInfo } from "node:net";
import type { InvocationEventV1, InvocationSource } from "../../../shared/events/invocation";
import { invocationEventV1Schema } from "../../../shared/events/invocation";
import type { UsageSink } from "../../../shared/dataplane/ports";

/** Collects what a wrapper emits, checking each event against the v1 contract like the emitter would. */
export class CollectingSink implements UsageSink {
  readonly events: InvocationEventV1[] = [];
  readonly sources: InvocationSource[] = [];
  emit(event: InvocationEventV1, source: InvocationSource): boolean {
    invocationEventV1Schema.parse(event);
    this.events.push(event);
    this.sources.push(source);
    return true;
  }
}

export const quietLogger = { warn: () => undefined, error: () => undefined };

const enc = new TextEncoder();
export const bytes = (v: unknown) => enc.encode(typeof v === "string" ? v : JSON.stringify(v));

/** An async iterable over items that records whether the consumer closed it early. */
export function trackedStream<T>(items: T[], failAfter?: number) {
  const state = { returned: false, yielded: 0 };
  async function* gen() {
    try {
      for (const item of items) {
        if (failAfter !== undefined && state.yielded >= failAfter) throw new Error("stream reset");
        state.yielded++;
        yield item;
      }
    } finally {
      state.returned = true;
    }
  }
  return { stream: gen(), state };
}

/** A request the wire fake received: path as sent (URL-encoded), headers, body. */
export interface WireRequest {
  path: string;
  headers: IncomingHttpHeaders;
  body: string;
}

/**
 * A Bedrock runtime endpoint on loopback (plaintext HTTP/2, which the client's own handler
 * speaks) for tests that check what a wrapper puts on the wire: records every request and answers
 * Converse and InvokeModel with small usage (5 in, 1 out) and the streams with an empty event
 * stream. The nth request's id is `req-n`.
 */
export async function startWireBedrock(): Promise<{ endpoint: string; received: WireRequest[]; close(): Promise<void> }> {
  const received: WireRequest[] = [];
  const server: Http2Server = createServer((req, res) => {
    let body = "";
    req.on("data", (c) => (body += c));
    req.on("end", () => {
      received.push({ path: req.url ?? "", headers: req.headers, body });
      const requestId = `req-${received.length}`;
      if (req.url?.endsWith("/converse")) {
        res.writeHead(200, { "content-type": "application/json", "x-amzn-requestid": requestId });
        res.end(
          JSON.stringify({
            output: { message: { role: "assistant", content: [{ text: "ok" }] } },
            stopReason: "end_turn",
            usage: { inputTokens: 5, outputTokens: 1, totalTokens: 6 },
            metrics: { latencyMs: 12 },
          }),
        );
      } else if (req.url?.endsWith("/invoke")) {
        res.writeHead(200, {
          "content-type": "application/json",
          "x-amzn-requestid": requestId,
          "x-amzn-bedrock-input-token-count": "5",
          "x-amzn-bedrock-output-token-count": "1",
        });
        res.end(JSON.stringify({ generation: "ok" }));
      } else {
        // streams: an empty event stream ends at once; only the request matters here
        res.writeHead(200, { "content-type": "application/vnd.amazon.eventstream", "x-amzn-requestid": requestId });
        res.end();
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    endpoint: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    received,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
