import type { APIGatewayProxyEventV2 } from "aws-lambda";
import { beforeAll, describe, expect, it } from "vitest";
import { decisionHandler } from "../../functions/http/decision";
import { tenantsHandler } from "../../functions/http/tenants";
import { createQuotaEvaluator } from "../../shared/quota/adapters/wiring";
import { enforcementEventDetailSchema } from "../../shared/quota/events";
import type { QuotaEvaluator } from "../../shared/quota/service";
import { documentClient } from "../../shared/storage/adapters/dynamodb";
import { keys } from "../../shared/storage/keys";
import { UpdateCommand, type DynamoDBDocumentClient } from "@aws-sdk/lib-dynamodb";
import { CursorCodec } from "../../shared/http/cursor";
import { RecordingPublisher } from "../unit/quota/fakes";
import { freshUsageTable, localDynamoClient } from "../helpers/dynamo";

let doc: DynamoDBDocumentClient;
let table: string;
let service: QuotaEvaluator;
let publisher: RecordingPublisher;
let now = new Date("2026-11-25T20:36:30.000Z");

beforeAll(async () => {
  doc = documentClient(localDynamoClient());
  table = await freshUsageTable();
  publisher = new RecordingPublisher();
  service = createQuotaEvaluator({ dynamo: doc, tableName: table, publisher, clock: () => now });
});

/** An API Gateway HTTP API (payload 2.0) event as the local stack and AWS deliver it. */
function apiEvent(method: string, path: string, opts: { query?: Record<string, string>; body?: string; routeKey?: string } = {}): APIGatewayProxyEventV2 {
  return {
    version: "2.0",
    routeKey: opts.routeKey ?? "$default",
    rawPath: path,
    rawQueryString: new URLSearchParams(opts.query ?? {}).toString(),
    headers: { "content-type": "application/json" },
    queryStringParameters: opts.query,
    body: opts.body,
    isBase64Encoded: false,
    requestContext: {
      accountId: "000000000000",
      apiId: "local",
      domainName: "127.0.0.1",
      domainPrefix: "127",
      http: { method, path, protocol: "HTTP/1.1", sourceIp: "127.0.0.1", userAgent: "test" },
      requestId: "r1",
      routeKey: opts.routeKey ?? "$default",
      stage: "$default",
      time: now.toISOString(),
      timeEpoch: now.getTime(),
    },
  } as APIGatewayProxyEventV2;
}

const cursors = new CursorCodec("quota-http-test-cursor-key-0123456789");
const tenants = () => tenantsHandler(() => ({ service }));
const decisions = () => decisionHandler(() => ({ service, cursors }));
const body = (r: { body?: string }) => JSON.parse(r.body ?? "null");

describe("tenants handler", () => {
  it("rejects a bad config with 400 and the reasons", async () => {
    const bad = await tenants()(apiEvent("PUT", "/tenants/acme/config", { body: JSON.stringify({ tier: "gold", monthlyUsd: -5, extra: 1 }) }));
    expect(bad.statusCode).toBe(400);
    expect(body(bad).reasons).toEqual(
      expect.arrayContaining([expect.stringMatching(/^tier:/), expect.stringMatching(/^monthlyUsd:/), expect.stringMatching(/extra/)]),
    );
    const notJson = await tenants()(apiEvent("PUT", "/tenants/acme/config", { body: "{tier" }));
    expect(notJson.statusCode).toBe(400);
    const badId = await tenants()(apiEvent("GET", "/tenants/bad%23id/config"));
    expect(badId.statusCode).toBe(400);
  });

  it("stores a config and serves it with the effective policy", async () => {
    const put = await tenants()(
      apiEvent("PUT", "/tenants/acme/config", { routeKey: "PUT /tenants/{tenantId}/config", body: JSON.stringify({ tier: "advanced", monthlyTokens: 1000 }) }),
    );
    expect(put.statusCode).toBe(200);
    const got = await tenants()(apiEvent("GET", "/tenants/acme/config"));
    expect(got.statusCode).toBe(200);
    expect(body(got)).toMatchObject({
      tenantId: "acme",
      configured: true,
      config: { tier: "advanced", monthlyTokens: 1000 },
      effective: { tier: "advanced", monthlyTokens: 1000, atLimit: "downgrade" },
    });
    const unknown = body(await tenants()(apiEvent("GET", "/tenants/nobody/config")));
    expect(unknown).toMatchObject({ configured: false, effective: { tier: "basic" } });
  });
});

