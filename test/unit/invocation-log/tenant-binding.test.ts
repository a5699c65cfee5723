import { describe, expect, it } from "vitest";
import { InvocationLogRecordInvalidError, parseInvocationLogRecord } from "../../../shared/invocation-log/parse";
import type { RejectedRecord } from "../../../shared/invocation-log/ports";
import { InvocationLogSource } from "../../../shared/invocation-log/source";
import { tenantBinding, trustMap } from "../../../shared/invocation-log/tenant-binding";
import type { InvocationEventV1 } from "../../../shared/events/invocation";
import { ConfigurationError, parseConfig } from "../../../shared/runtime/config";
import { converseRecord, invokeModelRecord, jsonLines } from "./samples";

const APP_SESSION = "arn:aws:sts::123456789012:assumed-role/app-role/i-0abc";
const MAP = {
  // a role, by its IAM ARN (path included): matches every session of it as the log names it
  "arn:aws:iam::123456789012:role/service/app-role": ["adv-*", "tenant-b"],
  // one session pattern of a partner's role
  "arn:aws:sts::210987654321:assumed-role/partner-role/*": ["partner-1"],
};

function verdictOf(arn: string | undefined, tenantId: string) {
  return trustMap(MAP).check(arn, tenantId);
}

describe("tenant binding map", () => {
  it("lets a role's sessions act for the tenants its patterns name, and no others", () => {
    expect(verdictOf(APP_SESSION, "adv-01")).toEqual({ allowed: true });
    expect(verdictOf(APP_SESSION, "tenant-b")).toEqual({ allowed: true });
    expect(verdictOf(APP_SESSION, "basic-01")).toEqual({ allowed: false, why: `principal ${APP_SESSION} may not act for tenant basic-01` });
    expect(verdictOf("arn:aws:sts::210987654321:assumed-role/partner-role/job-7", "partner-1")).toEqual({ allowed: true });
    expect(verdictOf("arn:aws:sts::210987654321:assumed-role/partner-role/job-7", "adv-01").allowed).toBe(false);
  });

  it("does not confuse a role of the same name in another account, or a longer role name", () => {
    expect(verdictOf("arn:aws:sts::999999999999:assumed-role/app-role/i-0abc", "adv-01").allowed).toBe(false);
    expect(verdictOf("arn:aws:sts::123456789012:assumed-role/app-role-2/i-0abc", "adv-01").allowed).toBe(false);
  });

  it("denies a record that names no principal, even under '*'", () => {
    expect(trustMap({ "*": ["*"] }).check(undefined, "adv-01").allowed).toBe(false);
    expect(trustMap({ "*": ["*"] }).check(APP_SESSION, "anyone").allowed).toBe(true);
  });

  it("denies every claim when no map is configured", () => {
    expect(tenantBinding(undefined).check(APP_SESSION, "adv-01")).toEqual({ allowed: false, why: expect.stringContaining("TENANT_PRINCIPALS_JSON") });
  });
});

