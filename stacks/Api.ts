import { Effect, PolicyStatement } from "aws-cdk-lib/aws-iam";
import { Api as HttpApi, use, type ApiFunctionRouteProps, type EventBus, type StackContext, type Table } from "sst/constructs";
import { HTTP_ROUTES, type HttpRoute } from "../shared/http/routes";
import { Ingest } from "./Ingest";
import { Storage } from "./Storage";
import { DYNAMO_READ_ACTIONS, ENFORCEMENT_WRITE_PARTITIONS, baseEnvironment, baseFunctionProps, tableStatement } from "./support";

export const HTTP_TIMEOUT_SECONDS = 10;

/**
 * Writes the tenant-config PUT may make: the CONFIG item, then (the quota service re-evaluates the
 * tenant under its new limits) the tenant's ENFORCE# state and the ENFORCEMENT#<day> log entry.
 */
export const CONFIG_WRITE_ACTIONS = ["dynamodb:PutItem", "dynamodb:UpdateItem"] as const;

export function routeKey(route: HttpRoute): string {
  return `${route.method} ${route.path}`;
}

/**
 * The usage/billing/quota HTTP API: one route per entry of HTTP_ROUTES, every route behind IAM
 * (SigV4) auth, each route's function with only the table access that route needs.
 */
export function Api({ stack }: StackContext) {
  const { table } = use(Storage);
  const { bus } = use(Ingest);

  const routes = Object.fromEntries(
    HTTP_ROUTES.map((route): [string, ApiFunctionRouteProps] => [
      routeKey(route),
      { function: { handler: route.handler, permissions: routePermissions(route, table, bus) } },
    ]),
  );

  const api = new HttpApi(stack, "Api", {
    defaults: {
      authorizer: "iam",
      function: {
        ...baseFunctionProps(),
        timeout: HTTP_TIMEOUT_SECONDS,
        environment: { ...baseEnvironment(table), EVENT_BUS_NAME: bus.eventBusName },
      },
    },
    routes,
  });

  stack.addOutputs({ ApiUrl: api.url });
  return { api };
}

/**
 * Reads go to the table and its GSI (billing lists month aggregates through gsi1). The only writer
 * is the tenant-config PUT: Put/Update limited to TENANT# and ENFORCEMENT# partitions, so it cannot
 * touch ledger (EVENT#) or QUARANTINE# items (IAM matches partition keys only, so within TENANT#
 * it cannot tell CONFIG from aggregates), and PutEvents on the pipeline bus for the enforcement
 * events a config change can cause. A new non-GET route
 * fails the synth until its access is decided here.
 */
function routePermissions(route: HttpRoute, table: Table, bus: EventBus): PolicyStatement[] {
  const read = tableStatement(table.cdk.table, DYNAMO_READ_ACTIONS, { indexes: true });
  if (route.method === "GET") return [read];
  if (route.method === "PUT" && route.path === "/tenants/{tenantId}/config") {
    return [
      read,
      tableStatement(table.cdk.table, CONFIG_WRITE_ACTIONS, { leadingKeyPrefixes: ENFORCEMENT_WRITE_PARTITIONS }),
      new PolicyStatement({ effect: Effect.ALLOW, actions: ["events:PutEvents"], resources: [bus.eventBusArn] }),
    ];
  }
  throw new Error(`route ${routeKey(route)} has no table permissions declared in stacks/Api.ts`);
}
