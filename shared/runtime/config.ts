import { z } from "zod";
import { tenantPrincipalMapSchema, type TenantPrincipalMap } from "../invocation-log/tenant-binding";
import { InferenceProfilesInvalidError, parseInferenceProfiles } from "../pricing/inference-profiles";

/**
 * Configuration of every handler, parsed once at cold start from the environment. A missing
 * or malformed value fails loudly here, not deep inside an adapter. No other module reads
 * `process.env`.
 */
const schema = z.object({
  USAGE_TABLE_NAME: z.string().min(1),
  /**
   * The pipeline's bus. No default: an event put without a bus name (or to `default`) lands on
   * the account's default bus, where no rule of this pipeline listens. Handlers that publish
   * read it through {@link eventBusName}, which fails loudly when it is missing.
   */
  EVENT_BUS_NAME: z
    .string()
    .min(1)
    .refine((v) => v !== "default" && !/:event-bus\/default$/.test(v), {
      message: "is the account's default bus, where no rule of this pipeline listens; set the pipeline's bus name",
    })
    .optional(),
  AWS_REGION: z.string().min(1).default("us-west-2"),
  /** Endpoint overrides for the local stack (same names the AWS SDK itself understands). */
  AWS_ENDPOINT_URL_DYNAMODB: z.string().url().optional(),
  AWS_ENDPOINT_URL_EVENTBRIDGE: z.string().url().optional(),
  /** Extra prices / aliases as JSON `{ prices: [...], aliases: {...} }`, merged over the defaults. */
  PRICE_CATALOG_JSON: z.string().optional(),
  /**
   * Application inference profiles (native per-tenant attribution) as JSON
   * `[{ "arn": "<application-inference-profile ARN>", "model": "<base model id>", "tenant"?: "...", "tier"?: "..." }]`
   * (shared/pricing/inference-profiles.ts): a profile ARN in an event or in CloudWatch's ModelId is
   * priced and reconciled as its base model. Checked here, at cold start.
   */
  INFERENCE_PROFILES_JSON: z
    .string()
    .optional()
    .superRefine((raw, ctx) => {
      try {
        parseInferenceProfiles(raw);
      } catch (error) {
        if (!(error instanceof InferenceProfilesInvalidError)) throw error;
        ctx.addIssue({ code: "custom", message: error.message });
      }
    }),
  /** Events older than this (by occurredAt) are quarantined as too late; must be < LEDGER_TTL_DAYS. */
  MAX_EVENT_AGE_DAYS: z.coerce.number().int().positive().default(35),
  /** How long a ledger item (the dedupe record) lives after the event was counted. */
  LEDGER_TTL_DAYS: z.coerce.number().int().positive().default(60),
  /** Items per TransactWriteItems (DynamoDB allows 100): the fixed-cost allocation's commits. */
  TRANSACTION_MAX_ITEMS: z.coerce.number().int().min(2).max(100).default(100),
  /** Ledger claim requests and aggregate item writes of one SQS batch in flight at once. */
  INGEST_CLAIM_CONCURRENCY: z.coerce.number().int().min(1).max(256).default(32),
  /**
   * How long an undecided ledger claim of another run is respected before it is taken over.
   * At least the consumer's timeout (a run lives no longer) and below the queue's
   * visibility timeout (a crashed run's events are redelivered after it).
   */
  INGEST_CLAIM_LEASE_SECONDS: z.coerce.number().min(0).default(30),
  /** Metrics namespace for CloudWatch EMF. */
  METRICS_NAMESPACE: z.string().default("GenAIMetering"),
  SERVICE_NAME: z.string().default("genai-metering"),
  /**
   * Dimensions of the cost-allocation metrics. Each distinct combination is a billed custom
   * metric: per tenant x tier x model is the most detailed and the most expensive; "tier-model"
   * keeps the count independent of the number of tenants; "off" emits none (usage API only).
   */
  COST_METRIC_DIMENSIONS: z.enum(["tenant-tier-model", "tenant-tier", "tier-model", "off"]).default("tenant-tier-model"),
  /** Tier catalog overrides as JSON `{ "basic": { "monthlyTokens": 500000 }, ... }`, merged over the defaults (shared/quota/tiers.ts). */
  TIER_CATALOG_JSON: z.string().optional(),
  /** Tier of a tenant without a CONFIG item. */
  QUOTA_DEFAULT_TIER: z.enum(["basic", "advanced", "premium"]).default("basic"),
  /** How long enforcement log entries (GET /enforcement/events) are kept. */
  ENFORCEMENT_LOG_TTL_DAYS: z.coerce.number().int().positive().default(90),
  /** Fixed-cost endpoints as JSON `{ endpoints: [...] }`, replacing/adding to the defaults (shared/allocation). */
  ENDPOINT_CATALOG_JSON: z.string().optional(),
  /** Endpoint-hours the hourly allocation job looks back over to re-split hours changed by late usage. */
  ALLOCATION_LOOKBACK_HOURS: z.coerce.number().int().min(1).max(840).default(24),
  /**
   * Which calling principals may claim which tenants in Bedrock's request metadata, as JSON
   * `{ "<principal ARN pattern>": ["<tenant pattern>", ...] }` (see
   * shared/invocation-log/tenant-binding.ts). Unset: no claim in an invocation log is trusted
   * (each is quarantined as `untrusted-tenant`). `{"*":["*"]}` trusts every principal for every
   * tenant (the local stack and demos only).
   */
  TENANT_PRINCIPALS_JSON: z
    .string()
    .optional()
    .transform((raw, ctx): TenantPrincipalMap | undefined => {
      if (raw === undefined) return undefined;
      let json: unknown;
      try {
        json = JSON.parse(raw);
      } catch {
        ctx.addIssue({ code: "custom", message: "is not valid JSON (expected an object of principal pattern -> tenant patterns)" });
        return z.NEVER;
      }
      const parsed = tenantPrincipalMapSchema.safeParse(json);
      if (!parsed.success) {
        for (const i of parsed.error.issues) ctx.addIssue({ code: "custom", message: `${i.path.join(".") || "(root)"}: ${i.message}` });
        return z.NEVER;
      }
      return parsed.data;
    }),
  /**
   * Key that signs the HTTP API's page cursors (HMAC-SHA256, at least 32 characters). Required on
   * Lambda (the Api stack sets it from a generated Secrets Manager secret); when absent elsewhere
   * (local stack, tests) each process uses a random key. Changing it invalidates open cursors.
   */
  CURSOR_SECRET: z.string().min(32, "CURSOR_SECRET must be at least 32 characters").optional(),
  /** Set by Lambda itself; used only to tell "on Lambda" from the local stack. */
  AWS_LAMBDA_FUNCTION_NAME: z.string().min(1).optional(),
  /** Bucket the monthly billing export writes `billing/<yyyy-mm>/...` to (set by stacks/Jobs.ts). */
  BILLING_EXPORT_BUCKET: z.string().min(1).optional(),
  /** Directory the billing export writes to when no bucket is set (local stack). */
  BILLING_EXPORT_DIR: z.string().min(1).optional(),
  /** CloudWatch endpoint override (the local stack's CloudWatch API); unset on Lambda. */
  AWS_ENDPOINT_URL_CLOUDWATCH: z.string().url().optional(),
  /** Reconciliation: drift (percent of AWS's tokens or SageMaker calls) above which the report and the ops alarm fire. */
  RECONCILE_DRIFT_THRESHOLD_PERCENT: z.coerce.number().min(0).max(100).default(0.5),
  /** Reconciliation: full hours the hourly run waits after an hour ends (invocation logs and AWS metrics arrive late). */
  RECONCILE_LAG_HOURS: z.coerce.number().int().min(0).max(72).default(1),
  /** Where drift reports go: `reconciliation/<day>/<hour>.{json,csv}` (default: the billing export bucket / directory). */
  RECONCILIATION_REPORT_BUCKET: z.string().min(1).optional(),
  RECONCILIATION_REPORT_DIR: z.string().min(1).optional(),
});

