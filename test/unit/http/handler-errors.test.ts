import type { APIGatewayProxyEventV2 } from "aws-lambda";
import { describe, expect, it } from "vitest";
import { decisionHandler } from "../../../functions/http/decision";
import { tenantsHandler } from "../../../functions/http/tenants";
import { CursorCodec } from "../../../shared/http/cursor";
import type { QuotaEvaluator } from "../../../shared/quota/service";
import { INTERNAL_ERROR_BODY } from "../../../shared/runtime/http";

const cursors = new CursorCodec("handler-errors-test-key-0123456789abcdef");
const ctx = { awsRequestId: "req-9", functionName: "api" } as never;

function event(method: string, path: string, routeKey: string, extra: Partial<APIGatewayProxyEventV2> = {}): APIGatewayProxyEventV2 {
  return {
    version: "2.0",
    routeKey,
    rawPath: path,
    rawQueryString: "",
    headers: {},
    isBase64Encoded: false,
    requestContext: { http: { method, path } } as never,
    ...extra,
  } as APIGatewayProxyEventV2;
}

/** A quota service whose every call fails the way an outage or a bug does. */
const broken = new Proxy({} as QuotaEvaluator, {
  get: () => async () => {
    throw new Error("ProvisionedThroughputExceeded on table arn:aws:dynamodb:us-west-2:123456789012:table/secret-name");
  },
});

describe("HTTP handlers: unknown errors are a 500 that leaks nothing; input errors never are", () => {
  it("maps an unexpected failure to the fixed InternalError body", async () => {
    const r = await decisionHandler(() => ({ service: broken, cursors }))(event("GET", "/tenants/acme/decision", "GET /tenants/{tenantId}/decision", { pathParameters: { tenantId: "acme" } }), ctx);
    expect(r.statusCode).toBe(500);
    expect(JSON.parse(r.body!)).toEqual(INTERNAL_ERROR_BODY);
    expect(r.body).not.toMatch(/secret-name|Provisioned|123456789012/);
  });

  it("answers bad input with 400 before the (broken) service is called", async () => {
    const decisions = decisionHandler(() => ({ service: broken, cursors }));
    const badId = await decisions(event("GET", "/tenants/%E0%A4%A/decision", "GET /tenants/{tenantId}/decision", { pathParameters: { tenantId: "%E0%A4%A" } }), ctx);
    expect(badId.statusCode).toBe(400);
    expect(JSON.parse(badId.body!)).toMatchObject({ error: "InvalidTenantId" });
    const badCursor = await decisions(event("GET", "/enforcement/events", "GET /enforcement/events", { queryStringParameters: { day: "2026-11-25", cursor: "zzz" } }), ctx);
    expect(badCursor.statusCode).toBe(400);
    expect(JSON.parse(badCursor.body!)).toMatchObject({ error: "InvalidCursor" });
    const badLimit = await decisions(event("GET", "/enforcement/events", "GET /enforcement/events", { queryStringParameters: { day: "2026-11-25", limit: "1e3" } }), ctx);
    expect(badLimit.statusCode).toBe(400);
    expect(JSON.parse(badLimit.body!).reasons).toEqual(["limit: expected an integer 1..1000"]);

    const tenants = tenantsHandler(() => ({ service: broken }));
    const badBody = await tenants(event("PUT", "/tenants/acme/config", "PUT /tenants/{tenantId}/config", { pathParameters: { tenantId: "acme" }, body: "{tier" }), ctx);
    expect(badBody.statusCode).toBe(400);
    expect(JSON.parse(badBody.body!)).toMatchObject({ error: "InvalidBody", reasons: ["body: expected a JSON object"] });
    expect(String(badBody.headers?.["Content-Type"] ?? badBody.headers?.["content-type"])).toMatch(/application\/json/);
  });
});
