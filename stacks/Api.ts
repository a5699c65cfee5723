import { Stack } from "aws-cdk-lib";
import { Effect, ManagedPolicy, PolicyStatement } from "aws-cdk-lib/aws-iam";
import * as secretsmanager from "aws-cdk-lib/aws-secretsmanager";
import { Api as HttpApi, use, type ApiFunctionRouteProps, type EventBus, type StackContext, type Table } from "sst/constructs";
import { INVOCATION_SOURCES } from "../shared/events/invocation";
import { HTTP_ROUTES, type HttpRoute } from "../shared/http/routes";
import { ENFORCEMENT_SOURCE } from "../shared/quota/events";
import { Ingest } from "./Ingest";
import { Storage } from "./Storage";
import { DYNAMO_READ_ACTIONS, ENFORCEMENT_WRITE_PARTITIONS, baseEnvironment, baseFunctionProps, putEventsStatement, tableStatement } from "./support";

export const HTTP_TIMEOUT_SECONDS = 10;

/**
 * Default stage throttle for every route (all callers together; API Gateway answers 429 above
 * it). Sized for data planes polling decisions every 5 s per tenant (300 tenants x a few
 * instances) plus billing jobs; raise it per stage if more callers share the API.
 */
export const API_THROTTLE = { burst: 400, rate: 200 } as const;

/** Access-log retention (SST's default is forever). */
export const ACCESS_LOG_RETENTION = "three_months";

/**
 * Writes the tenant-config PUT may make: the CONFIG item, then (the quota service re-evaluates the
 * tenant under its new limits) the tenant's ENFORCE# state and the ENFORCEMENT#<day> log entry.
 */
export const CONFIG_WRITE_ACTIONS = ["dynamodb:PutItem", "dynamodb:UpdateItem"] as const;

/**
 * Principal tags a data-plane role carries to name the tenants it may read decisions for:
 * `metering-tenant` (one tenant id, exact) and/or `metering-tenant-prefix` (every tenant id
 * starting with it; end it with a delimiter, e.g. `acme-`, so `acme` does not also match `acme2`).
 * A role with neither tag may read no decision.
 */
export const DATA_PLANE_TENANT_TAG = "metering-tenant";
export const DATA_PLANE_TENANT_PREFIX_TAG = "metering-tenant-prefix";

/** The three kinds of API caller, with the routes (method, path) each may invoke. */
export const API_CALLER_ROUTES = {
  billingReader: [
    ["GET", "/usage/{tenantId}"],
    ["GET", "/billing/{month}"],
  ],
  operator: [
    ["GET", "/tenants/{tenantId}/config"],
    ["PUT", "/tenants/{tenantId}/config"],
    ["GET", "/quarantine"],
    ["GET", "/enforcement/events"],
  ],
  dataPlane: [["GET", "/tenants/{tenantId}/decision"]],
} as const satisfies Record<string, readonly (readonly [HttpRoute["method"], string])[]>;

export function routeKey(route: HttpRoute): string {
  return `${route.method} ${route.path}`;
}

/**
 * The usage/billing/quota HTTP API: one route per entry of HTTP_ROUTES, every route behind IAM
 * (SigV4) auth, each route's function with only the table access that route needs; a default
 * stage throttle; access logs kept three months; and one managed policy per kind of caller
 * (billing reader, operator, data plane), exported for the roles that call the API.
 */
