import middy from "@middy/core";
import type { APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2, Context } from "aws-lambda";
import { tenantIdSchema } from "../../shared/events/invocation";
import { HTTP_ROUTES, matchRoute } from "../../shared/http/routes";
import { quotaServiceFromConfig } from "../../shared/quota/adapters/runtime";
import { QuotaConfigInvalidError } from "../../shared/quota/errors";
import type { QuotaEvaluator } from "../../shared/quota/service";
import { config } from "../../shared/runtime/config";
import { json } from "../../shared/runtime/http";

/**
 * Control plane: a tenant's tier and quota overrides.
 * - GET /tenants/{tenantId}/config   stored config (if any) and the effective policy
 * - PUT /tenants/{tenantId}/config   replace it (JSON body, validated; 400 with the reasons)
 */
export function tenantsHandler(service: () => QuotaEvaluator) {
  return async function route(event: APIGatewayProxyEventV2, context?: Context): Promise<APIGatewayProxyStructuredResultV2> {
    const routeKey = routeKeyOf(event);
    if (routeKey !== "GET /tenants/{tenantId}/config" && routeKey !== "PUT /tenants/{tenantId}/config") {
      return json(404, { error: "NotFound", message: `no route ${event.requestContext?.http?.method} ${event.rawPath}` });
    }
    const tenantId = tenantIdSchema.safeParse(event.pathParameters?.tenantId ?? pathParam(event, "tenantId") ?? "");
    if (!tenantId.success) return json(400, { error: "InvalidTenantId", reasons: tenantId.error.issues.map((i) => i.message) });
    try {
      if (routeKey === "GET /tenants/{tenantId}/config") return json(200, await service().getConfig(tenantId.data));
      let body: unknown;
      try {
        const raw = event.body && event.isBase64Encoded ? Buffer.from(event.body, "base64").toString("utf8") : event.body;
        body = JSON.parse(raw ?? "");
      } catch {
        return json(400, { error: "InvalidBody", reasons: ["body: expected a JSON object"] });
      }
      return json(200, await service().putConfig(tenantId.data, body));
    } catch (error) {
      if (error instanceof QuotaConfigInvalidError) return json(400, { error: error.name, message: error.message, reasons: error.reasons });
      console.error(JSON.stringify({ message: "tenant config request failed", error: String(error), routeKey }));
      return json(500, { error: "InternalError", requestId: context?.awsRequestId });
    }
  };
}

/** `routeKey` as API Gateway sets it; derived from method + path when a caller did not set it. */
export function routeKeyOf(event: APIGatewayProxyEventV2): string | undefined {
  if (event.routeKey && event.routeKey !== "$default") return event.routeKey;
  const method = event.requestContext?.http?.method;
  const route = HTTP_ROUTES.find((r) => r.method === method && matchRoute(r.path, event.rawPath ?? "") !== undefined);
  return route ? `${route.method} ${route.path}` : undefined;
}

export function pathParam(event: APIGatewayProxyEventV2, name: string): string | undefined {
  const key = routeKeyOf(event);
  const route = key ? HTTP_ROUTES.find((r) => `${r.method} ${r.path}` === key) : undefined;
  return route ? matchRoute(route.path, event.rawPath ?? "")?.[name] : undefined;
}

export const handler = middy(tenantsHandler(() => quotaServiceFromConfig(config())));
