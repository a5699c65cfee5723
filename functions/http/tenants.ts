import type { APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2 } from "aws-lambda";
import { HttpInputInvalidError } from "../../shared/http/errors";
import { pathParam, routeKeyOf } from "../../shared/http/routes";
import { quotaServiceFromConfig } from "../../shared/quota/adapters/runtime";
import { QuotaConfigInvalidError } from "../../shared/quota/errors";
import type { QuotaEvaluator } from "../../shared/quota/service";
import { config, observabilityConfig } from "../../shared/runtime/config";
import { httpHandler, json, lazy, tenantIdParam } from "../../shared/runtime/http";
import { observability } from "../../shared/runtime/observability";

/**
 * Control plane: a tenant's tier and quota overrides.
 * - GET /tenants/{tenantId}/config   stored config (if any) and the effective policy
 * - PUT /tenants/{tenantId}/config   replace it (JSON body, validated; 400 with the reasons)
 */
export function tenantsHandler(deps: () => { service: QuotaEvaluator }) {
  const { logger, metrics } = observability(observabilityConfig(), "tenants-api");
  return httpHandler(
    async (event: APIGatewayProxyEventV2): Promise<APIGatewayProxyStructuredResultV2> => {
      const routeKey = routeKeyOf(event);
      if (routeKey !== "GET /tenants/{tenantId}/config" && routeKey !== "PUT /tenants/{tenantId}/config") {
        return json(404, { error: "NotFound", message: `no route ${event.requestContext?.http?.method} ${event.rawPath}` });
      }
      const tenantId = tenantIdParam(pathParam(event, "tenantId"));
      const { service } = deps();
      if (routeKey === "GET /tenants/{tenantId}/config") return json(200, await service.getConfig(tenantId));
      return json(200, await service.putConfig(tenantId, jsonBody(event)));
    },
    { logger, metrics, errors: [[QuotaConfigInvalidError, 400]] },
  );
}

function jsonBody(event: APIGatewayProxyEventV2): unknown {
  try {
    const raw = event.body && event.isBase64Encoded ? Buffer.from(event.body, "base64").toString("utf8") : event.body;
    return JSON.parse(raw ?? "");
  } catch (error) {
    throw new HttpInputInvalidError("body is not JSON", ["body: expected a JSON object"], { code: "InvalidBody", cause: error });
  }
}

export const handler = tenantsHandler(lazy(() => ({ service: quotaServiceFromConfig(config()) })));
