import { createHash } from "node:crypto";
import type { InferenceProfileEntry } from "../pricing/inference-profiles";

/**
 * Native per-tenant attribution (optional per stage): one Bedrock application inference
 * profile per tenant (or per tier) and source model, tagged for cost allocation, so AWS's own
 * bill (CUR 2.0, Cost Explorer) splits Bedrock cost by tenant. This module plans the profiles;
 * `adapters/bedrock.ts` creates them. Tags are not retroactive, and a region allows 2,000
 * application inference profiles by default: the plan refuses to pass the limit.
 */

export const DEFAULT_PROFILE_LIMIT = 2000;
/** Cost-allocation tag keys (activate them in the Billing console to see them in CUR as `user_<key>`). */
export const ATTRIBUTION_TAGS = { tenant: "tenantId", tier: "tier", stage: "genai-metering-stage" } as const;

export interface ProfileSpec {
  /** `[0-9a-zA-Z:.][ _-]?` repeated, at most 64 characters. */
  inferenceProfileName: string;
  /** The foundation-model or system inference-profile ARN the profile copies. */
  copyFrom: string;
  /** Same inputs, same token: a retried create is idempotent on Bedrock's side. */
  clientRequestToken: string;
  tags: { key: string; value: string }[];
  owner: { kind: "tenant" | "tier"; id: string };
}

export interface ProfilePlan {
  create: ProfileSpec[];
  /** Planned profiles that already exist (by name). */
  existing: { spec: ProfileSpec; arn: string }[];
  /** Application profiles in the region after the plan is applied. */
  totalAfter: number;
  limit: number;
}

export class AttributionProfileLimitError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "AttributionProfileLimitError";
  }
}

export class AttributionInvalidInputError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "AttributionInvalidInputError";
  }
}

export interface PlanInput {
  stage: string;
  per: "tenant" | "tier";
  tenants: readonly { tenantId: string; tier: string }[];
  /** Source models (foundation-model or system inference-profile ARNs). */
  models: readonly string[];
  /** Application inference profiles already in the region: name -> ARN (all of them, for the limit). */
  existing: ReadonlyMap<string, string>;
  limit?: number;
}

export function planProfiles(input: PlanInput): ProfilePlan {
  const limit = input.limit ?? DEFAULT_PROFILE_LIMIT;
  if (!/^[a-z0-9-]{1,16}$/.test(input.stage)) throw new AttributionInvalidInputError(`stage must be 1-16 chars of [a-z0-9-], got '${input.stage}'`);
  if (input.models.length === 0) throw new AttributionInvalidInputError("at least one source model ARN is needed");
  for (const m of input.models) {
    if (!/^arn:aws[a-z-]*:bedrock:[a-z0-9-]+:[0-9]*:(foundation-model|inference-profile)\/.+$/.test(m)) {
      throw new AttributionInvalidInputError(`not a foundation-model or system inference-profile ARN: ${m}`);
    }
  }
  const owners =
    input.per === "tenant"
      ? input.tenants.map((t) => ({ kind: "tenant" as const, id: t.tenantId, tier: t.tier }))
      : [...new Set(input.tenants.map((t) => t.tier))].sort().map((tier) => ({ kind: "tier" as const, id: tier, tier }));
  const specs: ProfileSpec[] = [];
  for (const owner of owners) {
    for (const copyFrom of input.models) {
      const name = profileName(input.stage, owner.kind, owner.id, copyFrom);
      const tags = [
        { key: ATTRIBUTION_TAGS.stage, value: input.stage },
        { key: ATTRIBUTION_TAGS.tier, value: owner.tier },
        ...(owner.kind === "tenant" ? [{ key: ATTRIBUTION_TAGS.tenant, value: owner.id }] : []),
      ];
      specs.push({ inferenceProfileName: name, copyFrom, clientRequestToken: token(name, copyFrom), tags, owner: { kind: owner.kind, id: owner.id } });
    }
  }
  const existing = specs.filter((s) => input.existing.has(s.inferenceProfileName)).map((spec) => ({ spec, arn: input.existing.get(spec.inferenceProfileName)! }));
  const create = specs.filter((s) => !input.existing.has(s.inferenceProfileName));
  const totalAfter = input.existing.size + create.length;
  if (totalAfter > limit) {
    throw new AttributionProfileLimitError(
      `${create.length} new profile(s) + ${input.existing.size} existing = ${totalAfter} > ${limit} application inference profiles per region` +
        (input.per === "tenant" ? "; plan per tier instead (--per tier), or ask AWS for a higher quota" : ""),
    );
  }
  return { create, existing, totalAfter, limit };
}

/**
 * `<stage>.<t|g>.<owner>.<model-short>.<hash8>`: readable, unique per (owner, model), within 64
 * characters, in Bedrock's name alphabet (tenant ids may hold '@', which is replaced).
 */
export function profileName(stage: string, kind: "tenant" | "tier", owner: string, copyFrom: string): string {
  const model = copyFrom.slice(copyFrom.lastIndexOf("/") + 1);
  const short = model.replace(/[^0-9a-zA-Z.:-]/g, "-").slice(0, 20);
  const safeOwner = owner.replace(/[^0-9a-zA-Z.:_-]/g, "-").slice(0, 24);
  const hash = createHash("sha256").update(`${kind}|${owner}|${copyFrom}`).digest("hex").slice(0, 8);
  return `${stage}.${kind === "tenant" ? "t" : "g"}.${safeOwner}.${short}.${hash}`.replace(/([ _-])(?=[ _-])/g, "$1x");
}

function token(name: string, copyFrom: string): string {
  return createHash("sha256").update(`${name}|${copyFrom}`).digest("hex").slice(0, 64);
}

/**
 * The plan's profiles as `INFERENCE_PROFILES_JSON` entries (shared/pricing/inference-profiles.ts):
 * existing and created ones with their ARNs (a profile whose create failed is left out).
 */
export function profileMapEntries(plan: ProfilePlan, created: ReadonlyMap<string, string>): InferenceProfileEntry[] {
  const withArn = [
    ...plan.existing,
    ...plan.create.flatMap((spec) => (created.has(spec.inferenceProfileName) ? [{ spec, arn: created.get(spec.inferenceProfileName)! }] : [])),
  ];
  return withArn.map(({ spec, arn }) => ({ arn, model: spec.copyFrom, ...(spec.owner.kind === "tenant" ? { tenant: spec.owner.id } : { tier: spec.owner.id }) }));
}
