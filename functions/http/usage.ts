import middy from "@middy/core";
import type { APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2, Context } from "aws-lambda";
import { DynamoUsageStore } from "../../shared/usage/adapters/dynamodb";
import { UsageQueryInvalidError } from "../../shared/usage/errors";
import { UsageQueryService } from "../../shared/usage/query";
import { awsClients } from "../../shared/runtime/aws";
import { config } from "../../shared/runtime/config";
import { errorResponse, intParam, json, query, type ErrorMapping } from "../../shared/runtime/http";
import { observability } from "../../shared/runtime/observability";

const cfg = config();
const { logger } = observability(cfg, "usage-api");
const store = new DynamoUsageStore(awsClients(cfg).doc, cfg.USAGE_TABLE_NAME, { ledgerTtlDays: cfg.LEDGER_TTL_DAYS });
const service = new UsageQueryService(store);
const ERRORS: ErrorMapping = [[UsageQueryInvalidError, 400]];

/**
 * Usage API (IAM-authorised on AWS):
 * - GET /usage/{tenantId}?from=yyyy-mm-dd&to=yyyy-mm-dd&granularity=hour|day|month
 * - GET /billing/{month}?limit=&cursor=   all tenants' month totals, paginated (billing jobs)
 * - GET /quarantine?day=yyyy-mm-dd&limit=&cursor=   invalid input kept with its reason
 */
async function route(event: APIGatewayProxyEventV2, context: Context): Promise<APIGatewayProxyStructuredResultV2> {
  const q = query(event);
  try {
    switch (event.routeKey) {
      case "GET /usage/{tenantId}": {
        const today = new Date().toISOString().slice(0, 10);
        const body = await service.tenantUsage({
          tenantId: event.pathParameters?.tenantId ?? "",
          granularity: (q.granularity ?? "day") as "hour" | "day" | "month",
          from: q.from ?? `${today.slice(0, 7)}-01`,
          to: q.to ?? today,
        });
        return json(200, body);
      }
      case "GET /billing/{month}":
        return json(200, await service.billingMonth(event.pathParameters?.month ?? "", intParam(q.limit, 100), q.cursor));
      case "GET /quarantine":
        return json(200, await service.quarantine(q.day ?? new Date().toISOString().slice(0, 10), intParam(q.limit, 100), q.cursor));
      default:
        return json(404, { error: "NotFound", message: `no route ${event.routeKey}` });
    }
  } catch (error) {
    const mapped = errorResponse(error, ERRORS);
    if (mapped) return mapped;
    logger.error("usage query failed", { error: error as Error, routeKey: event.routeKey });
    return json(500, { error: "InternalError", requestId: context.awsRequestId });
  }
}

export const handler = middy(route);
