import { Logger } from "@aws-lambda-powertools/logger";
import { Metrics } from "@aws-lambda-powertools/metrics";
import type { RuntimeConfig } from "./config";

/**
 * Logger and metrics of a handler. Metrics are CloudWatch EMF lines on stdout (no API
 * calls, no added latency); logs are JSON and never carry prompts, bodies of model calls or
 * secrets: usage events hold counts and ids only.
 *
 * Handlers wire them through Powertools' middy middlewares, which add the Lambda context to
 * every log line and publish the stored metrics after each invocation (also when it throws):
 * `middy(fn).use(injectLambdaContext(logger)).use(logMetrics(metrics))`.
 */
export function observability(cfg: Pick<RuntimeConfig, "SERVICE_NAME" | "METRICS_NAMESPACE">, handlerName: string) {
  const logger = new Logger({ serviceName: cfg.SERVICE_NAME, persistentLogAttributes: { handler: handlerName } });
  const metrics = new Metrics({ namespace: cfg.METRICS_NAMESPACE, serviceName: cfg.SERVICE_NAME });
  return { logger, metrics };
}

export type Observability = ReturnType<typeof observability>;
