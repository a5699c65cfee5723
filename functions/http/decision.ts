import middy from "@middy/core";
import type { APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2, Context } from "aws-lambda";
import { tenantIdSchema } from "../../shared/events/invocation";
import { quotaServiceFromConfig } from "../../shared/quota/adapters/runtime";
import type { QuotaEvaluator } from "../../shared/quota/service";
import { config } from "../../shared/runtime/config";
import { intParam, json, query } from "../../shared/runtime/http";
import { DAY_PATTERN } from "../../shared/usage/periods";
import { pathParam, routeKeyOf } from "./tenants";

/**
 * Data-plane and ops reads of quota enforcement:
 * - GET /tenants/{tenantId}/decision   allow | downgrade | throttle for the tenant's next call (cached 5 s)
 * - GET /enforcement/events?day=yyyy-mm-dd&limit=&cursor=   enforcement events published that day
 */
export function decisionHandler(service: () => QuotaEvaluator) {
  return async function route(event: APIGatewayProxyEventV2, context?: Context): Promise<APIGatewayProxyStructuredResultV2> {
    const q = query(event);
    try {
      switch (routeKeyOf(event)) {
        case "GET /tenants/{tenantId}/decision": {
          const tenantId = tenantIdSchema.safeParse(event.pathParameters?.tenantId ?? pathParam(event, "tenantId") ?? "");
          if (!tenantId.success) return json(400, { error: "InvalidTenantId", reasons: tenantId.error.issues.map((i) => i.message) });
          const d = await service().decision(tenantId.data);
          return json(200, d, { "cache-control": "max-age=5" });
        }
        case "GET /enforcement/events": {
          const day = q.day ?? new Date().toISOString().slice(0, 10);
          const limit = intParam(q.limit, 100);
          const reasons: string[] = [];
          if (!DAY_PATTERN.test(day)) reasons.push("day: expected yyyy-mm-dd");
          if (!Number.isInteger(limit) || limit < 1 || limit > 1000) reasons.push("limit: expected an integer 1..1000");
          if (reasons.length > 0) return json(400, { error: "InvalidQuery", reasons });
          return json(200, await service().events(day, limit, q.cursor));
        }
        default:
          return json(404, { error: "NotFound", message: `no route ${event.requestContext?.http?.method} ${event.rawPath}` });
      }
    } catch (error) {
      console.error(JSON.stringify({ message: "enforcement read failed", error: String(error), rawPath: event.rawPath }));
      return json(500, { error: "InternalError", requestId: context?.awsRequestId });
    }
  };
}

export const handler = middy(decisionHandler(() => quotaServiceFromConfig(config())));