describe("decision handler", () => {
  it("serves allow, then downgrade after the quota is crossed, with Cache-Control", async () => {
    const first = await decisions()(apiEvent("GET", "/tenants/acme/decision"));
    expect(first.statusCode).toBe(200);
    expect(first.headers?.["cache-control"]).toBe("max-age=5");
    expect(body(first)).toMatchObject({ tenantId: "acme", tier: "advanced", period: "2026-11", decision: "allow" });

    await doc.send(
      new UpdateCommand({
        TableName: table,
        Key: keys.aggregate("acme", { kind: "tenant", granularity: "month", period: "2026-11" }),
        UpdateExpression: "ADD inputTokens :i, outputTokens :o, requests :r",
        ExpressionAttributeValues: { ":i": 400, ":o": 700, ":r": 3 },
      }),
    );
    await service.evaluate({ tenantId: "acme", month: "2026-11", minutes: [], now });
    const second = body(await decisions()(apiEvent("GET", "/tenants/acme/decision", { routeKey: "GET /tenants/{tenantId}/decision" })));
    expect(second).toMatchObject({
      decision: "downgrade",
      targetModelId: "anthropic.claude-3-haiku-20240307-v1:0",
      evaluatedAt: now.toISOString(),
      usage: { tokens: 1100, requests: 3 },
      quota: { monthlyTokens: 1000 },
      usedRatio: 1.1,
    });
  });

  it("restores at the new month through the decision endpoint and lists the day's events", async () => {
    now = new Date("2026-12-01T00:00:10.000Z");
    const d = body(await decisions()(apiEvent("GET", "/tenants/acme/decision")));
    expect(d).toMatchObject({ decision: "allow", period: "2026-12" });
    expect(publisher.actions()).toEqual(["warning@0.8", "downgrade@1", "restore@1"]);

    const nov = await decisions()(apiEvent("GET", "/enforcement/events", { query: { day: "2026-11-25" } }));
    expect(nov.statusCode).toBe(200);
    const items = body(nov).items as { detailType: string; detail: unknown }[];
    // Same instant: the log orders them by kind within the second.
    expect(items.map((i) => i.detailType).sort()).toEqual(["Tenant Downgraded", "Tenant Quota Warning"]);
    for (const i of items) expect(() => enforcementEventDetailSchema.parse(i.detail)).not.toThrow();
    const dec = body(await decisions()(apiEvent("GET", "/enforcement/events", { query: { day: "2026-12-01" } })));
    expect(dec.items.map((i: { detailType: string }) => i.detailType)).toEqual(["Tenant Restored"]);

    // Pages of one: each genuine cursor leads on; a tampered one, or one of another day, is a 400.
    const first = body(await decisions()(apiEvent("GET", "/enforcement/events", { query: { day: "2026-11-25", limit: "1" } })));
    expect(first.items).toHaveLength(1);
    const second = await decisions()(apiEvent("GET", "/enforcement/events", { query: { day: "2026-11-25", limit: "1", cursor: first.cursor } }));
    expect(second.statusCode).toBe(200);
    expect([first.items[0].detailType, body(second).items[0].detailType].sort()).toEqual(["Tenant Downgraded", "Tenant Quota Warning"]);
    const otherDay = await decisions()(apiEvent("GET", "/enforcement/events", { query: { day: "2026-12-01", cursor: first.cursor } }));
    expect(otherDay.statusCode).toBe(400);
    expect(body(otherDay).error).toBe("InvalidCursor");
    const tampered = await decisions()(apiEvent("GET", "/enforcement/events", { query: { day: "2026-11-25", cursor: `${first.cursor}A` } }));
    expect(tampered.statusCode).toBe(400);

    const bad = await decisions()(apiEvent("GET", "/enforcement/events", { query: { day: "yesterday" } }));
    expect(bad.statusCode).toBe(400);
    expect(body(bad).reasons).toEqual(["day: expected yyyy-mm-dd"]);
  });
});

describe("exported Lambda handlers (wired from the runtime config)", () => {
  it("serve the tenants and decision routes against the configured table", async () => {
    const { inject } = await import("vitest");
    const { resetConfig } = await import("../../shared/runtime/config");
    process.env.USAGE_TABLE_NAME = table;
    process.env.EVENT_BUS_NAME = "quota-test-bus";
    process.env.AWS_ENDPOINT_URL_DYNAMODB = inject("dynamoEndpoint");
    resetConfig();
    const tenantsModule = await import("../../functions/http/tenants");
    const decisionModule = await import("../../functions/http/decision");
    const ctx = { awsRequestId: "req-1" } as never;
    const got = await tenantsModule.handler(apiEvent("GET", "/tenants/acme/config"), ctx);
    expect(got.statusCode).toBe(200);
    expect(JSON.parse(got.body ?? "{}")).toMatchObject({ tenantId: "acme", config: { tier: "advanced" } });
    const events = await decisionModule.handler(apiEvent("GET", "/enforcement/events", { query: { day: "2026-11-25" } }), ctx);
    expect(events.statusCode).toBe(200);
    expect(JSON.parse(events.body ?? "{}").items).toHaveLength(2);
  });
});
