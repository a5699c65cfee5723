import { z } from "zod";
import { TENANT_ID_PATTERN, formatIssues } from "../events/invocation";

/**
 * Application inference profiles (native per-tenant attribution, `shared/reconciliation/attribution.ts`):
 * one configured map, `INFERENCE_PROFILES_JSON`, read both ways.
 *
 * - Wrappers (`MeteredBedrock`): tenant (or its tier) + the model the caller asked for -> the
 *   profile ARN to call, so AWS's bill carries the profile's cost-allocation tags.
 * - Price catalog and reconciliation: a profile ARN (in an invocation-log record, or CloudWatch's
 *   `ModelId`) -> the base model it copies, so it is priced and compared as that model.
 *
 * JSON: an array of `{ "arn": "<application-inference-profile ARN>", "model": "<base model id>",
 * "tenant"?: "<tenant id>", "tier"?: "<tier>" }`. `model` is the id callers pass (a foundation
 * model id like `anthropic.claude-3-5-sonnet-20240620-v1:0`, or a system profile id like
 * `us.anthropic...` for a profile copied from one; their ARNs are accepted and reduced to the id).
 * An entry with neither `tenant` nor `tier` is only resolved (priced), never called.
 */

export const APPLICATION_PROFILE_ARN = /^arn:aws[a-z-]*:bedrock:([a-z0-9-]+):(\d{12}):application-inference-profile\/([a-z0-9]+)$/;

const entrySchema = z
  .object({
    arn: z.string().regex(APPLICATION_PROFILE_ARN, "must be an application-inference-profile ARN (arn:aws:bedrock:<region>:<account>:application-inference-profile/<id>)"),
    model: z
      .string()
      .min(1)
      .max(256)
      .regex(/^[^#\s\u0000-\u001f]+$/, "model may not contain '#', whitespace or control characters")
      .refine((m) => !APPLICATION_PROFILE_ARN.test(m), "model must be the base model (or system profile) the profile copies, not another application profile"),
    tenant: z.string().regex(TENANT_ID_PATTERN, "tenant must be a tenant id").optional(),
    tier: z
      .string()
      .regex(/^[^|#\u0000-\u001f]{1,64}$/, "tier must be 1-64 chars without '|', '#' or control characters")
      .optional(),
  })
  .strict()
  .refine((e) => !(e.tenant && e.tier), "an entry is for a tenant or for a tier, not both");

export const inferenceProfilesSchema = z.array(entrySchema).superRefine((entries, ctx) => {
  const arns = new Map<string, string>();
  const owners = new Set<string>();
  entries.forEach((e, i) => {
    const m = APPLICATION_PROFILE_ARN.exec(e.arn);
    if (!m) return; // reported by the entry's own check
    const id = m[3];
    if (arns.has(id) && arns.get(id) !== baseModelKey(e.model)) {
      ctx.addIssue({ code: "custom", path: [i, "arn"], message: `profile ${id} is listed with two different models` });
    }
    arns.set(id, baseModelKey(e.model));
    const owner = ownerKey(e.tenant ? "tenant" : e.tier ? "tier" : undefined, e.tenant ?? e.tier, e.model, regionOfArn(e.arn));
    if (owner && owners.has(owner)) ctx.addIssue({ code: "custom", path: [i], message: "two profiles for the same tenant (or tier), model and region" });
    if (owner) owners.add(owner);
  });
});

export type InferenceProfileEntry = z.infer<typeof entrySchema>;

export class InferenceProfilesInvalidError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "InferenceProfilesInvalidError";
  }
}

/** Parses `INFERENCE_PROFILES_JSON` (undefined or empty: no profiles). Throws {@link InferenceProfilesInvalidError} naming the bad fields. */
export function parseInferenceProfiles(json: string | undefined): InferenceProfileEntry[] {
  if (!json) return [];
  let raw: unknown;
  try {
    raw = JSON.parse(json);
  } catch (cause) {
    throw new InferenceProfilesInvalidError("INFERENCE_PROFILES_JSON does not parse", { cause });
  }
  const parsed = inferenceProfilesSchema.safeParse(raw);
  if (!parsed.success) {
    throw new InferenceProfilesInvalidError(
      `invalid INFERENCE_PROFILES_JSON: ${formatIssues(parsed.error, Infinity)}`,
    );
  }
  return parsed.data;
}

export class InferenceProfiles {
  private readonly toCall = new Map<string, string>();
  private readonly baseById = new Map<string, string>();

  constructor(readonly entries: readonly InferenceProfileEntry[] = []) {
    for (const e of entries) {
      const id = APPLICATION_PROFILE_ARN.exec(e.arn)![3];
      this.baseById.set(id, e.model);
      const owner = ownerKey(e.tenant ? "tenant" : e.tier ? "tier" : undefined, e.tenant ?? e.tier, e.model, regionOfArn(e.arn));
      if (owner) this.toCall.set(owner, e.arn);
    }
  }

  static fromJson(json: string | undefined): InferenceProfiles {
    return new InferenceProfiles(parseInferenceProfiles(json));
  }

  get size(): number {
    return this.entries.length;
  }

  /**
   * The profile ARN a wrapper calls for `modelId` on behalf of the tenant: the tenant's own, else
   * its tier's, in the client's `region` (a profile is regional; with the region unknown, a
   * profile of any region is taken only if there is exactly one). Undefined: call `modelId`.
   */
  forCall(tenantId: string, tier: string | undefined, modelId: string, region: string | undefined): string | undefined {
    for (const [kind, owner] of [["tenant", tenantId], ["tier", tier]] as const) {
      if (owner === undefined) continue;
      if (region) {
        const arn = this.toCall.get(ownerKey(kind, owner, modelId, region)!);
        if (arn) return arn;
        continue;
      }
      const prefix = ownerKey(kind, owner, modelId, "")!;
      const found = [...this.toCall.entries()].filter(([k]) => k.startsWith(prefix));
      if (found.length === 1) return found[0][1];
    }
    return undefined;
  }

  /** The base model (or system profile) an application profile copies, by its ARN or its id; undefined when not configured. */
  baseModelOf(modelIdOrArn: string): string | undefined {
    const arn = APPLICATION_PROFILE_ARN.exec(modelIdOrArn);
    return this.baseById.get(arn ? arn[3] : modelIdOrArn);
  }

  /** Price-catalog aliases: profile id -> model (the catalog reads the ARN's region itself). */
  aliases(): Record<string, string> {
    return Object.fromEntries(this.baseById);
  }
}

/** A foundation-model or system-profile ARN reduced to its id; ids as they are. */
function baseModelKey(modelId: string): string {
  const m = /^arn:aws[a-z-]*:bedrock:[^:]*:[^:]*:(foundation-model|inference-profile)\/(.+)$/.exec(modelId);
  return m ? m[2] : modelId;
}

function regionOfArn(arn: string): string {
  return APPLICATION_PROFILE_ARN.exec(arn)![1];
}

function ownerKey(kind: "tenant" | "tier" | undefined, owner: string | undefined, model: string, region: string): string | undefined {
  return kind && owner !== undefined ? `${kind}|${owner}|${baseModelKey(model)}|${region}` : undefined;
}
