import { randomUUID } from "node:crypto";
import type { IncomingMessage } from "node:http";
import type { APIGatewayProxyEventV2WithIAMAuthorizer } from "aws-lambda";
import { matchRoute, type HttpRoute } from "../shared/http/routes";
import { LOCAL_ACCOUNT_ID, LocalHandlerMissingError, lambdaContext, parseHandlerRef, type HandlerLoader } from "./handlers";

export interface HttpReply {
  status: number;
  headers: Record<string, string>;
  body: Buffer;
}

export interface RouteMatch {
  route: HttpRoute;
  pathParameters: Record<string, string>;
}

export function findRoute(routes: readonly HttpRoute[], method: string, path: string): RouteMatch | undefined {
  for (const route of routes) {
    if (route.method !== method) continue;
    const pathParameters = matchRoute(route.path, path);
    if (pathParameters) return { route, pathParameters };
  }
  return undefined;
}

/**
 * Builds the API Gateway HTTP API (payload format 2.0) event Lambda would receive for this
 * request, with the IAM authorizer block our API uses. Query parameters that repeat are
 * joined with commas, as API Gateway does.
 */
export function apiGatewayEvent(
  req: IncomingMessage,
  url: URL,
  match: RouteMatch,
  body: Buffer,
): APIGatewayProxyEventV2WithIAMAuthorizer {
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(req.headers)) {
    if (value === undefined || name === "cookie") continue;
    headers[name.toLowerCase()] = Array.isArray(value) ? value.join(",") : value;
  }
  const query: Record<string, string> = {};
  for (const [k, v] of url.searchParams) query[k] = k in query ? `${query[k]},${v}` : v;
  const cookies = req.headers.cookie?.split(";").map((c) => c.trim()).filter(Boolean);
  const now = new Date();
  const routeKey = `${match.route.method} ${match.route.path}`;
  const textual = body.length === 0 || isTextual(headers["content-type"]);
  const sourceIp = (req.socket.remoteAddress ?? "127.0.0.1").replace(/^::ffff:/, "");
  return {
    version: "2.0",
    routeKey,
    rawPath: url.pathname,
    rawQueryString: url.search.replace(/^\?/, ""),
    cookies,
    headers,
    queryStringParameters: Object.keys(query).length ? query : undefined,
    pathParameters: Object.keys(match.pathParameters).length ? match.pathParameters : undefined,
    body: body.length ? (textual ? body.toString("utf8") : body.toString("base64")) : undefined,
    isBase64Encoded: !textual,
    stageVariables: undefined,
    requestContext: {
      accountId: LOCAL_ACCOUNT_ID,
      apiId: "local",
      domainName: headers.host ?? "localhost",
      domainPrefix: (headers.host ?? "localhost").split(".")[0],
      http: {
        method: match.route.method,
        path: url.pathname,
        protocol: `HTTP/${req.httpVersion}`,
        sourceIp,
        userAgent: headers["user-agent"] ?? "",
      },
      requestId: randomUUID(),
      routeKey,
      stage: "$default",
      time: apiGatewayTime(now),
      timeEpoch: now.getTime(),
      // No SigV4 check locally: every caller is this fixed local IAM principal.
      authorizer: {
        iam: {
          accessKey: "LOCALACCESSKEY",
          accountId: LOCAL_ACCOUNT_ID,
          callerId: "AIDALOCALCALLER",
          cognitoIdentity: null,
          principalOrgId: "",
          userArn: `arn:aws:iam::${LOCAL_ACCOUNT_ID}:user/local`,
          userId: "AIDALOCALCALLER",
        },
      },
    },
  };
}

/**
 * Runs the route's handler and maps its result as API Gateway does: a structured result is
 * used as is; anything else becomes a 200 JSON body. A handler module that nobody has
 * written yet answers 501; a handler that throws answers API Gateway's bare 500.
 */
export async function invokeRoute(
  loader: HandlerLoader,
  match: RouteMatch,
  event: APIGatewayProxyEventV2WithIAMAuthorizer,
  region: string,
  onError: (route: string, error: unknown) => void,
): Promise<HttpReply> {
  let handler;
  try {
    handler = await loader.load(match.route.handler);
  } catch (error) {
    if (!(error instanceof LocalHandlerMissingError)) throw error;
    return json(501, {
      message: `Route ${event.routeKey} is declared in shared/http/routes.ts but its handler is not available: ${error.message}.`,
    });
  }
  const functionName = `local-${parseHandlerRef(match.route.handler).module.replace(/\//g, "-")}`;
  let result: unknown;
  try {
    result = await handler(event, lambdaContext(functionName, region, 30_000));
  } catch (error) {
    onError(event.routeKey, error);
    return json(500, { message: "Internal Server Error" });
  }
  return toReply(result);
}

function toReply(result: unknown): HttpReply {
  if (result && typeof result === "object" && "statusCode" in result) {
    const r = result as { statusCode: number; headers?: Record<string, unknown>; body?: string; isBase64Encoded?: boolean; cookies?: string[] };
    const headers: Record<string, string> = {};
    for (const [k, v] of Object.entries(r.headers ?? {})) headers[k.toLowerCase()] = String(v);
    if (r.cookies?.length) headers["set-cookie"] = r.cookies.join(", ");
    const body = r.body === undefined ? Buffer.alloc(0) : Buffer.from(r.body, r.isBase64Encoded ? "base64" : "utf8");
    return { status: r.statusCode, headers, body };
  }
  if (typeof result === "string") return { status: 200, headers: { "content-type": "application/json" }, body: Buffer.from(result) };
  return json(200, result ?? null);
}

export function json(status: number, value: unknown): HttpReply {
  return {
    status,
    headers: { "content-type": "application/json" },
    body: Buffer.from(JSON.stringify(value)),
  };
}

function isTextual(contentType: string | undefined): boolean {
  if (!contentType) return true;
  return /^(text\/|application\/(json|.*\+json|x-www-form-urlencoded|xml|javascript))/i.test(contentType);
}

const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
/** `25/Nov/2026:20:46:46 +0000`, API Gateway's request time format. */
function apiGatewayTime(d: Date): string {
  const p = (n: number) => String(n).padStart(2, "0");
  return `${p(d.getUTCDate())}/${MONTHS[d.getUTCMonth()]}/${d.getUTCFullYear()}:${p(d.getUTCHours())}:${p(d.getUTCMinutes())}:${p(d.getUTCSeconds())} +0000`;
}