describe("untrusted claims in invocation logs", () => {
  const binding = trustMap(MAP);

  it("quarantines a claim the caller's principal may not make, with reason untrusted-tenant", () => {
    const record = converseRecord({ identity: { arn: APP_SESSION }, requestMetadata: { tenantId: "basic-01" } });
    let error: unknown;
    try {
      parseInvocationLogRecord(record, { binding });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(InvocationLogRecordInvalidError);
    expect(error).toMatchObject({ reason: "untrusted-tenant", tenantId: "basic-01", requestId: record.requestId });
  });

  it("a bound claim is counted, with the tier the wrapper sent", () => {
    const record = invokeModelRecord({ identity: { arn: APP_SESSION }, requestMetadata: { tenantId: "adv-01", tier: "advanced" } });
    expect(parseInvocationLogRecord(record, { binding })).toMatchObject({ kind: "event", event: { tenantId: "adv-01", tier: "advanced" } });
  });

  it("counts nothing from an object whose records claim tenants their principal may not act for", async () => {
    const emitted: InvocationEventV1[] = [];
    const kept: RejectedRecord[] = [];
    const source = new InvocationLogSource({
      reader: {
        read: async () =>
          new TextEncoder().encode(
            jsonLines(
              converseRecord({ requestId: "r-forged", identity: { arn: "arn:aws:sts::123456789012:assumed-role/intern-role/x" }, requestMetadata: { tenantId: "adv-01" } }),
              converseRecord({ requestId: "r-bound", identity: { arn: APP_SESSION }, requestMetadata: { tenantId: "adv-01" } }),
            ),
          ),
      },
      sink: { emit: (e) => (emitted.push(e), true), flush: async () => undefined, stats: { failed: 0, dropped: 0, invalid: 0 } },
      rejected: { keep: async (r) => void kept.push(...r) },
      parse: { binding },
    });
    const result = await source.processObject("logs", "AWSLogs/1/BedrockModelInvocationLogs/x.json");
    expect(emitted.map((e) => e.eventId)).toEqual(["r-bound"]);
    expect(kept).toEqual([expect.objectContaining({ line: 1, reason: "untrusted-tenant", requestId: "r-forged", tenantId: "adv-01" })]);
    expect(result).toMatchObject({ records: 2, emitted: 1 });
  });
});

describe("TENANT_PRINCIPALS_JSON", () => {
  it("is parsed once into the map", () => {
    const cfg = parseConfig({ USAGE_TABLE_NAME: "usage", TENANT_PRINCIPALS_JSON: JSON.stringify(MAP) });
    expect(cfg.TENANT_PRINCIPALS_JSON).toEqual(MAP);
    expect(parseConfig({ USAGE_TABLE_NAME: "usage" }).TENANT_PRINCIPALS_JSON).toBeUndefined();
  });

  it.each([
    ["not JSON", "{arn:aws:iam::1:role/x: [adv-*]}", /TENANT_PRINCIPALS_JSON: is not valid JSON/],
    ["not an object of lists", JSON.stringify({ "arn:aws:iam::1:role/x": "adv-*" }), /TENANT_PRINCIPALS_JSON/],
    ["a principal that is not an ARN", JSON.stringify({ "app-role": ["*"] }), /principal patterns are/],
    ["a tenant pattern with a space", JSON.stringify({ "*": ["adv 1"] }), /tenant patterns are/],
    ["an empty list", JSON.stringify({ "*": [] }), /at least one tenant pattern/],
    ["an empty map", "{}", /the map is empty/],
  ])("fails loudly on %s", (_what, raw, message) => {
    expect(() => parseConfig({ USAGE_TABLE_NAME: "usage", TENANT_PRINCIPALS_JSON: raw })).toThrow(ConfigurationError);
    expect(() => parseConfig({ USAGE_TABLE_NAME: "usage", TENANT_PRINCIPALS_JSON: raw })).toThrow(message);
  });
});

describe("TENANT_PRINCIPALS_JSON at deploy (stacks/InvocationLogs.ts)", () => {
  // importing the stack module loads aws-cdk-lib and sst: slow on a busy machine
  it("passes a valid map to the function, nothing when unset, and fails the synth on a bad one", { timeout: 180_000 }, async () => {
    const { tenantPrincipalsEnvironment } = await import("../../../stacks/InvocationLogs");
    expect(tenantPrincipalsEnvironment(JSON.stringify(MAP))).toEqual({ TENANT_PRINCIPALS_JSON: JSON.stringify(MAP) });
    expect(tenantPrincipalsEnvironment(undefined)).toEqual({});
    expect(() => tenantPrincipalsEnvironment("{not json")).toThrow(/not valid JSON/);
    expect(() => tenantPrincipalsEnvironment(JSON.stringify({ "app-role": ["*"] }))).toThrow(/principal patterns are/);
  });
});
