import type { APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2 } from "aws-lambda";
import type { CursorCodec } from "../../shared/http/cursor";
import { HttpInputInvalidError } from "../../shared/http/errors";
import { pathParam, routeKeyOf } from "../../shared/http/routes";
import { quotaServiceFromConfig } from "../../shared/quota/adapters/runtime";
import type { QuotaEvaluator } from "../../shared/quota/service";
import { config, observabilityConfig } from "../../shared/runtime/config";
import { cursorCodec, httpHandler, intParam, json, lazy, query, tenantIdParam } from "../../shared/runtime/http";
import { observability } from "../../shared/runtime/observability";
import { DAY_PATTERN } from "../../shared/usage/periods";

export interface QuotaRouteDeps {
  service: QuotaEvaluator;
  cursors: CursorCodec;
}

/**
 * Data-plane and ops reads of quota enforcement:
 * - GET /tenants/{tenantId}/decision   allow | downgrade | throttle for the tenant's next call (cached 5 s)
 * - GET /enforcement/events?day=yyyy-mm-dd&limit=&cursor=   enforcement events published that day
 */
export function decisionHandler(deps: () => QuotaRouteDeps) {
  const { logger, metrics } = observability(observabilityConfig(), "decision-api");
  return httpHandler(
    async (event: APIGatewayProxyEventV2): Promise<APIGatewayProxyStructuredResultV2> => {
      const { service, cursors } = deps();
      const q = query(event);
      switch (routeKeyOf(event)) {
        case "GET /tenants/{tenantId}/decision": {
          const d = await service.decision(tenantIdParam(pathParam(event, "tenantId")));
          return json(200, d, { "cache-control": "max-age=5" });
        }
        case "GET /enforcement/events": {
          const day = q.day ?? new Date().toISOString().slice(0, 10);
          const reasons: string[] = [];
          if (!DAY_PATTERN.test(day)) reasons.push("day: expected yyyy-mm-dd");
          let limit = 100;
          try {
            limit = intParam(q.limit, 100, "limit", 1, 1000);
          } catch (error) {
            if (!(error instanceof HttpInputInvalidError)) throw error;
            reasons.push(...error.reasons);
          }
          if (reasons.length > 0) throw new HttpInputInvalidError("invalid query", reasons, { code: "InvalidQuery" });
          const scope = `enforcement/${day}`;
          const page = await service.events(day, limit, cursors.open(q.cursor, scope));
          return json(200, { ...page, cursor: cursors.seal(page.cursor, scope) });
        }
        default:
          return json(404, { error: "NotFound", message: `no route ${event.requestContext?.http?.method} ${event.rawPath}` });
      }
    },
    { logger, metrics },
  );
}

export const handler = decisionHandler(
  lazy(() => {
    const cfg = config();
    return { service: quotaServiceFromConfig(cfg), cursors: cursorCodec(cfg) };
  }),
);