export function Api({ stack, app }: StackContext) {
  const { table } = use(Storage);
  const { bus } = use(Ingest);

  // Signs page cursors (shared/http/cursor.ts). Generated here, so no one has to create it; the
  // functions get its value at deploy time (a CloudFormation dynamic reference), which anyone
  // allowed lambda:GetFunctionConfiguration on them can read. Holding it lets one forge cursors
  // only for listings one may read anyway; replacing it invalidates open cursors (400, restart).
  const cursorSecret = new secretsmanager.Secret(stack, "CursorSecret", {
    description: "HMAC key of the metering API's page cursors",
    generateSecretString: { passwordLength: 64, excludePunctuation: true },
  });

  const routes = Object.fromEntries(
    HTTP_ROUTES.map((route): [string, ApiFunctionRouteProps] => [
      routeKey(route),
      { function: { handler: route.handler, permissions: routePermissions(route, table, bus) } },
    ]),
  );

  const api = new HttpApi(stack, "Api", {
    accessLog: { retention: ACCESS_LOG_RETENTION },
    defaults: {
      authorizer: "iam",
      throttle: { ...API_THROTTLE },
      function: {
        ...baseFunctionProps(),
        timeout: HTTP_TIMEOUT_SECONDS,
        environment: {
          ...baseEnvironment(table),
          EVENT_BUS_NAME: bus.eventBusName,
          CURSOR_SECRET: cursorSecret.secretValue.unsafeUnwrap(),
        },
      },
    },
    routes,
  });

  const apiId = api.cdk.httpApi.apiId;
  const invoke = (routesOf: readonly (readonly [string, string])[]) =>
    new PolicyStatement({
      effect: Effect.ALLOW,
      actions: ["execute-api:Invoke"],
      resources: routesOf.map(([method, path]) => executeApiArn(stack, apiId, method, path.replace(/\{[^}]+\}/g, "*"))),
    });

  const billingReader = new ManagedPolicy(stack, "BillingReaderPolicy", {
    managedPolicyName: app.logicalPrefixedName("api-billing-reader"),
    description: "Metering API: read any tenant's usage and the monthly billing listing",
    statements: [invoke(API_CALLER_ROUTES.billingReader)],
  });
  const operator = new ManagedPolicy(stack, "OperatorPolicy", {
    managedPolicyName: app.logicalPrefixedName("api-operator"),
    description: "Metering API: tenant tier/quota config, the quarantine and the enforcement log",
    statements: [invoke(API_CALLER_ROUTES.operator)],
  });
  const dataPlane = new ManagedPolicy(stack, "DataPlanePolicy", {
    managedPolicyName: app.logicalPrefixedName("api-data-plane"),
    description: "Data plane: its own tenants' quota decision (by principal tag) and usage events of the Bedrock/SageMaker wrappers",
    statements: [
      new PolicyStatement({
        effect: Effect.ALLOW,
        actions: ["execute-api:Invoke"],
        // IAM policy variables: a principal without the tag matches neither resource (denied).
        resources: [
          executeApiArn(stack, apiId, "GET", `/tenants/\${aws:PrincipalTag/${DATA_PLANE_TENANT_TAG}}/decision`),
          executeApiArn(stack, apiId, "GET", `/tenants/\${aws:PrincipalTag/${DATA_PLANE_TENANT_PREFIX_TAG}}*/decision`),
        ],
      }),
      putEventsStatement(bus, [INVOCATION_SOURCES.bedrock, INVOCATION_SOURCES.sagemaker]),
    ],
  });

  stack.addOutputs({
    ApiUrl: api.url,
    BillingReaderPolicyArn: { value: billingReader.managedPolicyArn, exportName: app.logicalPrefixedName("BillingReaderPolicyArn") },
    OperatorPolicyArn: { value: operator.managedPolicyArn, exportName: app.logicalPrefixedName("OperatorPolicyArn") },
    DataPlanePolicyArn: { value: dataPlane.managedPolicyArn, exportName: app.logicalPrefixedName("DataPlanePolicyArn") },
  });
  return { api, policies: { billingReader, operator, dataPlane }, cursorSecret };
}

/** `arn:aws:execute-api:<region>:<account>:<apiId>/<stage>/<METHOD>/<path>`, any stage. */
function executeApiArn(stack: Stack, apiId: string, method: string, path: string): string {
  return stack.formatArn({ service: "execute-api", resource: apiId, resourceName: `*/${method}${path}` });
}

/**
 * Reads go to the table and its GSI (billing lists month aggregates through gsi1). The only writer
 * is the tenant-config PUT: Put/Update limited to TENANT# and ENFORCEMENT# partitions, so it cannot
 * touch ledger (EVENT#) or QUARANTINE# items (IAM matches partition keys only, so within TENANT#
 * it cannot tell CONFIG from aggregates), and PutEvents on the pipeline bus for the enforcement
 * events a config change can cause (source genai.metering.quota only). A new non-GET route
 * fails the synth until its access is decided here.
 */
function routePermissions(route: HttpRoute, table: Table, bus: EventBus): PolicyStatement[] {
  const read = tableStatement(table.cdk.table, DYNAMO_READ_ACTIONS, { indexes: true });
  if (route.method === "GET") return [read];
  if (route.method === "PUT" && route.path === "/tenants/{tenantId}/config") {
    return [read, tableStatement(table.cdk.table, CONFIG_WRITE_ACTIONS, { leadingKeyPrefixes: ENFORCEMENT_WRITE_PARTITIONS }), putEventsStatement(bus, [ENFORCEMENT_SOURCE])];
  }
  throw new Error(`route ${routeKey(route)} has no table permissions declared in stacks/Api.ts`);
}
