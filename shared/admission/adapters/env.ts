import type { DynamoDBDocumentClient } from "@aws-sdk/lib-dynamodb";
import { AdmissionGate } from "../../dataplane/admission";
import { priceCatalogFromEnv, type PriceCatalog } from "../../pricing/catalog";
import { InferenceProfilesInvalidError } from "../../pricing/inference-profiles";
import { loadTierCatalog, tierNameSchema } from "../../quota/tiers";
import { AdmissionConfigInvalidError } from "../errors";
import { formatIssues } from "../../events/invocation";
import { admissionConfigSchema, parseAdmissionConfig, withTierDefaults, type AdmissionConfig } from "../model";
import type { AdmissionMetrics } from "../ports";
import { Admission } from "../service";
import { DynamoBudgetStore, DynamoPoolStore, DynamoUsageTruth, QuotaPolicySource } from "./dynamodb";

/**
 * Admission of a data-plane process from its environment: the same variables the pipeline's
 * handlers read (shared/runtime/config.ts), so the data plane sees the same table, tier catalog
 * and prices as the ingest that counts its events. The caller passes the environment (this
 * module does not read `process.env`) and the DynamoDB document client (endpoint, credentials).
 */
export const ADMISSION_ENV = {
  /** The admission configuration (`parseAdmissionConfig`), JSON; absent or empty = the defaults. */
  config: "ADMISSION_CONFIG_JSON",
  /** The usage table (stacks/Storage.ts output `UsageTableName`); required. */
  table: "USAGE_TABLE_NAME",
  /** Tier catalog overrides, as the ingest reads them (shared/quota/tiers.ts `loadTierCatalog`). */
  tierCatalog: "TIER_CATALOG_JSON",
  /** Tier of a tenant without a CONFIG item (default basic), as the ingest reads it. */
  defaultTier: "QUOTA_DEFAULT_TIER",
  /** Extra prices / aliases over the built-in catalog, as the ingest reads them. */
  priceCatalog: "PRICE_CATALOG_JSON",
  /** Region reservations are priced in (default us-west-2, the gate's default). */
  region: "AWS_REGION",
} as const;

export type AdmissionEnv = Readonly<Record<string, string | undefined>>;

/** Parses `ADMISSION_CONFIG_JSON`; a value that does not parse or validate throws `AdmissionConfigInvalidError` naming it. */
export function admissionConfigFromEnv(env: AdmissionEnv): AdmissionConfig {
  const name = ADMISSION_ENV.config;
  const text = env[name]?.trim();
  if (!text) return parseAdmissionConfig({});
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (cause) {
    throw new AdmissionConfigInvalidError(`${name} is not valid JSON: ${(cause as Error).message}`, { cause });
  }
  // Validated here (not by parseAdmissionConfig's throw) so every issue is listed with its path.
  const checked = admissionConfigSchema.safeParse(raw);
  if (!checked.success) {
    throw new AdmissionConfigInvalidError(`${name} is not a valid admission configuration: ${formatIssues(checked.error, Infinity)}`, { cause: checked.error });
  }
  return withTierDefaults(checked.data);
}

export interface AdmissionFromEnvDeps {
  doc: DynamoDBDocumentClient;
  metrics?: AdmissionMetrics;
  logger?: { warn(message: string, extra?: Record<string, unknown>): void };
  /** Identifies this process in grants (logs only). */
  holder?: string;
  clock?: () => number;
  /** Told how long each admission took (ms). */
  onAdmitted?: (ms: number) => void;
}

export interface AdmissionFromEnv {
  config: AdmissionConfig;
  tableName: string;
  admission: Admission;
  /** The wrappers' side, built from the same configuration (estimator, requireMaxTokens, prices, region). */
  gate: AdmissionGate;
}

/**
 * Builds `Admission` (DynamoDB stores on the usage table, the tenant policy as the ingest
 * evaluates it) and the `AdmissionGate` the wrappers take. Fails at start-up, naming the
 * variable, rather than on the first call.
 */
export function admissionFromEnv(env: AdmissionEnv, deps: AdmissionFromEnvDeps): AdmissionFromEnv {
  const config = admissionConfigFromEnv(env);
  const tableName = env[ADMISSION_ENV.table]?.trim();
  if (!tableName) throw new AdmissionConfigInvalidError(`${ADMISSION_ENV.table} is not set: admission needs the usage table's name (stack output UsageTableName)`);
  const defaultTier = tierNameSchema.safeParse(env[ADMISSION_ENV.defaultTier] || "basic");
  if (!defaultTier.success) {
    throw new AdmissionConfigInvalidError(`${ADMISSION_ENV.defaultTier} must be one of ${tierNameSchema.options.join(", ")}, got '${env[ADMISSION_ENV.defaultTier]}'`);
  }
  const tiers = loadTierCatalog(env[ADMISSION_ENV.tierCatalog]); // QuotaConfigInvalidError names TIER_CATALOG_JSON itself
  let prices: PriceCatalog;
  try {
    prices = priceCatalogFromEnv(env);
  } catch (cause) {
    // An INFERENCE_PROFILES_JSON error names its variable itself; a catalog error does not.
    const message = (cause as Error).message;
    throw new AdmissionConfigInvalidError(cause instanceof InferenceProfilesInvalidError ? message : `${ADMISSION_ENV.priceCatalog}: ${message}`, { cause });
  }
  const { doc } = deps;
  const policies = new QuotaPolicySource(doc, tableName, tiers, defaultTier.data);
  const admission = new Admission({
    config,
    budgets: new DynamoBudgetStore(doc, tableName),
    pools: new DynamoPoolStore(doc, tableName),
    truth: new DynamoUsageTruth(doc, tableName),
    policies,
    metrics: deps.metrics,
    logger: deps.logger,
    holder: deps.holder,
    clock: deps.clock,
  });
  const gate = new AdmissionGate({
    admission,
    estimator: config.estimator,
    requireMaxTokens: config.requireMaxTokens,
    prices,
    region: env[ADMISSION_ENV.region] || undefined,
    onAdmitted: deps.onAdmitted,
    ...(Object.keys(config.profileScopes).length > 0
      ? { profileScopes: config.profileScopes, serviceTiers: config.serviceTiers, tierOf: (tenantId: string) => admission.tierOf(tenantId) }
      : {}),
  });
  return { config, tableName, admission, gate };
}
