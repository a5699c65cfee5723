/**
 * SDK v3 command outputs do not expose raw HTTP response headers (Bedrock InvokeModel puts its
 * token counts only there: `x-amzn-bedrock-input-token-count` / `-output-token-count`). A
 * middleware on the command's own stack sees the raw response on its way back up: at the
 * `finalizeRequest` step it wraps signing, retries and deserialization, so the result it gets
 * from `next` carries `response` (the final attempt's HttpResponse) beside `output`.
 * Added per command (not per client), so concurrent calls can never see each other's headers.
 */

/** The part of a smithy middleware stack we use (typed loosely: no `@smithy/types` dependency). */
export interface MiddlewareStackLike {
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  add(middleware: any, options: { step: "finalizeRequest"; name: string; override?: boolean }): void;
}

export type HeaderMap = Record<string, string>;

export const HEADER_CAPTURE_MIDDLEWARE = "genaiMeteringResponseHeaders";

/** The middleware itself, exported so it can be tested without a client. */
export function headerCaptureMiddleware(onHeaders: (headers: HeaderMap) => void) {
  return (next: (args: unknown) => Promise<{ response?: unknown; output?: unknown }>) =>
    async (args: unknown) => {
      try {
        const result = await next(args);
        record(result?.response, onHeaders);
        return result;
      } catch (error) {
        // Service errors carry the raw response as `$response`.
        record((error as { $response?: unknown })?.$response, onHeaders);
        throw error;
      }
    };
}

export function captureResponseHeaders(stack: MiddlewareStackLike, onHeaders: (headers: HeaderMap) => void): void {
  stack.add(headerCaptureMiddleware(onHeaders), { step: "finalizeRequest", name: HEADER_CAPTURE_MIDDLEWARE, override: true });
}

function record(response: unknown, onHeaders: (headers: HeaderMap) => void): void {
  const headers = (response as { headers?: unknown })?.headers;
  if (!headers || typeof headers !== "object") return;
  const out: HeaderMap = {};
  for (const [k, v] of Object.entries(headers as Record<string, unknown>)) {
    if (typeof v === "string") out[k.toLowerCase()] = v;
  }
  onHeaders(out);
}
