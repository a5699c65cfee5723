import { z } from "zod";

/**
 * Configuration of every handler, parsed once at cold start from the environment. A missing
 * or malformed value fails loudly here, not deep inside an adapter. No other module reads
 * `process.env`.
 */
const schema = z.object({
  USAGE_TABLE_NAME: z.string().min(1),
  EVENT_BUS_NAME: z.string().min(1).default("default"),
  AWS_REGION: z.string().min(1).default("us-west-2"),
  /** Endpoint overrides for the local stack (same names the AWS SDK itself understands). */
  AWS_ENDPOINT_URL_DYNAMODB: z.string().url().optional(),
  AWS_ENDPOINT_URL_EVENTBRIDGE: z.string().url().optional(),
  /** Extra prices / aliases as JSON `{ prices: [...], aliases: {...} }`, merged over the defaults. */
  PRICE_CATALOG_JSON: z.string().optional(),
  /** Events older than this (by occurredAt) are quarantined as too late; must be < LEDGER_TTL_DAYS. */
  MAX_EVENT_AGE_DAYS: z.coerce.number().int().positive().default(35),
  /** How long a ledger item (the dedupe record) lives after the event was counted. */
  LEDGER_TTL_DAYS: z.coerce.number().int().positive().default(60),
  /** Items per TransactWriteItems (DynamoDB allows 100). */
  TRANSACTION_MAX_ITEMS: z.coerce.number().int().min(2).max(100).default(100),
  /** Aggregate groups (one transaction each) of one SQS batch committed at once. */
  INGEST_CHUNK_CONCURRENCY: z.coerce.number().int().min(1).max(32).default(4),
  /** Ledger claims (single conditional puts) of one SQS batch in flight at once. */
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
  /** Bucket the monthly billing export writes `billing/<yyyy-mm>/...` to (set by stacks/Jobs.ts). */
  BILLING_EXPORT_BUCKET: z.string().min(1).optional(),
  /** Directory the billing export writes to when no bucket is set (local stack). */
  BILLING_EXPORT_DIR: z.string().min(1).optional(),
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
