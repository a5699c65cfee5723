import { z } from "zod";

/**
 * Fixed-cost serving endpoints (SageMaker real-time) whose instance-hours are shared among
 * the tenants that used them. The catalog is code with a JSON override
 * (`ENDPOINT_CATALOG_JSON`), like the price catalog.
 */

export const HOURS_PER_YEAR = 8760; // 365 days; the seed's yearly figures use a 365-day year

/**
 * SageMaker real-time inference instance rates, USD per instance-hour, us-west-2.
 *
 * `savingsPlan1yrNoUpfront` is DERIVED from the seed's yearly figures (seed-notes.md, "the
 * cost example", Oregon, 2024-10-22, 1-year Savings Plan, no upfront):
 *   ml.g5.12xlarge  $49,000 / 8,760 h = $5.5936 -> $5.594/h  ($49,003/yr)
 *   ml.g5.48xlarge $140,000 / 8,760 h = $15.9817 -> $15.982/h ($140,002/yr)
 * `onDemand` is the SageMaker real-time on-demand list rate as we recall it for us-west-2
 * (ml.g5.12xlarge $7.09/h, ml.g5.48xlarge $20.36/h); it was not verified against the price
 * page offline. The derived Savings Plan rates are ~21% below them, in line with SageMaker
 * 1-year no-upfront discounts. Override both through ENDPOINT_CATALOG_JSON when they change.
 */
export const SAGEMAKER_INSTANCE_RATES = {
  "ml.g5.12xlarge": {
    gpuMemoryGb: 96,
    onDemand: 7.09,
    savingsPlan1yrNoUpfront: 5.594,
    source: "savings plan derived from seed-notes $49K/yr (1-yr SP, no upfront, us-west-2, 2024-10-22); on-demand: list rate, unverified offline",
  },
  "ml.g5.48xlarge": {
    gpuMemoryGb: 192,
    onDemand: 20.36,
    savingsPlan1yrNoUpfront: 15.982,
    source: "savings plan derived from seed-notes $140K/yr (1-yr SP, no upfront, us-west-2, 2024-10-22); on-demand: list rate, unverified offline",
  },
} as const;

export type AllocationBasis = "inferenceMs" | "tokens";

const name = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9-]{0,62}$/, "SageMaker endpoint names are 1-63 chars of [A-Za-z0-9-]");
const usdPerHour = z.number().finite().nonnegative();

export const fixedCostEndpointSchema = z
  .object({
    endpointName: name,
    instanceType: z.string().min(1),
    instanceCount: z.number().int().positive(),
    onDemandHourlyUsd: usdPerHour,
    savingsPlanHourlyUsd: usdPerHour,
    /** Which of the two rates this endpoint is billed at. */
    rate: z.enum(["on-demand", "savings-plan"]),
    /** Tier the endpoint serves (seed: Basic on line 1, Premium on line 2). */
    tier: z.string().min(1),
    /** Sequences one instance serves at once (seed: ~5 at 128K context); sizes idle capacity. */
    maxConcurrencyPerInstance: z.number().positive(),
    /** What the hour's cost is shared by. */
    basis: z.enum(["inferenceMs", "tokens"]),
    description: z.string().optional(),
  })
  .strict();

export type FixedCostEndpoint = z.infer<typeof fixedCostEndpointSchema>;

function fromRates(
  instanceType: keyof typeof SAGEMAKER_INSTANCE_RATES,
): Pick<FixedCostEndpoint, "instanceType" | "onDemandHourlyUsd" | "savingsPlanHourlyUsd"> {
  const r = SAGEMAKER_INSTANCE_RATES[instanceType];
  return { instanceType, onDemandHourlyUsd: r.onDemand, savingsPlanHourlyUsd: r.savingsPlan1yrNoUpfront };
}

/** The seed's two self-hosted Llama 3.1 70B deployments. */
export const DEFAULT_ENDPOINTS: readonly FixedCostEndpoint[] = [
  {
    endpointName: "llama31-70b-lora",
    ...fromRates("ml.g5.48xlarge"),
    instanceCount: 1,
    rate: "savings-plan",
    tier: "basic",
    maxConcurrencyPerInstance: 5,
    basis: "inferenceMs",
    description: "Llama 3.1 70B INT8 + per-tenant LoRA adapters (S-LoRA, DJL LMI), Basic tier (line 1)",
  },
  {
    endpointName: "llama31-70b-int4",
    ...fromRates("ml.g5.12xlarge"),
    instanceCount: 1,
    rate: "savings-plan",
    tier: "premium",
    maxConcurrencyPerInstance: 5,
    basis: "inferenceMs",
    description: "Llama 3.1 70B INT4, self-hosted high-performance line (line 2) for Premium tenants",
  },
];

const NANO = 1_000_000_000;

/** The rate the endpoint is billed at, USD per instance-hour. */
export function appliedHourlyUsd(e: FixedCostEndpoint): number {
  return e.rate === "savings-plan" ? e.savingsPlanHourlyUsd : e.onDemandHourlyUsd;
}

/** Cost of one endpoint-hour (all instances), integer nano-USD. */
export function hourCostNanoUsd(e: FixedCostEndpoint): number {
  return Math.round(appliedHourlyUsd(e) * NANO) * e.instanceCount;
}

/** Capacity of one endpoint-hour in concurrent-sequence milliseconds. */
export function hourCapacityMs(e: FixedCostEndpoint): number {
  return Math.round(e.instanceCount * 3_600_000 * e.maxConcurrencyPerInstance);
}

export class EndpointCatalogInvalidError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "EndpointCatalogInvalidError";
  }
}

export class EndpointNotInCatalogError extends Error {
  constructor(readonly endpointName: string) {
    super(`endpoint '${endpointName}' is not in the endpoint catalog`);
    this.name = "EndpointNotInCatalogError";
  }
}

const catalogJsonSchema = z.object({ endpoints: z.array(fixedCostEndpointSchema) }).strict();

export class EndpointCatalog {
  private readonly byName: Map<string, FixedCostEndpoint>;

  constructor(endpoints: readonly FixedCostEndpoint[] = DEFAULT_ENDPOINTS) {
    this.byName = new Map(endpoints.map((e) => [e.endpointName, e]));
  }

  /**
   * `{ "endpoints": [...] }`; an entry replaces the default of the same name, others are
   * added. Invalid JSON fails loudly: a silently wrong rate would misbill every tenant.
   */
  static fromJson(json: string | undefined): EndpointCatalog {
    if (!json) return new EndpointCatalog();
    let raw: unknown;
    try {
      raw = JSON.parse(json);
    } catch (cause) {
      throw new EndpointCatalogInvalidError("endpoint catalog JSON does not parse", { cause });
    }
    const parsed = catalogJsonSchema.safeParse(raw);
    if (!parsed.success) {
      const detail = parsed.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ");
      throw new EndpointCatalogInvalidError(`invalid endpoint catalog: ${detail}`);
    }
    const merged = new Map(DEFAULT_ENDPOINTS.map((e) => [e.endpointName, e]));
    for (const e of parsed.data.endpoints) merged.set(e.endpointName, e);
    return new EndpointCatalog([...merged.values()]);
  }

  list(): FixedCostEndpoint[] {
    return [...this.byName.values()].sort((a, b) => a.endpointName.localeCompare(b.endpointName));
  }

  get(endpointName: string): FixedCostEndpoint {
    const e = this.byName.get(endpointName);
    if (!e) throw new EndpointNotInCatalogError(endpointName);
    return e;
  }
}
