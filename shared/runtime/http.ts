import { randomBytes } from "node:crypto";
import type { Logger } from "@aws-lambda-powertools/logger";
import { injectLambdaContext } from "@aws-lambda-powertools/logger/middleware";
import { MetricUnit, type Metrics } from "@aws-lambda-powertools/metrics";
import { logMetrics } from "@aws-lambda-powertools/metrics/middleware";
import middy from "@middy/core";
import httpErrorHandler from "@middy/http-error-handler";
import httpEventNormalizer from "@middy/http-event-normalizer";
import httpHeaderNormalizer from "@middy/http-header-normalizer";
import { createError } from "@middy/util";
import type { APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2, Context } from "aws-lambda";
import { tenantIdSchema } from "../events/invocation";
import { CursorCodec } from "../http/cursor";
import { HttpCursorInvalidError, HttpInputInvalidError } from "../http/errors";
import { HTTP_METRICS } from "../observability/metric-names";
import { ConfigurationError, type RuntimeConfig } from "./config";

/** Maps a domain error class to an HTTP status: one place, by type, not by name strings. */
export type ErrorMapping = [new (...args: never[]) => Error, number][];

/** Input errors every route shares; a route adds its domain's (e.g. UsageQueryInvalidError). */
export const HTTP_INPUT_ERRORS: ErrorMapping = [
  [HttpInputInvalidError, 400],
  [HttpCursorInvalidError, 400],
];

/** The body of every 500: nothing about the failure itself (that goes to the function's log). */
export const INTERNAL_ERROR_BODY = { error: "InternalError", message: "internal error; the request id is in the function's log" };

export type HttpHandler = (event: APIGatewayProxyEventV2, context?: Context) => Promise<APIGatewayProxyStructuredResultV2>;
export type HttpRoute = (event: APIGatewayProxyEventV2, context: Context) => Promise<APIGatewayProxyStructuredResultV2>;

export function json(statusCode: number, body: unknown, headers: Record<string, string> = {}): APIGatewayProxyStructuredResultV2 {
  return {
    statusCode,
    headers: { "content-type": "application/json", ...headers },
    body: JSON.stringify(body),
  };
}

/**
 * The middy chain of every HTTP handler, as Powertools uses middy:
 * injectLambdaContext (request id and cold start on every log line) and logMetrics (EMF flushed
 * after each request), then the HTTP middlewares: header and event normalisation (lower-case
 * headers; `queryStringParameters`/`pathParameters` always objects) and the error handler.
 *
 * A route throws domain errors; `errors` maps their classes to a 4xx status, answered as
 * `{ error, message, reasons? }` JSON. Anything not mapped (a DynamoDB outage, a bug) is a 500
 * with {@link INTERNAL_ERROR_BODY}: the cause is logged, never sent.
 */
export function httpHandler(route: HttpRoute, opts: { logger: Logger; metrics: Metrics; errors?: ErrorMapping }): HttpHandler {
  const { logger, metrics } = opts;
  const mapping = [...HTTP_INPUT_ERRORS, ...(opts.errors ?? [])];
  const handler = middy(route)
    .use(injectLambdaContext(logger))
    .use(logMetrics(metrics))
    .use(httpHeaderNormalizer())
    .use(httpEventNormalizer())
    .use(requestMetrics(metrics))
    .use(
      httpErrorHandler({
        fallbackMessage: JSON.stringify(INTERNAL_ERROR_BODY),
        logger: (error: { statusCode?: number; code?: string; name?: string }) => {
          if (error.statusCode !== undefined && error.statusCode < 500) {
            logger.info("request rejected", { statusCode: error.statusCode, error: error.code ?? error.name });
          } else {
            logger.error("request failed", { error: error as Error });
          }
        },
      }),
    )
    .use(domainErrors(mapping));
  // The normalizers widen middy's event type to every HTTP event shape; callers pass API
  // Gateway v2 events (a missing context is the empty one middy substitutes).
  return handler as unknown as HttpHandler;
}

