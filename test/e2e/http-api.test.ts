import type { APIGatewayProxyEventV2WithIAMAuthorizer } from "aws-lambda";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { LocalStack } from "../../local/stack";
import { startTestStack } from "./stack-harness";

describe("local usage API: routes dispatched to handlers with API Gateway v2 events", () => {
  let stack: LocalStack;
  let logs: string[];

  beforeAll(async () => {
    ({ stack, logs } = await startTestStack({
      rules: [],
      routes: [
        { method: "GET", path: "/things/{thingId}/parts/{partId}", handler: "test/e2e/fixtures/echo-handler.handler" },
        { method: "PUT", path: "/things/{thingId}", handler: "test/e2e/fixtures/echo-handler.handler" },
        { method: "GET", path: "/missing", handler: "functions/http/does-not-exist.handler" },
        { method: "GET", path: "/wrong-export", handler: "test/e2e/fixtures/echo-handler.notAFunction" },
      ],
    }));
  });
  afterAll(async () => {
    await stack?.stop();
  });

  it("builds a payload 2.0 event with path and query parameters, headers and the IAM authorizer", async () => {
    // act
    const res = await fetch(`${stack.url}/things/t%2D1/parts/p-9?from=2026-11-01&tag=a&tag=b`, { headers: { "X-Custom": "Value" } });
    // assess
    expect(res.status).toBe(201);
    expect(res.headers.get("x-echo")).toBe("yes");
    const { event, functionName, remainingMs } = (await res.json()) as { event: APIGatewayProxyEventV2WithIAMAuthorizer; functionName: string; remainingMs: number };
    expect(event).toMatchObject({
      version: "2.0",
      routeKey: "GET /things/{thingId}/parts/{partId}",
      rawPath: "/things/t%2D1/parts/p-9",
      rawQueryString: "from=2026-11-01&tag=a&tag=b",
      queryStringParameters: { from: "2026-11-01", tag: "a,b" },
      pathParameters: { thingId: "t-1", partId: "p-9" },
      isBase64Encoded: false,
      requestContext: {
        routeKey: "GET /things/{thingId}/parts/{partId}",
        stage: "$default",
        http: { method: "GET", path: "/things/t%2D1/parts/p-9", sourceIp: "127.0.0.1" },
        authorizer: { iam: { accountId: "000000000000", userArn: "arn:aws:iam::000000000000:user/local" } },
      },
    });
    expect(event.headers["x-custom"]).toBe("Value");
    expect(event.body).toBeUndefined();
    expect(functionName).toBe("local-test-e2e-fixtures-echo-handler");
    expect(remainingMs).toBeGreaterThan(0);
  });

  it("passes a request body through and matches on method", async () => {
    const put = await fetch(`${stack.url}/things/x1`, { method: "PUT", headers: { "content-type": "application/json" }, body: JSON.stringify({ a: 1 }) });
    expect(put.status).toBe(201);
    const { event } = (await put.json()) as { event: APIGatewayProxyEventV2WithIAMAuthorizer };
    expect(event).toMatchObject({ routeKey: "PUT /things/{thingId}", body: '{"a":1}', isBase64Encoded: false });

    const wrongMethod = await fetch(`${stack.url}/things/x1`, { method: "DELETE" });
    expect(wrongMethod.status).toBe(404);
    expect(await wrongMethod.json()).toEqual({ message: "Not Found" });
  });

  it("answers 501 naming the handler when its module or export does not exist", async () => {
    const missing = await fetch(`${stack.url}/missing`);
    expect(missing.status).toBe(501);
    expect(((await missing.json()) as { message: string }).message).toMatch(/GET \/missing .*functions\/http\/does-not-exist\.ts does not exist/);
    const wrongExport = await fetch(`${stack.url}/wrong-export`);
    expect(wrongExport.status).toBe(501);
    expect(((await wrongExport.json()) as { message: string }).message).toMatch(/no exported function 'notAFunction'/);
  });

  it("maps a throwing handler to API Gateway's bare 500 and an unstructured result to a 200 JSON body", async () => {
    const thrown = await fetch(`${stack.url}/things/a/parts/b?fail=throw`);
    expect(thrown.status).toBe(500);
    expect(await thrown.json()).toEqual({ message: "Internal Server Error" });
    expect(logs.some((l) => l.includes("handler failure requested"))).toBe(true);

    const plain = await fetch(`${stack.url}/things/a/parts/b?plain=1`);
    expect(plain.status).toBe(200);
    expect(await plain.json()).toEqual({ hello: "world" });
  });

  it("serves the inspection endpoints", async () => {
    const health = await fetch(`${stack.url}/local/health`);
    expect(await health.json()).toMatchObject({ status: "ok", busName: "local-bus", region: "us-west-2", dynamoEndpoint: stack.dynamoEndpoint });
    const index = await (await fetch(`${stack.url}/local/`)).text();
    expect(index).toContain("GET  /things/{thingId}/parts/{partId}");
  });
});
