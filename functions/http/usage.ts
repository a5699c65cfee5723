import type { APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2 } from "aws-lambda";
import type { CursorCodec } from "../../shared/http/cursor";
import { pathParam, routeKeyOf } from "../../shared/http/routes";
import { awsClients } from "../../shared/runtime/aws";
import { config, observabilityConfig } from "../../shared/runtime/config";
import { cursorCodec, httpHandler, intParam, json, lazy, query } from "../../shared/runtime/http";
import { observability } from "../../shared/runtime/observability";
import { DynamoUsageStore } from "../../shared/usage/adapters/dynamodb";
import { UsageQueryInvalidError } from "../../shared/usage/errors";
import { UsageQueryService } from "../../shared/usage/query";

export interface UsageRouteDeps {
  service: UsageQueryService;
  cursors: CursorCodec;
}

/**
 * Usage API (IAM-authorised on AWS):
 * - GET /usage/{tenantId}?from=yyyy-mm-dd&to=yyyy-mm-dd&granularity=hour|day|month
 * - GET /billing/{month}?limit=&cursor=   all tenants' month totals, paginated (billing jobs)
 * - GET /quarantine?day=yyyy-mm-dd&limit=&cursor=   invalid input kept with its reason
 * Cursors are sealed per listing (`billing/<month>`, `quarantine/<day>`): see shared/http/cursor.ts.
 */
export function usageHandler(deps: () => UsageRouteDeps) {
  const { logger, metrics } = observability(observabilityConfig(), "usage-api");
  return httpHandler(
    async (event: APIGatewayProxyEventV2): Promise<APIGatewayProxyStructuredResultV2> => {
      const { service, cursors } = deps();
      const q = query(event);
      const today = new Date().toISOString().slice(0, 10);
      switch (routeKeyOf(event)) {
        case "GET /usage/{tenantId}":
          return json(
            200,
            await service.tenantUsage({
              tenantId: pathParam(event, "tenantId") ?? "",
              granularity: (q.granularity ?? "day") as "hour" | "day" | "month",
              from: q.from ?? `${today.slice(0, 7)}-01`,
              to: q.to ?? today,
            }),
          );
        case "GET /billing/{month}": {
          const month = pathParam(event, "month") ?? "";
          const scope = `billing/${month}`;
          const page = await service.billingMonth(month, intParam(q.limit, 100, "limit", 1, 1000), cursors.open(q.cursor, scope));
          return json(200, { ...page, cursor: cursors.seal(page.cursor, scope) });
        }
        case "GET /quarantine": {
          const day = q.day ?? today;
          const scope = `quarantine/${day}`;
          const page = await service.quarantine(day, intParam(q.limit, 100, "limit", 1, 1000), cursors.open(q.cursor, scope));
          return json(200, { ...page, cursor: cursors.seal(page.cursor, scope) });
        }
        default:
          return json(404, { error: "NotFound", message: `no route ${event.requestContext?.http?.method} ${event.rawPath}` });
      }
    },
    { logger, metrics, errors: [[UsageQueryInvalidError, 400]] },
  );
}

export const handler = usageHandler(
  lazy(() => {
    const cfg = config();
    const store = new DynamoUsageStore(awsClients(cfg).doc, cfg.USAGE_TABLE_NAME, { ledgerTtlDays: cfg.LEDGER_TTL_DAYS });
    return { service: new UsageQueryService(store), cursors: cursorCodec(cfg) };
  }),
);