/**
 * onError: a mapped domain error becomes an http error whose message is the JSON body, which
 * @middy/http-error-handler then answers with `content-type: application/json`.
 */
function domainErrors(mapping: ErrorMapping): middy.MiddlewareObj<APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2> {
  return {
    onError: async (request) => {
      const error = request.error;
      for (const [type, status] of mapping) {
        if (error instanceof type) {
          const reasons = (error as { reasons?: readonly string[] }).reasons;
          const code = (error as { code?: string }).code ?? error.name;
          const body = { error: code, message: error.message, ...(reasons ? { reasons } : {}) };
          request.error = createError(status, JSON.stringify(body), { expose: true, code });
          return;
        }
      }
    },
  };
}

/** One request counted; 4xx and 5xx answers counted apart (service dimension only: three metrics). */
function requestMetrics(metrics: Metrics): middy.MiddlewareObj<APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2> {
  return {
    before: async () => {
      metrics.addMetric(HTTP_METRICS.requests, MetricUnit.Count, 1);
    },
    after: async (request) => {
      const status = request.response?.statusCode ?? 200;
      if (status >= 400 && status < 500) metrics.addMetric(HTTP_METRICS.clientErrors, MetricUnit.Count, 1);
    },
    onError: async (request) => {
      const status = (request.error as { statusCode?: number } | undefined)?.statusCode;
      const mapped = status !== undefined && status < 500;
      metrics.addMetric(mapped ? HTTP_METRICS.clientErrors : HTTP_METRICS.serverErrors, MetricUnit.Count, 1);
    },
  };
}

/** Query parameters (the event normalizer makes the object exist), without undefined values. */
export function query(event: APIGatewayProxyEventV2): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(event.queryStringParameters ?? {})) if (v !== undefined) out[k] = v;
  return out;
}

/** An integer query parameter in `min..max`, or its fallback when absent; anything else is a 400. */
export function intParam(value: string | undefined, fallback: number, name: string, min: number, max: number): number {
  if (value === undefined || value === "") return fallback;
  const n = /^\d{1,10}$/.test(value) ? Number(value) : Number.NaN;
  if (!Number.isInteger(n) || n < min || n > max) {
    throw new HttpInputInvalidError(`${name} must be an integer ${min}..${max}`, [`${name}: expected an integer ${min}..${max}`], { code: "InvalidQuery" });
  }
  return n;
}

/** The route's tenant id, validated by the event contract's rules (a `%`, `#` or space fails). */
export function tenantIdParam(value: string | undefined): string {
  const parsed = tenantIdSchema.safeParse(value ?? "");
  if (!parsed.success) {
    throw new HttpInputInvalidError("tenantId is not valid", parsed.error.issues.map((i) => `tenantId: ${i.message}`), { code: "InvalidTenantId" });
  }
  return parsed.data;
}

let processCursorKey: Buffer | undefined;

/**
 * The cursor codec of a handler. On Lambda `CURSOR_SECRET` is required (every instance must
 * verify what another signed); elsewhere (the local stack, tests) a missing secret means a
 * random key per process: cursors then live as long as the process.
 */
export function cursorCodec(cfg: RuntimeConfig): CursorCodec {
  if (cfg.CURSOR_SECRET) return new CursorCodec(cfg.CURSOR_SECRET);
  if (cfg.AWS_LAMBDA_FUNCTION_NAME) {
    throw new ConfigurationError("CURSOR_SECRET is required on Lambda (the stack sets it from the CursorSecret secret)");
  }
  processCursorKey ??= randomBytes(32);
  return new CursorCodec(processCursorKey);
}

/** A value built on first use, then shared (a handler's service and codec, built from config). */
export function lazy<T>(build: () => T): () => T {
  let value: { v: T } | undefined;
  return () => (value ??= { v: build() }).v;
}
