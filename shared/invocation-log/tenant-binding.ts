import { z } from "zod";
import { TENANT_ID_PATTERN } from "../events/invocation";

/**
 * Which calling principals may claim which tenants in Bedrock's request metadata.
 *
 * Any principal allowed `bedrock:Converse` / `bedrock:InvokeModel` can write any `tenantId` into
 * the request metadata, and the invocation log repeats it as written. The only caller identity
 * the log record carries is `identity.arn` (an IAM user, a role, or an assumed-role session), so
 * a claim is honoured only when a configured map lets that principal act for that tenant.
 *
 * Map (`TENANT_PRINCIPALS_JSON`): `{ "<principal pattern>": ["<tenant pattern>", ...] }`.
 * - principal pattern: `*` (any principal the record names), or an ARN where `*` matches any run
 *   of characters. A role ARN (`arn:aws:iam::<account>:role/[path/]<name>`) also matches every
 *   session of the role as the log writes it (`arn:aws:sts::<account>:assumed-role/<name>/<session>`).
 * - tenant pattern: a tenant id, where `*` matches any run of characters (`adv-*`, `*`).
 * A record with no `identity.arn` matches no pattern.
 */
export type TenantPrincipalMap = Readonly<Record<string, readonly string[]>>;

export type BindingVerdict = { allowed: true } | { allowed: false; why: string };

export interface TenantBinding {
  check(principal: string | undefined, tenantId: string): BindingVerdict;
}

const principalPattern = z
  .string()
  .max(2048)
  .regex(/^(\*|arn:[^\s]+)$/, "principal patterns are '*' or an ARN (where '*' matches any characters)");
const tenantPattern = z
  .string()
  .regex(/^[A-Za-z0-9._:@*-]{1,64}$/, "tenant patterns are 1-64 chars of [A-Za-z0-9._:@-] and '*'");

export const tenantPrincipalMapSchema = z
  .record(z.string(), z.array(tenantPattern).min(1, "list at least one tenant pattern"))
  .superRefine((m, ctx) => {
    if (Object.keys(m).length === 0) ctx.addIssue({ code: "custom", message: "the map is empty: name at least one principal" });
    for (const key of Object.keys(m)) {
      const ok = principalPattern.safeParse(key);
      if (!ok.success) ctx.addIssue({ code: "custom", path: [key], message: ok.error.issues[0]?.message ?? "invalid principal pattern" });
    }
  });

/** Honours a claim only when some entry of `map` matches both the principal and the tenant. */
export function trustMap(map: TenantPrincipalMap): TenantBinding {
  const entries = Object.entries(tenantPrincipalMapSchema.parse(map)).map(([principal, tenants]) => ({
    principal: principalMatcher(principal),
    tenants: tenants.map(glob),
  }));
  return {
    check(principal, tenantId) {
      if (!principal) return { allowed: false, why: "the record names no calling principal (identity.arn)" };
      const matching = entries.filter((e) => e.principal(principal));
      if (matching.length === 0) return { allowed: false, why: `principal ${shown(principal, ARN)} is not in the tenant binding map` };
      if (matching.some((e) => e.tenants.some((t) => t.test(tenantId)))) return { allowed: true };
      return { allowed: false, why: `principal ${shown(principal, ARN)} may not act for tenant ${shown(tenantId, TENANT_ID_PATTERN)}` };
    },
  };
}

/** Honours no claim at all (no map configured): every claimed tenant is untrusted. */
export function trustNoClaims(why: string): TenantBinding {
  return { check: () => ({ allowed: false, why }) };
}

export const NO_BINDING_CONFIGURED =
  "no tenant binding is configured (TENANT_PRINCIPALS_JSON), so no principal may claim a tenant";

/** The binding of the deployment: the configured map, or deny-all when there is none. */
export function tenantBinding(map: TenantPrincipalMap | undefined): TenantBinding {
  return map ? trustMap(map) : trustNoClaims(NO_BINDING_CONFIGURED);
}

const ARN = /^arn:[A-Za-z0-9:/_+=,.@-]{1,2044}$/;

/** A value named in a message (kept in the quarantine): itself when it has the expected form, else its length. */
function shown(value: string, form: RegExp): string {
  return form.test(value) ? value : `<${value.length} chars>`;
}

function glob(pattern: string): RegExp {
  return new RegExp(`^${pattern.split("*").map(escapeRegExp).join(".*")}$`);
}

function principalMatcher(pattern: string): (principal: string) => boolean {
  if (pattern === "*") return () => true;
  const exact = glob(pattern);
  // arn:<partition>:iam::<account>:role/[path/]<name>: sessions of that role, as logged.
  const role = /^arn:([^:]+):iam::([^:]*):role\/(?:.*\/)?([^/]+)$/.exec(pattern);
  const session = role ? glob(`arn:${role[1]}:sts::${role[2]}:assumed-role/${role[3]}/*`) : undefined;
  return (principal) => exact.test(principal) || (session?.test(principal) ?? false);
}

function escapeRegExp(s: string): string {
  return s.replace(/[.+?^${}()|[\]\\]/g, "\\$&");
}
