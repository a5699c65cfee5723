import type { APIGatewayProxyEventV2 } from "aws-lambda";

/**
 * HTTP routes of the usage API, as pure data. The SST stack declares them on an HTTP API
 * with IAM auth; the local stack serves them on its port by calling the same handlers with
 * API Gateway v2 (payload format 2.0) events.
 */
export interface HttpRoute {
  method: "GET" | "PUT" | "POST" | "DELETE";
  /** API Gateway path with `{param}` segments. */
  path: string;
  /** `functions/...` module and export. */
  handler: string;
}

export const HTTP_ROUTES: readonly HttpRoute[] = [
  { method: "GET", path: "/usage/{tenantId}", handler: "functions/http/usage.handler" },
  { method: "GET", path: "/billing/{month}", handler: "functions/http/usage.handler" },
  { method: "GET", path: "/quarantine", handler: "functions/http/usage.handler" },
  // Quota enforcement (issue 3): decision read by the data plane, tenant tier/overrides, event log.
  { method: "GET", path: "/tenants/{tenantId}/decision", handler: "functions/http/decision.handler" },
  { method: "GET", path: "/tenants/{tenantId}/config", handler: "functions/http/tenants.handler" },
  { method: "PUT", path: "/tenants/{tenantId}/config", handler: "functions/http/tenants.handler" },
  { method: "GET", path: "/enforcement/events", handler: "functions/http/decision.handler" },
];

/**
 * Matches a concrete path against a route path; returns the path parameters or undefined.
 * A segment that is not valid percent-encoding (`%ZZ`, a cut UTF-8 sequence) is kept as sent,
 * undecoded: the route then rejects it as an invalid id (400), as it would any id with a `%`.
 */
export function matchRoute(routePath: string, path: string): Record<string, string> | undefined {
  const want = routePath.split("/").filter(Boolean);
  const got = path.split("?")[0].split("/").filter(Boolean);
  if (want.length !== got.length) return undefined;
  const params: Record<string, string> = {};
  for (let i = 0; i < want.length; i++) {
    const w = want[i];
    if (w.startsWith("{") && w.endsWith("}")) params[w.slice(1, -1)] = decodeSegment(got[i]);
    else if (w !== got[i]) return undefined;
  }
  return params;
}

/** `decodeURIComponent` that never throws: invalid percent-encoding comes back as it was. */
export function decodeSegment(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    return segment;
  }
}

/** `routeKey` as API Gateway sets it; derived from method + path when a caller did not set it. */
export function routeKeyOf(event: APIGatewayProxyEventV2): string | undefined {
  if (event.routeKey && event.routeKey !== "$default") return event.routeKey;
  const method = event.requestContext?.http?.method;
  const route = HTTP_ROUTES.find((r) => r.method === method && matchRoute(r.path, event.rawPath ?? "") !== undefined);
  return route ? `${route.method} ${route.path}` : undefined;
}

/** A path parameter: the event's own, else matched from `rawPath` against the route. */
export function pathParam(event: APIGatewayProxyEventV2, name: string): string | undefined {
  const own = event.pathParameters?.[name];
  if (own !== undefined) return own;
  const key = routeKeyOf(event);
  const route = key ? HTTP_ROUTES.find((r) => `${r.method} ${r.path}` === key) : undefined;
  return route ? matchRoute(route.path, event.rawPath ?? "")?.[name] : undefined;
}