export type RuntimeConfig = z.infer<typeof schema>;

export class ConfigurationError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ConfigurationError";
  }
}

export function parseConfig(env: Record<string, string | undefined> = process.env): RuntimeConfig {
  const parsed = schema.safeParse(env);
  if (!parsed.success) {
    const detail = parsed.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ");
    throw new ConfigurationError(`invalid configuration: ${detail}`);
  }
  if (parsed.data.MAX_EVENT_AGE_DAYS >= parsed.data.LEDGER_TTL_DAYS) {
    throw new ConfigurationError("MAX_EVENT_AGE_DAYS must be below LEDGER_TTL_DAYS, or a late duplicate could be counted twice");
  }
  return parsed.data;
}

/** The pipeline's bus, for a handler that publishes events; throws when EVENT_BUS_NAME is not set. */
export function eventBusName(cfg: Pick<RuntimeConfig, "EVENT_BUS_NAME">): string {
  if (!cfg.EVENT_BUS_NAME) {
    throw new ConfigurationError(
      "EVENT_BUS_NAME is not set: this handler publishes events, and without a bus name they would go to the account's default bus, where nothing counts them",
    );
  }
  return cfg.EVENT_BUS_NAME;
}

/**
 * Only the logger/metrics settings (service name, metrics namespace), for a handler that
 * builds its observability before the rest of its configuration is needed.
 */
export function observabilityConfig(env: Record<string, string | undefined> = process.env): Pick<RuntimeConfig, "SERVICE_NAME" | "METRICS_NAMESPACE"> {
  const parsed = schema.pick({ SERVICE_NAME: true, METRICS_NAMESPACE: true }).safeParse(env);
  if (!parsed.success) throw new ConfigurationError(`invalid configuration: ${parsed.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ")}`);
  return parsed.data;
}

let cached: RuntimeConfig | undefined;
/** The process-wide config, parsed on first use. */
export function config(): RuntimeConfig {
  cached ??= parseConfig();
  return cached;
}
/** For the local stack and tests that change the environment between runs. */
export function resetConfig(): void {
  cached = undefined;
}
